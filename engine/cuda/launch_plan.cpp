#include "engine/cuda/launch_plan.h"

#include <algorithm>

namespace pagoda::engine::cuda {

PackedStep pack_step(const StepPlan& plan) {
  PackedStep p;
  p.num_tokens = plan.num_tokens();
  p.num_seqs = plan.num_seqs();
  p.num_logits = static_cast<int32_t>(plan.logits_indices.size());
  p.max_blocks_per_seq = plan.max_blocks_per_seq;
  const int64_t T = p.num_tokens;
  auto append = [&p](auto begin, auto end) {
    const int64_t at = static_cast<int64_t>(p.data.size());
    p.data.insert(p.data.end(), begin, end);
    return at;
  };
  p.data.reserve(static_cast<size_t>(4 * T + plan.block_tables.size() + plan.logits_indices.size()));
  p.token_ids = append(plan.token_ids.begin(), plan.token_ids.end());
  p.positions = append(plan.positions.begin(), plan.positions.end());
  p.slot_mapping = append(plan.slot_mapping.begin(), plan.slot_mapping.end());
  p.token_seq = static_cast<int64_t>(p.data.size());
  p.data.resize(static_cast<size_t>(p.token_seq + T));
  for (int32_t b = 0; b < p.num_seqs; ++b) {
    for (int32_t t = plan.cu_seqlens[b]; t < plan.cu_seqlens[b + 1]; ++t) p.data[p.token_seq + t] = b;
  }
  p.block_tables = append(plan.block_tables.begin(), plan.block_tables.end());
  p.logits_indices = append(plan.logits_indices.begin(), plan.logits_indices.end());
  for (int32_t pos : plan.positions) p.max_context = std::max(p.max_context, pos + 1);
  return p;
}

AttentionSplit choose_attention_split(int32_t max_context, int64_t rows, int32_t sm_count, int32_t block_size) {
  AttentionSplit s;
  const int32_t bs = std::max(block_size, 1);
  const int32_t ctx = std::max(max_context, 1);
  // One warp per (row, split); about 16 resident warps per multiprocessor keeps loads in flight.
  const int64_t target_warps = static_cast<int64_t>(std::max(sm_count, 1)) * 16;
  int64_t splits = rows >= target_warps ? 1 : (target_warps + rows - 1) / std::max<int64_t>(rows, 1);
  splits = std::min<int64_t>({splits, kMaxSplits, (ctx + kMinSplitKeys - 1) / kMinSplitKeys});
  splits = std::max<int64_t>(splits, 1);
  int32_t len = static_cast<int32_t>((ctx + splits - 1) / splits);
  len = (len + bs - 1) / bs * bs;  // whole blocks: a split never shares a block with its neighbour
  s.split_len = len;
  s.num_splits = (ctx + len - 1) / len;
  return s;
}

int64_t step_scratch_bytes(const ModelConfig& c, int64_t tokens, int64_t logit_rows) {
  const int64_t T = tokens, R = logit_rows;
  const int64_t f32 = 4 * T * (2LL * c.d_model + c.q_dim() + 2LL * c.kv_dim() + c.q_dim() + 2LL * c.ffn_dim) +
                      4 * R * c.vocab_size;
  const int64_t bf16 = 2 * T * (c.d_model + c.q_dim() + c.ffn_dim) + 2 * R * c.d_model;
  const int64_t ints = 4 * (4 * T + R);  // block tables come on top: a few KiB
  return f32 + bf16 + ints;
}

int64_t kv_memory_available_on_device(int64_t free_bytes, int64_t total_bytes, int64_t step_scratch) {
  const int64_t margin =
      std::max(kStepReserveBytes, static_cast<int64_t>(static_cast<double>(total_bytes) * kStepReserveFraction));
  return std::max<int64_t>(0, free_bytes - margin - step_scratch);
}

}  // namespace pagoda::engine::cuda
