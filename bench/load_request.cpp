#include "bench/load_request.h"

namespace pagoda::bench {

void settle_sample(const LoadRequest& r, RequestSample& s) {
  if (!s.ok) return;
  if (s.output_tokens > 0 && s.token_times_s.empty()) {
    s.first_token_s = s.end_s;
    s.token_times_s.push_back(s.end_s);
  }
  if (r.ignore_eos && s.output_tokens != r.max_tokens) {
    s.ok = false;
    s.error = "generated " + std::to_string(s.output_tokens) + " tokens where ignore_eos asked for exactly " +
              std::to_string(r.max_tokens);
  }
}

Status check_session_header(const std::string& name) {
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return Status::error("session header '" + name + "' refused: use lower-case letters, digits and '-' only");
  }
  if (!name.empty() && name.front() == '-') return Status::error("session header '" + name + "' starts with '-'");
  // Headers the drivers set themselves or that frame the exchange, gRPC's own, and binary metadata.
  for (const char* reserved : {"host", "content-type", "content-length", "connection", "transfer-encoding", "te",
                               "keep-alive", "upgrade", "accept"}) {
    if (name == reserved) return Status::error("session header '" + name + "' refused: the request needs it");
  }
  if (name.rfind("grpc-", 0) == 0 || (name.size() >= 4 && name.compare(name.size() - 4, 4, "-bin") == 0))
    return Status::error("session header '" + name + "' refused: grpc-* and *-bin keys are gRPC's own");
  return Status();
}

}  // namespace pagoda::bench
