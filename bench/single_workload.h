#pragma once
// The `single` workload of BENCH.md: one stream, a P-token prompt then N greedy output tokens,
// repeated; reports prefill and decode tok/s against the bandwidth roofline.
#include <cstdint>
#include <string>

#include "bench/summary_stats.h"
#include "engine/loaded_model.h"

namespace pagoda::bench {

struct SingleOptions {
  int32_t prompt_tokens = 256;
  int32_t gen_tokens = 256;
  int32_t repeats = 3;
  // The backend's time per kind of operation, prefill and decode apart (the model loaded with
  // CpuBackendOptions::profile_ops).
  bool profile_ops = false;
};

struct SingleResult {
  Summary prefill_tok_s, decode_tok_s;
  double bandwidth_bytes_s = 0;
  double decode_bytes_per_token = 0;  // weights + mean KV read per decode step
  double roofline_tok_s = 0;
  std::string backend;
  engine::OpProfile prefill_profile, decode_profile;  // profile_ops: the counted repeats (empty otherwise)
  std::string to_json(const SingleOptions& o, const std::string& model_path) const;
  std::string to_text() const;
};

// Bytes one decode step reads: every weight once, plus the KV of `mean_context` tokens.
double decode_bytes_per_step(const engine::Backend& backend, double mean_context);

Result<SingleResult> run_single(engine::LoadedModel& model, const SingleOptions& options);

}  // namespace pagoda::bench
