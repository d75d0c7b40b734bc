#pragma once
// Per-request load-test measurements and their summary (BENCH.md Workloads: TTFT, TPOT, ITL, e2e,
// output tok/s, goodput).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pagoda::bench {

// One request as seen by the load generator. All times are seconds relative to the run start.
struct RequestSample {
  double submit_s = 0;                // request sent
  double first_token_s = 0;           // first output token received
  double end_s = 0;                   // last byte of the response received
  std::vector<double> token_times_s;  // arrival time of every output token, first token included
  int32_t prompt_tokens = 0;
  int32_t output_tokens = 0;
  bool ok = false;
  std::string error;  // set when !ok
};

// Percentile p in [0, 100] with linear interpolation between closest ranks (numpy's default "linear"
// method): rank = p/100 * (n-1), value = v[floor] + frac * (v[floor+1] - v[floor]). The input need not
// be sorted. Returns NaN for an empty input or for p outside [0, 100] (or NaN).
double percentile(std::vector<double> v, double p);

struct LatencySummary {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0;
  size_t n = 0;
};

// p50/p90/p99 (see percentile) and the arithmetic mean; all NaN with n = 0 for an empty input.
LatencySummary summarize_latencies(std::vector<double> v);

// Service-level objective used for goodput.
struct Slo {
  double max_ttft_s = 0, max_tpot_s = 0;
};

struct RunSummary {
  LatencySummary ttft, tpot, itl, e2e;
  double output_tok_s = 0, request_s = 0, goodput_request_s = 0;
  size_t requests = 0, errors = 0;
};

// Summary of a run. Only ok requests contribute to latencies and rates; errors are counted.
//   TTFT = first_token - submit, for requests with at least one timed token; e2e = end - submit;
//   TPOT = (end - first_token) / (output_tokens - 1), only for requests with >= 2 output tokens;
//   ITL  = every gap between consecutive token_times_s (first-to-second token included);
//   span = max end - min submit over ok requests; output tok/s = sum of output_tokens / span,
//   request/s = ok requests / span, goodput = ok requests with a TTFT <= max_ttft_s and (when TPOT is
//   defined, i.e. >= 2 tokens) TPOT <= max_tpot_s, / span. Rates are 0 when there is no ok request or
//   the span is not positive.
RunSummary summarize_run(const std::vector<RequestSample>& samples, const Slo& slo);

}  // namespace pagoda::bench
