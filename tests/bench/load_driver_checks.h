#pragma once
// Request builders and sample checks shared by the HTTP and gRPC load drivers' tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "bench/load_progress.h"
#include "bench/load_request.h"
#include "bench/loadgen_stats.h"

namespace pagoda::bench::test {

inline LoadRequest req(std::string prompt, int32_t max_tokens, double at_s = 0, bool ignore_eos = false) {
  LoadRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.at_s = at_s;
  r.ignore_eos = ignore_eos;
  return r;
}

// Times of an ok sample are consistent: submit <= first token <= ... <= end, one time per token.
inline void expect_consistent(const RequestSample& s, size_t i) {
  SCOPED_TRACE("request " + std::to_string(i));
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_TRUE(s.error.empty());
  ASSERT_EQ(s.token_times_s.size(), static_cast<size_t>(s.output_tokens));
  ASSERT_FALSE(s.token_times_s.empty());
  EXPECT_EQ(s.first_token_s, s.token_times_s.front());
  EXPECT_LE(s.submit_s, s.first_token_s);
  EXPECT_TRUE(std::is_sorted(s.token_times_s.begin(), s.token_times_s.end()));
  EXPECT_LE(s.token_times_s.back(), s.end_s);
}

// The counters end at the totals. `tokens` counts streamed chunks (load_progress.h), so the `untimed`
// token times settle_sample adds at the end of a stream without text are not in it.
inline void expect_progress(const LoadProgress& p, const std::vector<RequestSample>& samples, size_t sent,
                            int64_t untimed = 0) {
  const auto failed = static_cast<size_t>(std::count_if(samples.begin(), samples.end(), [](auto& s) { return !s.ok; }));
  int64_t tokens = -untimed;
  for (const RequestSample& s : samples) tokens += static_cast<int64_t>(s.token_times_s.size());
  EXPECT_EQ(p.sent.load(), sent);
  EXPECT_EQ(p.finished.load(), samples.size());
  EXPECT_EQ(p.failed.load(), failed);
  EXPECT_EQ(p.tokens.load(), tokens);
}

// Three requests for the session-header tests: "a" and "b" in sessions 0 and 1, "c" in none; and the
// session a server should see with each prompt when the header is sent ("" for none).
inline std::vector<LoadRequest> session_requests() {
  std::vector<LoadRequest> requests = {req("a", 2), req("b", 2), req("c", 2)};
  requests[0].session = "session-0";
  requests[1].session = "session-1";
  return requests;
}
inline std::map<std::string, std::string> sessions_seen_with_header() {
  return {{"a", "session-0"}, {"b", "session-1"}, {"c", ""}};
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace pagoda::bench::test
