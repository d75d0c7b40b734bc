#pragma once
// The scheduler (DESIGN.md): request lifecycle and the step planner. Each step it decides which
// sequences run how many tokens — running decodes first, then prompts (or their next chunks) packed
// into the remaining token budget (prefill_packer.h) — allocates their KV slots, preempting the
// newest running sequence when the pool runs out, and emits a padding-free StepPlan. After the
// backend ran it, update() samples the next tokens, applies the stop criteria and streams events.
// Single-threaded: the EngineLoop owns it and calls it from the engine thread only.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "engine/kv/kv_cache_manager.h"
#include "engine/step_plan.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/request.h"
#include "scheduler/sequence.h"

namespace pagoda::scheduler {

struct SchedulerConfig {
  int32_t max_num_seqs = 64;              // sequences in one step
  int32_t max_num_batched_tokens = 2048;  // tokens in one step
  int32_t max_model_len = 8192;           // prompt + max_tokens
  int32_t max_waiting = 1024;             // requests queued before add_request refuses
  bool chunked_prefill = true;
  bool padded_prefill = false;            // ablation for benchmarks: pad prompts of a step to the longest
  int32_t starvation_steps = 8;
};

// One sequence of a step, in StepPlan order.
struct ScheduledSeq {
  Sequence* seq = nullptr;
  int32_t num_tokens = 0;
  bool samples = false;  // its last token's logits are in the step's output
};

struct ScheduledStep {
  engine::StepPlan plan;
  std::vector<ScheduledSeq> seqs;                          // the plan's first seqs.size() sequences
  std::vector<std::pair<int32_t, int32_t>> block_copies;   // copy-on-write, before the step runs
  std::vector<uint64_t> pad_seqs;                          // ablation pads (freed in update)
  int32_t prefill_tokens = 0, decode_tokens = 0, pad_tokens = 0;
  bool empty() const { return plan.token_ids.empty(); }
};

struct SchedulerStats {
  int32_t waiting = 0;   // sequences (preempted ones included, choices awaiting their fork not)
  int32_t running = 0;   // sequences
  int32_t queued_requests = 0;  // requests not admitted yet (what max_waiting bounds)
  int64_t preemptions = 0;
  int64_t steps = 0;
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, engine::KvCacheManager& kv, const engine::Tokenizer& tokenizer);
  ~Scheduler();

  // Queues a request (validated against the limits). Errors: invalid request, queue full.
  Status add_request(Request request);
  // Ends a request: its sequences are freed now and its sink gets a Cancelled finish event.
  void cancel(RequestId id);
  void cancel_all();
  bool has_request(RequestId id) const { return requests_.contains(id); }
  bool has_work() const { return !requests_.empty(); }

  ScheduledStep schedule();
  // logits: [plan.logits_indices.size()][vocab] from the backend for step.plan.
  void update(const ScheduledStep& step, std::span<const float> logits);
  // The backend failed on this step: every request in it ends with an error event.
  void fail(const ScheduledStep& step, const std::string& message);

  SchedulerStats stats() const;
  const SchedulerConfig& config() const { return config_; }

 private:
  static bool is_queued(const RequestState& r);
  bool runs_before(const Sequence* a, const Sequence* b) const;
  void preempt(Sequence* victim);
  Sequence* pick_victim(const std::vector<Sequence*>& running, const Sequence* keep) const;
  void fork_choices(RequestState& r);
  void sample_and_emit(Sequence& s, std::span<const float> logits);
  void finish(Sequence& s, FinishReason reason, std::string text, int32_t token,
              const engine::SampleResult& sample, std::string error = {});
  void release(Sequence& s);
  void erase_if_done(RequestId id);

  SchedulerConfig config_;
  engine::KvCacheManager& kv_;
  const engine::Tokenizer& tokenizer_;
  RequestLimits limits_;
  std::map<RequestId, std::unique_ptr<RequestState>> requests_;
  uint64_t next_seq_id_ = 1;
  int64_t next_arrival_ = 0;
  int64_t preemptions_ = 0;
  int64_t steps_ = 0;
};

}  // namespace pagoda::scheduler
