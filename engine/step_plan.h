#pragma once
// StepPlan: the data contract from the scheduler to a backend (DESIGN.md). One padding-free ragged
// batch: the tokens of many sequences (prefill chunks, single decode tokens, 1 + k speculative tokens)
// flattened into plain arrays, with each sequence's KV block table. No pad token is ever computed.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/status.h"

namespace pagoda::engine {

struct StepPlan {
  // Per token, [T]:
  std::vector<int32_t> token_ids;
  std::vector<int32_t> positions;     // position of the token in its sequence (restarts per sequence)
  std::vector<int32_t> slot_mapping;  // KV slot written for the token: block_id * block_size + offset
  // Per sequence, [B] (cu_seqlens is [B+1]): sequence b owns tokens cu_seqlens[b] .. cu_seqlens[b+1)-1.
  std::vector<uint64_t> seq_ids;
  std::vector<int32_t> cu_seqlens;
  std::vector<int32_t> context_lens;  // tokens in the sequence's KV after this step (this step's included)
  std::vector<int32_t> block_tables;  // [B][max_blocks_per_seq], unused entries -1
  int32_t max_blocks_per_seq = 0;
  // Sliding-window layers whose K/V live in a pool of their own (KvCacheOptions::window), optional:
  // empty, or the window pool's slots [T] and tables [B][max_blocks_per_seq] (-1 where released:
  // blocks wholly before every new token's window are never read).
  std::vector<int32_t> window_slot_mapping;
  std::vector<int32_t> window_block_tables;
  // Token indices (into [T]) whose next-token logits are wanted, in output order.
  std::vector<int32_t> logits_indices;
  // Per sequence, optional (empty, or -1 where unknown): the sequence's prompt length. Positions below
  // it are prompt tokens, the rest generated ones (or drafts). A backend may compute the two roles
  // differently; the CPU sums prompt tokens' attention in llama.cpp's prefill order and generated
  // ones in its decode order, so a sequence's numbers never depend on how the step was packed
  // (chunked prefill, batch-mates, recompute after preemption).
  std::vector<int32_t> prompt_lens;
  // Sampling, [S]: sequence sample_seq_ids[s] draws its next token from logits row sample_rows[s] (an
  // index into logits_indices). Rows may be shared (n > 1 choices all draw from their prompt's last row)
  // or drawn by nobody (a caller that only wants logits).
  std::vector<uint64_t> sample_seq_ids;
  std::vector<int32_t> sample_rows;
  // Speculative verification, optional: empty, or [S+1] offsets into draft_tokens. Sample s verifies the
  // k = draft_starts[s+1] - draft_starts[s] drafted tokens that the sequence runs right after the
  // token of row sample_rows[s]: rows sample_rows[s] .. sample_rows[s] + k are its consecutive
  // tokens' logits, and draft j is kept while it equals the draw from row sample_rows[s] + j.
  std::vector<int32_t> draft_starts;
  std::vector<int32_t> draft_tokens;
  // Optional, empty or [S][token_mask_words(vocab)]: sample s may only draw tokens whose bit is set (a
  // grammar's allowed set; engine/sampling/logits_processors.h stage 3).
  std::vector<uint32_t> token_masks;

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(seq_ids.size()); }
  int32_t num_samples() const { return static_cast<int32_t>(sample_seq_ids.size()); }
  std::span<const int32_t> drafts(int32_t s) const {
    if (draft_starts.empty()) return {};
    return std::span(draft_tokens).subspan(draft_starts[s], draft_starts[s + 1] - draft_starts[s]);
  }
  std::span<const int32_t> block_table(int32_t b) const {
    return {block_tables.data() + static_cast<size_t>(b) * max_blocks_per_seq, static_cast<size_t>(max_blocks_per_seq)};
  }
  bool has_window_tables() const { return !window_block_tables.empty(); }
  std::span<const int32_t> window_block_table(int32_t b) const {
    return {window_block_tables.data() + static_cast<size_t>(b) * max_blocks_per_seq,
            static_cast<size_t>(max_blocks_per_seq)};
  }

  // Checks every invariant a backend relies on (sizes, ranges, causal positions, slots inside the
  // sequence's blocks); a backend calls this before touching memory. num_blocks/block_size describe
  // the KV pool the plan targets; num_window_blocks > 0 a window pool for layers with a sliding window
  // of `window` tokens, which the plan must then address through window tables covering every new
  // token's window (and must not address otherwise).
  Status validate(int32_t num_blocks, int32_t block_size, int32_t vocab_size, int32_t num_window_blocks = 0,
                  int32_t window = 0) const;
  // The sampling fields alone (rows in range, one draw per sequence, mask sizes, no empty mask), for
  // whoever samples (engine/model_runner.h); validate() includes it.
  Status validate_samples(int32_t vocab_size) const;
  Status validate_drafts(int32_t vocab_size) const;  // part of validate_samples()
  Status validate_window_tables(int32_t num_window_blocks, int32_t block_size, int32_t window) const;  // of validate()
};

// Builds a StepPlan one sequence at a time. The scheduler (and tests, and the CLI) use it so the flat
// arrays are always consistent.
class StepPlanBuilder {
 public:
  explicit StepPlanBuilder(int32_t block_size) : block_size_(block_size) {}
  // Appends a sequence running `tokens` at positions start_pos.., whose KV lives in `block_table`
  // (which must already cover start_pos + tokens.size() tokens). want_logits: which of the new
  // tokens need logits; empty = only the last one, unless want_last is false (a prefill chunk that
  // does not reach the end of the prompt needs none).
  void add_sequence(uint64_t seq_id, std::span<const int32_t> tokens, int32_t start_pos,
                    std::span<const int32_t> block_table, std::span<const int32_t> want_logits = {},
                    bool want_last = true);
  // Sets the prompt length of the sequence added last (StepPlan::prompt_lens).
  void set_prompt_len(int32_t prompt_len);
  // Sets the window-pool table of the sequence added last (KvCacheManager::window_block_table); a plan
  // with a window pool gives every sequence one.
  void set_window_table(std::span<const int32_t> window_table);
  // Sequence seq_id draws a token from the logits row added last (call after add_sequence with logits).
  void sample_last_row(uint64_t seq_id);
  // Sequence seq_id, added last with tokens = [its last committed token, drafts...], verifies the drafts:
  // every one of its tokens gets logits, and it draws from the first of those rows on.
  void add_verification(uint64_t seq_id, std::span<const int32_t> tokens, int32_t start_pos,
                        std::span<const int32_t> block_table);
  StepPlan build();

 private:
  int32_t block_size_;
  StepPlan plan_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<std::vector<int32_t>> window_tables_;
};

}  // namespace pagoda::engine
