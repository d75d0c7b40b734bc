// Draft-model drafting (engine/spec/draft_model_drafter.h) on the real model as its own draft: what it
// proposes is the model's greedy continuation, its KV follows each sequence's tokens through rejections,
// a long catch-up is spread over steps, and a short pool evicts the least recently drafted sequence, but
// never for a sequence that cannot fit anyway.
#include "engine/spec/draft_model_drafter.h"

#include <gtest/gtest.h>

#include "tests/golden_prompts.h"
#include "tests/test_env.h"

namespace pagoda::engine {
namespace {

class DraftModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::model_path().empty()) return;
    auto tok = load_tokenizer(test::model_path());
    ASSERT_TRUE(tok.ok()) << tok.message();
    tokenizer_ = tok.value().release();
  }
  static void TearDownTestSuite() { delete tokenizer_; }

  // A drafter whose pool holds `kv_tokens` tokens and whose forwards take at most `step_tokens`.
  static std::unique_ptr<DraftModelDrafter> make(int32_t kv_tokens, int32_t step_tokens) {
    LoadOptions lo;
    lo.kv_tokens = kv_tokens;
    auto d = DraftModelDrafter::load(test::model_path(), lo, *tokenizer_, tokenizer_->vocab_size(), step_tokens);
    EXPECT_TRUE(d.ok()) << d.message();
    return d.ok() ? std::move(d.value()) : nullptr;
  }
  static std::vector<int32_t> propose(DraftModelDrafter& d, uint64_t id, const std::vector<int32_t>& tokens,
                                      int32_t prompt_len, int32_t k) {
    std::vector<int32_t> out;
    d.propose({id, tokens, prompt_len, {}, k}, out);
    return out;
  }
  // The golden prompts one after another: real text, longer than any one of them.
  static std::vector<int32_t> longest_prompt() {
    std::vector<int32_t> all;
    for (const auto& p : test::golden_prompts()) all.insert(all.end(), p.begin(), p.end());
    return all;
  }
  static Tokenizer* tokenizer_;
};
Tokenizer* DraftModel::tokenizer_ = nullptr;

TEST_F(DraftModel, ProposesTheGreedyContinuationAndFollowsRejections) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  auto d = make(1024, 2048);
  ASSERT_NE(d, nullptr);
  std::vector<int32_t> tokens = test::golden_prompts().at(0);
  const int32_t prompt_len = static_cast<int32_t>(tokens.size());
  const std::vector<int32_t> first = propose(*d, 1, tokens, prompt_len, 4);
  ASSERT_EQ(first.size(), 4u);
  // A sequence that keeps the first two drafts and then takes another token: the next proposal starts
  // from that token, with the KV of the rejected drafts rewritten.
  tokens.insert(tokens.end(), first.begin(), first.begin() + 2);
  tokens.push_back((first[2] + 1) % tokenizer_->vocab_size());
  const std::vector<int32_t> after = propose(*d, 1, tokens, prompt_len, 3);
  ASSERT_EQ(after.size(), 3u);
  // The same context from scratch, in a fresh drafter, gives the same drafts.
  auto fresh = make(1024, 2048);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(propose(*fresh, 7, tokens, prompt_len, 3), after);
  // And k = 1 of the continued context is its first draft (same numbers whatever the step's shape).
  EXPECT_EQ(propose(*fresh, 8, tokens, prompt_len, 1), std::vector<int32_t>{after[0]});
  d->release(1, {}, 0);
  EXPECT_EQ(d->num_sequences(), 0);
  EXPECT_EQ(d->kv_stats().used_blocks, 0);
}

TEST_F(DraftModel, LongCatchUpIsSpreadOverSteps) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  std::vector<int32_t> prompt = longest_prompt();
  ASSERT_GT(prompt.size(), 200u);
  prompt.resize(200);
  auto d = make(1024, 64);  // 64 tokens a forward
  ASSERT_NE(d, nullptr);
  const int32_t len = static_cast<int32_t>(prompt.size());
  int steps = 0;
  std::vector<int32_t> drafts;
  while (drafts.empty() && steps < 100) {
    drafts = propose(*d, 1, prompt, len, 3);
    ++steps;
  }
  EXPECT_EQ(steps, (len + 63) / 64) << "one forward of catch-up per step, then the drafts";
  auto whole = make(1024, 2048);
  ASSERT_NE(whole, nullptr);
  EXPECT_EQ(drafts, propose(*whole, 1, prompt, len, 3));
}

TEST_F(DraftModel, AShortPoolEvictsTheLeastRecentlyDraftedOnlyWhenThatMakesRoom) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const std::vector<int32_t> golden = longest_prompt();
  ASSERT_GE(golden.size(), 70u);
  const std::vector<int32_t> a(golden.begin(), golden.begin() + 40), b(golden.begin() + 1, golden.begin() + 41);
  const std::vector<int32_t> small(golden.begin(), golden.begin() + 10), too_long(golden.begin(), golden.begin() + 70);
  auto d = make(64, 2048);  // 4 blocks of 16; a 40-token sequence with 4 drafts takes 3
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(propose(*d, 1, a, 40, 4).size(), 4u);
  EXPECT_EQ(propose(*d, 2, b, 40, 4).size(), 4u) << "sequence 1's blocks make room";
  EXPECT_EQ(d->kv_stats().used_blocks, 3);
  EXPECT_EQ(propose(*d, 5, small, 10, 4).size(), 4u);  // the last free block
  EXPECT_EQ(d->kv_stats().used_blocks, 4);
  EXPECT_TRUE(propose(*d, 6, too_long, 70, 4).empty()) << "longer than the pool";
  EXPECT_EQ(d->kv_stats().used_blocks, 4);
  // Sequence 2 and a new 40-token sequence in one batch: sequence 2 drafts; the new one would need 3
  // blocks, and evicting idle sequence 5 frees only 1, so it drafts nothing and evicts nobody.
  std::vector<int32_t> next = b;
  next.push_back(7);
  const std::vector<DraftQuery> qs = {{2, next, 40, {}, 4}, {4, a, 40, {}, 4}};
  std::vector<std::vector<int32_t>> out;
  d->propose_batch(qs, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].size(), 4u);
  EXPECT_TRUE(out[1].empty());
  EXPECT_EQ(d->kv_stats().used_blocks, 4) << "sequence 5 was evicted for nothing";
}

}  // namespace
}  // namespace pagoda::engine
