#pragma once
// gRPC load driver (BENCH.md Workloads): the twin of run_http_load (http_load_driver.h) for
// pagodad's native API. Sends `pagoda.v1.Generation/Generate` server-streaming calls at scheduled times
// and records per-request TTFT / token times / usage as RequestSample. Loopback targets only.
#include <string>
#include <vector>

#include "bench/load_progress.h"
#include "bench/load_request.h"
#include "bench/loadgen_stats.h"
#include "engine/status.h"

namespace pagoda::bench {

struct GrpcTarget {
  std::string host = "127.0.0.1";  // 127.0.0.1, localhost or ::1; anything else is refused
  int port = 0;
  std::string session_header;  // metadata key (lower case) carrying each request's session; none when empty
};

// Runs the requests (open or closed loop) over ONE insecure channel (one HTTP/2 connection, every call a stream on
// it) with gRPC's callback API: no thread per call; the reactions run on gRPC's threads, the dispatching
// on the calling thread. Requests are sent in order of at_s (stable for equal times; negative counts as
// 0), each at max(at_s, when one of max_in_flight call slots frees): a request due while all are busy
// waits for a free one; with every at_s = 0 this is a closed loop of max_in_flight streams. (A server
// that limits concurrent streams per connection below max_in_flight makes gRPC queue the excess calls
// client side, after submit_s; pagodad sets no such limit.) Each request is a Generate call with prompt
// `text` = prompt, sampling.temperature = 0, stop.max_tokens = max_tokens, stop.ignore_eos = ignore_eos.
// Sample times (seconds from the run start, steady clock):
//   submit_s = when the call is started (>= at_s; later only when waiting for a slot),
//   token_times_s = one entry per token id received, at the arrival of the response carrying it (a
//   response with k token ids gives k equal entries; responses without token ids give none),
//   first_token_s = the first of those, end_s = when the call finished (its final status arrived).
// prompt_tokens / output_tokens come from the usage of the final response (the one with finish_reason
// set); settle_sample (load_request.h) then applies the checks both drivers share. A request fails (ok = false, error
// set) on a non-OK status (error "gRPC <CODE_NAME>: <message>", e.g. "gRPC UNAVAILABLE: ..." when nothing listens),
// when the call ends OK without a response carrying finish_reason and usage, or with "time limit reached" when
// time_limit_s after the run start is reached before it was sent or while it streams (the call's deadline is the run's;
// in-flight calls are also cancelled then). Every request appears in the result exactly once, in input order, and the
// function returns only after every call it started has completed, so nothing it started outlives it. `progress`, when
// given, is updated as calls are started (sent), tokens arrive (tokens) and requests end (finished, and failed for
// those that failed; requests never sent count as finished and failed). Returns an error (no run) for a non-loopback
// host (or localhost resolving to a non-loopback address), a bad port, max_in_flight < 1 or time_limit_s not positive
// and finite.
Result<std::vector<RequestSample>> run_grpc_load(const GrpcTarget& target, const std::vector<LoadRequest>& requests,
                                                 int max_in_flight, double time_limit_s,
                                                 LoadProgress* progress = nullptr);

}  // namespace pagoda::bench
