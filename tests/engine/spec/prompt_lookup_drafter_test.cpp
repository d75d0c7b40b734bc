// Prompt lookup drafting (engine/spec/prompt_lookup_drafter.h): where a suffix occurs, what is proposed
// from the sequence and from a predicted output, and how the proposal re-synchronises after a divergence.
#include "engine/spec/prompt_lookup_drafter.h"

#include <gtest/gtest.h>

namespace pagoda::engine {
namespace {

using V = std::vector<int32_t>;

TEST(FindOccurrence, LatestOrNearestAndNeverTheSuffixItself) {
  const V text = {1, 2, 3, 9, 1, 2, 3, 8, 1, 2};
  const V tail = {1, 2};
  EXPECT_EQ(find_occurrence(text, tail, static_cast<int64_t>(text.size())), 4);  // not the suffix at 8
  EXPECT_EQ(find_occurrence(text, tail, 2), 0);                                  // nearest to position 2
  EXPECT_EQ(find_occurrence(text, V{7, 7}, 10), -1);
  EXPECT_EQ(find_occurrence(V{1, 2}, tail, 2), -1);  // only the suffix: nothing follows it
  EXPECT_EQ(find_occurrence(text, V{}, 10), -1);
}

DraftQuery query(const V& tokens, int32_t prompt_len, int32_t max_tokens, const V& prediction = {}) {
  return {1, tokens, prompt_len, prediction, max_tokens};
}

TEST(PromptLookupDrafter, ProposesWhatFollowedTheLongestRecentMatch) {
  PromptLookupDrafter d(2, 3);
  // Prompt 10 11 12 13 14 15; the output so far ends with 11 12: propose 13 14 15 (capped at 3).
  const V tokens = {10, 11, 12, 13, 14, 15, 16, 11, 12};
  V out;
  d.propose(query(tokens, 7, 3), out);
  EXPECT_EQ(out, (V{13, 14, 15}));
  out.clear();
  d.propose(query(tokens, 7, 0), out);  // no budget
  EXPECT_TRUE(out.empty());
  out.clear();
  d.propose(query({1, 2, 3, 4, 5}, 3, 4), out);  // no repeated n-gram of 2 or more
  EXPECT_TRUE(out.empty());
}

TEST(PromptLookupDrafter, FollowsAPredictionAndResynchronisesAfterADivergence) {
  PromptLookupDrafter d(2, 3);
  const V prompt = {90, 91};
  const V prediction = {1, 2, 3, 4, 5, 6, 7, 8};
  V out;
  d.propose(query(prompt, 2, 3, prediction), out);  // nothing generated yet: the prediction's start
  EXPECT_EQ(out, (V{1, 2, 3}));
  V tokens = prompt;
  tokens.insert(tokens.end(), {1, 2, 3});
  out.clear();
  d.propose(query(tokens, 2, 3, prediction), out);  // on track
  EXPECT_EQ(out, (V{4, 5, 6}));
  tokens.insert(tokens.end(), {40, 5, 6});  // diverged at 4, then back on the prediction's 5 6
  out.clear();
  d.propose(query(tokens, 2, 4, prediction), out);
  EXPECT_EQ(out, (V{7, 8}));
}

TEST(SpeculativeConfig, ChecksItsBounds) {
  SpeculativeConfig c;
  EXPECT_TRUE(check_speculative_config(c).ok());
  c.num_tokens = 0;
  EXPECT_FALSE(check_speculative_config(c).ok());
  c = {};
  c.ngram_min = 3;
  c.ngram_max = 2;
  EXPECT_FALSE(check_speculative_config(c).ok());
  EXPECT_EQ(make_drafter(SpeculativeConfig{}), nullptr);
  c = {};
  c.mode = SpeculativeMode::Ngram;
  EXPECT_STREQ(make_drafter(c)->name(), "ngram");
}

}  // namespace
}  // namespace pagoda::engine
