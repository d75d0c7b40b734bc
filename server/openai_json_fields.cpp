#include "server/openai_json_fields.h"

#include <spdlog/fmt/fmt.h>

#include <limits>
#include <vector>

namespace pagoda::server::openai {

using json = nlohmann::json;

const char* json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

[[noreturn]] void reject(std::string message, std::string param) {
  throw Reject{invalid(std::move(message), std::move(param))};
}

[[noreturn]] void wrong_type(const json& v, const std::string& field, const char* expected) {
  reject(fmt::format("'{}' must be {}, got {}", field, expected, json_type_name(v)), field);
}

int64_t as_int(const json& v, const std::string& field) {
  if (!v.is_number_integer()) wrong_type(v, field, "an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    reject(fmt::format("'{}' is too large: {}", field, v.get<uint64_t>()), field);
  }
  return v.get<int64_t>();
}

double as_number(const json& v, const std::string& field) {
  if (!v.is_number()) wrong_type(v, field, "a number");
  return v.get<double>();
}

bool as_bool(const json& v, const std::string& field) {
  if (!v.is_boolean()) wrong_type(v, field, "a boolean");
  return v.get<bool>();
}

const std::string& as_string(const json& v, const std::string& field) {
  if (!v.is_string()) wrong_type(v, field, "a string");
  return v.get_ref<const std::string&>();
}

void check_range(double v, double lo, double hi, const std::string& field) {
  if (!(v >= lo && v <= hi)) reject(fmt::format("'{}' must be between {} and {}, got {}", field, lo, hi, v), field);
}

void check_range(int64_t v, int64_t lo, int64_t hi, const std::string& field) {
  if (v < lo || v > hi) reject(fmt::format("'{}' must be between {} and {}, got {}", field, lo, hi, v), field);
}

void Fields::reject_unknown() const {
  std::vector<std::string> unknown;
  for (const auto& [key, value] : obj_.items()) {
    if (!allowed_.count(key)) unknown.push_back(key);
  }
  if (unknown.empty()) return;
  if (unknown.size() == 1) reject(fmt::format("Unrecognized request argument supplied: {}", unknown[0]), unknown[0]);
  reject(fmt::format("Unrecognized request arguments supplied: {}", fmt::join(unknown, ", ")), unknown[0]);
}

}  // namespace pagoda::server::openai
