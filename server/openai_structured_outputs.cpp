#include "server/openai_structured_outputs.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace pagoda::server::openai {

namespace {

using json = nlohmann::json;
using Kind = engine::GrammarSpec::Kind;

// A schema given as an object or as its JSON text (vLLM takes both); the spec keeps the text.
std::string schema_text(const json& v, const std::string& field) {
  if (v.is_object()) return v.dump();
  if (v.is_string()) {
    json parsed = json::parse(v.get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object()) reject(fmt::format("'{}' is not a JSON schema object", field), field);
    return parsed.dump();
  }
  if (v.is_boolean()) return v.dump();  // true: anything; false: nothing (JSON Schema's boolean schemas)
  wrong_type(v, field, "a JSON schema (an object)");
}

std::vector<std::string> choices(const json& v, const std::string& field) {
  if (!v.is_array()) wrong_type(v, field, "an array of strings");
  if (v.empty()) reject(fmt::format("'{}' must hold at least one choice", field), field);
  if (v.size() > engine::kMaxGrammarChoices) {
    reject(fmt::format("'{}' has {} choices; at most {} are allowed", field, v.size(), engine::kMaxGrammarChoices), field);
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string& s = as_string(v[i], fmt::format("{}[{}]", field, i));
    if (s.empty()) reject(fmt::format("'{}[{}]' is empty", field, i), field);
    out.push_back(s);
  }
  return out;
}

std::optional<StructuredOutput> response_format(const json& v) {
  const std::string field = "response_format";
  if (!v.is_object()) wrong_type(v, field, "an object");
  const json* type = v.contains("type") ? &v["type"] : nullptr;
  if (!type || !type->is_string()) reject("'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"", field);
  const std::string& t = type->get_ref<const std::string&>();
  auto only = [&](std::initializer_list<const char*> keys) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string& key = it.key();
      if (std::find_if(keys.begin(), keys.end(), [&key](const char* k) { return key == k; }) == keys.end()) {
        reject(fmt::format("'response_format.{}' is not a field of a '{}' response format", key, t), field);
      }
    }
  };
  if (t == "text") {
    only({"type"});
    return std::nullopt;
  }
  if (t == "json_object") {
    only({"type"});
    return StructuredOutput{{Kind::JsonObject, {}, {}}, field};
  }
  if (t != "json_schema") reject(fmt::format("'response_format.type' \"{}\" is not one of \"text\", \"json_object\", \"json_schema\"", t), field);
  only({"type", "json_schema"});
  if (!v.contains("json_schema") || !v["json_schema"].is_object()) {
    reject("'response_format.json_schema' must be an object with a 'name' and a 'schema'", field);
  }
  const json& js = v["json_schema"];
  for (const auto& [key, value] : js.items()) {
    if (key == "name") {
      as_string(value, "response_format.json_schema.name");
    } else if (key == "description") {
      as_string(value, "response_format.json_schema.description");
    } else if (key == "strict") {
      if (!value.is_null()) as_bool(value, "response_format.json_schema.strict");  // always enforced
    } else if (key != "schema") {
      reject(fmt::format("'response_format.json_schema.{}' is not supported", key), field);
    }
  }
  if (!js.contains("name")) reject("'response_format.json_schema.name' is required", field);
  // No schema: any JSON object, as OpenAI does.
  if (!js.contains("schema") || js["schema"].is_null()) return StructuredOutput{{Kind::JsonObject, {}, {}}, field};
  return StructuredOutput{{Kind::JsonSchema, schema_text(js["schema"], "response_format.json_schema.schema"), {}}, field};
}

// vLLM's `structured_outputs`: {"json" | "regex" | "choice" | "grammar" | "json_object": ...}.
std::optional<StructuredOutput> structured_outputs(const json& v) {
  const std::string field = "structured_outputs";
  if (!v.is_object()) wrong_type(v, field, "an object");
  std::optional<StructuredOutput> out;
  for (const auto& [key, value] : v.items()) {
    if (value.is_null()) continue;
    const std::string name = field + "." + key;
    std::optional<StructuredOutput> one;
    if (key == "json") {
      one = StructuredOutput{{Kind::JsonSchema, schema_text(value, name), {}}, field};
    } else if (key == "regex") {
      one = StructuredOutput{{Kind::Regex, as_string(value, name), {}}, field};
    } else if (key == "choice") {
      one = StructuredOutput{{Kind::Choice, {}, choices(value, name)}, field};
    } else if (key == "grammar") {
      one = StructuredOutput{{Kind::Ebnf, as_string(value, name), {}}, field};
    } else if (key == "json_object") {
      if (as_bool(value, name)) one = StructuredOutput{{Kind::JsonObject, {}, {}}, field};
    } else {
      reject(fmt::format("'{}' is not supported (json, regex, choice, grammar or json_object)", name), field);
    }
    if (one && out) reject("'structured_outputs' must hold one constraint", field);
    if (one) out = std::move(one);
  }
  return out;
}

}  // namespace

std::optional<StructuredOutput> parse_structured_output(const Fields& f) {
  std::optional<StructuredOutput> out;
  // Reads one field; an error anywhere inside it names the request field (`param`), as OpenAI does.
  auto take = [&](const char* name, auto read) {
    const json* v = f.get(name);
    if (!v) return;
    std::optional<StructuredOutput> one;
    try {
      one = read(*v);
    } catch (Reject& r) {
      r.error.param = name;
      throw;
    }
    if (!one) return;
    if (out) reject(fmt::format("'{}' and '{}' both constrain the output; give one", out->param, name), name);
    out = std::move(one);
  };
  take("response_format", [](const json& v) { return response_format(v); });
  take("guided_json", [](const json& v) {
    return std::optional(StructuredOutput{{Kind::JsonSchema, schema_text(v, "guided_json"), {}}, "guided_json"});
  });
  take("guided_regex", [](const json& v) {
    return std::optional(StructuredOutput{{Kind::Regex, as_string(v, "guided_regex"), {}}, "guided_regex"});
  });
  take("guided_choice", [](const json& v) {
    return std::optional(StructuredOutput{{Kind::Choice, {}, choices(v, "guided_choice")}, "guided_choice"});
  });
  take("guided_grammar", [](const json& v) {
    return std::optional(StructuredOutput{{Kind::Ebnf, as_string(v, "guided_grammar"), {}}, "guided_grammar"});
  });
  take("structured_outputs", [](const json& v) { return structured_outputs(v); });
  return out;
}

std::string schema_in_client_order(std::string_view body, const std::string& param) {
  using ordered = nlohmann::ordered_json;
  // The body parsed before (with the depth limit), so it parses again.
  const ordered j = ordered::parse(body, nullptr, /*allow_exceptions=*/false);
  const ordered* v = nullptr;
  if (param == "response_format") {
    v = &j.at("response_format").at("json_schema").at("schema");
  } else if (param == "guided_json") {
    v = &j.at("guided_json");
  } else if (param == "structured_outputs") {
    v = &j.at("structured_outputs").at("json");
  }
  if (v == nullptr) return {};
  if (v->is_string()) return ordered::parse(v->get<std::string>()).dump();
  return v->dump();
}

}  // namespace pagoda::server::openai
