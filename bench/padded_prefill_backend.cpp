#include "bench/padded_prefill_backend.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace pagoda::bench {

namespace {
// Pad sequence ids, apart from any request's (the backend does not read them; validate() wants them).
constexpr uint64_t kPadSeqBase = uint64_t{1} << 62;
}  // namespace

void append_pad_sequence(engine::StepPlan& plan, uint64_t seq_id, int32_t num_tokens, std::span<const int32_t> blocks,
                         int32_t block_size) {
  const int32_t old_width = plan.max_blocks_per_seq;
  const int32_t width = std::max(old_width, static_cast<int32_t>(blocks.size()));
  if (width != old_width) {
    std::vector<int32_t> tables(static_cast<size_t>(plan.num_seqs()) * width, -1);
    for (int32_t b = 0; b < plan.num_seqs(); ++b) {
      std::copy_n(plan.block_tables.begin() + static_cast<size_t>(b) * old_width, old_width,
                  tables.begin() + static_cast<size_t>(b) * width);
    }
    plan.block_tables = std::move(tables);
    plan.max_blocks_per_seq = width;
  }
  const size_t row = plan.block_tables.size();
  plan.block_tables.resize(row + width, -1);
  std::copy(blocks.begin(), blocks.end(), plan.block_tables.begin() + row);
  for (int32_t p = 0; p < num_tokens; ++p) {
    plan.token_ids.push_back(0);
    plan.positions.push_back(p);
    plan.slot_mapping.push_back(blocks[p / block_size] * block_size + p % block_size);
  }
  plan.seq_ids.push_back(seq_id);
  plan.cu_seqlens.push_back(plan.cu_seqlens.back() + num_tokens);
  plan.context_lens.push_back(num_tokens);
  if (!plan.prompt_lens.empty()) plan.prompt_lens.push_back(num_tokens);  // a pad is all prompt
}

PaddedPrefillBackend::PaddedPrefillBackend(engine::Backend& inner, int32_t first_pad_block)
    : ForwardingBackend(inner), first_pad_block_(first_pad_block) {}

Status PaddedPrefillBackend::execute(const engine::StepPlan& plan, std::span<float> logits) {
  int32_t longest = 0;
  for (int32_t b = 0; b < plan.num_seqs(); ++b) longest = std::max(longest, plan.cu_seqlens[b + 1] - plan.cu_seqlens[b]);
  const int32_t block_size = kv_shape().block_size;
  const int32_t end_block = kv_shape().num_blocks;
  // Pads get no window-pool blocks (a sliding-window model's pool holds the real sequences' windows
  // only): such a plan runs unpadded, its pads counted as skipped.
  const bool windowed = plan.has_window_tables();
  padded_ = plan;
  int32_t next_block = first_pad_block_;
  for (int32_t b = 0; b < plan.num_seqs(); ++b) {
    const int32_t n = plan.cu_seqlens[b + 1] - plan.cu_seqlens[b];
    const int32_t pad = longest - n;
    if (n < 2 || pad <= 0) continue;  // decode rows are never padded
    const int32_t blocks = (pad + block_size - 1) / block_size;
    if (windowed || next_block + blocks > end_block) {
      skipped_pad_tokens += pad;
      continue;
    }
    std::vector<int32_t> table(blocks);
    std::iota(table.begin(), table.end(), next_block);
    next_block += blocks;
    append_pad_sequence(padded_, kPadSeqBase + static_cast<uint64_t>(b), pad, table, block_size);
    pad_tokens += pad;
  }
  return inner_.execute(padded_, logits);
}

}  // namespace pagoda::bench
