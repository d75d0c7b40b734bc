// The sampler pipeline's fixed order (logits_processors.h): penalties -> logit bias -> token mask ->
// temperature / top-k / top-p / min-p. Each test builds logits where another order would pick another
// token, so a reordering of the finite stages fails here; the mask is checked to win over any bias and to
// come before top-k. Also: accept() reaches the stages, log-probabilities stay the model's.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "engine/sampling/logits_processors.h"
#include "engine/sampling/sampler.h"

namespace pagoda::engine {
namespace {

std::vector<uint32_t> mask_allowing(int32_t vocab, std::initializer_list<int32_t> ids) {
  std::vector<uint32_t> m(static_cast<size_t>(token_mask_words(vocab)), 0u);
  for (int32_t id : ids) m[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
  return m;
}

TEST(SamplerPipeline, PenaltiesRunBeforeLogitBias) {
  // Token 1 (logit 4, in the prompt) with repetition penalty 2 and bias +3: 4 / 2 + 3 = 5 beats token 2's 4.5.
  // Bias first would give (4 + 3) / 2 = 3.5 and pick token 2.
  std::vector<float> logits(64, 0.0f);
  logits[1] = 4.0f;
  logits[2] = 4.5f;
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.logit_bias = {{1, 3.0f}};
  const std::vector<int32_t> prompt = {1};
  Sampler s(p, prompt);
  EXPECT_EQ(s.sample(logits).token, 1);
}

TEST(SamplerPipeline, MaskForbidsEvenAHugeBias) {
  std::vector<float> logits(100, 0.0f);
  logits[7] = 9.0f;
  SamplingParams p;
  p.logit_bias = {{40, 100.0f}};
  Sampler s(p);
  const auto mask = mask_allowing(100, {3, 70, 99});
  logits[70] = 1.0f;
  EXPECT_EQ(s.sample(logits, mask).token, 70) << "argmax 7 and biased 40 are masked";
  EXPECT_EQ(s.sample(logits).token, 40) << "without the mask the bias wins";
}

TEST(SamplerPipeline, MaskBeforeTopKAndTheDraw) {
  // top_k = 2 over the allowed set: the masked argmax must not use up one of the two places.
  std::vector<float> logits(256, -5.0f);
  logits[10] = 10.0f;  // masked
  logits[20] = 3.0f;
  logits[30] = 2.9f;
  logits[40] = 2.8f;
  const auto mask = mask_allowing(256, {20, 30, 40});
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  std::set<int32_t> drawn;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    p.seed = seed;
    Sampler s(p);
    drawn.insert(s.sample(logits, mask).token);
  }
  EXPECT_EQ(drawn, (std::set<int32_t>{20, 30})) << "top-k kept the two best allowed tokens";
}

TEST(SamplerPipeline, AcceptFeedsThePenalties) {
  std::vector<float> logits(32, 0.0f);
  logits[5] = 1.0f;
  logits[6] = 0.9f;
  SamplingParams p;
  p.presence_penalty = 0.5f;
  Sampler s(p);
  EXPECT_EQ(s.sample(logits).token, 5);
  s.accept(5);
  EXPECT_EQ(s.sample(logits).token, 6) << "5 was committed: its presence penalty applies";
}

TEST(SamplerPipeline, LogprobsAreTheModelsBeforeEveryStage) {
  std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f};
  SamplingParams p;
  p.logprobs = 2;
  p.logit_bias = {{0, 50.0f}};
  Sampler s(p);
  const SampleResult r = s.sample(logits);
  EXPECT_EQ(r.token, 0);
  const double lse = std::log(1.0 + std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(r.logprob, 0.0 - lse, 1e-5);
  ASSERT_EQ(r.top.size(), 2u);
  EXPECT_EQ(r.top[0].token, 3);
}

TEST(LogitsProcessors, OnlyStagesWithWorkAreBuiltInOrder) {
  SamplingParams p;
  EXPECT_TRUE(make_logits_processors(p, {}).empty());
  p.frequency_penalty = 0.1f;
  p.logit_bias = {{1, 1.0f}};
  auto stages = make_logits_processors(p, {});
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_STREQ(stages[0]->name(), "penalties");
  EXPECT_STREQ(stages[1]->name(), "logit_bias");
}

TEST(LogitsProcessors, TokenMaskClearsDisallowedTokens) {
  std::vector<float> z(70, 1.0f);
  const auto mask = mask_allowing(70, {0, 33, 69});
  apply_token_mask(z, mask);
  for (int32_t t = 0; t < 70; ++t) {
    EXPECT_EQ(std::isinf(z[t]), !(t == 0 || t == 33 || t == 69)) << t;
  }
}

TEST(LogitsProcessors, AShortMaskAllowsNothingPastItsEnd) {
  std::vector<float> z(70, 1.0f);
  const std::vector<uint32_t> one_word = {0x5u};  // tokens 0 and 2; nothing said about 32..69
  apply_token_mask(z, one_word);
  for (int32_t t = 0; t < 70; ++t) EXPECT_EQ(std::isinf(z[t]), !(t == 0 || t == 2)) << t;
}

}  // namespace
}  // namespace pagoda::engine
