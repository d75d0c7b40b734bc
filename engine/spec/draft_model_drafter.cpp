#include "engine/spec/draft_model_drafter.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/sampling/sampler.h"
#include "engine/step_plan.h"

namespace pagoda::engine {

Status check_draft_vocabulary(const Tokenizer& target, int32_t target_vocab, const Tokenizer& draft,
                              int32_t draft_vocab) {
  if (draft_vocab != target_vocab) {
    return Status::error(
        fmt::format("the draft model's vocabulary has {} tokens, the target's {}", draft_vocab, target_vocab));
  }
  const TokenizerSpec& t = target.spec();
  const TokenizerSpec& d = draft.spec();
  if (t.model != d.model || t.tokens.size() != d.tokens.size()) {
    return Status::error(fmt::format("the draft model's tokenizer is {} with {} tokens, the target's {} with {}",
                                     d.model, d.tokens.size(), t.model, t.tokens.size()));
  }
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    const int32_t tt = i < t.token_types.size() ? t.token_types[i] : 1;
    const int32_t dt = i < d.token_types.size() ? d.token_types[i] : 1;
    if (t.tokens[i] != d.tokens[i] || tt != dt) {
      return Status::error(fmt::format("the draft model's token {} is '{}' (type {}), the target's '{}' (type {})", i,
                                       d.tokens[i], dt, t.tokens[i], tt));
    }
  }
  if (t.bos_id != d.bos_id || t.eos_id != d.eos_id || t.eot_id != d.eot_id) {
    return Status::error(fmt::format("the draft model's special tokens (bos {}, eos {}, eot {}) differ from the "
                                     "target's (bos {}, eos {}, eot {})",
                                     d.bos_id, d.eos_id, d.eot_id, t.bos_id, t.eos_id, t.eot_id));
  }
  return {};
}

Result<std::unique_ptr<DraftModelDrafter>> DraftModelDrafter::load(const std::string& path, const LoadOptions& options,
                                                                   const Tokenizer& target, int32_t target_vocab,
                                                                   int32_t max_step_tokens) {
  auto loaded = load_model(path, options);
  if (!loaded.ok()) return Status::error(fmt::format("draft model {}: {}", path, loaded.message()));
  LoadedModel& m = loaded.value();
  if (Status s = check_draft_vocabulary(target, target_vocab, *m.tokenizer, m.config().vocab_size); !s.ok()) {
    return Status::error(fmt::format("draft model {} cannot draft for this model: {}", path, s.message()));
  }
  return std::make_unique<DraftModelDrafter>(std::move(m), max_step_tokens);
}

DraftModelDrafter::DraftModelDrafter(LoadedModel model, int32_t max_step_tokens)
    : model_(std::move(model)),
      // Positions are rewritten in place after a rejection and nothing is shared between sequences, so
      // the draft pool needs no prefix cache.
      kv_({model_.backend->kv_shape().num_blocks, model_.backend->kv_shape().block_size, false}),
      max_step_tokens_(std::max(max_step_tokens, 1)) {}

void DraftModelDrafter::propose(const DraftQuery& q, std::vector<int32_t>& out) {
  std::vector<std::vector<int32_t>> outs(1);
  propose_batch(std::span(&q, 1), outs);
  out.insert(out.end(), outs[0].begin(), outs[0].end());
}

void DraftModelDrafter::release(uint64_t seq_id, std::span<const int32_t>, int32_t) { forget(seq_id); }

void DraftModelDrafter::forget(uint64_t seq_id) {
  kv_.free(seq_id);
  seqs_.erase(seq_id);
}

bool DraftModelDrafter::reserve(uint64_t seq_id, int32_t num_tokens) {
  if (kv_.allocate_slots(seq_id, num_tokens)) return true;
  // Evict only when that makes room: the blocks it needs against the free ones and those of the
  // sequences not drafted in this call (a sequence too long for the pool evicts nobody).
  const int32_t bs = kv_.block_size();
  const int32_t need = (num_tokens + bs - 1) / bs - static_cast<int32_t>(kv_.block_table(seq_id).size());
  const KvCacheStats st = kv_.stats();
  int64_t room = st.num_blocks - st.used_blocks;
  for (const auto& [id, state] : seqs_) {
    if (state.last_used < clock_) room += static_cast<int64_t>(kv_.block_table(id).size());
  }
  if (need > room) return false;
  while (!kv_.allocate_slots(seq_id, num_tokens)) {
    uint64_t victim = 0;
    uint64_t oldest = clock_;
    for (const auto& [id, state] : seqs_) {
      if (state.last_used < oldest) {
        oldest = state.last_used;
        victim = id;
      }
    }
    if (oldest == clock_) return false;  // everyone left is drafting in this call
    forget(victim);
  }
  return true;
}

void DraftModelDrafter::propose_batch(std::span<const DraftQuery> qs, std::vector<std::vector<int32_t>>& out) {
  out.resize(qs.size());
  ++clock_;
  const int32_t max_len = kv_.block_size() * kv_.stats().num_blocks;
  // A sequence's work: the tokens still to run through the draft (the catch-up, then each new draft
  // but the last), from position `pos`.
  struct Work {
    size_t q;
    std::vector<int32_t> pending;
    int32_t pos;
    int32_t drafted = 0;
  };
  std::vector<Work> work;
  for (size_t i = 0; i < qs.size(); ++i) {
    const DraftQuery& q = qs[i];
    const int32_t len = static_cast<int32_t>(q.tokens.size());
    if (q.max_tokens <= 0 || len == 0 || len + q.max_tokens - 1 > max_len) continue;
    auto [it, fresh] = seqs_.try_emplace(q.seq_id);
    SeqState& st = it->second;
    st.last_used = clock_;
    if (fresh) kv_.start_sequence(q.seq_id, {});
    // Keep the KV of the longest common prefix; the last token always runs (its logits are the first draft).
    const auto diff = std::mismatch(st.tokens.begin(), st.tokens.end(), q.tokens.begin(), q.tokens.end());
    const int32_t keep = std::min(static_cast<int32_t>(diff.first - st.tokens.begin()), len - 1);
    st.tokens.resize(static_cast<size_t>(keep));
    if (!reserve(q.seq_id, len + q.max_tokens - 1)) continue;
    work.push_back({i, std::vector<int32_t>(q.tokens.begin() + keep, q.tokens.end()), keep});
  }

  const size_t vocab = static_cast<size_t>(model_.config().vocab_size);
  const int32_t block_size = kv_.block_size();
  for (bool first = true;; first = false) {
    StepPlanBuilder b(block_size);
    std::vector<std::pair<Work*, int32_t>> ran;  // work item, tokens it ran this forward
    std::vector<Work*> rows;                       // items whose logits rows this forward yields, in order
    int32_t budget = max_step_tokens_;
    for (Work& w : work) {
      if (w.pending.empty() || budget == 0) continue;
      const int32_t n = std::min(static_cast<int32_t>(w.pending.size()), budget);
      const bool to_end = n == static_cast<int32_t>(w.pending.size());
      const DraftQuery& q = qs[w.q];
      b.add_sequence(q.seq_id, std::span(w.pending).first(static_cast<size_t>(n)), w.pos, kv_.block_table(q.seq_id),
                     {}, to_end);
      // The same prompt length as the target's, so a draft model equal to the target computes what the
      // target computes (the CPU backend's summation order depends on it), and drafts what it would draw.
      b.set_prompt_len(q.prompt_len);
      ran.emplace_back(&w, n);
      if (to_end) rows.push_back(&w);
      budget -= n;
    }
    if (ran.empty()) break;
    const StepPlan plan = b.build();
    logits_.resize(plan.logits_indices.size() * vocab);
    ++forwards_;
    if (Status s = model_.backend->execute(plan, logits_); !s.ok()) {
      // A failed draft costs its drafts, nothing else: the target step goes on without them, and the
      // sequences start their draft KV over.
      if (failures_++ % 1000 == 0) {  // every step would say it again
        spdlog::warn("draft model step failed ({} so far), drafting nothing this step: {}", failures_, s.message());
      }
      for (Work& w : work) {
        out[w.q].clear();
        forget(qs[w.q].seq_id);
      }
      return;
    }
    for (auto [w, n] : ran) {
      SeqState& st = seqs_[qs[w->q].seq_id];
      st.tokens.insert(st.tokens.end(), w->pending.begin(), w->pending.begin() + n);
      w->pending.erase(w->pending.begin(), w->pending.begin() + n);
      w->pos += n;
    }
    for (size_t r = 0; r < rows.size(); ++r) {
      Work& w = *rows[r];
      const int32_t token = argmax(std::span<const float>(logits_.data() + r * vocab, vocab));
      out[w.q].push_back(token);
      if (++w.drafted < qs[w.q].max_tokens) w.pending.assign(1, token);
    }
    // Catch-up is bounded to one forward of the step's budget: a sequence with more to compute (a long
    // prompt just finished) keeps what it ran and drafts from a later step, so it never holds up the
    // others' tokens by more than one forward.
    if (first) {
      for (Work& w : work) {
        if (w.drafted == 0) w.pending.clear();
      }
    }
  }
}

}  // namespace pagoda::engine
