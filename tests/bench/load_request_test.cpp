// settle_sample: the end-of-request checks both load drivers share, and how a request without a timed
// token enters the run summary.
#include "bench/load_request.h"

#include <gtest/gtest.h>

namespace pagoda::bench {
namespace {

RequestSample ok_sample(int32_t output_tokens, std::vector<double> times, double end) {
  RequestSample s;
  s.ok = true;
  s.submit_s = 1.0;
  s.token_times_s = std::move(times);
  s.first_token_s = s.token_times_s.empty() ? 0 : s.token_times_s.front();
  s.end_s = end;
  s.prompt_tokens = 10;
  s.output_tokens = output_tokens;
  return s;
}

TEST(SettleSample, UntimedOutputIsTimedAtTheEnd) {
  LoadRequest r;
  r.max_tokens = 1;
  RequestSample s = ok_sample(1, {}, 3.0);
  settle_sample(r, s);
  ASSERT_TRUE(s.ok) << s.error;
  ASSERT_EQ(s.token_times_s.size(), 1u);
  EXPECT_EQ(s.token_times_s[0], 3.0);
  EXPECT_EQ(s.first_token_s, 3.0);
  // Its TTFT is then end - submit, never the negative "0 - submit" of an unset first token.
  const RunSummary sum = summarize_run({s}, {10, 10});
  EXPECT_DOUBLE_EQ(sum.ttft.p50, 2.0);
  EXPECT_EQ(sum.goodput_request_s, sum.request_s);
}

TEST(SettleSample, TimedTokensAreKept) {
  LoadRequest r;
  r.max_tokens = 3;
  RequestSample s = ok_sample(3, {1.5, 1.6}, 2.0);  // one token arrived with another's chunk
  settle_sample(r, s);
  EXPECT_TRUE(s.ok);
  EXPECT_EQ(s.token_times_s, (std::vector<double>{1.5, 1.6}));
}

TEST(SettleSample, IgnoreEosRequiresExactlyMaxTokens) {
  LoadRequest r;
  r.max_tokens = 4;
  r.ignore_eos = true;
  RequestSample shorter = ok_sample(3, {1.1, 1.2, 1.3}, 1.3);
  settle_sample(r, shorter);
  EXPECT_FALSE(shorter.ok);
  EXPECT_NE(shorter.error.find("ignore_eos"), std::string::npos) << shorter.error;
  RequestSample exact = ok_sample(4, {1.1, 1.2, 1.3, 1.4}, 1.4);
  settle_sample(r, exact);
  EXPECT_TRUE(exact.ok);
  r.ignore_eos = false;
  RequestSample stopped = ok_sample(3, {1.1, 1.2, 1.3}, 1.3);
  settle_sample(r, stopped);
  EXPECT_TRUE(stopped.ok);  // without ignore_eos a server may stop early
}

TEST(SettleSample, FailedRequestsAreLeftAlone) {
  LoadRequest r;
  r.ignore_eos = true;
  RequestSample s;
  s.ok = false;
  s.error = "HTTP 400: bad";
  settle_sample(r, s);
  EXPECT_EQ(s.error, "HTTP 400: bad");
  EXPECT_TRUE(s.token_times_s.empty());
}

TEST(RunSummaryNoToken, OkRequestWithoutTokensHasNoTtftAndIsNotGood) {
  RequestSample s = ok_sample(0, {}, 2.0);
  const RunSummary sum = summarize_run({s}, {10, 10});
  EXPECT_EQ(sum.ttft.n, 0u);
  EXPECT_EQ(sum.e2e.n, 1u);
  EXPECT_EQ(sum.goodput_request_s, 0.0);
  EXPECT_GT(sum.request_s, 0.0);
}

}  // namespace
}  // namespace pagoda::bench
