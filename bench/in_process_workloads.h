#pragma once
// In-process serving workloads of BENCH.md: requests go straight to a scheduler::EngineLoop whose
// engine thread runs, and every time is taken with steady_clock from submit() to the token events
// the request's sink receives (no HTTP, no tokenization of text: prompts are random token ids).
//   mixed-prefill  64 prompts of uniform length 8..1024, max_tokens 1, packed vs the padded ablation
//   concurrency    closed loop at C concurrent streams: aggregate output tok/s and TPOT
//   shared-prefix  a shared system prompt + short user turns, one after another: TTFT with and
//                  without prefix caching
#include <cstdint>
#include <string>
#include <vector>

#include "bench/summary_stats.h"
#include "engine/loaded_model.h"
#include "engine/spec/drafter.h"

namespace pagoda::bench {

// ---- mixed-prefill ------------------------------------------------------------------------------
struct MixedPrefillOptions {
  int32_t prompts = 64;
  int32_t min_len = 8;
  int32_t max_len = 1024;
  int32_t budget = 2048;  // SchedulerConfig::max_num_batched_tokens
  int32_t repeats = 3;    // runs of each mode, alternating packed / padded
  uint64_t seed = 1;
};

struct MixedPrefillRun {
  bool padded = false;
  double wall_s = 0;
  int64_t prompt_tokens = 0;    // prompt tokens the engine computed (EngineLoopStats)
  int64_t executed_tokens = 0;  // tokens the backend ran: prompt tokens + ablation pads
  int64_t steps = 0;            // backend steps
};

struct MixedPrefillResult {
  std::vector<MixedPrefillRun> runs;  // in execution order
  Summary packed_s, padded_s;         // wall time
  Summary ratio;                      // padded / packed, per repeat pair
  Summary packed_tok_s, padded_tok_s; // prompt tokens / wall time
  int64_t total_prompt_tokens = 0;    // sum of the prompt lengths
  std::string backend;
  std::string to_text() const;
  std::string to_json(const MixedPrefillOptions& o, const std::string& model_path) const;
};

// KV capacity (tokens) the workload needs, including the pads of the ablation.
int32_t mixed_prefill_kv_tokens(const MixedPrefillOptions& o);
Result<MixedPrefillResult> run_mixed_prefill(engine::LoadedModel& model, const MixedPrefillOptions& options);

// ---- concurrency --------------------------------------------------------------------------------
struct ConcurrencyOptions {
  std::vector<int32_t> streams = {1, 4, 16, 64};
  int32_t prompt_len = 128;
  int32_t max_tokens = 128;          // every request generates exactly this many (ignore_eos, greedy)
  int32_t requests_per_stream = 2;   // each stream submits its next request when one finishes
  int32_t rounds = 3;                // every concurrency level once per round, in order
  int32_t budget = 2048;
  uint64_t seed = 2;
  // --speculative for each run; several: every level runs once per mode in each round (the order of
  // the modes rotating), reported side by side against the first.
  std::vector<engine::SpeculativeMode> speculative = {engine::SpeculativeMode::Off};
  // The backend's time per kind of operation for each level (the model loaded with
  // CpuBackendOptions::profile_ops): e.g. a mixture-of-experts model's routing share.
  bool profile_ops = false;
};

struct ConcurrencyLevel {
  int32_t streams = 0;
  engine::SpeculativeMode speculative = engine::SpeculativeMode::Off;
  std::vector<double> tok_s, tpot_ms, ttft_ms, wall_s;  // one per round
  Summary tok_s_summary, tpot_ms_summary, ttft_ms_summary, ratio_vs_1;  // ratio: per round vs the 1-stream run
  Summary ratio_vs_first_mode;  // per round: tok/s over the first speculative mode's at the same streams
  engine::OpProfile profile;    // profile_ops: summed over the rounds (empty otherwise)
};

struct ConcurrencyResult {
  std::vector<ConcurrencyLevel> levels;
  std::string backend;
  std::string to_text() const;
  std::string to_json(const ConcurrencyOptions& o, const std::string& model_path) const;
};

int32_t concurrency_kv_tokens(const ConcurrencyOptions& o);
Result<ConcurrencyResult> run_concurrency(engine::LoadedModel& model, const ConcurrencyOptions& options);

// ---- shared-prefix ------------------------------------------------------------------------------
struct SharedPrefixOptions {
  int32_t prefix_len = 512;
  int32_t requests = 16;
  int32_t user_len = 32;
  int32_t max_tokens = 16;
  int32_t rounds = 3;  // each round: caching on, then off (the same prompts)
  uint64_t seed = 3;
};

struct SharedPrefixResult {
  std::vector<double> cached_ttft_ms;    // caching on, the first (cold) request of each round left out
  std::vector<double> cold_ttft_ms;      // caching on, first request of each round
  std::vector<double> uncached_ttft_ms;  // caching off, every request
  std::vector<double> round_ratio;       // per round: median uncached / median cached
  Summary cached, cold, uncached, ratio;
  double ratio_of_medians = 0;
  int64_t prefix_hits = 0, prefix_queries = 0;  // caching on, all rounds
  int64_t cached_prompt_tokens = 0;             // from the finish events, caching on
  std::string backend;
  std::string to_text() const;
  std::string to_json(const SharedPrefixOptions& o, const std::string& model_path) const;
};

int32_t shared_prefix_kv_tokens(const SharedPrefixOptions& o);
Result<SharedPrefixResult> run_shared_prefix(engine::LoadedModel& model, const SharedPrefixOptions& options);

}  // namespace pagoda::bench
