#include "engine/cuda/launch_plan.h"

#include <algorithm>

namespace pagoda::engine::cuda {

int32_t padded_block_table_width(int32_t width) { return width <= 0 ? 0 : next_power_of_two(width); }

int32_t context_bucket(int32_t max_context) { return next_power_of_two(std::max(max_context, kMinSplitKeys)); }

PackedStep pack_step(const StepPlan& plan, int32_t block_table_width) {
  PackedStep p;
  p.num_tokens = plan.num_tokens();
  p.num_seqs = plan.num_seqs();
  p.num_logits = static_cast<int32_t>(plan.logits_indices.size());
  p.max_blocks_per_seq = std::max(block_table_width, plan.max_blocks_per_seq);
  const int64_t T = p.num_tokens;
  auto append = [&p](auto begin, auto end) {
    const int64_t at = static_cast<int64_t>(p.data.size());
    p.data.insert(p.data.end(), begin, end);
    return at;
  };
  const size_t table_ints = static_cast<size_t>(p.num_seqs) * static_cast<size_t>(p.max_blocks_per_seq);
  p.data.reserve(static_cast<size_t>(4 * T) + table_ints + plan.logits_indices.size());
  p.token_ids = append(plan.token_ids.begin(), plan.token_ids.end());
  p.positions = append(plan.positions.begin(), plan.positions.end());
  p.slot_mapping = append(plan.slot_mapping.begin(), plan.slot_mapping.end());
  p.token_seq = static_cast<int64_t>(p.data.size());
  p.data.resize(static_cast<size_t>(p.token_seq + T));
  for (int32_t b = 0; b < p.num_seqs; ++b) {
    for (int32_t t = plan.cu_seqlens[b]; t < plan.cu_seqlens[b + 1]; ++t) p.data[p.token_seq + t] = b;
  }
  p.block_tables = static_cast<int64_t>(p.data.size());
  p.data.resize(p.data.size() + table_ints, -1);
  for (int32_t b = 0; b < p.num_seqs; ++b) {
    const auto row = plan.block_table(b);
    std::copy(row.begin(), row.end(), p.data.begin() + p.block_tables + static_cast<int64_t>(b) * p.max_blocks_per_seq);
  }
  p.logits_indices = append(plan.logits_indices.begin(), plan.logits_indices.end());
  for (int32_t pos : plan.positions) p.max_context = std::max(p.max_context, pos + 1);
  return p;
}

AttentionSplit choose_attention_split(int32_t max_context, int32_t num_tokens, int32_t n_heads, int32_t head_dim,
                                      int32_t block_size) {
  AttentionSplit s;
  const int32_t ctx = std::max(max_context, 1);
  if (split_len_for_context(ctx, block_size) >= ctx) return s;  // every row fits one split
  // Every row with a context <= ctx has at most this many splits (split_len_for_context never goes
  // below kMinSplitKeys and never yields more than kMaxRowSplits).
  s.num_splits = std::min<int32_t>(kMaxRowSplits, (ctx + kMinSplitKeys - 1) / kMinSplitKeys);
  const int64_t bytes_per_token = int64_t(std::max(n_heads, 1)) * s.num_splits * (std::max(head_dim, 1) + 2) * 4;
  const int64_t fit = std::max<int64_t>(1, kMaxAttentionWorkspaceBytes / bytes_per_token);
  if (fit < num_tokens) s.tokens_per_launch = static_cast<int32_t>(fit);
  return s;
}

int64_t step_scratch_bytes(const ModelConfig& c, int64_t tokens, int64_t logit_rows) {
  const int64_t T = tokens, R = logit_rows;
  const int64_t f32 = 4 * T * (2LL * c.d_model + c.q_dim() + 2LL * c.kv_dim() + c.q_dim() + 2LL * c.ffn_dim) +
                      4 * R * c.vocab_size;
  const int64_t bf16 = 2 * T * (c.d_model + c.q_dim() + c.ffn_dim) + 2 * R * c.d_model;
  // Block tables come on top: a few KiB, up to MiBs for long contexts at large batches (padded to a
  // power of two), well inside the reserve kv_memory_available_on_device keeps.
  const int64_t ints = 4 * (4 * T + R);
  return f32 + bf16 + ints + 4 * max_attention_workspace_floats(c, T);
}

int64_t max_attention_workspace_floats(const ModelConfig& c, int64_t tokens) {
  return std::min<int64_t>(kMaxAttentionWorkspaceBytes / 4, tokens * c.n_heads * kMaxRowSplits * (int64_t(c.head_dim) + 2));
}

int64_t kv_memory_available_on_device(int64_t free_bytes, int64_t total_bytes, int64_t step_scratch) {
  const int64_t margin =
      std::max(kStepReserveBytes, static_cast<int64_t>(static_cast<double>(total_bytes) * kStepReserveFraction));
  return std::max<int64_t>(0, free_bytes - margin - step_scratch);
}

}  // namespace pagoda::engine::cuda
