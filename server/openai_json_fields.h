#pragma once
// Typed reads of a request body's JSON fields for the OpenAI parser (openai_mapping.cpp). A value of
// the wrong type or out of range throws Reject carrying a 400 that names the field; Fields names the
// keys nobody read. The exception never leaves the parser: parse_request turns it into its ApiError.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <set>
#include <string>

#include "server/openai_mapping.h"

namespace pagoda::server::openai {

// The first rule a request breaks.
struct Reject {
  ApiError error;
};

[[noreturn]] void reject(std::string message, std::string param);
// "an integer", "a string", "null" ...: what a JSON value is, for messages.
const char* json_type_name(const nlohmann::json& v);
// "'field' must be <expected>, got <what v is>".
[[noreturn]] void wrong_type(const nlohmann::json& v, const std::string& field, const char* expected);

int64_t as_int(const nlohmann::json& v, const std::string& field);
double as_number(const nlohmann::json& v, const std::string& field);
bool as_bool(const nlohmann::json& v, const std::string& field);
const std::string& as_string(const nlohmann::json& v, const std::string& field);
void check_range(double v, double lo, double hi, const std::string& field);
void check_range(int64_t v, int64_t lo, int64_t hi, const std::string& field);

// The request object's fields; records which were read so the rest can be named as unknown.
class Fields {
 public:
  Fields(const nlohmann::json& obj, std::set<std::string> allowed) : obj_(obj), allowed_(std::move(allowed)) {}
  void reject_unknown() const;
  // The value, or nullptr when absent or null (OpenAI treats null as "not given").
  const nlohmann::json* get(const std::string& key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }

 private:
  const nlohmann::json& obj_;
  std::set<std::string> allowed_;
};

}  // namespace pagoda::server::openai
