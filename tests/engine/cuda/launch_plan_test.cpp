// The CUDA backend's host-side planning (engine/cuda/launch_plan.h): plain C++, tested everywhere.
#include "engine/cuda/launch_plan.h"

#include <gtest/gtest.h>

namespace pagoda::engine::cuda {
namespace {

TEST(CudaLaunchPlan, PackStepLaysOutEveryArrayAndMapsTokensToSequences) {
  StepPlanBuilder b(16);
  b.add_sequence(7, std::vector<int32_t>{11, 12, 13}, 0, std::vector<int32_t>{4});
  b.add_sequence(9, std::vector<int32_t>{21}, 40, std::vector<int32_t>{1, 2, 5});
  const StepPlan plan = b.build();
  const PackedStep p = pack_step(plan);
  ASSERT_EQ(p.num_tokens, 4);
  ASSERT_EQ(p.num_seqs, 2);
  EXPECT_EQ(p.max_blocks_per_seq, 3);
  EXPECT_EQ(p.max_context, 41);
  auto at = [&](int64_t off, int n) { return std::vector<int32_t>(p.data.begin() + off, p.data.begin() + off + n); };
  EXPECT_EQ(at(p.token_ids, 4), (std::vector<int32_t>{11, 12, 13, 21}));
  EXPECT_EQ(at(p.positions, 4), (std::vector<int32_t>{0, 1, 2, 40}));
  EXPECT_EQ(at(p.slot_mapping, 4), plan.slot_mapping);
  EXPECT_EQ(at(p.token_seq, 4), (std::vector<int32_t>{0, 0, 0, 1}));
  EXPECT_EQ(at(p.block_tables, 6), plan.block_tables);
  EXPECT_EQ(at(p.logits_indices, p.num_logits), plan.logits_indices);
  EXPECT_EQ(p.logits_indices + p.num_logits, static_cast<int64_t>(p.data.size()));
}

// Padded tables (for CUDA graph reuse): each row keeps its blocks, then -1; the layout after them
// shifts by the padding.
TEST(CudaLaunchPlan, PackStepPadsBlockTablesToTheGivenWidth) {
  StepPlanBuilder b(16);
  b.add_sequence(7, std::vector<int32_t>{11, 12, 13}, 0, std::vector<int32_t>{4});
  b.add_sequence(9, std::vector<int32_t>{21}, 40, std::vector<int32_t>{1, 2, 5});
  const StepPlan plan = b.build();
  const PackedStep p = pack_step(plan, padded_block_table_width(plan.max_blocks_per_seq));
  ASSERT_EQ(p.max_blocks_per_seq, 4);
  auto at = [&](int64_t off, int n) { return std::vector<int32_t>(p.data.begin() + off, p.data.begin() + off + n); };
  EXPECT_EQ(at(p.block_tables, 8), (std::vector<int32_t>{4, -1, -1, -1, 1, 2, 5, -1}));
  EXPECT_EQ(at(p.logits_indices, p.num_logits), plan.logits_indices);
  EXPECT_EQ(at(p.token_ids, 4), (std::vector<int32_t>{11, 12, 13, 21}));
  EXPECT_EQ(pack_step(plan, 1).max_blocks_per_seq, 3) << "never narrower than the plan";
}

TEST(CudaLaunchPlan, ShapesChangeOnlyWhenAContextDoubles) {
  EXPECT_EQ(padded_block_table_width(0), 0);
  EXPECT_EQ(padded_block_table_width(1), 1);
  EXPECT_EQ(padded_block_table_width(3), 4);
  EXPECT_EQ(padded_block_table_width(64), 64);
  EXPECT_EQ(padded_block_table_width(65), 128);
  EXPECT_EQ(context_bucket(1), kMinSplitKeys);
  EXPECT_EQ(context_bucket(kMinSplitKeys + 1), 2 * kMinSplitKeys);
  EXPECT_EQ(context_bucket(540), 1024);
  EXPECT_EQ(context_bucket(1024), 1024);
}

// A row's split length is a function of its own context; the step gives every row room for all of its
// splits (or splits nothing when every context fits one), and bounds the workspace by tokens per launch.
TEST(CudaLaunchPlan, EveryRowGetsItsOwnSplitsAndTheStepRoomForThem) {
  EXPECT_EQ(split_len_for_context(1, 16), kMinSplitKeys);
  EXPECT_EQ(split_len_for_context(2048, 16), kMinSplitKeys);
  EXPECT_EQ(split_len_for_context(2049, 16), 128);
  EXPECT_EQ(split_len_for_context(32768, 16), 1024);
  EXPECT_EQ(split_len_for_context(100, 48), 96) << "whole blocks";
  for (int ctx = 1; ctx <= 70000; ctx += (ctx < 5000 ? 1 : 97)) {
    const int32_t len = split_len_for_context(ctx, 16);
    ASSERT_EQ(len % 16, 0);
    ASSERT_LE((ctx + len - 1) / len, kMaxRowSplits) << ctx;
  }
  // One decode row of 32 heads: room for the longest row's splits, and every shorter row fits.
  for (int max_ctx : {65, 300, 2048, 2049, 8191, 100000}) {
    const AttentionSplit s = choose_attention_split(max_ctx, 1, 32, 128, 16);
    ASSERT_GT(s.num_splits, 1) << max_ctx;
    EXPECT_EQ(s.split_len, 0);
    for (int ctx = 1; ctx <= max_ctx; ctx += 7) {
      const int32_t len = split_len_for_context(ctx, 16);
      ASSERT_LE((ctx + len - 1) / len, s.num_splits) << max_ctx << " " << ctx;
    }
  }
  EXPECT_EQ(choose_attention_split(kMinSplitKeys, 1, 32, 128, 16).num_splits, 1) << "one split holds it";
  // A 4096-token prefill of 32 heads over 8k keys would need 32 splits x 130 floats per row, 2 GiB at
  // once: it runs in launches of as many tokens as 256 MiB holds, every row still split.
  const AttentionSplit big = choose_attention_split(8192, 4096, 32, 128, 16);
  EXPECT_EQ(big.num_splits, kMaxRowSplits);
  EXPECT_EQ(big.tokens_per_launch, kMaxAttentionWorkspaceBytes / (32 * 32 * 130 * 4));
  EXPECT_EQ(choose_attention_split(8192, 64, 32, 128, 16).tokens_per_launch, 0) << "64 decode rows: one launch";
}

TEST(CudaLaunchPlan, KvMemoryIsTheFreeMemoryLessTheLargestStepAndAMargin) {
  const int64_t gib = int64_t(1) << 30;
  // An 80 GiB card with 60 GiB free after the weights: 4% of the card (3.2 GiB) and the step's scratch stay.
  EXPECT_EQ(kv_memory_available_on_device(60 * gib, 80 * gib, 2 * gib),
            58 * gib - static_cast<int64_t>(80 * gib * 0.04));
  // A small card keeps at least 1 GiB back.
  EXPECT_EQ(kv_memory_available_on_device(6 * gib, 8 * gib, 0), 5 * gib);
  // Less free than the reserve: nothing, never negative.
  EXPECT_EQ(kv_memory_available_on_device(gib / 2, 8 * gib, 0), 0);
}

TEST(CudaLaunchPlan, StepScratchCountsEveryBufferOfTheStep) {
  ModelConfig c;  // the llama3-8b shape
  c.d_model = 4096, c.n_heads = 32, c.n_kv_heads = 8, c.head_dim = 128, c.ffn_dim = 14336, c.vocab_size = 128256;
  const int64_t T = 2048, R = 256;
  const int64_t want = 4 * T * (2 * 4096 + 4096 + 2 * 1024 + 4096 + 2 * 14336)  // x, out, qkv, attn, gate|up (f32)
                       + 4 * R * 128256                                         // logits
                       + 2 * T * (4096 + 4096 + 14336) + 2 * R * 4096           // bf16 GEMM inputs
                       + 4 * (4 * T + R)                                        // step indices
                       + kMaxAttentionWorkspaceBytes;  // attention splits: 2048 x 32 heads x 32 x 130 floats, capped
  EXPECT_EQ(step_scratch_bytes(c, T, R), want);
  const int64_t cap = kMaxAttentionWorkspaceBytes;  // reached by both sizes
  EXPECT_GT(step_scratch_bytes(c, 8192, R) - cap, 4 * (step_scratch_bytes(c, 2048, 0) - cap) - 1);
}

}  // namespace
}  // namespace pagoda::engine::cuda
