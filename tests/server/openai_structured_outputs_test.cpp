// The structured-output fields of an OpenAI request (server/openai_structured_outputs.h) as the parser
// reads them: each spelling becomes its grammar spec, and conflicts and malformed values are 400s that
// name the field (whether a grammar compiles is the compiler's, tested in tests/engine/grammar/).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "server/openai_mapping.h"

namespace pagoda::server::openai {
namespace {

using Kind = engine::GrammarSpec::Kind;

std::variant<ParsedRequest, ApiError> parse(const std::string& extra) {
  ParseLimits limits;
  limits.served_model = "m";
  return parse_request(Endpoint::ChatCompletions,
                       R"({"messages": [{"role": "user", "content": "hi"}])" + (extra.empty() ? "" : ", " + extra) + "}",
                       limits);
}

ParsedRequest ok(const std::string& extra) {
  auto r = parse(extra);
  if (auto* e = std::get_if<ApiError>(&r)) ADD_FAILURE() << extra << ": " << e->message;
  return std::get<ParsedRequest>(r);
}

ApiError refused(const std::string& extra) {
  auto r = parse(extra);
  if (std::holds_alternative<ParsedRequest>(r)) ADD_FAILURE() << extra << " was accepted";
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

TEST(OpenAiStructuredOutputs, EachSpellingBecomesItsGrammar) {
  EXPECT_FALSE(ok("").grammar.has_value());
  EXPECT_FALSE(ok(R"("response_format": {"type": "text"})").grammar.has_value());
  EXPECT_EQ(ok(R"("response_format": {"type": "json_object"})").grammar->kind, Kind::JsonObject);

  ParsedRequest p = ok(R"("response_format": {"type": "json_schema", "json_schema": {"name": "n", "strict": true,
                          "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}})");
  ASSERT_TRUE(p.grammar);
  EXPECT_EQ(p.grammar->kind, Kind::JsonSchema);
  EXPECT_EQ(nlohmann::json::parse(p.grammar->text), nlohmann::json::parse(R"({"type": "object", "properties": {"a": {"type": "integer"}}})"));
  EXPECT_EQ(p.grammar_param, "response_format");

  p = ok(R"("guided_json": "{\"type\": \"array\"}")");  // a schema as JSON text
  EXPECT_EQ(p.grammar->kind, Kind::JsonSchema);
  EXPECT_EQ(nlohmann::json::parse(p.grammar->text), nlohmann::json::parse(R"({"type": "array"})"));
  EXPECT_EQ(p.grammar_param, "guided_json");

  p = ok(R"("guided_regex": "[0-9]+")");
  EXPECT_EQ(p.grammar->kind, Kind::Regex);
  EXPECT_EQ(p.grammar->text, "[0-9]+");
  p = ok(R"("guided_choice": ["a", "b c"])");
  EXPECT_EQ(p.grammar->kind, Kind::Choice);
  EXPECT_EQ(p.grammar->choices, (std::vector<std::string>{"a", "b c"}));
  EXPECT_EQ(ok(R"("guided_grammar": "root ::= \"x\"")").grammar->kind, Kind::Ebnf);
  EXPECT_EQ(ok(R"("structured_outputs": {"choice": ["x"]})").grammar->kind, Kind::Choice);
  EXPECT_EQ(ok(R"("structured_outputs": {"json_object": true})").grammar->kind, Kind::JsonObject);
  EXPECT_FALSE(ok(R"("structured_outputs": {"json_object": false})").grammar.has_value());
  // No schema in json_schema: any JSON object, as OpenAI does.
  EXPECT_EQ(ok(R"("response_format": {"type": "json_schema", "json_schema": {"name": "n"}})").grammar->kind, Kind::JsonObject);
}

TEST(OpenAiStructuredOutputs, ConflictsAndMalformedValuesNameTheField) {
  EXPECT_EQ(refused(R"("response_format": {"type": "json_object"}, "guided_regex": "x")").param, "guided_regex");
  EXPECT_EQ(refused(R"("structured_outputs": {"regex": "x", "choice": ["y"]})").param, "structured_outputs");
  EXPECT_EQ(refused(R"("response_format": {"type": "xml"})").param, "response_format");
  EXPECT_EQ(refused(R"("response_format": {"type": "json_schema"})").param, "response_format");
  EXPECT_EQ(refused(R"("response_format": {"type": "json_schema", "json_schema": {"schema": {}}})").param, "response_format");
  EXPECT_EQ(refused(R"("response_format": {"type": "json_schema", "json_schema": {"name": "n", "extra": 1}})").param,
            "response_format");
  EXPECT_EQ(refused(R"("guided_json": "not json")").param, "guided_json");
  EXPECT_EQ(refused(R"("guided_json": 3)").param, "guided_json");
  EXPECT_EQ(refused(R"("guided_choice": [])").param, "guided_choice");
  EXPECT_EQ(refused(R"("guided_choice": ["a", 1])").param, "guided_choice");
  EXPECT_EQ(refused(R"("structured_outputs": {"regex": 5})").param, "structured_outputs");
  EXPECT_EQ(refused(R"("guided_regex": "x", "ignore_eos": true)").param, "ignore_eos");
  std::string many = R"("guided_choice": [)";
  for (int i = 0; i <= 1024; ++i) many += (i ? ",\"c" : "\"c") + std::to_string(i) + "\"";
  const ApiError e = refused(many + "]");
  EXPECT_EQ(e.param, "guided_choice");
  EXPECT_NE(e.message.find("1024"), std::string::npos) << e.message;
}

}  // namespace
}  // namespace pagoda::server::openai
