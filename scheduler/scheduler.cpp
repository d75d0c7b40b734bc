#include "scheduler/scheduler.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>

#include "scheduler/prefill_packer.h"
#include "scheduler/step_builder.h"

namespace pagoda::scheduler {

namespace {

// Choice i of a request samples from its own stream: the seed mixed with the index.
engine::SamplingParams choice_sampling(const engine::SamplingParams& p, int32_t index) {
  engine::SamplingParams c = p;
  c.seed = p.seed + static_cast<uint64_t>(index) * 0x9E3779B97F4A7C15ull;
  return c;
}

}  // namespace

Scheduler::Scheduler(const SchedulerConfig& config, engine::KvCacheManager& kv, const engine::Tokenizer& tokenizer)
    : config_(config),
      kv_(kv),
      drafter_(engine::make_drafter(config.speculative)),
      lookup_drafter_(config.speculative.ngram_min, config.speculative.ngram_max),
      tokenizer_(tokenizer) {
  limits_.max_model_len = config.max_model_len;
  limits_.vocab_size = tokenizer.vocab_size();
}

Scheduler::~Scheduler() = default;

// Not admitted yet: its first choice never ran (a preempted request was admitted and stays so).
bool Scheduler::is_queued(const RequestState& r) {
  return r.seqs[0]->status == SeqStatus::Waiting && r.seqs[0]->output_len() == 0 && r.seqs[0]->preemptions == 0;
}

Status Scheduler::check(const Request& r) const {
  if (Status s = validate_request(r, limits_); !s.ok()) return s;
  // Without chunking a sequence is always prefilled in one step, including its recompute after a
  // preemption (prompt + generated tokens), so all of it must fit one step's budget.
  if (!config_.chunked_prefill &&
      static_cast<int64_t>(r.prompt.size()) + r.stop.max_tokens > config_.max_num_batched_tokens) {
    return Status::error(fmt::format("prompt ({} tokens) + max_tokens ({}) exceeds max_num_batched_tokens ({}) and "
                                     "chunked prefill is off",
                                     r.prompt.size(), r.stop.max_tokens, config_.max_num_batched_tokens));
  }
  return {};
}

Status Scheduler::add_request(Request r) {
  if (requests_.contains(r.id)) return Status::error(fmt::format("request id {} is already in use", r.id));
  auto st = std::make_unique<RequestState>();
  st->request = std::move(r);
  st->arrival = next_arrival_++;
  const Request& req = st->request;
  for (int32_t i = 0; i < req.n; ++i) {
    auto seq = std::make_unique<Sequence>(next_seq_id_++, st.get(), i, req.prompt);
    seq->awaits_fork = i > 0;
    sampler_changes_.opened.push_back({seq->id, choice_sampling(req.sampling, i), req.prompt});
    st->seqs.push_back(std::move(seq));
  }
  const RequestId id = req.id;
  requests_.emplace(id, std::move(st));
  return {};
}

void Scheduler::cancel(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  it->second->cancelled = true;
  for (auto& s : it->second->seqs) {
    if (s->status != SeqStatus::Finished) finish(*s, FinishReason::Cancelled, -1, {});
  }
  requests_.erase(it);
}

void Scheduler::stop_choice(RequestId id, int32_t index) {
  auto it = requests_.find(id);
  if (it == requests_.end() || index < 0 || index >= static_cast<int32_t>(it->second->seqs.size())) return;
  Sequence& s = *it->second->seqs[index];
  if (s.status == SeqStatus::Finished) return;
  finish(s, FinishReason::Stop, -1, {});
  erase_if_done(id);
}

void Scheduler::cancel_all() {
  std::vector<RequestId> ids;
  for (const auto& [id, r] : requests_) ids.push_back(id);
  for (RequestId id : ids) cancel(id);
}

bool Scheduler::runs_before(const Sequence* a, const Sequence* b) const {
  const Request& ra = a->owner->request;
  const Request& rb = b->owner->request;
  if (ra.priority != rb.priority) return ra.priority < rb.priority;
  if (a->owner->arrival != b->owner->arrival) return a->owner->arrival < b->owner->arrival;
  return a->index < b->index;
}

Sequence* Scheduler::pick_victim(const std::vector<Sequence*>& running, const Sequence* keep) const {
  for (auto it = running.rbegin(); it != running.rend(); ++it) {
    if (*it != keep && (*it)->status == SeqStatus::Running) return *it;
  }
  return nullptr;
}

// Recompute-style preemption: the KV is dropped, the tokens are kept; when the sequence is admitted
// again its prompt and generated tokens are prefilled (mostly from the prefix cache if still there).
void Scheduler::preempt(Sequence* victim) {
  kv_.free(victim->id);
  victim->status = SeqStatus::Waiting;
  victim->kv_started = false;
  victim->num_computed = 0;
  ++victim->preemptions;
  ++preemptions_;
}

ScheduledStep Scheduler::schedule() {
  ScheduledStep step;
  ++steps_;
  StepBuilder b;
  b.budget = config_.max_num_batched_tokens;
  b.slots = config_.max_num_seqs;
  std::vector<Sequence*> waiting;
  for (auto& [id, r] : requests_) {
    for (auto& s : r->seqs) {
      if (s->awaits_fork || s->status == SeqStatus::Finished) continue;
      (s->status == SeqStatus::Running ? b.running : waiting).push_back(s.get());
    }
  }
  auto order = [this](const Sequence* a, const Sequence* c) { return runs_before(a, c); };
  std::sort(b.running.begin(), b.running.end(), order);
  place_decodes(b, waiting);
  const size_t decodes = b.chosen.size();
  std::sort(waiting.begin(), waiting.end(), order);
  place_prompts(b, waiting);
  place_drafts(b, decodes);
  if (b.chosen.empty()) unblock_empty_step(b, waiting);
  build_plan(b, step);
  return step;
}

// 1. Running decodes first, in priority/arrival order; when the pool is out of blocks, the newest
//    running sequence gives its blocks up (or this one, if it is the newest).
void Scheduler::place_decodes(StepBuilder& b, std::vector<Sequence*>& waiting) {
  for (Sequence* s : b.running) {
    if (s->status != SeqStatus::Running || s->remaining() != 1) continue;
    if (b.budget < 1 || b.slots < 1) break;
    bool ok = kv_.allocate_slots(s->id, s->num_computed + 1);
    while (!ok) {
      Sequence* victim = pick_victim(b.running, s);
      if (!victim || !runs_before(s, victim)) break;
      b.unchoose(victim);
      preempt(victim);
      ok = kv_.allocate_slots(s->id, s->num_computed + 1);
    }
    if (!ok) {
      preempt(s);
      waiting.push_back(s);
      continue;
    }
    b.choose(s, 1);
  }
}

// 2. Prompts: chunks of running prefills and waiting sequences, packed into what is left.
void Scheduler::place_prompts(StepBuilder& b, const std::vector<Sequence*>& waiting) {
  std::vector<PackCandidate> cands;
  std::map<uint64_t, Sequence*> by_id;
  auto arrival_key = [](const Sequence* s) {
    return static_cast<int64_t>(s->owner->request.priority) * (int64_t{1} << 40) + s->owner->arrival * 64 + s->index;
  };
  for (Sequence* s : b.running) {
    if (s->status == SeqStatus::Running && s->remaining() > 1) {
      cands.push_back({s->id, s->remaining(), arrival_key(s), s->waited_steps});
      by_id[s->id] = s;
    }
  }
  // Waiting sequences are sized with a prefix-cache peek and pinned (start_sequence) only once placed,
  // so the blocks of prompts that are merely considered never crowd out the one that runs.
  int32_t considered = 0;
  for (Sequence* s : waiting) {
    if (considered++ >= config_.max_num_seqs) break;  // bound the prefix lookups per step
    const int32_t cached = kv_.peek_cached_prefix(s->tokens);
    cands.push_back({s->id, static_cast<int32_t>(s->tokens.size()) - cached, arrival_key(s), s->waited_steps});
    by_id[s->id] = s;
  }
  const PackLimits limits{b.budget, b.slots, config_.chunked_prefill, config_.starvation_steps};
  for (const Placement& p : pack_prefills(cands, limits)) {
    Sequence* s = by_id[p.id];
    int32_t tokens = p.tokens;
    if (s->status == SeqStatus::Waiting) {
      const int32_t cached = kv_.start_sequence(s->id, s->tokens);
      s->kv_started = true;
      s->num_computed = cached;
      if (s->output_len() == 0 && s->preemptions == 0) s->cached_tokens = cached;
      tokens = std::min(tokens, s->remaining());
    }
    if (!kv_.allocate_slots(s->id, s->num_computed + tokens)) {  // no room: wait
      if (s->status == SeqStatus::Waiting) {
        kv_.free(s->id);
        s->kv_started = false;
        s->num_computed = 0;
      }
      continue;
    }
    s->status = SeqStatus::Running;
    b.choose(s, tokens);
  }
  for (auto& [id, s] : by_id) {
    if (!b.has(s)) ++s->waited_steps;
  }
}

// Nothing could run: prompts part-way through a chunked prefill hold the pool. Free the newest running
// sequence so older ones progress next step; with nothing running, a prompt that does not fit even an
// empty pool can never run, so it ends with an error instead of waiting forever.
void Scheduler::unblock_empty_step(const StepBuilder& b, const std::vector<Sequence*>& waiting) {
  if (Sequence* victim = pick_victim(b.running, nullptr)) {
    preempt(victim);
    return;
  }
  if (waiting.empty() || kv_.stats().used_blocks != 0) return;
  Sequence* s = waiting.front();
  const int64_t blocks = (static_cast<int64_t>(s->tokens.size()) + kv_.block_size() - 1) / kv_.block_size();
  if ((static_cast<int64_t>(s->tokens.size()) + kv_.block_size()) / kv_.block_size() <= kv_.stats().num_blocks) return;
  const RequestId id = s->owner->request.id;
  const std::string msg = fmt::format("request needs {} KV blocks for {} tokens, more than the pool's {} blocks",
                                      blocks, s->tokens.size(), kv_.stats().num_blocks);
  for (auto& c : s->owner->seqs) {
    if (c->status != SeqStatus::Finished) finish(*c, FinishReason::Error, -1, {}, msg);
  }
  erase_if_done(id);
}

// 3. The padding-free plan: each sequence's new tokens at their own positions and blocks, and who draws
//    from which logits row (a prompt's last row feeds all n choices of a request that forks here).
void Scheduler::build_plan(StepBuilder& b, ScheduledStep& step) {
  engine::StepPlanBuilder builder(kv_.block_size());
  for (auto& [s, n] : b.chosen) {
    if (auto d = b.drafts.find(s); d != b.drafts.end()) {  // the last committed token, then the drafts
      std::vector<int32_t> run{s->tokens.back()};
      run.insert(run.end(), d->second.begin(), d->second.end());
      builder.add_verification(s->id, run, s->num_computed, kv_.block_table(s->id));
      builder.set_prompt_len(s->prompt_len);
      if (kv_.window() > 0) builder.set_window_table(kv_.window_block_table(s->id));
      step.seqs.push_back({s, n, true, static_cast<int32_t>(d->second.size())});
      step.decode_tokens += n;
      continue;
    }
    const bool reaches_end = s->num_computed + n == static_cast<int32_t>(s->tokens.size());
    builder.add_sequence(s->id, std::span(s->tokens).subspan(s->num_computed, n), s->num_computed,
                         kv_.block_table(s->id), {}, reaches_end);
    builder.set_prompt_len(s->prompt_len);
    if (kv_.window() > 0) builder.set_window_table(kv_.window_block_table(s->id));
    if (reaches_end) {
      const RequestState& r = *s->owner;
      const bool forks_here = r.request.n > 1 && !r.forked && s->index == 0;
      for (const auto& c : r.seqs) {
        if (c.get() == s || (forks_here && c->status != SeqStatus::Finished)) builder.sample_last_row(c->id);
      }
    }
    step.seqs.push_back({s, n, reaches_end});
    if (n > 1 || s->num_computed < s->prompt_len) {
      step.prefill_tokens += n;
    } else {
      step.decode_tokens += n;
    }
  }
  step.plan = builder.build();
  step.block_copies = kv_.take_pending_copies();
  step.window_block_copies = kv_.take_pending_window_copies();
}

void Scheduler::update(const ScheduledStep& step, const engine::StepResult& result) {
  std::vector<RequestId> touched;
  std::map<uint64_t, const engine::SeqStepOutput*> produced;
  for (const engine::SeqStepOutput& out : result.seqs) produced[out.seq_id] = &out;
  for (const ScheduledSeq& x : step.seqs) {
    Sequence& s = *x.seq;
    s.num_computed += x.num_tokens - x.drafts;  // drafts count once kept
    s.waited_steps = 0;
    kv_.commit_tokens(s.id, std::span(s.tokens).first(s.num_computed));
    touched.push_back(s.owner->request.id);
    if (!x.samples) continue;
    if (x.drafts > 0) {
      if (auto it = produced.find(s.id); it != produced.end()) commit_verified(s, *it->second);
      continue;
    }
    // A prompt that forks here feeds all n choices from its last row; otherwise only s draws.
    RequestState& r = *s.owner;
    const bool forks = r.request.n > 1 && !r.forked && s.index == 0;
    if (forks) fork_choices(r);
    for (auto& c : r.seqs) {
      if (c.get() != &s && !forks) continue;
      auto it = produced.find(c->id);
      if (it == produced.end()) continue;
      for (const engine::SampleResult& t : it->second->tokens) {
        if (c->status == SeqStatus::Finished) break;
        score_guess(*c, t.token);
        commit_token(*c, t);
      }
    }
  }
  for (RequestId id : touched) erase_if_done(id);
}

void Scheduler::fail(const ScheduledStep& step, const std::string& message) {
  std::vector<RequestId> touched;
  for (const ScheduledSeq& x : step.seqs) {
    if (x.seq->status == SeqStatus::Finished) continue;
    touched.push_back(x.seq->owner->request.id);
  }
  for (RequestId id : touched) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    for (auto& s : it->second->seqs) {
      if (s->status != SeqStatus::Finished) finish(*s, FinishReason::Error, -1, {}, message);
    }
    erase_if_done(id);
  }
}

// n > 1: the other choices start from choice 0's computed prompt, sharing its KV blocks.
void Scheduler::fork_choices(RequestState& r) {
  const Sequence& first = *r.seqs[0];
  for (size_t i = 1; i < r.seqs.size(); ++i) {
    Sequence& c = *r.seqs[i];
    if (c.status == SeqStatus::Finished) continue;
    kv_.fork(first.id, c.id);
    c.tokens = first.tokens;
    c.num_computed = first.num_computed;
    c.cached_tokens = first.cached_tokens;
    c.kv_started = true;
    c.awaits_fork = false;
    c.status = SeqStatus::Running;
  }
  r.forked = true;
}

// The token-level stop criteria; text (stop strings, UTF-8) is the output stage's.
void Scheduler::commit_token(Sequence& s, const engine::SampleResult& sample) {
  s.tokens.push_back(sample.token);
  const StopCriteria& stop = s.owner->request.stop;
  const bool eog = !stop.ignore_eos && tokenizer_.is_end_of_generation(sample.token);
  const bool stop_token = std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(), sample.token) !=
                          stop.stop_token_ids.end();
  if (eog || stop_token) {  // the output stage leaves the stop token's own text out
    finish(s, FinishReason::Stop, sample.token, sample);
  } else if (s.output_len() >= stop.max_tokens) {
    finish(s, FinishReason::Length, sample.token, sample);
  } else {
    TokenEvent ev = event_for(s);
    ev.token = sample.token;
    ev.sample = sample;
    events_.push_back(std::move(ev));
  }
}

TokenEvent Scheduler::event_for(const Sequence& s) const {
  TokenEvent ev;
  ev.request = s.owner->request.id;
  ev.index = s.index;
  ev.prompt_tokens = s.prompt_len;
  ev.completion_tokens = std::max(0, s.output_len());
  ev.cached_prompt_tokens = s.cached_tokens;
  ev.draft_tokens = s.draft_tokens;
  ev.accepted_draft_tokens = s.accepted_draft_tokens;
  return ev;
}

void Scheduler::finish(Sequence& s, FinishReason reason, int32_t token, const engine::SampleResult& sample,
                       std::string error) {
  TokenEvent ev = event_for(s);
  ev.token = token;
  ev.sample = sample;
  ev.finish = reason;
  ev.error = std::move(error);
  // Only a normal end is worth learning from (a suffix drafter's cache); a cancelled, failed or
  // aborted output is not one the model would give again.
  release(s, reason == FinishReason::Stop || reason == FinishReason::Length);
  events_.push_back(std::move(ev));
}

void Scheduler::release(Sequence& s, bool completed) {
  if (s.kv_started) kv_.free(s.id);
  if (drafter_) drafter_->release(s.id, completed ? std::span<const int32_t>(s.tokens) : std::span<const int32_t>(),
                                  s.prompt_len);
  sampler_changes_.closed.push_back(s.id);
  s.kv_started = false;
  s.status = SeqStatus::Finished;
  ++s.owner->finished;
}

void Scheduler::erase_if_done(RequestId id) {
  auto it = requests_.find(id);
  if (it != requests_.end() && it->second->finished == static_cast<int32_t>(it->second->seqs.size())) {
    requests_.erase(it);
  }
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats st;
  for (const auto& [id, r] : requests_) {
    for (const auto& s : r->seqs) {
      st.waiting += s->status == SeqStatus::Waiting && !s->awaits_fork;
      st.running += s->status == SeqStatus::Running;
    }
    st.queued_requests += is_queued(*r);
  }
  st.preemptions = preemptions_;
  st.steps = steps_;
  st.spec_drafts = spec_stats_.spec_drafts;
  st.spec_draft_tokens = spec_stats_.spec_draft_tokens;
  st.spec_accepted_tokens = spec_stats_.spec_accepted_tokens;
  st.spec_accepted_per_position = spec_stats_.spec_accepted_per_position;
  return st;
}

}  // namespace pagoda::scheduler
