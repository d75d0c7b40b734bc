// StepPlan: the builder produces consistent flat arrays and validate() rejects every broken invariant.
#include "engine/step_plan.h"

#include <gtest/gtest.h>

#include "engine/sampling/sampling_params.h"

namespace pagoda::engine {
namespace {

StepPlan two_sequences() {
  StepPlanBuilder b(4);
  const std::vector<int32_t> prompt = {5, 6, 7, 8, 9}, decode = {3};
  const std::vector<int32_t> table_a = {7, 2}, table_b = {0, 1, 3};
  b.add_sequence(10, prompt, 0, table_a);
  b.sample_last_row(10);
  b.add_sequence(11, decode, 9, table_b);
  b.sample_last_row(11);
  b.sample_last_row(12);  // a forked choice drawing from its parent's row
  return b.build();
}

TEST(StepPlan, BuilderFlattensRaggedSequences) {
  StepPlan p = two_sequences();
  EXPECT_EQ(p.num_tokens(), 6);
  EXPECT_EQ(p.num_seqs(), 2);
  EXPECT_EQ(p.cu_seqlens, (std::vector<int32_t>{0, 5, 6}));
  EXPECT_EQ(p.positions, (std::vector<int32_t>{0, 1, 2, 3, 4, 9}));  // positions restart per sequence
  EXPECT_EQ(p.slot_mapping, (std::vector<int32_t>{28, 29, 30, 31, 8, 13}));
  EXPECT_EQ(p.context_lens, (std::vector<int32_t>{5, 10}));
  EXPECT_EQ(p.max_blocks_per_seq, 3);
  EXPECT_EQ(p.block_tables, (std::vector<int32_t>{7, 2, -1, 0, 1, 3}));
  EXPECT_EQ(p.logits_indices, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(p.sample_seq_ids, (std::vector<uint64_t>{10, 11, 12}));
  EXPECT_EQ(p.sample_rows, (std::vector<int32_t>{0, 1, 1}));
  EXPECT_TRUE(p.validate(8, 4, 100).ok()) << p.validate(8, 4, 100).message();
}

TEST(StepPlan, ValidateRejectsBrokenPlans) {
  struct Case {
    const char* what;
    void (*mutate)(StepPlan&);
    const char* message_part;
  };
  const Case cases[] = {
      {"token outside vocab", [](StepPlan& p) { p.token_ids[0] = 100; }, "outside the vocabulary"},
      {"negative token", [](StepPlan& p) { p.token_ids[1] = -1; }, "outside the vocabulary"},
      {"position gap", [](StepPlan& p) { p.positions[2] = 7; }, "position"},
      {"slot mismatch", [](StepPlan& p) { p.slot_mapping[5] = 0; }, "slot"},
      {"block outside pool", [](StepPlan& p) { p.block_tables[0] = 99; }, "outside the pool"},
      {"context over table", [](StepPlan& p) { p.context_lens[1] = 13; }, "exceeds its block table"},
      {"bad cu_seqlens", [](StepPlan& p) { p.cu_seqlens[2] = 7; }, "cu_seqlens"},
      {"logits index", [](StepPlan& p) { p.logits_indices[0] = 6; }, "logits index"},
      {"short positions", [](StepPlan& p) { p.positions.pop_back(); }, "positions"},
      {"sample row", [](StepPlan& p) { p.sample_rows[2] = 2; }, "sample row 2 is outside"},
      {"sample rows size", [](StepPlan& p) { p.sample_rows.pop_back(); }, "sample rows"},
      {"sampled twice", [](StepPlan& p) { p.sample_seq_ids[2] = 10; }, "sequence 10 samples twice"},
      {"mask size", [](StepPlan& p) { p.token_masks.assign(5, ~0u); }, "token_masks has 5 words"},
      {"empty mask", [](StepPlan& p) { p.token_masks.assign(12, ~0u); p.token_masks[4] = p.token_masks[5] = p.token_masks[6] = p.token_masks[7] = 0; }, "sequence 11 allows no token"},
  };
  for (const Case& c : cases) {
    StepPlan p = two_sequences();
    c.mutate(p);
    Status s = p.validate(8, 4, 100);
    EXPECT_FALSE(s.ok()) << c.what;
    EXPECT_NE(s.message().find(c.message_part), std::string::npos) << c.what << ": " << s.message();
  }
}

// Window tables (a window pool of 6 blocks, window 3): sequence 10 prefills positions 0..4, sequence 11
// decodes position 9, whose window reaches back to position 7 (block 1): its block 0 was released.
StepPlan two_windowed_sequences() {
  StepPlanBuilder b(4);
  const std::vector<int32_t> prompt = {5, 6, 7, 8, 9}, decode = {3};
  b.add_sequence(10, prompt, 0, std::vector<int32_t>{7, 2});
  b.set_window_table(std::vector<int32_t>{4, 5});
  b.sample_last_row(10);
  b.add_sequence(11, decode, 9, std::vector<int32_t>{0, 1, 3});
  b.set_window_table(std::vector<int32_t>{-1, 0, 2});
  b.sample_last_row(11);
  return b.build();
}

TEST(StepPlanWindow, BuilderMapsWindowSlotsThroughTheWindowTable) {
  StepPlan p = two_windowed_sequences();
  EXPECT_EQ(p.window_slot_mapping, (std::vector<int32_t>{16, 17, 18, 19, 20, 9}));
  EXPECT_EQ(p.window_block_tables, (std::vector<int32_t>{4, 5, -1, -1, 0, 2}));
  EXPECT_TRUE(p.validate(8, 4, 100, 6, 3).ok()) << p.validate(8, 4, 100, 6, 3).message();
  // Without a window pool in the backend, or with one but a plan without tables: refused.
  EXPECT_NE(p.validate(8, 4, 100).message().find("no window pool"), std::string::npos);
  EXPECT_NE(two_sequences().validate(8, 4, 100, 6, 3).message().find("no window block tables"), std::string::npos);
}

TEST(StepPlanWindow, ValidateRejectsWindowsThatReachReleasedBlocks) {
  struct Case {
    const char* what;
    void (*mutate)(StepPlan&);
    int32_t window;
    const char* message_part;
  };
  const Case cases[] = {
      {"a window of 8 reaches the released block 0", [](StepPlan&) {}, 8, "window table entry 0 = -1"},
      {"window block outside the pool", [](StepPlan& p) { p.window_block_tables[5] = 6; }, 3,
       "outside the window pool"},
      {"window slot mismatch", [](StepPlan& p) { p.window_slot_mapping[1] = 3; }, 3, "window slot 3"},
      {"window slots short", [](StepPlan& p) { p.window_slot_mapping.pop_back(); }, 3, "window slots"},
  };
  for (const Case& c : cases) {
    StepPlan p = two_windowed_sequences();
    c.mutate(p);
    Status s = p.validate(8, 4, 100, 6, c.window);
    EXPECT_FALSE(s.ok()) << c.what;
    EXPECT_NE(s.message().find(c.message_part), std::string::npos) << c.what << ": " << s.message();
  }
}

TEST(StepPlan, MasksOfTheRightSizeAreValid) {
  StepPlan p = two_sequences();
  p.token_masks.assign(3 * static_cast<size_t>(token_mask_words(100)), 0u);
  for (size_t i = 0; i < 3; ++i) p.token_masks[i * 4] = 1u;  // each sample allows token 0
  EXPECT_TRUE(p.validate(8, 4, 100).ok()) << p.validate(8, 4, 100).message();
}

}  // namespace
}  // namespace pagoda::engine

namespace pagoda::engine {
namespace {

// Sequence 10 samples its prompt's last row, 11 verifies drafts {4, 5} after its last token 3,
// 12 is a plain decode.
StepPlan with_verification() {
  StepPlanBuilder b(4);
  const std::vector<int32_t> prompt = {5, 6, 7}, run = {3, 4, 5}, decode = {9};
  b.add_sequence(10, prompt, 0, std::vector<int32_t>{0});
  b.sample_last_row(10);
  b.add_verification(11, run, 6, std::vector<int32_t>{1, 2, 4});
  b.add_sequence(12, decode, 2, std::vector<int32_t>{3});
  b.sample_last_row(12);
  return b.build();
}

TEST(StepPlanDrafts, VerificationGetsARowPerTokenAndItsDrafts) {
  const StepPlan p = with_verification();
  EXPECT_EQ(p.logits_indices, (std::vector<int32_t>{2, 3, 4, 5, 6}));
  EXPECT_EQ(p.sample_seq_ids, (std::vector<uint64_t>{10, 11, 12}));
  EXPECT_EQ(p.sample_rows, (std::vector<int32_t>{0, 1, 4}));
  EXPECT_EQ(p.draft_starts, (std::vector<int32_t>{0, 0, 2, 2}));
  EXPECT_EQ(p.draft_tokens, (std::vector<int32_t>{4, 5}));
  EXPECT_TRUE(p.drafts(0).empty());
  EXPECT_EQ(std::vector<int32_t>(p.drafts(1).begin(), p.drafts(1).end()), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(p.positions[3], 6);
  EXPECT_EQ(p.context_lens[1], 9);
  EXPECT_TRUE(p.validate(8, 4, 100).ok()) << p.validate(8, 4, 100).message();
}

TEST(StepPlanDrafts, ValidateRejectsDraftsThatDoNotMatchTheRows) {
  struct Case {
    const char* what;
    void (*edit)(StepPlan&);
  };
  const Case cases[] = {
      {"draft differs from the token it verifies", [](StepPlan& p) { p.draft_tokens[0] = 7; }},
      {"draft outside the vocabulary", [](StepPlan& p) { p.draft_tokens[1] = 1000; }},
      {"more drafts than rows", [](StepPlan& p) { p.draft_starts = {0, 0, 2, 3}; p.draft_tokens.push_back(9); }},
      {"offsets of the wrong size", [](StepPlan& p) { p.draft_starts.pop_back(); }},
      {"drafts without offsets", [](StepPlan& p) { p.draft_starts.clear(); }},
      {"drafts with a token mask", [](StepPlan& p) { p.token_masks.assign(3 * token_mask_words(100), ~0u); }},
      {"a row that skips a token", [](StepPlan& p) { p.logits_indices[2] = 5; }},
  };
  for (const Case& c : cases) {
    StepPlan p = with_verification();
    c.edit(p);
    EXPECT_FALSE(p.validate(8, 4, 100).ok()) << c.what;
  }
}

}  // namespace
}  // namespace pagoda::engine
