// The cost model of --speculative auto (engine/spec/step_cost_model.h) and the draft lengths it chooses
// (scheduler/draft_policy.h): drafts run where an extra row is cheap and acceptance good, not where the
// step is compute-bound or the drafts are mostly wrong.
#include "scheduler/draft_policy.h"

#include <gtest/gtest.h>

namespace pagoda::scheduler {
namespace {

engine::StepCostModel costs(double fixed_ms, double per_token_ms) {
  engine::StepCostModel m;
  for (int32_t t : {1, 2, 4, 8, 16, 64, 256}) m.observe(t, fixed_ms + per_token_ms * t);
  return m;
}

TEST(StepCostModel, InterpolatesAndExtrapolatesMeasuredBuckets) {
  engine::StepCostModel m;
  EXPECT_FALSE(m.ready());
  EXPECT_EQ(m.estimate_ms(4), 0.0);
  m.observe(1, 10.0);
  EXPECT_FALSE(m.ready());
  m.observe(4, 16.0);
  EXPECT_TRUE(m.ready());
  EXPECT_DOUBLE_EQ(m.estimate_ms(2), 12.0);
  EXPECT_DOUBLE_EQ(m.estimate_ms(8), 24.0);  // the slope between the two largest measured buckets
  m.observe(4, 26.0);                        // a moving average: 0.8 * 16 + 0.2 * 26
  EXPECT_DOUBLE_EQ(m.estimate_ms(4), 18.0);
  m.observe(40, 100.0);  // 33..64 share a bucket, which remembers its steps' size
  EXPECT_DOUBLE_EQ(m.estimate_ms(40), 100.0);
  EXPECT_DOUBLE_EQ(m.estimate_ms(22), 18.0 + (22.0 - 4.0) / (40.0 - 4.0) * (100.0 - 18.0));
  EXPECT_NE(m.describe().find("40:100.0ms"), std::string::npos) << m.describe();
}

TEST(StepCostModel, CoversOnlyWhatANoLargerStepMeasured) {
  engine::StepCostModel m;
  EXPECT_FALSE(m.covers(1));
  m.observe(40, 100.0);
  EXPECT_FALSE(m.covers(1)) << "a 40-token step says nothing about a 1-token one";
  EXPECT_TRUE(m.covers(40));
  EXPECT_TRUE(m.covers(300));
  m.observe(1, 10.0);
  EXPECT_TRUE(m.covers(1));
}

TEST(DraftPolicy, CheapRowsAndGoodAcceptanceDraftEverything) {
  const auto m = costs(20.0, 0.1);  // memory-bound: a row costs 0.5% of a step
  const auto keep = choose_draft_lengths({{5, 0.8}, {3, 0.6}}, 2, 2, m);
  EXPECT_EQ(keep, (std::vector<int32_t>{5, 3}));
}

TEST(DraftPolicy, ExpensiveRowsOrPoorAcceptanceDraftNothing) {
  const auto linear = costs(0.0, 10.0);  // compute-bound: a step costs its tokens
  EXPECT_EQ(choose_draft_lengths({{5, 0.9}}, 1, 1, linear), (std::vector<int32_t>{0}));
  const auto cheap = costs(20.0, 0.1);
  EXPECT_EQ(choose_draft_lengths({{5, 0.0}}, 1, 1, cheap), (std::vector<int32_t>{0}));
  EXPECT_EQ(choose_draft_lengths({{5, 0.9}}, 1, 1, engine::StepCostModel{}), (std::vector<int32_t>{0}))
      << "nothing measured: no drafts";
}

TEST(DraftPolicy, InBetweenKeepsTheLikelyDraftsOfTheLikelySequences) {
  const auto m = costs(10.0, 2.0);  // a row costs ~17% of a one-token step
  // Gains 0.6, 0.36, 0.22 ...: the first two raise tokens per second (2.6/16 ms > 2/14, 2.96/18 >
  // 2.6/16), the third does not (3.18/20 < 2.96/18); the second sequence's 0.2 never does.
  const auto keep = choose_draft_lengths({{5, 0.6}, {5, 0.2}}, 2, 2, m);
  EXPECT_EQ(keep, (std::vector<int32_t>{2, 0}));
  // A big batch: one more row is worth a fraction of the step's many committed tokens.
  EXPECT_EQ(choose_draft_lengths({{5, 0.9}}, 64, 64, m), (std::vector<int32_t>{0}));
}

}  // namespace
}  // namespace pagoda::scheduler
