#pragma once
// Draft-model drafting (--speculative draft --draft-model PATH): a second, smaller GGUF with the target's
// vocabulary proposes the next tokens greedily, and the target verifies them in its own step (the model
// runner keeps a draft only where it equals the target's draw, so the draft's quality costs speed, never
// correctness).
//
// The draft model has its own backend and its own paged KV pool, with as many blocks of the target's
// block size as the target's pool (so whatever fits the target fits the draft; a draft model is the
// smaller one, so its pool is the smaller one). Per sequence it remembers which tokens its KV holds;
// a proposal first computes what changed since the last one (the tokens the target committed, from
// the first one that differs: a rejected draft is overwritten, never copied), then runs k - 1 decode
// steps. One step's proposals are batched: every forward carries all the speculating sequences (the
// catch-up, at most one forward of the step's token budget, then one token each), so a draft costs k
// forwards per step, not per sequence; a sequence with more to catch up than one forward drafts from a
// later step. Sequences the target preempted keep their draft KV until the pool needs the room (least
// recently drafted first). The draft pool has no prefix cache: sequences that share a prompt (a
// system prompt, n > 1 choices) each hold their own copy of it, so a pool the target fills through
// its prefix cache may leave some sequences undrafted.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/kv/kv_cache_manager.h"
#include "engine/loaded_model.h"
#include "engine/spec/drafter.h"
#include "engine/status.h"

namespace pagoda::engine {

// Whether `draft` can draft for `target`: the same logits width and every token the same text and kind,
// with the same special ids. The error names the first difference.
Status check_draft_vocabulary(const Tokenizer& target, int32_t target_vocab, const Tokenizer& draft,
                              int32_t draft_vocab);

class DraftModelDrafter final : public Drafter {
 public:
  // Loads the draft model at `path` with `options` (its KV pool: options.kv_tokens, in blocks of
  // options.block_size) and checks its vocabulary against the target's. max_step_tokens bounds one
  // draft forward (the target's step budget).
  static Result<std::unique_ptr<DraftModelDrafter>> load(const std::string& path, const LoadOptions& options,
                                                          const Tokenizer& target, int32_t target_vocab,
                                                          int32_t max_step_tokens);
  DraftModelDrafter(LoadedModel model, int32_t max_step_tokens);

  const char* name() const override { return "draft"; }
  void propose(const DraftQuery& q, std::vector<int32_t>& out) override;
  void propose_batch(std::span<const DraftQuery> qs, std::vector<std::vector<int32_t>>& out) override;
  bool batches() const override { return true; }
  void release(uint64_t seq_id, std::span<const int32_t> tokens, int32_t prompt_len) override;

  const LoadedModel& model() const { return model_; }
  int32_t num_sequences() const { return static_cast<int32_t>(seqs_.size()); }
  KvCacheStats kv_stats() const { return kv_.stats(); }
  int64_t forwards() const { return forwards_; }  // draft forward passes run so far

 private:
  struct SeqState {
    std::vector<int32_t> tokens;  // what the draft KV holds, positions 0..tokens.size()-1
    uint64_t last_used = 0;       // propose_batch call that last drafted it
  };
  // Room for `num_tokens` positions of seq_id; evicts sequences not drafted in this call, least recently
  // drafted first, when the pool is short. False when even that does not make room.
  bool reserve(uint64_t seq_id, int32_t num_tokens);
  void forget(uint64_t seq_id);

  LoadedModel model_;
  KvCacheManager kv_;
  int32_t max_step_tokens_;
  std::unordered_map<uint64_t, SeqState> seqs_;
  uint64_t clock_ = 0;
  int64_t forwards_ = 0;
  int64_t failures_ = 0;
  std::vector<float> logits_;
};

}  // namespace pagoda::engine
