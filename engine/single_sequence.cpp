#include "engine/single_sequence.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <numeric>

namespace pagoda::engine {

SingleSequence::SingleSequence(Backend& backend, int32_t vocab_size, int32_t max_tokens)
    : backend_(backend), vocab_(vocab_size), block_size_(backend.kv_shape().block_size) {
  const int32_t blocks = std::min(backend.kv_shape().num_blocks, (max_tokens + block_size_ - 1) / block_size_);
  table_.resize(std::max(blocks, 0));
  std::iota(table_.begin(), table_.end(), 0);
}

Status SingleSequence::check_capacity(int32_t extra_tokens) const {
  const int64_t cap = static_cast<int64_t>(table_.size()) * block_size_;
  if (length_ + extra_tokens > cap) {
    return Status::error(fmt::format("sequence of {} tokens exceeds the KV capacity of {} tokens",
                                     length_ + extra_tokens, cap));
  }
  return {};
}

Result<std::span<const float>> SingleSequence::run(std::span<const int32_t> tokens, bool all_logits) {
  if (tokens.empty()) return Status::error("run: no tokens");
  if (Status s = check_capacity(static_cast<int32_t>(tokens.size())); !s.ok()) return s;
  std::vector<int32_t> want;
  if (all_logits) {
    want.resize(tokens.size());
    std::iota(want.begin(), want.end(), 0);
  }
  StepPlanBuilder builder(block_size_);
  const int32_t needed_blocks = (length_ + static_cast<int32_t>(tokens.size()) + block_size_ - 1) / block_size_;
  builder.add_sequence(0, tokens, length_, std::span(table_).first(needed_blocks), want);
  StepPlan plan = builder.build();
  logits_.resize(plan.logits_indices.size() * static_cast<size_t>(vocab_));
  if (Status s = backend_.execute(plan, logits_); !s.ok()) return s;
  length_ += static_cast<int32_t>(tokens.size());
  return std::span<const float>(logits_);
}

}  // namespace pagoda::engine
