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

TEST(CudaLaunchPlan, AttentionSplitsOnlyLongContextsOfFewRows) {
  // Many rows (a big prefill) fill the GPU alone: no split.
  EXPECT_EQ(choose_attention_split(4096, 512 * 32, 132, 16).num_splits, 1);
  // A short context is never split below kMinSplitKeys.
  EXPECT_EQ(choose_attention_split(kMinSplitKeys - 1, 32, 132, 16).num_splits, 1);
  // One decode row of 32 heads over 32k keys: split, in whole blocks, covering every key.
  const AttentionSplit s = choose_attention_split(32768, 32, 132, 16);
  EXPECT_GT(s.num_splits, 1);
  EXPECT_LE(s.num_splits, kMaxSplits);
  EXPECT_EQ(s.split_len % 16, 0);
  EXPECT_GE(s.split_len, kMinSplitKeys);
  EXPECT_GE(int64_t(s.split_len) * s.num_splits, 32768);
  EXPECT_LT(int64_t(s.split_len) * (s.num_splits - 1), 32768) << "no split is empty for the longest row";
  for (int ctx : {1, 17, 255, 256, 257, 1000, 8191, 100000}) {
    for (int64_t rows : {1, 9, 288, 100000}) {
      const AttentionSplit a = choose_attention_split(ctx, rows, 132, 16);
      ASSERT_GE(a.num_splits, 1);
      ASSERT_GE(int64_t(a.split_len) * a.num_splits, ctx) << ctx << " " << rows;
    }
  }
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
                       + 4 * (4 * T + R);                                       // step indices
  EXPECT_EQ(step_scratch_bytes(c, T, R), want);
  EXPECT_GT(step_scratch_bytes(c, 8192, R), 4 * step_scratch_bytes(c, 2048, 0) - 1);
}

}  // namespace
}  // namespace pagoda::engine::cuda
