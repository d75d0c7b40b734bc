#include "bench/loadgen_stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace pagoda::bench {
namespace {

constexpr double kEps = 1e-12;

TEST(LoadgenStatsPercentile, MatchesNumpyLinearOnSmallVector) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_NEAR(percentile(v, 50), 2.5, kEps);
  EXPECT_NEAR(percentile(v, 90), 3.7, kEps);
  EXPECT_NEAR(percentile(v, 99), 3.97, kEps);
  EXPECT_NEAR(percentile(v, 0), 1.0, kEps);
  EXPECT_NEAR(percentile(v, 100), 4.0, kEps);
  // np.percentile([15, 20, 35, 40, 50], 40) == 29.0
  EXPECT_NEAR(percentile({15, 20, 35, 40, 50}, 40), 29.0, kEps);
  EXPECT_NEAR(percentile({10, 20}, 25), 12.5, kEps);
}

TEST(LoadgenStatsPercentile, UnsortedInputIsSorted) {
  const std::vector<double> v = {4, 1, 3, 2};
  EXPECT_NEAR(percentile(v, 50), 2.5, kEps);
  EXPECT_NEAR(percentile(v, 90), 3.7, kEps);
  EXPECT_NEAR(percentile(v, 99), 3.97, kEps);
}

TEST(LoadgenStatsPercentile, SingleElement) {
  for (double p : {0.0, 50.0, 90.0, 99.0, 100.0}) EXPECT_EQ(percentile({7.5}, p), 7.5);
}

TEST(LoadgenStatsPercentile, EmptyOrBadPIsNaN) {
  EXPECT_TRUE(std::isnan(percentile({}, 50)));
  EXPECT_TRUE(std::isnan(percentile({1, 2}, -1)));
  EXPECT_TRUE(std::isnan(percentile({1, 2}, 100.5)));
  EXPECT_TRUE(std::isnan(percentile({1, 2}, std::nan(""))));
}

TEST(LoadgenStatsLatencies, SummaryAndEmpty) {
  const LatencySummary s = summarize_latencies({4, 1, 3, 2});
  EXPECT_EQ(s.n, 4u);
  EXPECT_NEAR(s.p50, 2.5, kEps);
  EXPECT_NEAR(s.p90, 3.7, kEps);
  EXPECT_NEAR(s.p99, 3.97, kEps);
  EXPECT_NEAR(s.mean, 2.5, kEps);
  const LatencySummary e = summarize_latencies({});
  EXPECT_EQ(e.n, 0u);
  EXPECT_TRUE(std::isnan(e.p50));
  EXPECT_TRUE(std::isnan(e.mean));
}

RequestSample sample(double submit, double first, double end, std::vector<double> tokens, bool ok = true) {
  RequestSample s;
  s.submit_s = submit;
  s.first_token_s = first;
  s.end_s = end;
  s.output_tokens = static_cast<int32_t>(tokens.size());
  s.token_times_s = std::move(tokens);
  s.prompt_tokens = 10;
  s.ok = ok;
  if (!ok) s.error = "boom";
  return s;
}

TEST(LoadgenStatsRun, HandMadeSamples) {
  std::vector<RequestSample> samples;
  // A: TTFT 0.5, TPOT 1.0/3, ITL 0.25 0.25 0.5, e2e 1.5 -> meets the SLO.
  samples.push_back(sample(0.0, 0.5, 1.5, {0.5, 0.75, 1.0, 1.5}));
  // B: TTFT 0.2, TPOT 0.8 (misses max_tpot), ITL 0.8, e2e 1.0.
  samples.push_back(sample(1.0, 1.2, 2.0, {1.2, 2.0}));
  // C: TTFT 1.0 (misses max_ttft), single token: no TPOT, no ITL, e2e 1.0.
  samples.push_back(sample(2.0, 3.0, 3.0, {3.0}));
  // D: error, wild times: counted, excluded from latencies, tokens and span.
  RequestSample d = sample(0.1, 50.0, 100.0, {50.0, 60.0, 100.0}, /*ok=*/false);
  samples.push_back(d);

  const RunSummary r = summarize_run(samples, Slo{0.6, 0.5});
  EXPECT_EQ(r.requests, 4u);
  EXPECT_EQ(r.errors, 1u);

  // TTFT sorted {0.2, 0.5, 1.0}.
  EXPECT_EQ(r.ttft.n, 3u);
  EXPECT_NEAR(r.ttft.p50, 0.5, kEps);
  EXPECT_NEAR(r.ttft.p90, 0.9, kEps);
  EXPECT_NEAR(r.ttft.p99, 0.99, kEps);
  EXPECT_NEAR(r.ttft.mean, 1.7 / 3, kEps);

  // TPOT {1/3, 0.8}.
  EXPECT_EQ(r.tpot.n, 2u);
  EXPECT_NEAR(r.tpot.p50, (1.0 / 3 + 0.8) / 2, kEps);
  EXPECT_NEAR(r.tpot.p90, 1.0 / 3 + 0.9 * (0.8 - 1.0 / 3), kEps);
  EXPECT_NEAR(r.tpot.mean, (1.0 / 3 + 0.8) / 2, kEps);

  // ITL sorted {0.25, 0.25, 0.5, 0.8}.
  EXPECT_EQ(r.itl.n, 4u);
  EXPECT_NEAR(r.itl.p50, 0.375, kEps);
  EXPECT_NEAR(r.itl.p90, 0.71, kEps);
  EXPECT_NEAR(r.itl.p99, 0.791, kEps);
  EXPECT_NEAR(r.itl.mean, 0.45, kEps);

  // e2e sorted {1.0, 1.0, 1.5}.
  EXPECT_EQ(r.e2e.n, 3u);
  EXPECT_NEAR(r.e2e.p50, 1.0, kEps);
  EXPECT_NEAR(r.e2e.p90, 1.4, kEps);
  EXPECT_NEAR(r.e2e.p99, 1.49, kEps);
  EXPECT_NEAR(r.e2e.mean, 3.5 / 3, kEps);

  // Span = max end 3.0 - min submit 0.0 over ok requests; 7 output tokens; 3 ok; 1 meets the SLO.
  EXPECT_NEAR(r.output_tok_s, 7.0 / 3, kEps);
  EXPECT_NEAR(r.request_s, 1.0, kEps);
  EXPECT_NEAR(r.goodput_request_s, 1.0 / 3, kEps);
}

TEST(LoadgenStatsRun, LooseSloCountsEveryOkRequest) {
  std::vector<RequestSample> samples = {sample(0.0, 0.5, 1.5, {0.5, 0.75, 1.0, 1.5}),
                                        sample(1.0, 1.2, 2.0, {1.2, 2.0}), sample(2.0, 3.0, 3.0, {3.0})};
  const RunSummary r = summarize_run(samples, Slo{10, 10});
  EXPECT_NEAR(r.goodput_request_s, r.request_s, kEps);
  EXPECT_EQ(r.errors, 0u);
}

TEST(LoadgenStatsRun, EmptyAndAllErrors) {
  const RunSummary empty = summarize_run({}, Slo{1, 1});
  EXPECT_EQ(empty.requests, 0u);
  EXPECT_EQ(empty.ttft.n, 0u);
  EXPECT_EQ(empty.output_tok_s, 0.0);
  EXPECT_EQ(empty.request_s, 0.0);

  const RunSummary errs = summarize_run({sample(0, 1, 2, {1, 2}, false)}, Slo{1, 1});
  EXPECT_EQ(errs.requests, 1u);
  EXPECT_EQ(errs.errors, 1u);
  EXPECT_EQ(errs.ttft.n, 0u);
  EXPECT_EQ(errs.itl.n, 0u);
  EXPECT_EQ(errs.goodput_request_s, 0.0);
}

}  // namespace
}  // namespace pagoda::bench
