#pragma once
// One request of a load run, and the checks both load drivers (HTTP, gRPC) apply when it ends.
#include <cstdint>
#include <string>

#include "bench/loadgen_stats.h"
#include "engine/status.h"

namespace pagoda::bench {

struct LoadRequest {
  std::string prompt;
  int32_t max_tokens = 16;
  double at_s = 0;          // scheduled send time, seconds from the run start (open loop)
  bool ignore_eos = false;  // generate exactly max_tokens (fixed-length workloads)
  std::string session;      // the conversation it belongs to: sent in the target's session header, if it has one
};

// Called when a request's response completed without a transport or protocol error (s.ok is true):
//  - when output tokens arrived but none was timed (a server sends no text chunk for a token that is an
//    incomplete UTF-8 sequence, and may never flush it), one is timed at the end of the response, so
//    every ok request with output has a first token time;
//  - a fixed-length request (ignore_eos) must report exactly max_tokens output tokens; otherwise it fails
//    (a server that ignored ignore_eos would be compared on different token counts).
void settle_sample(const LoadRequest& r, RequestSample& s);

// A session header's name is empty (none) or an HTTP/2 header name: lower-case letters, digits and '-'
// (gRPC metadata keys are lower case), and none the request itself needs (host, content-type, ...) nor
// gRPC's own (grpc-*, *-bin).
Status check_session_header(const std::string& name);

}  // namespace pagoda::bench
