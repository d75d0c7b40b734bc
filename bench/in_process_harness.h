#pragma once
// The harness the in-process workloads (in_process_workloads.cpp) share: a backend wrapper that
// counts what runs, per-request traces filled by the stream sinks on the engine thread, prompt and
// request makers, the engine-loop configuration and a warm-up.
#include <spdlog/fmt/fmt.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "bench/forwarding_backend.h"
#include "engine/backend.h"
#include "engine/loaded_model.h"
#include "scheduler/engine_loop.h"

namespace pagoda::bench {

using Clock = std::chrono::steady_clock;

// Forwards to another backend and counts what it runs: tokens per step (prompt tokens plus the pads
// of the padded-prefill ablation, when it wraps a PaddedPrefillBackend) and steps. execute() runs on
// the engine thread; the counters are read after the loop's thread was joined.
class CountingBackend final : public ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  Status execute(const engine::StepPlan& plan, std::span<float> logits) override {
    tokens += plan.num_tokens();
    ++steps;
    return inner_.execute(plan, logits);
  }

  int64_t tokens = 0, steps = 0;
};

struct Trace {
  Clock::time_point submit, first, last, finished;
  int32_t tokens = 0;  // token events
  int32_t completion_tokens = 0, cached_prompt_tokens = 0;
  scheduler::FinishReason finish = scheduler::FinishReason::None;
  std::string error;
};

// Per-request timestamps written by the sinks on the engine thread; the main thread waits for finish
// events. A trace is read by the main thread only after its finish was seen under the mutex.
class Tracker {
 public:
  explicit Tracker(size_t n) : traces_(n) {}

  scheduler::StreamSink sink(size_t i) {
    return [this, i](const scheduler::TokenEvent& ev) {
      const Clock::time_point now = Clock::now();
      Trace& t = traces_[i];
      if (ev.token >= 0) {
        if (t.tokens == 0) t.first = now;
        t.last = now;
        ++t.tokens;
      }
      if (ev.finish == scheduler::FinishReason::None) return;
      {
        std::lock_guard lock(mu_);
        t.finished = now;
        t.finish = ev.finish;
        t.error = ev.error;
        t.completion_tokens = ev.completion_tokens;
        t.cached_prompt_tokens = ev.cached_prompt_tokens;
        done_.push_back(i);
      }
      cv_.notify_all();
    };
  }

  Trace& trace(size_t i) { return traces_[i]; }

  // The next finished request (index), or an error when none finished within the timeout or it failed.
  Result<size_t> wait_next(std::chrono::seconds timeout = std::chrono::seconds(900)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !done_.empty(); })) {
      return Status::error(fmt::format("no request finished within {} s", timeout.count()));
    }
    const size_t i = done_.front();
    done_.pop_front();
    const Trace& t = traces_[i];
    if (t.finish == scheduler::FinishReason::Error || t.finish == scheduler::FinishReason::Cancelled) {
      return Status::error(fmt::format("request {} ended with {}: {}", i, scheduler::finish_reason_name(t.finish),
                                       t.error));
    }
    return i;
  }

 private:
  std::vector<Trace> traces_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<size_t> done_;
};

// Token ids away from both ends of the vocabulary (the special / byte tokens sit at the ends).
class PromptMaker {
 public:
  PromptMaker(int32_t vocab, uint64_t seed) : rng_(seed) {
    const int32_t margin = vocab > 4000 ? 1000 : vocab / 4;
    dist_ = std::uniform_int_distribution<int32_t>(margin, std::max(margin, vocab - margin - 1));
  }
  std::vector<int32_t> make(int32_t n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (int32_t& t : v) t = dist_(rng_);
    return v;
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
  std::uniform_int_distribution<int32_t> dist_;
};

// A greedy request of exactly max_tokens tokens (ignore_eos).
scheduler::Request make_request(scheduler::RequestId id, std::vector<int32_t> prompt, int32_t max_tokens,
                                scheduler::StreamSink sink);
scheduler::EngineLoopConfig loop_config(int32_t budget, int32_t max_seqs, bool prefix_caching);
// One short request through a throw-away loop: thread pools, page faults, first-touch of the KV pool.
Status warm_up(engine::LoadedModel& m);

}  // namespace pagoda::bench
