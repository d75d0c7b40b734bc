#pragma once
// The scheduler (DESIGN.md): request lifecycle and the step planner. Each step it decides which
// sequences run how many tokens — running decodes first, then prompts (or their next chunks) packed
// into the remaining token budget (prefill_packer.h) — allocates their KV slots, preempting the
// newest running sequence when the pool runs out, and emits a padding-free StepPlan that also says which
// sequence draws from which logits row. After the engine ran it, update() commits the StepResult's
// tokens, applies the token-level stop criteria (end of generation, stop ids, max_tokens) and frees
// finished sequences. It only plans and commits: sampling is the engine's (engine/model_runner.h),
// text and stop strings the output stage's; events and sampler changes are queued for the EngineLoop
// to hand on (take_events, take_sampler_changes). Single-threaded: the EngineLoop owns it and calls it
// from the engine thread only.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/kv/kv_cache_manager.h"
#include "engine/sampling/sampling_params.h"
#include "engine/spec/drafter.h"
#include "engine/spec/prompt_lookup_drafter.h"
#include "engine/spec/step_cost_model.h"
#include "engine/step_plan.h"
#include "engine/step_result.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/request.h"
#include "scheduler/sequence.h"

namespace pagoda::scheduler {

struct SchedulerConfig {
  int32_t max_num_seqs = 64;              // sequences in one step
  int32_t max_num_batched_tokens = 2048;  // tokens in one step
  int32_t max_model_len = 8192;           // prompt + max_tokens
  int32_t max_waiting = 1024;             // requests queued before EngineLoop::submit refuses
  bool chunked_prefill = true;
  int32_t starvation_steps = 8;
  engine::SpeculativeConfig speculative;  // the drafter, and tokens drafted per decode and step
};

// One sequence of a step, in StepPlan order.
struct ScheduledSeq {
  Sequence* seq = nullptr;
  int32_t num_tokens = 0;
  bool samples = false;  // its last token's logits are in the step's output
  int32_t drafts = 0;     // of num_tokens, drafted ones being verified (after the last committed token)
};

struct ScheduledStep {
  engine::StepPlan plan;
  std::vector<ScheduledSeq> seqs;                          // the plan's first seqs.size() sequences
  std::vector<std::pair<int32_t, int32_t>> block_copies;   // copy-on-write, before the step runs
  std::vector<std::pair<int32_t, int32_t>> window_block_copies;  // the same in the window pool
  int32_t prefill_tokens = 0, decode_tokens = 0;
  bool empty() const { return plan.token_ids.empty(); }
};

// Samplers the engine must open (new sequences) or close (finished ones) before the next step.
struct SamplerChanges {
  std::vector<engine::SequenceSampling> opened;
  std::vector<uint64_t> closed;
  bool empty() const { return opened.empty() && closed.empty(); }
};

struct SchedulerStats {
  int32_t waiting = 0;   // sequences (preempted ones included, choices awaiting their fork not)
  int32_t running = 0;   // sequences
  int32_t queued_requests = 0;  // requests not admitted yet (what max_waiting bounds)
  int64_t preemptions = 0;
  int64_t steps = 0;
  // Speculative decoding: sequence-steps that verified drafts, tokens drafted, tokens kept, and kept
  // per draft position (accepted_per_position[j]: how often draft j was kept).
  int64_t spec_drafts = 0, spec_draft_tokens = 0, spec_accepted_tokens = 0;
  std::vector<int64_t> spec_accepted_per_position;
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, engine::KvCacheManager& kv, const engine::Tokenizer& tokenizer);
  ~Scheduler();

  // Whether a request may be queued: its fields against the limits (validate_request) and this
  // configuration. Reads only immutable state, so any thread may call it (EngineLoop::submit does).
  Status check(const Request& request) const;
  // Queues a request that passed check(); the queue bound is the EngineLoop's. Its sink is not used
  // here: events go out through take_events().
  Status add_request(Request request);
  // Ends a request: its sequences are freed now and its sink gets a Cancelled finish event.
  void cancel(RequestId id);
  void cancel_all();
  // Choice `index` of the request ends with Stop now (the output stage matched a stop string).
  void stop_choice(RequestId id, int32_t index);
  bool has_request(RequestId id) const { return requests_.contains(id); }
  bool has_work() const { return !requests_.empty(); }

  // A step of `tokens` tokens took `ms` in the backend (the cost model --speculative auto plans with).
  void observe_step(int32_t tokens, double ms) { cost_.observe(tokens, ms); }
  const engine::StepCostModel& step_costs() const { return cost_; }
  double last_draft_ms() const { return last_draft_ms_; }  // the drafters' time in the last schedule()
  // Replaces the drafter the configuration made (tests: a deliberately bad one); nullptr: none.
  void set_drafter(std::unique_ptr<engine::Drafter> drafter) { drafter_ = std::move(drafter); }

  ScheduledStep schedule();
  // Commits what the engine produced for step.plan (result.seqs in plan.sample_seq_ids order).
  void update(const ScheduledStep& step, const engine::StepResult& result);
  // The backend failed on this step: every request in it ends with an error event.
  void fail(const ScheduledStep& step, const std::string& message);

  // Token and finish events since the last call, in order (token ids only; usage on every event).
  std::vector<TokenEvent> take_events() { return std::exchange(events_, {}); }
  SamplerChanges take_sampler_changes() { return std::exchange(sampler_changes_, {}); }

  SchedulerStats stats() const;
  const SchedulerConfig& config() const { return config_; }
  const RequestLimits& limits() const { return limits_; }

 private:
  static bool is_queued(const RequestState& r);
  bool runs_before(const Sequence* a, const Sequence* b) const;
  void preempt(Sequence* victim);
  Sequence* pick_victim(const std::vector<Sequence*>& running, const Sequence* keep) const;
  // schedule()'s phases (the step's budget and choices travel in StepBuilder, see step_builder.h).
  struct StepBuilder;
  void place_decodes(StepBuilder& b, std::vector<Sequence*>& waiting);
  void place_drafts(StepBuilder& b, size_t decodes);  // scheduler_drafts.cpp
  double draft_acceptance(const Sequence& s) const;
  void add_draft_evidence(Sequence& s, int32_t kept, int32_t trials);
  void score_guess(Sequence& s, int32_t committed_token);
  // How many tokens s may draft this step and the drafter that proposes them (k 0: none).
  std::pair<engine::Drafter*, int32_t> draft_slot(const Sequence& s, int32_t budget);
  void commit_verified(Sequence& s, const engine::SeqStepOutput& out);
  void place_prompts(StepBuilder& b, const std::vector<Sequence*>& waiting);
  void unblock_empty_step(const StepBuilder& b, const std::vector<Sequence*>& waiting);
  void build_plan(StepBuilder& b, ScheduledStep& step);
  void fork_choices(RequestState& r);
  void commit_token(Sequence& s, const engine::SampleResult& sample);
  TokenEvent event_for(const Sequence& s) const;
  void finish(Sequence& s, FinishReason reason, int32_t token, const engine::SampleResult& sample,
              std::string error = {});
  void release(Sequence& s, bool completed);  // completed: ended by a stop or its length
  void erase_if_done(RequestId id);

  SchedulerConfig config_;
  engine::KvCacheManager& kv_;
  std::unique_ptr<engine::Drafter> drafter_;
  engine::PromptLookupDrafter lookup_drafter_;  // predictions, and requests for drafts where the server drafts none
  SchedulerStats spec_stats_;  // the spec_* fields
  engine::StepCostModel cost_;
  double last_draft_ms_ = 0.0;
  double draft_acceptance_ = 0.5;  // over all sequences: the estimate a sequence starts from
  const engine::Tokenizer& tokenizer_;
  RequestLimits limits_;
  std::vector<TokenEvent> events_;
  SamplerChanges sampler_changes_;
  std::map<RequestId, std::unique_ptr<RequestState>> requests_;
  uint64_t next_seq_id_ = 1;
  int64_t next_arrival_ = 0;
  int64_t preemptions_ = 0;
  int64_t steps_ = 0;
};

}  // namespace pagoda::scheduler
