// The scheduler's part of speculative decoding (engine/spec/drafter.h): which running decodes verify
// drafted tokens this step, and committing what the verification kept. Drafts only ever use what the
// step has spare after every decode got its own token: token budget no prompt wants (in a full step a
// prompt token is certain progress, a draft only maybe, and prompts must not wait for drafts), and free
// KV blocks (never a preemption, never an evicted prefix-cache block).
#include <algorithm>
#include <chrono>
#include <cmath>

#include "scheduler/draft_policy.h"
#include "scheduler/scheduler.h"
#include "scheduler/step_builder.h"

namespace pagoda::scheduler {

// What s may draft this step, and from which drafter. Not before its prompt is done (its last prompt
// token samples as usual, and n > 1 choices fork from it); at most the request's number of speculative
// tokens, capped by the server's; no more than its max_tokens still needs (the token drawn after the
// last draft is free) or the context holds. A predicted output is drafted from by prompt lookup (it
// follows the prediction), as is a request that asks for drafts on a server that drafts none.
std::pair<engine::Drafter*, int32_t> Scheduler::draft_slot(const Sequence& s, int32_t budget) {
  const Request& r = s.owner->request;
  if (s.num_computed < s.prompt_len || r.num_speculative_tokens == 0) return {nullptr, 0};
  engine::Drafter* drafter = drafter_.get();
  if (!r.prediction.empty() || (!drafter && r.num_speculative_tokens > 0)) drafter = &lookup_drafter_;
  if (!drafter) return {nullptr, 0};
  int32_t k = config_.speculative.num_tokens;
  if (r.num_speculative_tokens > 0) k = std::min(k, r.num_speculative_tokens);
  k = std::min({k, budget, r.stop.max_tokens - s.output_len() - 1, config_.max_model_len - s.num_computed - 1});
  return {drafter, std::max(k, 0)};
}

// 3. Drafts for the first `decodes` entries of the step (place_decodes' choices), once the prompts are
//    placed: from the token budget and free blocks they left. With --speculative auto the lengths are
//    those that raise the step's expected tokens per second (draft_policy.h); a request that set its
//    own num_speculative_tokens keeps its proposal, and its drafts count as part of the step.
void Scheduler::place_drafts(StepBuilder& b, size_t decodes) {
  last_draft_ms_ = 0.0;
  int32_t budget = b.budget;
  std::vector<std::pair<Sequence*, std::vector<int32_t>>> proposals;
  int32_t step_tokens = 0;
  for (const auto& [s, n] : b.chosen) step_tokens += n;
  // Under auto, when not even one always-kept draft would pay (a compute-bound step), the lookups are
  // skipped altogether: they scan each sequence's context, on the engine thread.
  const bool auto_mode = config_.speculative.mode == engine::SpeculativeMode::Auto;
  const bool any_can_pay = !auto_mode || choose_draft_lengths({{1, 1.0}}, step_tokens,
                                                              static_cast<int32_t>(decodes), cost_)[0] > 0;
  // Host drafters propose per sequence, and a proposal uses only the budget it takes (most find
  // nothing). A drafter that runs a model drafts for all its sequences in one batch; each query
  // reserves its k up front, so nothing is drafted that the step has no room for.
  struct Batch {
    engine::Drafter* drafter;
    std::vector<engine::DraftQuery> queries;
    std::vector<Sequence*> seqs;
  };
  std::vector<Batch> batches;
  for (size_t i = 0; i < decodes && i < b.chosen.size(); ++i) {
    Sequence* s = b.chosen[i].first;
    if (!any_can_pay && s->owner->request.num_speculative_tokens <= 0) continue;
    const auto [drafter, k] = draft_slot(*s, budget);
    if (k <= 0) continue;
    const engine::DraftQuery q{s->id, s->tokens, s->prompt_len, s->owner->request.prediction, k};
    if (drafter->batches()) {
      auto it = std::find_if(batches.begin(), batches.end(), [d = drafter](const Batch& x) { return x.drafter == d; });
      if (it == batches.end()) it = batches.insert(batches.end(), Batch{drafter, {}, {}});
      it->queries.push_back(q);
      it->seqs.push_back(s);
      budget -= k;
      continue;
    }
    std::vector<int32_t> proposal;
    const auto t0 = std::chrono::steady_clock::now();
    drafter->propose(q, proposal);
    last_draft_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    proposal.resize(std::min(proposal.size(), static_cast<size_t>(k)));
    budget -= static_cast<int32_t>(proposal.size());
    if (!proposal.empty()) proposals.emplace_back(s, std::move(proposal));
  }
  for (Batch& batch : batches) {
    std::vector<std::vector<int32_t>> out;
    const auto t0 = std::chrono::steady_clock::now();
    batch.drafter->propose_batch(batch.queries, out);
    last_draft_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    out.resize(batch.queries.size());
    for (size_t q = 0; q < batch.queries.size(); ++q) {
      out[q].resize(std::min(out[q].size(), static_cast<size_t>(batch.queries[q].max_tokens)));
      if (!out[q].empty()) proposals.emplace_back(batch.seqs[q], std::move(out[q]));
    }
  }
  if (proposals.empty()) return;
  if (auto_mode) {
    std::vector<DraftCandidate> cands;
    std::vector<size_t> free_choice;  // proposals the policy sizes
    int32_t base = step_tokens;
    double committed = static_cast<double>(decodes);
    for (size_t i = 0; i < proposals.size(); ++i) {
      Sequence* s = proposals[i].first;
      const int32_t k = static_cast<int32_t>(proposals[i].second.size());
      const double a = draft_acceptance(*s);
      if (s->owner->request.num_speculative_tokens > 0) {  // pinned: part of the step as it is
        base += k;
        for (int32_t j = 1; j <= k; ++j) committed += std::pow(a, j);
      } else {
        cands.push_back({k, a});
        free_choice.push_back(i);
      }
    }
    const std::vector<int32_t> keep =
        choose_draft_lengths(cands, base, static_cast<int32_t>(std::lround(committed)), cost_);
    for (size_t c = 0; c < free_choice.size(); ++c) {
      auto& [s, drafts] = proposals[free_choice[c]];
      // What was not verified is still evidence next step (note_guess / score_guess).
      if (keep[c] == 0) s->guess.assign(drafts.begin(), drafts.end());
      drafts.resize(keep[c]);
    }
  }
  const int32_t bs = kv_.block_size();
  for (auto& [s, drafts] : proposals) {
    // Free blocks only: the sequence's table already covers its own token (and any slack).
    const engine::KvCacheStats st = kv_.stats();
    const int32_t free_blocks = st.num_blocks - st.used_blocks - st.cached_blocks;
    const int32_t covered = (static_cast<int32_t>(kv_.block_table(s->id).size()) + free_blocks) * bs;
    const int32_t k = std::min(static_cast<int32_t>(drafts.size()), covered - s->num_computed - 1);
    if (k <= 0 || !kv_.allocate_slots(s->id, s->num_computed + 1 + k)) continue;
    s->guess.clear();
    drafts.resize(k);
    for (auto& [c, n] : b.chosen) {
      if (c == s) n += k;
    }
    b.budget -= k;
    b.drafts[s] = std::move(drafts);
  }
}

// The estimated probability that one of s's drafts is kept: its decayed evidence on top of a prior worth
// two trials (all sequences' rate, or for a predicted output, the client's claim that the output will
// match it, a high one).
double Scheduler::draft_acceptance(const Sequence& s) const {
  const double prior = s.owner->request.prediction.empty() ? draft_acceptance_ : 0.9;
  return (s.draft_kept + 2 * prior) / (s.draft_trials + 2);
}

void Scheduler::add_draft_evidence(Sequence& s, int32_t kept, int32_t trials) {
  s.draft_kept = 0.8 * s.draft_kept + kept;
  s.draft_trials = 0.8 * s.draft_trials + trials;
  // The global rate stays inside [0.1, 0.9]: new sequences always get a chance to show theirs.
  const double rate = static_cast<double>(kept) / trials;
  draft_acceptance_ = std::clamp(0.95 * draft_acceptance_ + 0.05 * rate, 0.1, 0.9);
}

// A proposal auto chose not to verify is scored against the token the step then committed, so a
// sequence whose drafts would now be right earns its drafts back.
void Scheduler::score_guess(Sequence& s, int32_t committed_token) {
  if (s.guess.empty()) return;
  add_draft_evidence(s, s.guess.front() == committed_token ? 1 : 0, 1);
  s.guess.clear();
}

// A verification's tokens: the kept drafts, then the token drawn after them. The kept drafts' KV was
// written this step in the right context, so it stays; the rejected positions after them are
// rewritten by the next allocate_slots. A stop inside the run ends the sequence there.
void Scheduler::commit_verified(Sequence& s, const engine::SeqStepOutput& out) {
  ++spec_stats_.spec_drafts;
  spec_stats_.spec_draft_tokens += out.drafted;
  spec_stats_.spec_accepted_tokens += out.accepted;
  auto& per_position = spec_stats_.spec_accepted_per_position;
  if (per_position.size() < static_cast<size_t>(out.drafted)) per_position.resize(out.drafted, 0);
  for (int32_t j = 0; j < out.accepted; ++j) ++per_position[j];
  s.draft_tokens += out.drafted;
  s.accepted_draft_tokens += out.accepted;
  // Kept drafts are a geometric run: `accepted` kept, then one rejected unless all were kept.
  add_draft_evidence(s, out.accepted, out.accepted + (out.accepted < out.drafted ? 1 : 0));
  for (const engine::SampleResult& t : out.tokens) {
    if (s.status == SeqStatus::Finished) return;
    commit_token(s, t);
  }
  if (s.status == SeqStatus::Finished) return;
  s.num_computed += out.accepted;
  kv_.commit_tokens(s.id, std::span(s.tokens).first(s.num_computed));
}

}  // namespace pagoda::scheduler
