#pragma once
// HTTP load driver (BENCH.md Workloads): sends streaming `POST /v1/completions` requests to an
// OpenAI-compatible server at scheduled times and records per-request TTFT / token times / usage as
// RequestSample. Loopback targets only.
#include <cstdint>
#include <string>
#include <vector>

#include "bench/load_progress.h"
#include "bench/load_request.h"
#include "bench/loadgen_stats.h"
#include "engine/status.h"

namespace pagoda::bench {

struct HttpTarget {
  std::string host = "127.0.0.1";  // 127.0.0.1, localhost or ::1; anything else is refused
  int port = 0;
  std::string model;  // sent as "model" when not empty
  // A header (lower case, e.g. x-session-id) that carries each request's session, for load balancers that
  // route a conversation to one replica; not sent when empty (or for requests without a session).
  std::string session_header;
};

// Runs the requests (open or closed loop) on one thread (Boost.Beast HTTP/1.1 over an Asio io_context,
// one fresh connection per request, at most max_connections open at once: a request due while all are busy waits
// for a free one; with every at_s = 0 this is a closed loop of max_connections streams). Each request is
// `{"prompt", "max_tokens", "temperature": 0, "ignore_eos", "stream": true, "stream_options":
// {"include_usage": true}}`; the SSE stream is parsed as it arrives.
// Sample times (seconds from the run start):
//   submit_s = when the request is written (>= at_s; later only when waiting for a connection slot),
//   token_times_s = arrival of every chunk carrying non-empty text (bytes that arrive in one read share a
//   time; the server sends no chunk for a token whose text is still an incomplete UTF-8 sequence),
//   first_token_s = the first of those, end_s = when the response is complete.
// prompt_tokens / output_tokens come from the final usage chunk; settle_sample (load_request.h) then
// applies the checks both drivers share. A request fails (ok = false, error set) on a non-200 status (the
// body's error.message), an error in the stream (a `data:` event carrying "error", or llama-server's
// `error:` event), a malformed usage, a connection or protocol error, a stream that ends without usage or
// [DONE], a failed settle_sample check, or when time_limit_s (capped at 1e8 s) after the run start is
// reached (before being sent or mid-response). Every request appears in the result exactly once, in input
// order, also when handling it threw.
// `progress`, when given, is updated as requests are sent, stream tokens and end.
// Returns an error (no run) for a non-loopback host, a bad port, max_connections < 1 or time_limit_s <= 0.
Result<std::vector<RequestSample>> run_http_load(const HttpTarget& target, const std::vector<LoadRequest>& requests,
                                                 int max_connections, double time_limit_s,
                                                 LoadProgress* progress = nullptr);

}  // namespace pagoda::bench
