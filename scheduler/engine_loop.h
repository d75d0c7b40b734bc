#pragma once
// The engine thread (DESIGN.md "The flow of one request"): loops plan = scheduler.schedule() ->
// result = runner.execute(plan) -> scheduler.update(result) -> events to the requests' sinks, and is
// the only thread that touches the Scheduler, the KV manager, the model runner and the backend. Other
// threads submit, cancel and stop choices through a mutex-protected inbox (the one lock on the hot
// path), and read a stats snapshot the loop publishes after each step. Sinks get token ids; text and
// stop strings are the output stage's (server/output_processor.h), which wraps a request's sink.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/kv/kv_cache_manager.h"
#include "engine/model_runner.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/scheduler.h"

namespace pagoda::scheduler {

struct EngineLoopConfig {
  SchedulerConfig scheduler;
  bool prefix_caching = true;
  // KV blocks the manager may hand out; 0 = the backend's whole pool.
  int32_t num_kv_blocks = 0;
  // Profile the step cost at start-up whatever the mode, not only under auto (which plans with it): the
  // daemon does, for its estimated speed-up metric (predictions draft even with --speculative off).
  bool profile_step_costs = false;
};

struct EngineLoopStats {
  int32_t waiting = 0, running = 0;  // sequences
  int32_t kv_blocks_total = 0, kv_blocks_used = 0, kv_blocks_cached = 0;
  int32_t kv_window_blocks_total = 0, kv_window_blocks_used = 0;  // the window pool, where there is one
  int64_t prefix_queries = 0, prefix_hits = 0;
  int64_t steps = 0, preemptions = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;  // computed prompt tokens, sampled tokens
  // Speculative decoding (SchedulerStats): verifications, tokens drafted, kept, kept per position.
  int64_t spec_drafts = 0, spec_draft_tokens = 0, spec_accepted_tokens = 0;
  std::vector<int64_t> spec_accepted_per_position;
  // Net benefit, over the steps that verified drafts: their measured time (scheduling and drafting
  // included), and the estimated time decoding without drafts would have taken to commit the same
  // tokens. plain / actual is the estimated speed-up (below 1: drafting cost more than it gave).
  double spec_step_ms = 0.0, spec_plain_estimate_ms = 0.0;
};

class EngineLoop {
 public:
  EngineLoop(engine::Backend& backend, const engine::Tokenizer& tokenizer, const EngineLoopConfig& config);
  ~EngineLoop();
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Any thread. Validates now (the error is returned, the request is not queued); errors after
  // queueing reach the request's sink as an Error finish event. Refused once shutdown began.
  Status submit(Request request);
  // Any thread. The request ends with a Cancelled event at the next step boundary.
  void cancel(RequestId id);
  // Any thread (the output stage, on a stop string). Choice `index` ends at the next step boundary; its
  // sink gets a Stop finish event, which the output stage that asked has already sent on its own.
  void stop_choice(RequestId id, int32_t index);

  // Runs the engine loop on the calling thread until a stop is requested (and, when draining, every
  // request finished). Run it on the thread that loaded the model: OpenMP keeps a worker pool per
  // thread that ever started a parallel region, and when the pools of the process hold more threads
  // than there are cores, libgomp stops spin-waiting at its barriers, which costs ~40% of decode
  // speed here. One engine thread for all model work avoids that.
  void run();
  // Runs the loop on the calling thread and `driver` (which submits requests and waits for them)
  // on a helper thread; when the driver returns, the loop drains and stops. Returns the driver's status.
  Status run_with_driver(const std::function<Status()>& driver);
  void start();  // run() on a new thread (tests); pagodad and the benchmarks use run()
  // Stops accepting. drain: wait until every queued and running request finished; otherwise cancel
  // them. request_stop returns at once; shutdown also joins the thread start() made.
  void request_stop(bool drain);
  void shutdown(bool drain);
  bool accepting() const { return accepting_.load(); }

  // Steps on the calling thread (tests and in-process benchmarks; not while the engine thread runs):
  // one step (false when there was nothing to run), or until no work is left.
  bool run_step() { return step(); }
  void run_until_idle();
  // Replaces the drafter (tests: a deliberately bad one); before the loop runs.
  void set_drafter(std::unique_ptr<engine::Drafter> drafter) { scheduler_->set_drafter(std::move(drafter)); }

  EngineLoopStats stats() const;
  // The largest prompt + max_tokens a request may ask for: max_model_len, capped by the KV pool.
  int32_t max_model_len() const { return scheduler_->config().max_model_len; }
  // What submit() checks every request against (front ends refuse the same earlier, with their codes).
  const RequestLimits& limits() const { return scheduler_->limits(); }
  const engine::KvCacheManager& kv() const { return *kv_; }
  // Samplers the model runner holds (engine thread; tests check that finished sequences close theirs).
  int32_t open_samplers() const { return runner_.num_open(); }

 private:
  // Where a request's events go until its last choice finished (engine thread only).
  struct Route {
    StreamSink sink;
    int32_t open_choices = 0;
  };
  void take_inbox();
  bool step();  // one schedule/execute/update; false when there was nothing to do
  void deliver_events();  // the scheduler's events to their sinks
  void sync_samplers();   // the scheduler's sampler opens / closes to the runner
  void publish_stats();
  void profile_step_costs();
  void count_speculation_benefit(const ScheduledStep& st, const engine::StepResult& r, double schedule_ms);

  engine::Backend& backend_;
  EngineLoopConfig config_;
  std::unique_ptr<engine::KvCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  engine::ModelRunner runner_;
  std::unordered_map<RequestId, Route> routes_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request> inbox_;
  std::vector<RequestId> cancels_;
  std::vector<std::pair<RequestId, int32_t>> stop_choices_;
  bool stop_ = false;
  bool drain_ = false;
  std::atomic<bool> accepting_{true};
  std::atomic<int32_t> queued_{0};  // requests in the inbox or waiting in the scheduler
  std::thread thread_;

  EngineLoopStats stats_;  // guarded by mu_
  int64_t prompt_tokens_ = 0, generated_tokens_ = 0;  // engine thread
  double spec_step_ms_ = 0.0, spec_plain_estimate_ms_ = 0.0;  // engine thread
};

}  // namespace pagoda::scheduler
