#pragma once
// Results of a workload run over the wire: per-point summaries (bench/loadgen_stats.h) plus the figures
// BENCH.md names per workload, as console text, JSON and a markdown table.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/loadgen_stats.h"
#include "bench/wire_workloads.h"

namespace pagoda::bench {

// Per-request rates, as medians over the point's ok requests (NaN when none qualifies):
//   prefill tok/s = prompt_tokens / TTFT (includes the transport's latency: a lower bound),
//   decode tok/s  = (output_tokens - 1) / (end - first token), for requests with >= 2 output tokens;
// and over the point: wall time = last end - first submit, prompt tokens and output tokens summed.
struct PointFigures {
  double prefill_tok_s = 0, decode_tok_s = 0, wall_s = 0;
  int64_t prompt_tokens = 0, output_tokens = 0;
};

PointFigures point_figures(const std::vector<RequestSample>& samples);

struct PointResult {
  std::string label;
  double rate = 0;
  int32_t concurrency = 0;
  std::vector<RequestSample> samples;
  RunSummary summary;
  PointFigures figures;
};

// Decode roofline for `single`: read bandwidth / bytes one decode step reads.
struct Roofline {
  double bandwidth_bytes_s = 0, bytes_per_token = 0, tok_s = 0;
};

struct WireRun {
  std::string server;     // a label: "pagoda", "llama.cpp", ...
  std::string target;     // "http://127.0.0.1:8080"
  WireWorkload workload;  // its points' requests give at_s and lengths for the per-request JSON
  Slo slo;
  std::vector<PointResult> points;
  bool has_roofline = false;
  Roofline roofline;
  nlohmann::json context;  // how the run was made (options, machine, date): written into the JSON as is
};

std::string wire_run_text(const WireRun& run);
// Everything, down to every request's inter-token gaps (`itl_s`).
nlohmann::json wire_run_json(const WireRun& run);
// One row per point: the columns every workload shares plus the workload's own figures.
std::string wire_run_markdown(const WireRun& run);

}  // namespace pagoda::bench
