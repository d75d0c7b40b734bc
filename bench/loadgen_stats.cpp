#include "bench/loadgen_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace pagoda::bench {

double percentile(std::vector<double> v, double p) {
  if (v.empty() || !(p >= 0.0 && p <= 100.0)) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return v[lo] + frac * (v[hi] - v[lo]);
}

LatencySummary summarize_latencies(std::vector<double> v) {
  LatencySummary s;
  s.n = v.size();
  if (v.empty()) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    s.p50 = s.p90 = s.p99 = s.mean = nan;
    return s;
  }
  std::sort(v.begin(), v.end());
  s.p50 = percentile(v, 50);
  s.p90 = percentile(v, 90);
  s.p99 = percentile(v, 99);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  return s;
}

RunSummary summarize_run(const std::vector<RequestSample>& samples, const Slo& slo) {
  RunSummary r;
  r.requests = samples.size();
  std::vector<double> ttft, tpot, itl, e2e;
  double min_submit = std::numeric_limits<double>::infinity();
  double max_end = -std::numeric_limits<double>::infinity();
  double output_tokens = 0;
  size_t ok = 0, good = 0;
  for (const RequestSample& s : samples) {
    if (!s.ok) {
      ++r.errors;
      continue;
    }
    ++ok;
    min_submit = std::min(min_submit, s.submit_s);
    max_end = std::max(max_end, s.end_s);
    output_tokens += s.output_tokens;
    e2e.push_back(s.end_s - s.submit_s);
    if (s.token_times_s.empty()) continue;  // no token: no TTFT, and it cannot meet the SLO
    const double t = s.first_token_s - s.submit_s;
    ttft.push_back(t);
    bool meets = t <= slo.max_ttft_s;
    if (s.output_tokens >= 2) {
      const double tp = (s.end_s - s.first_token_s) / static_cast<double>(s.output_tokens - 1);
      tpot.push_back(tp);
      meets = meets && tp <= slo.max_tpot_s;
    }
    for (size_t i = 1; i < s.token_times_s.size(); ++i) itl.push_back(s.token_times_s[i] - s.token_times_s[i - 1]);
    if (meets) ++good;
  }
  r.ttft = summarize_latencies(std::move(ttft));
  r.tpot = summarize_latencies(std::move(tpot));
  r.itl = summarize_latencies(std::move(itl));
  r.e2e = summarize_latencies(std::move(e2e));
  const double span = max_end - min_submit;
  if (ok > 0 && span > 0) {
    r.output_tok_s = output_tokens / span;
    r.request_s = static_cast<double>(ok) / span;
    r.goodput_request_s = static_cast<double>(good) / span;
  }
  return r;
}

}  // namespace pagoda::bench
