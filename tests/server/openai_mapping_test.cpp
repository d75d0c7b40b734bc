// The OpenAI request mapping on inputs the fuzz target (tests/fuzz/http_request_fuzz.cpp) crashed on:
// resolve_max_tokens with a max_tokens up to INT64_MAX (the sum with the prompt overflowed, and the
// request got through as if it fitted the context), and numbers past the double range in the body.
#include "server/openai_mapping.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <variant>

namespace pagoda::server::openai {
namespace {

ParsedRequest parse_ok(Endpoint endpoint, const std::string& body) {
  ParseLimits limits;
  limits.served_model = "m";
  auto r = parse_request(endpoint, body, limits);
  if (auto* e = std::get_if<ApiError>(&r)) ADD_FAILURE() << e->message;
  return std::get<ParsedRequest>(r);
}

TEST(OpenAiMapping, MaxTokensAtInt64MaxIsRefusedWithoutOverflow) {
  ParsedRequest p = parse_ok(Endpoint::Completions, R"({"prompt": "x", "max_tokens": 9223372036854775807})");
  ASSERT_TRUE(p.max_tokens.has_value());
  EXPECT_EQ(*p.max_tokens, std::numeric_limits<int64_t>::max());
  const auto err = resolve_max_tokens(p, 5126, 8192);
  ASSERT_TRUE(err.has_value()) << "a max_tokens of INT64_MAX was accepted";
  EXPECT_EQ(err->http_status, 400);
  EXPECT_EQ(err->param, "max_tokens");
  // The total is exact: 5126 + (2^63 - 1).
  EXPECT_NE(err->message.find("you requested 9223372036854780933 tokens"), std::string::npos) << err->message;
}

// Found with the fuzz target's help: nlohmann throws out_of_range, not parse_error, for a number past the
// double range, and that escaped parse_request (an exception out of the HTTP session's handler ends the
// daemon).
TEST(OpenAiMapping, NumberOverflowingADoubleIsA400) {
  ParseLimits limits;
  limits.served_model = "m";
  for (const char* body : {R"({"prompt": "x", "temperature": 1e400})", R"({"prompt": "x", "seed": -1e309})",
                           R"({"prompt": [1e999]})"}) {
    auto r = parse_request(Endpoint::Completions, body, limits);
    auto* e = std::get_if<ApiError>(&r);
    ASSERT_NE(e, nullptr) << body;
    EXPECT_EQ(e->http_status, 400) << body;
    EXPECT_NE(e->message.find("not valid JSON"), std::string::npos) << e->message;
    EXPECT_NE(e->message.find("number overflow"), std::string::npos) << e->message;
  }
}

TEST(OpenAiMapping, MaxTokensAtTheRoomLeftIsAcceptedAndOneMoreIsNot) {
  ParsedRequest p = parse_ok(Endpoint::ChatCompletions,
                             R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 92})");
  EXPECT_FALSE(resolve_max_tokens(p, 100, 192).has_value());
  p.max_tokens = 93;
  const auto err = resolve_max_tokens(p, 100, 192);
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->message.find("you requested 193 tokens"), std::string::npos) << err->message;
}

TEST(OpenAiMapping, ChatDefaultMaxTokensIsTheRestOfTheContext) {
  ParsedRequest p = parse_ok(Endpoint::ChatCompletions, R"({"messages": [{"role": "user", "content": "hi"}]})");
  EXPECT_FALSE(resolve_max_tokens(p, 10, 64).has_value());
  ASSERT_TRUE(p.max_tokens.has_value());
  EXPECT_EQ(*p.max_tokens, 54);
}

}  // namespace
}  // namespace pagoda::server::openai
