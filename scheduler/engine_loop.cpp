#include "scheduler/engine_loop.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

namespace pagoda::scheduler {

EngineLoop::EngineLoop(engine::Backend& backend, const engine::Tokenizer& tokenizer, const EngineLoopConfig& config)
    : backend_(backend), tokenizer_(tokenizer), config_(config) {
  const engine::KvCacheShape shape = backend.kv_shape();
  engine::KvCacheOptions kv;
  kv.num_blocks = config.num_kv_blocks > 0 ? std::min(config.num_kv_blocks, shape.num_blocks) : shape.num_blocks;
  kv.block_size = shape.block_size;
  kv.enable_prefix_caching = config.prefix_caching;
  kv_ = std::make_unique<engine::KvCacheManager>(kv);
  scheduler_ = std::make_unique<Scheduler>(config.scheduler, *kv_, tokenizer);
  // A request must fit the pool on its own: prompt + max_tokens within the pool's tokens.
  limits_.max_model_len = std::min<int64_t>(config.scheduler.max_model_len, int64_t{kv.num_blocks} * kv.block_size);
  limits_.vocab_size = tokenizer.vocab_size();
  publish_stats();
}

EngineLoop::~EngineLoop() { shutdown(false); }

Status EngineLoop::submit(Request r) {
  if (Status s = validate_request(r, limits_); !s.ok()) return s;
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
  {
    std::lock_guard lock(mu_);
    inbox.swap(inbox_);
    cancels.swap(cancels_);
  }
  for (Request& r : inbox) {
    const RequestId id = r.id;
    const int32_t n = r.n;
    StreamSink sink = r.sink;
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
    }
  }
  for (RequestId id : cancels) scheduler_->cancel(id);
}

bool EngineLoop::step() {
  take_inbox();
  if (!scheduler_->has_work()) {
    publish_stats();  // cancellations just freed blocks: /metrics must show it while idle
    return false;
  }
  ScheduledStep st = scheduler_->schedule();
  if (st.empty()) {  // the scheduler freed blocks or failed a request that cannot fit: try again
    publish_stats();
    return scheduler_->has_work();
  }
  if (!st.block_copies.empty()) {
    if (Status s = backend_.copy_blocks(st.block_copies); !s.ok()) {
      scheduler_->fail(st, s.message());
      publish_stats();
      return true;
    }
  }
  logits_.resize(st.plan.logits_indices.size() * static_cast<size_t>(tokenizer_.vocab_size()));
  if (Status s = backend_.execute(st.plan, logits_); !s.ok()) {
    spdlog::error("step failed: {}", s.message());
    scheduler_->fail(st, s.message());
  } else {
    prompt_tokens_ += st.prefill_tokens;
    for (const ScheduledSeq& x : st.seqs) generated_tokens_ += x.samples;
    scheduler_->update(st, logits_);
  }
  publish_stats();
  return true;
}

void EngineLoop::run_until_idle() {
  while (true) {
    if (!step()) {
      std::lock_guard lock(mu_);
      if (inbox_.empty() && cancels_.empty()) break;
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
        break;
      }
    }
    if (step()) continue;
    std::unique_lock lock(mu_);
    if (stop_ && inbox_.empty() && cancels_.empty() && !scheduler_->has_work()) break;  // drained
    if (stop_ && !drain_) continue;
    cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || !cancels_.empty(); });
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
  stats_.kv_blocks_cached = ks.cached_blocks;
  stats_.prefix_queries = ks.prefix_queries;
  stats_.prefix_hits = ks.prefix_hits;
  stats_.prompt_tokens = prompt_tokens_;
  stats_.generated_tokens = generated_tokens_;
  queued_ = ss.queued_requests + static_cast<int32_t>(inbox_.size());
}

EngineLoopStats EngineLoop::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace pagoda::scheduler
