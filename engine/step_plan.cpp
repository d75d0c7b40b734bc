#include "engine/step_plan.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>

#include "engine/sampling/sampling_params.h"

namespace pagoda::engine {

Status StepPlan::validate(int32_t num_blocks, int32_t block_size, int32_t vocab_size, int32_t num_window_blocks,
                          int32_t window) const {
  const size_t T = token_ids.size(), B = seq_ids.size();
  if (positions.size() != T || slot_mapping.size() != T) {
    return Status::error(fmt::format("step plan: {} tokens but {} positions and {} slots", T, positions.size(),
                                     slot_mapping.size()));
  }
  if (cu_seqlens.size() != B + 1 || context_lens.size() != B ||
      block_tables.size() != B * static_cast<size_t>(std::max(max_blocks_per_seq, 0))) {
    return Status::error(fmt::format("step plan: {} sequences but cu_seqlens {}, context_lens {}, block_tables {}",
                                     B, cu_seqlens.size(), context_lens.size(), block_tables.size()));
  }
  if (B == 0 || cu_seqlens[0] != 0 || static_cast<size_t>(cu_seqlens[B]) != T) {
    return Status::error("step plan: cu_seqlens must start at 0 and end at the token count");
  }
  for (size_t t = 0; t < T; ++t) {
    if (token_ids[t] < 0 || token_ids[t] >= vocab_size) {
      return Status::error(fmt::format("step plan: token id {} at index {} is outside the vocabulary (0..{})",
                                       token_ids[t], t, vocab_size - 1));
    }
  }
  for (size_t b = 0; b < B; ++b) {
    const int32_t begin = cu_seqlens[b], end = cu_seqlens[b + 1], n = end - begin, ctx = context_lens[b];
    if (n <= 0 || ctx < n) {
      return Status::error(fmt::format("step plan: sequence {} has {} new tokens and context {}", seq_ids[b], n, ctx));
    }
    if (static_cast<int64_t>(ctx) > static_cast<int64_t>(max_blocks_per_seq) * block_size) {
      return Status::error(fmt::format("step plan: sequence {} context {} exceeds its block table ({} blocks of {})",
                                       seq_ids[b], ctx, max_blocks_per_seq, block_size));
    }
    auto table = block_table(static_cast<int32_t>(b));
    for (int32_t i = 0; i < (ctx + block_size - 1) / block_size; ++i) {
      if (table[i] < 0 || table[i] >= num_blocks) {
        return Status::error(fmt::format("step plan: sequence {} block table entry {} = {} is outside the pool (0..{})",
                                         seq_ids[b], i, table[i], num_blocks - 1));
      }
    }
    // This step's tokens are the last n of the context, in order: positions ctx-n .. ctx-1.
    for (int32_t j = 0; j < n; ++j) {
      const int32_t pos = positions[begin + j];
      if (pos != ctx - n + j) {
        return Status::error(fmt::format("step plan: sequence {} token {} has position {}, expected {}", seq_ids[b], j,
                                         pos, ctx - n + j));
      }
      const int32_t slot = slot_mapping[begin + j];
      if (slot != table[pos / block_size] * block_size + pos % block_size) {
        return Status::error(fmt::format("step plan: sequence {} position {} maps to slot {}, but its block table "
                                         "puts it at {}",
                                         seq_ids[b], pos, slot, table[pos / block_size] * block_size + pos % block_size));
      }
    }
  }
  if (Status s = validate_window_tables(num_window_blocks, block_size, window); !s.ok()) return s;
  if (!prompt_lens.empty() && prompt_lens.size() != B) {
    return Status::error(fmt::format("step plan: {} sequences but {} prompt_lens entries", B, prompt_lens.size()));
  }
  for (int32_t li : logits_indices) {
    if (li < 0 || static_cast<size_t>(li) >= T) {
      return Status::error(fmt::format("step plan: logits index {} is outside 0..{}", li, T - 1));
    }
  }
  return validate_samples(vocab_size);
}

// After the main tables' checks (sizes, positions). Each sequence's window table must hold a block of
// the window pool from its first new token's window on (positions ctx - n + 1 - window ...), and each
// new token's window slot must be its position in that table.
Status StepPlan::validate_window_tables(int32_t num_window_blocks, int32_t block_size, int32_t window) const {
  const size_t T = token_ids.size(), B = seq_ids.size();
  if (!has_window_tables() && window_slot_mapping.empty()) {
    if (num_window_blocks <= 0) return {};
    return Status::error("step plan: the backend keeps the sliding-window layers' KV in a pool of its own, but the "
                         "plan has no window block tables");
  }
  if (num_window_blocks <= 0 || window <= 0) {
    return Status::error("step plan: window block tables, but the backend has no window pool");
  }
  if (window_slot_mapping.size() != T || window_block_tables.size() != block_tables.size()) {
    return Status::error(fmt::format("step plan: {} tokens and {} table entries but {} window slots and {} window "
                                     "table entries",
                                     T, block_tables.size(), window_slot_mapping.size(), window_block_tables.size()));
  }
  for (size_t b = 0; b < B; ++b) {
    const int32_t begin = cu_seqlens[b], n = cu_seqlens[b + 1] - begin, ctx = context_lens[b];
    auto table = window_block_table(static_cast<int32_t>(b));
    for (int32_t i = std::max(0, ctx - n + 1 - window) / block_size; i < (ctx + block_size - 1) / block_size; ++i) {
      if (table[i] < 0 || table[i] >= num_window_blocks) {
        return Status::error(fmt::format("step plan: sequence {} window table entry {} = {} is outside the window pool "
                                         "(0..{})",
                                         seq_ids[b], i, table[i], num_window_blocks - 1));
      }
    }
    for (int32_t j = 0; j < n; ++j) {
      const int32_t pos = positions[begin + j];
      const int32_t want = table[pos / block_size] * block_size + pos % block_size;
      if (window_slot_mapping[begin + j] != want) {
        return Status::error(fmt::format("step plan: sequence {} position {} maps to window slot {}, but its window "
                                         "table puts it at {}",
                                         seq_ids[b], pos, window_slot_mapping[begin + j], want));
      }
    }
  }
  return {};
}

Status StepPlan::validate_samples(int32_t vocab_size) const {
  const size_t S = sample_seq_ids.size();
  if (sample_rows.size() != S) {
    return Status::error(fmt::format("step plan: {} samples but {} sample rows", S, sample_rows.size()));
  }
  for (int32_t row : sample_rows) {
    if (row < 0 || static_cast<size_t>(row) >= logits_indices.size()) {
      return Status::error(fmt::format("step plan: sample row {} is outside the {} logits rows", row,
                                       logits_indices.size()));
    }
  }
  if (Status s = validate_drafts(vocab_size); !s.ok()) return s;
  // One draw per sequence per step (speculation adds rows, it does not repeat the sequence).
  std::vector<uint64_t> ids(sample_seq_ids);
  std::sort(ids.begin(), ids.end());
  if (auto dup = std::adjacent_find(ids.begin(), ids.end()); dup != ids.end()) {
    return Status::error(fmt::format("step plan: sequence {} samples twice in one step", *dup));
  }
  const size_t words = static_cast<size_t>(token_mask_words(vocab_size));
  if (!token_masks.empty() && token_masks.size() != S * words) {
    return Status::error(fmt::format("step plan: token_masks has {} words, want {} samples x {} words", token_masks.size(),
                                     S, words));
  }
  for (size_t i = 0; i < (token_masks.empty() ? 0 : S); ++i) {
    const auto row = std::span(token_masks).subspan(i * words, words);
    if (std::all_of(row.begin(), row.end(), [](uint32_t w) { return w == 0; })) {
      return Status::error(fmt::format("step plan: the token mask of sequence {} allows no token", sample_seq_ids[i]));
    }
  }
  return {};
}

Status StepPlan::validate_drafts(int32_t vocab_size) const {
  if (draft_starts.empty()) {
    if (!draft_tokens.empty()) return Status::error("step plan: draft tokens without draft_starts");
    return {};
  }
  const size_t S = sample_seq_ids.size();
  if (draft_starts.size() != S + 1 || draft_starts[0] != 0 ||
      static_cast<size_t>(draft_starts.back()) != draft_tokens.size()) {
    return Status::error(fmt::format("step plan: draft_starts ({} entries) do not index {} draft tokens of {} samples",
                                     draft_starts.size(), draft_tokens.size(), S));
  }
  for (size_t s = 0; s < S; ++s) {
    const int32_t k = draft_starts[s + 1] - draft_starts[s];
    if (k < 0) return Status::error("step plan: draft_starts decrease");
    if (k == 0) continue;
    if (!token_masks.empty()) {
      return Status::error(fmt::format("step plan: sequence {} has drafts and a token mask (masks cover one row)",
                                       sample_seq_ids[s]));
    }
    const int32_t row = sample_rows[s];
    if (static_cast<size_t>(row) + k >= logits_indices.size()) {
      return Status::error(fmt::format("step plan: sequence {} verifies {} drafts past the logits rows", sample_seq_ids[s], k));
    }
    // The verified tokens are one sequence's: the first row's token and the k after it.
    const int32_t first = logits_indices[row];
    const auto seq_end = std::upper_bound(cu_seqlens.begin(), cu_seqlens.end(), first);
    if (first < 0 || seq_end == cu_seqlens.end() || first + k >= *seq_end) {
      return Status::error(fmt::format("step plan: sequence {}'s {} drafts run past its tokens", sample_seq_ids[s], k));
    }
    // Row row + j is the token right after row + j - 1's, and that token is draft j - 1.
    for (int32_t j = 0; j < k; ++j) {
      const int32_t t = logits_indices[row + j];
      const int32_t d = draft_tokens[draft_starts[s] + j];
      if (d < 0 || d >= vocab_size) return Status::error(fmt::format("step plan: draft token {} is not in the vocabulary", d));
      if (logits_indices[row + j + 1] != t + 1 || static_cast<size_t>(t) + 1 >= token_ids.size() || token_ids[t + 1] != d) {
        return Status::error(fmt::format("step plan: sequence {}'s draft {} is not the token after its logits row {}",
                                         sample_seq_ids[s], j, row + j));
      }
    }
  }
  return {};
}

void StepPlanBuilder::add_sequence(uint64_t seq_id, std::span<const int32_t> tokens, int32_t start_pos,
                                   std::span<const int32_t> block_table, std::span<const int32_t> want_logits,
                                   bool want_last) {
  if (plan_.cu_seqlens.empty()) plan_.cu_seqlens.push_back(0);
  const int32_t base = plan_.cu_seqlens.back();
  const int32_t n = static_cast<int32_t>(tokens.size());
  for (int32_t j = 0; j < n; ++j) {
    const int32_t pos = start_pos + j;
    const int32_t blk = pos / block_size_ < static_cast<int32_t>(block_table.size()) ? block_table[pos / block_size_] : -1;
    plan_.token_ids.push_back(tokens[j]);
    plan_.positions.push_back(pos);
    plan_.slot_mapping.push_back(blk * block_size_ + pos % block_size_);
  }
  if (want_logits.empty()) {
    if (want_last) plan_.logits_indices.push_back(base + n - 1);
  } else {
    for (int32_t j : want_logits) plan_.logits_indices.push_back(base + j);
  }
  plan_.seq_ids.push_back(seq_id);
  plan_.cu_seqlens.push_back(base + n);
  plan_.context_lens.push_back(start_pos + n);
  tables_.emplace_back(block_table.begin(), block_table.end());
}

void StepPlanBuilder::set_prompt_len(int32_t prompt_len) {
  plan_.prompt_lens.resize(plan_.seq_ids.size(), -1);
  plan_.prompt_lens.back() = prompt_len;
}

void StepPlanBuilder::set_window_table(std::span<const int32_t> window_table) {
  const int32_t b = static_cast<int32_t>(plan_.seq_ids.size()) - 1;
  window_tables_.resize(plan_.seq_ids.size());
  window_tables_.back().assign(window_table.begin(), window_table.end());
  plan_.window_slot_mapping.resize(plan_.token_ids.size(), -1);
  for (int32_t t = plan_.cu_seqlens[b]; t < plan_.cu_seqlens[b + 1]; ++t) {
    const int32_t pos = plan_.positions[t];
    const int32_t i = pos / block_size_;
    const int32_t blk = i < static_cast<int32_t>(window_table.size()) ? window_table[i] : -1;
    plan_.window_slot_mapping[t] = blk * block_size_ + pos % block_size_;
  }
}

void StepPlanBuilder::sample_last_row(uint64_t seq_id) {
  plan_.sample_seq_ids.push_back(seq_id);
  plan_.sample_rows.push_back(static_cast<int32_t>(plan_.logits_indices.size()) - 1);
  if (!plan_.draft_starts.empty()) plan_.draft_starts.push_back(plan_.draft_starts.back());
}

void StepPlanBuilder::add_verification(uint64_t seq_id, std::span<const int32_t> tokens, int32_t start_pos,
                                       std::span<const int32_t> block_table) {
  const int32_t first_row = static_cast<int32_t>(plan_.logits_indices.size());
  std::vector<int32_t> rows(tokens.size());
  for (size_t j = 0; j < rows.size(); ++j) rows[j] = static_cast<int32_t>(j);
  add_sequence(seq_id, tokens, start_pos, block_table, rows);
  if (plan_.draft_starts.empty()) plan_.draft_starts.assign(plan_.sample_seq_ids.size() + 1, 0);
  plan_.sample_seq_ids.push_back(seq_id);
  plan_.sample_rows.push_back(first_row);
  plan_.draft_tokens.insert(plan_.draft_tokens.end(), tokens.begin() + 1, tokens.end());
  plan_.draft_starts.push_back(static_cast<int32_t>(plan_.draft_tokens.size()));
}

StepPlan StepPlanBuilder::build() {
  if (!plan_.prompt_lens.empty()) plan_.prompt_lens.resize(plan_.seq_ids.size(), -1);  // unknown past the last set
  int32_t max_blocks = 0;
  for (const auto& t : tables_) max_blocks = std::max(max_blocks, static_cast<int32_t>(t.size()));
  for (const auto& t : window_tables_) max_blocks = std::max(max_blocks, static_cast<int32_t>(t.size()));
  plan_.max_blocks_per_seq = max_blocks;
  plan_.block_tables.assign(tables_.size() * static_cast<size_t>(max_blocks), -1);
  for (size_t b = 0; b < tables_.size(); ++b) {
    std::copy(tables_[b].begin(), tables_[b].end(), plan_.block_tables.begin() + b * max_blocks);
  }
  if (!window_tables_.empty()) {  // sequences after the last set_window_table have none: -1 (validate says so)
    plan_.window_slot_mapping.resize(plan_.token_ids.size(), -1);
    plan_.window_block_tables.assign(tables_.size() * static_cast<size_t>(max_blocks), -1);
    for (size_t b = 0; b < window_tables_.size(); ++b) {
      std::copy(window_tables_[b].begin(), window_tables_[b].end(), plan_.window_block_tables.begin() + b * max_blocks);
    }
  }
  StepPlan out = std::move(plan_);
  plan_ = StepPlan();
  tables_.clear();
  window_tables_.clear();
  return out;
}

}  // namespace pagoda::engine
