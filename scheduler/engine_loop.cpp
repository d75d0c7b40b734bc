#include "scheduler/engine_loop.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace pagoda::scheduler {

EngineLoop::EngineLoop(engine::Backend& backend, const engine::Tokenizer& tokenizer, const EngineLoopConfig& config)
    : backend_(backend), config_(config), runner_(backend, tokenizer.vocab_size()) {
  const engine::KvCacheShape shape = backend.kv_shape();
  engine::KvCacheOptions kv;
  kv.num_blocks = config.num_kv_blocks > 0 ? std::min(config.num_kv_blocks, shape.num_blocks) : shape.num_blocks;
  kv.block_size = shape.block_size;
  kv.enable_prefix_caching = config.prefix_caching;
  if (shape.num_window_blocks > 0) {  // the sliding-window layers keep their own pool
    kv.window = backend.kv_window();
    kv.num_window_blocks = shape.num_window_blocks;
  }
  kv_ = std::make_unique<engine::KvCacheManager>(kv);
  // A request must fit the pool on its own: prompt + max_tokens within the pool's tokens.
  SchedulerConfig sc = config.scheduler;
  sc.max_model_len = static_cast<int32_t>(std::min<int64_t>(sc.max_model_len, int64_t{kv.num_blocks} * kv.block_size));
  // A sequence alone must always fit the window pool, or a step with nothing else running could never
  // place it: its window (ceil((window - 1) / bs) + 1 blocks) and a whole step (+ 1 block where the step
  // straddles an edge). A window pool as large as the main one never runs out first (a sequence never
  // holds more window blocks than main ones); a smaller one sized for a smaller step (load_model's
  // max_step_tokens) bounds the step.
  if (kv.window > 0 && kv.num_window_blocks < kv.num_blocks) {
    const int32_t bs = kv.block_size;
    const int64_t room = (int64_t{kv.num_window_blocks} - ((kv.window - 1 + bs - 1) / bs + 2)) * bs;
    if (room < sc.max_num_batched_tokens) {
      spdlog::warn("the sliding-window layers' pool of {} blocks holds one sequence's window and a step of {} tokens; "
                   "max_num_batched_tokens {} lowered to that",
                   kv.num_window_blocks, std::max<int64_t>(room, bs), sc.max_num_batched_tokens);
      sc.max_num_batched_tokens = static_cast<int32_t>(std::max<int64_t>(room, bs));
    }
  }
  scheduler_ = std::make_unique<Scheduler>(sc, *kv_, tokenizer);
  if (sc.speculative.mode == engine::SpeculativeMode::Auto || config.profile_step_costs) profile_step_costs();
  publish_stats();
}

// --speculative auto plans with measured step times (the speed-up estimate uses them too): a few steps
// of 1..16 tokens of a throw-away sequence, before any request (the engine then refreshes the profile
// from every step it runs).
void EngineLoop::profile_step_costs() {
  constexpr uint64_t kProfileSeq = ~uint64_t{0};
  std::vector<int32_t> tokens;
  for (int32_t n : {1, 2, 4, 8, 16}) {
    kv_->start_sequence(kProfileSeq, {});
    if (!kv_->allocate_slots(kProfileSeq, n)) {
      kv_->free(kProfileSeq);
      break;
    }
    tokens.assign(static_cast<size_t>(n), 0);
    engine::StepPlanBuilder b(kv_->block_size());
    b.add_sequence(kProfileSeq, tokens, 0, kv_->block_table(kProfileSeq));
    if (kv_->window() > 0) b.set_window_table(kv_->window_block_table(kProfileSeq));
    const engine::StepPlan plan = b.build();
    bool failed = false;
    for (int rep = 0; rep < 3 && !failed; ++rep) {
      auto r = runner_.execute(plan);
      if (!r.ok()) {
        spdlog::warn("speculative: step profile failed: {}", r.status().message());
        failed = true;
      } else if (rep > 0) {
        scheduler_->observe_step(n, r.value().forward_ms);  // the first one warms up
      }
    }
    kv_->free(kProfileSeq);
    if (failed) return;
  }
  spdlog::info("speculative {}: step cost by tokens per step: {}",
               engine::speculative_mode_name(config_.scheduler.speculative.mode), scheduler_->step_costs().describe());
}

// A step that verified drafts committed S + accepted tokens (S: its samples) in its measured time.
// Without drafts it would have been the same step less its draft tokens (forward time from the
// step-cost profile, host time less the drafting), committing S tokens, and the `accepted` tokens
// more would have taken accepted / D further steps of its D decoding sequences alone. Steps whose
// plain sizes the profile has not measured yet are left out.
void EngineLoop::count_speculation_benefit(const ScheduledStep& st, const engine::StepResult& r, double schedule_ms) {
  int32_t drafts = 0, decodes = 0, accepted = 0;
  for (const ScheduledSeq& s : st.seqs) {
    drafts += s.drafts;
    decodes += s.samples && s.num_tokens - s.drafts == 1;
  }
  if (drafts == 0 || decodes == 0) return;
  for (const engine::SeqStepOutput& o : r.seqs) accepted += o.accepted;
  const engine::StepCostModel& cost = scheduler_->step_costs();
  const int32_t plain_tokens = st.plan.num_tokens() - drafts;
  if (!cost.covers(plain_tokens) || !cost.covers(decodes)) return;
  const double host_ms = std::max(schedule_ms - scheduler_->last_draft_ms(), 0.0) + r.sample_ms;
  const double plain_step = cost.estimate_ms(plain_tokens) + host_ms;
  const double decode_step = cost.estimate_ms(decodes) + host_ms;
  spec_step_ms_ += schedule_ms + r.forward_ms + r.sample_ms;
  spec_plain_estimate_ms_ += plain_step + decode_step * accepted / decodes;
}

EngineLoop::~EngineLoop() { shutdown(false); }

Status EngineLoop::submit(Request r) {
  if (!r.sink) return Status::error("request has no stream sink");
  if (Status s = scheduler_->check(r); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    // Checked under the lock that request_stop takes, so nothing lands in the inbox after run() ended.
    if (stop_) return Status::error(StatusCode::Unavailable, "the server is shutting down and accepts no new requests");
    if (queued_.load() >= config_.scheduler.max_waiting) {
      return Status::error(StatusCode::ResourceExhausted, fmt::format("queue full: {} requests waiting (max_waiting {})",
                                                                      queued_.load(), config_.scheduler.max_waiting));
    }
    ++queued_;
    inbox_.push_back(std::move(r));
  }
  cv_.notify_one();
  return {};
}

void EngineLoop::cancel(RequestId id) {
  {
    std::lock_guard lock(mu_);
    cancels_.push_back(id);
  }
  cv_.notify_one();
}

void EngineLoop::stop_choice(RequestId id, int32_t index) {
  {
    std::lock_guard lock(mu_);
    stop_choices_.emplace_back(id, index);
  }
  cv_.notify_one();
}

void EngineLoop::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
}

void EngineLoop::request_stop(bool drain) {
  accepting_ = false;
  {
    std::lock_guard lock(mu_);
    drain_ = stop_ ? drain_ && drain : drain;  // a later drain request never revives a stop-now
    stop_ = true;
  }
  cv_.notify_one();
}

void EngineLoop::shutdown(bool drain) {
  request_stop(drain);
  if (thread_.joinable()) thread_.join();
}

Status EngineLoop::run_with_driver(const std::function<Status()>& driver) {
  Status result;
  std::thread helper([&] {
    result = driver();
    request_stop(/*drain=*/true);
  });
  run();
  helper.join();
  return result;
}

void EngineLoop::take_inbox() {
  std::deque<Request> inbox;
  std::vector<RequestId> cancels;
  std::vector<std::pair<RequestId, int32_t>> stops;
  {
    std::lock_guard lock(mu_);
    inbox.swap(inbox_);
    cancels.swap(cancels_);
    stops.swap(stop_choices_);
  }
  for (Request& r : inbox) {
    const RequestId id = r.id;
    const int32_t n = r.n;
    StreamSink sink = std::move(r.sink);
    if (Status s = scheduler_->add_request(std::move(r)); !s.ok()) {
      --queued_;
      for (int32_t i = 0; i < n; ++i) {  // every choice ends, so callers counting finishes are not left waiting
        TokenEvent ev;
        ev.request = id;
        ev.index = i;
        ev.finish = FinishReason::Error;
        ev.error = s.message();
        sink(ev);
      }
      continue;
    }
    routes_[id] = Route{std::move(sink), n};
  }
  for (RequestId id : cancels) scheduler_->cancel(id);
  for (auto [id, index] : stops) scheduler_->stop_choice(id, index);
  deliver_events();
}

void EngineLoop::deliver_events() {
  for (const TokenEvent& ev : scheduler_->take_events()) {
    auto it = routes_.find(ev.request);
    if (it == routes_.end()) continue;
    if (ev.token >= 0) ++generated_tokens_;
    it->second.sink(ev);
    if (ev.finish != FinishReason::None && --it->second.open_choices == 0) routes_.erase(it);
  }
}

void EngineLoop::sync_samplers() {
  SamplerChanges changes = scheduler_->take_sampler_changes();
  for (const engine::SequenceSampling& s : changes.opened) runner_.open(s);  // before closes: a request
  for (uint64_t id : changes.closed) runner_.close(id);                     // may end as it arrives
}

bool EngineLoop::step() {
  take_inbox();
  if (!scheduler_->has_work()) {
    sync_samplers();
    publish_stats();  // cancellations just freed blocks: /metrics must show it while idle
    return false;
  }
  const auto t0 = std::chrono::steady_clock::now();
  ScheduledStep st = scheduler_->schedule();
  const double schedule_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  deliver_events();  // requests that can never fit end here
  sync_samplers();
  if (st.empty()) {  // the scheduler freed blocks or failed a request that cannot fit: try again
    publish_stats();
    return scheduler_->has_work();
  }
  if (Status s = runner_.copy_blocks(st.block_copies, st.window_block_copies); !s.ok()) {
    scheduler_->fail(st, s.message());
  } else if (Result<engine::StepResult> r = runner_.execute(st.plan); !r.ok()) {
    spdlog::error("step failed: {}", r.status().message());
    scheduler_->fail(st, r.status().message());
  } else {
    prompt_tokens_ += st.prefill_tokens;
    count_speculation_benefit(st, r.value(), schedule_ms);
    scheduler_->observe_step(st.plan.num_tokens(), r.value().forward_ms);
    scheduler_->update(st, r.value());
  }
  deliver_events();
  sync_samplers();
  publish_stats();
  return true;
}

void EngineLoop::run_until_idle() {
  while (true) {
    if (!step()) {
      std::lock_guard lock(mu_);
      if (inbox_.empty() && cancels_.empty() && stop_choices_.empty()) break;
    }
  }
}

void EngineLoop::run() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (stop_ && !drain_) {  // stop now: everything left ends with a Cancelled event
        lock.unlock();
        take_inbox();
        scheduler_->cancel_all();
        deliver_events();
        sync_samplers();
        break;
      }
    }
    if (step()) continue;
    std::unique_lock lock(mu_);
    if (stop_ && inbox_.empty() && cancels_.empty() && !scheduler_->has_work()) break;  // drained
    if (stop_ && !drain_) continue;
    cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || !cancels_.empty() || !stop_choices_.empty(); });
  }
  publish_stats();
}

void EngineLoop::publish_stats() {
  const SchedulerStats ss = scheduler_->stats();
  const engine::KvCacheStats ks = kv_->stats();
  std::lock_guard lock(mu_);
  stats_.waiting = ss.waiting;
  stats_.running = ss.running;
  stats_.steps = ss.steps;
  stats_.preemptions = ss.preemptions;
  stats_.kv_blocks_total = ks.num_blocks;
  stats_.kv_blocks_used = ks.used_blocks;
  stats_.kv_window_blocks_total = ks.num_window_blocks;
  stats_.kv_window_blocks_used = ks.used_window_blocks;
  stats_.kv_blocks_cached = ks.cached_blocks;
  stats_.prefix_queries = ks.prefix_queries;
  stats_.prefix_hits = ks.prefix_hits;
  stats_.prompt_tokens = prompt_tokens_;
  stats_.generated_tokens = generated_tokens_;
  stats_.spec_drafts = ss.spec_drafts;
  stats_.spec_draft_tokens = ss.spec_draft_tokens;
  stats_.spec_accepted_tokens = ss.spec_accepted_tokens;
  stats_.spec_accepted_per_position = ss.spec_accepted_per_position;
  stats_.spec_step_ms = spec_step_ms_;
  stats_.spec_plain_estimate_ms = spec_plain_estimate_ms_;
  queued_ = ss.queued_requests + static_cast<int32_t>(inbox_.size());
}

EngineLoopStats EngineLoop::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace pagoda::scheduler
