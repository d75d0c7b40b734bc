// Constrained decoding's engine part (engine/grammar/grammar.h) on the real model's vocabulary: each
// kind of grammar compiles or fails with a message; a sampler with a grammar, drawing from random
// logits (the worst case: the model does not help), only ever writes what the grammar allows and ends
// with an end-of-generation token; once the grammar is complete only those tokens are left.
#include <gtest/gtest.h>
#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "engine/grammar/grammar.h"
#include "engine/loaded_model.h"
#include "engine/sampling/sampler.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/test_env.h"

namespace pagoda::engine {
namespace {

std::string hex(const std::string& s) {
  std::string out;
  for (unsigned char c : s) out += fmt::format("{:02x} ", c);
  return out;
}

class GrammarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PAGODA_REQUIRE_MODEL_OR_SKIP();
    auto tok = load_tokenizer(test::model_path());
    ASSERT_TRUE(tok.ok()) << tok.message();
    tok_ = std::move(tok.value());
    compiler_ = std::make_unique<GrammarCompiler>(*tok_, int64_t{64} << 20);
  }

  std::shared_ptr<const CompiledGrammar> compile(GrammarSpec spec) {
    auto g = compiler_->compile(spec);
    EXPECT_TRUE(g.ok()) << g.message();
    return g.ok() ? g.value() : nullptr;
  }

  // Draws up to max_steps tokens from random logits (uniform in [-8, 8], a fresh row per step) under
  // the grammar; returns the text before the end-of-generation token, and whether one came.
  std::pair<std::string, bool> generate(std::shared_ptr<const CompiledGrammar> g, uint64_t seed, int max_steps,
                                        float temperature = 1.0f) {
    SamplingParams p;
    p.temperature = temperature;
    p.seed = seed;
    p.grammar = std::move(g);
    Sampler sampler(p);
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::uniform_real_distribution<float> u(-8.0f, 8.0f);
    std::vector<float> logits(static_cast<size_t>(tok_->vocab_size()));
    std::vector<int32_t> out;
    for (int step = 0; step < max_steps; ++step) {
      for (float& x : logits) x = u(rng);
      const int32_t t = sampler.sample(logits).token;
      sampler.accept(t);
      if (tok_->is_end_of_generation(t)) return {tok_->decode(out), true};
      out.push_back(t);
    }
    return {tok_->decode(out), false};
  }

  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<GrammarCompiler> compiler_;
};

TEST_F(GrammarTest, EachKindCompilesAndBadInputIsRefusedWithTheCompilersMessage) {
  using Kind = GrammarSpec::Kind;
  EXPECT_TRUE(compiler_->compile({Kind::JsonSchema, R"({"type": "object", "properties": {"a": {"type": "integer"}}})", {}}).ok());
  EXPECT_TRUE(compiler_->compile({Kind::JsonObject, {}, {}}).ok());
  EXPECT_TRUE(compiler_->compile({Kind::Regex, "[a-z]+@[a-z]+\\.com", {}}).ok());
  EXPECT_TRUE(compiler_->compile({Kind::Choice, {}, {"red", "green (light)", "a|b"}}).ok());
  EXPECT_TRUE(compiler_->compile({Kind::Ebnf, R"g(root ::= "(" [0-9]+ ")")g", {}}).ok());

  const std::vector<GrammarSpec> bad = {
      {Kind::JsonSchema, "{not json", {}},
      {Kind::JsonSchema, R"({"type": "no-such-type"})", {}},
      {Kind::Regex, "([a-z]", {}},
      {Kind::Ebnf, "root ::= ", {}},
      {Kind::Ebnf, R"(root ::= undefined_rule)", {}},
      {Kind::Choice, {}, {}},
  };
  for (const GrammarSpec& spec : bad) {
    auto g = compiler_->compile(spec);
    ASSERT_FALSE(g.ok()) << grammar_kind_name(spec.kind) << ": " << spec.text;
    EXPECT_EQ(g.status().code(), StatusCode::InvalidArgument);
    EXPECT_FALSE(g.message().empty());
    EXPECT_EQ(g.message().find(".cc:"), std::string::npos) << "xgrammar's source location leaks: " << g.message();
  }
  // A bad grammar leaves the compiler working.
  EXPECT_TRUE(compiler_->compile({Kind::Regex, "[0-9]+", {}}).ok());
}

TEST_F(GrammarTest, ChoiceOutputIsExactlyOneChoice) {
  const std::vector<std::string> choices = {"yes", "no", "maybe later", "{\"json\": true}"};
  auto g = compile({GrammarSpec::Kind::Choice, {}, choices});
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    auto [text, ended] = generate(g, seed, 64);
    ASSERT_TRUE(ended) << "seed " << seed << ": " << text;
    ASSERT_NE(std::find(choices.begin(), choices.end(), text), choices.end()) << "seed " << seed << ": '" << text << "'";
    seen.insert(text);
  }
  EXPECT_GE(seen.size(), 2u);  // random logits reach more than one choice
}

TEST_F(GrammarTest, RegexOutputMatches) {
  auto g = compile({GrammarSpec::Kind::Regex, "[0-9]{3}-[a-z]{2,4}( [A-Z])?", {}});
  const std::regex re("[0-9]{3}-[a-z]{2,4}( [A-Z])?");
  for (uint64_t seed = 0; seed < 30; ++seed) {
    auto [text, ended] = generate(g, seed, 64);
    ASSERT_TRUE(ended) << text;
    EXPECT_TRUE(std::regex_match(text, re)) << "seed " << seed << ": '" << text << "'";
  }
}

TEST_F(GrammarTest, JsonSchemaOutputParsesAndHasTheSchemasShape) {
  auto g = compile({GrammarSpec::Kind::JsonSchema, R"({
      "type": "object",
      "properties": {
        "n": {"type": "integer", "minimum": 0, "maximum": 99},
        "color": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "minItems": 1, "maxItems": 3},
        "ok": {"type": "boolean"}
      },
      "required": ["n", "color", "tags", "ok"],
      "additionalProperties": false})", {}});
  for (uint64_t seed = 0; seed < 30; ++seed) {
    auto [text, ended] = generate(g, seed, 400);
    ASSERT_TRUE(ended) << text;
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "seed " << seed << ": " << text << " (" << hex(text) << ")";
    ASSERT_TRUE(j.is_object()) << text;
    EXPECT_EQ(j.size(), 4u) << text;
    ASSERT_TRUE(j["n"].is_number_integer()) << text;
    EXPECT_GE(j["n"].get<int>(), 0);
    EXPECT_LE(j["n"].get<int>(), 99);
    EXPECT_TRUE(j["color"] == "red" || j["color"] == "green" || j["color"] == "blue") << text;
    ASSERT_TRUE(j["tags"].is_array()) << text;
    EXPECT_GE(j["tags"].size(), 1u);
    EXPECT_LE(j["tags"].size(), 3u);
    for (const auto& t : j["tags"]) EXPECT_TRUE(t.is_string()) << text;
    EXPECT_TRUE(j["ok"].is_boolean()) << text;
  }
}

TEST_F(GrammarTest, JsonStringsWithALengthBoundNeverTakeARawControlByte) {
  // xgrammar 0.2.8 lets bytes below 0x20 into a string with minLength / maxLength (invalid JSON); the
  // compiler's JSON-safe intersection (grammar.cpp) keeps them out.
  auto g = compile({GrammarSpec::Kind::JsonSchema, R"({"type": "array", "items": {"type": "string", "maxLength": 4}})", {}});
  GrammarProcessor stage(g);
  for (int32_t t : tok_->encode("[\"", false, false)) stage.accept(t);
  std::vector<float> z(static_cast<size_t>(tok_->vocab_size()), 0.0f);
  stage.apply(z);
  int32_t allowed = 0;
  for (int32_t t = 0; t < tok_->vocab_size(); ++t) {
    if (!std::isfinite(z[static_cast<size_t>(t)])) continue;
    ++allowed;
    for (unsigned char c : tok_->token_to_piece(t, false)) EXPECT_GE(c, 0x20) << "token " << t << " is allowed in a string";
  }
  EXPECT_GT(allowed, 1000);  // the string is otherwise free
}

TEST_F(GrammarTest, GreedyDrawsTheBestAllowedToken) {
  // Logits that prefer "no" over everything; the grammar allows only "yes": greedy must write "yes".
  auto g = compile({GrammarSpec::Kind::Choice, {}, {"yes"}});
  SamplingParams p;
  p.grammar = g;
  Sampler sampler(p);
  std::vector<float> logits(static_cast<size_t>(tok_->vocab_size()), 0.0f);
  const std::vector<int32_t> no = tok_->encode("no", false, false);
  for (int32_t t : no) logits[static_cast<size_t>(t)] = 50.0f;
  std::vector<int32_t> out;
  for (int i = 0; i < 8; ++i) {
    const int32_t t = sampler.sample(logits).token;
    sampler.accept(t);
    if (tok_->is_end_of_generation(t)) break;
    out.push_back(t);
  }
  EXPECT_EQ(tok_->decode(out), "yes");
}

TEST_F(GrammarTest, OnceCompleteOnlyEndOfGenerationTokensAreAllowed) {
  auto g = compile({GrammarSpec::Kind::Regex, "ab", {}});
  GrammarProcessor stage(g);
  for (int32_t t : tok_->encode("ab", false, false)) stage.accept(t);
  ASSERT_TRUE(stage.active());
  std::vector<float> z(static_cast<size_t>(tok_->vocab_size()), 0.0f);
  stage.apply(z);
  std::set<int32_t> allowed;
  for (int32_t t = 0; t < tok_->vocab_size(); ++t) {
    if (std::isfinite(z[static_cast<size_t>(t)])) allowed.insert(t);
  }
  const auto& eog = tok_->end_of_generation_ids();
  EXPECT_EQ(allowed, std::set<int32_t>(eog.begin(), eog.end()));
  stage.accept(eog.front());
  EXPECT_FALSE(stage.active());  // terminated: the stage has nothing more to do
}

}  // namespace
}  // namespace pagoda::engine
