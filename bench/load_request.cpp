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
  return Status();
}

}  // namespace pagoda::bench
