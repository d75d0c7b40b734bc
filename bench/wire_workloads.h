#pragma once
// BENCH.md's workloads as request lists for a server driven over the wire (bench/http_load_driver.h,
// bench/grpc_load_driver.h). A workload is one or more points; each point is a batch of requests with
// one arrival pattern (open loop at a rate, or a closed loop of N streams) that is summarized on its own.
// Prompts are windows of real English text (bench/prompt_corpus.h) of the drawn token lengths; every
// request is greedy with ignore_eos, so both servers of a side-by-side run generate the same token counts.
#include <cstdint>
#include <string>
#include <vector>

#include "bench/http_load_driver.h"
#include "bench/prompt_corpus.h"

namespace pagoda::bench {

struct WirePoint {
  std::string label;        // "rate 1 req/s", "16 streams", ...
  double rate = 0;          // open loop: Poisson arrivals per second; 0 for a closed loop
  int32_t concurrency = 0;  // the most requests in flight (closed loop: the streams)
  std::vector<LoadRequest> requests;
};

struct WireWorkload {
  std::string name;
  std::string description;  // what was sent, for the report
  std::vector<WirePoint> points;
};

// Knobs; a value <= 0 (or an empty list) means the workload's BENCH.md default, given with each workload:
//   single         1 stream, 256-token prompt, 256 output tokens; `requests` (3) run one after another.
//   mixed-prefill  64 prompts (`requests`) of uniform length in 8..1024, max_tokens 1, all sent at once.
//   chat           Poisson (or, with `constant_arrivals`, evenly spaced) arrivals at each of `rates`
//                  (0.5, 1, 2 req/s), `requests` (32) per rate, prompt lengths log-normal (median 200,
//                  sigma 0.6, clamped 16..1024), 128 output tokens.
//   concurrency    closed loop at each of `levels` (1, 4, 16, 64) streams, max(streams, `requests` (4))
//                  requests per level, 128-token prompts, 128 output tokens. With equal lengths the streams
//                  move in step: N >= 4 streams are one wave of N requests that prefill, decode and finish
//                  together, so aggregate tok/s includes the prompts' time (as a serving client sees it).
//   shared-prefix  `requests` (16) one after another: a 512-token system prompt shared by all plus a
//                  32-token user turn, 16 output tokens; a second point sends the same lengths with no
//                  shared prefix, so TTFT with and without prefix reuse is compared on one server.
//                  With `sessions` S: one point of `requests` (default 4 x S) turns of S conversations in a
//                  random order, one after another, each conversation with its own prefix and its requests
//                  tagged with its session ("session-K"): how well replicas behind a load balancer reuse
//                  their prefix caches when the balancer does or does not route by session.
//   copy           `requests` (4) one after another asking to repeat a 128-token passage, 128 output
//                  tokens: decode speed where speculation would help (acceptance length is reported by a
//                  server that speculates; Pagoda does not yet).
struct WireOptions {
  uint64_t seed = 1;
  int32_t requests = 0;
  int32_t max_tokens = 0;
  int32_t prompt_tokens = 0;       // single, concurrency, copy: the prompt length; chat: the median (lengths
                                   // stay clamped to 16..max(1024, 2 x median)); shared-prefix: the prefix length
  bool constant_arrivals = false;  // chat: evenly spaced instead of Poisson
  std::vector<double> rates;
  std::vector<int32_t> levels;
  int32_t sessions = 0;            // shared-prefix: that many conversations instead, each with its own prefix
};

// The workload names, in BENCH.md order.
const std::vector<std::string>& wire_workload_names();

// Builds the named workload's points. Errors: an unknown name (listing the known ones) or bad knobs.
Result<WireWorkload> make_wire_workload(const std::string& name, const PromptCorpus& corpus,
                                        const WireOptions& options);

}  // namespace pagoda::bench
