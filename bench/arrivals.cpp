#include "bench/arrivals.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace pagoda::bench {

namespace {
void check_rate(double rate_per_s) {
  if (!(rate_per_s > 0) || !std::isfinite(rate_per_s))
    throw std::invalid_argument("arrival rate must be positive and finite");
}
}  // namespace

std::vector<double> poisson_arrivals(double rate_per_s, size_t n, uint64_t seed) {
  check_rate(rate_per_s);
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate_per_s);
  std::vector<double> out;
  out.reserve(n);
  double t = 0;
  for (size_t i = 0; i < n; ++i) {
    t += gap(rng);
    out.push_back(t);
  }
  return out;
}

std::vector<double> constant_arrivals(double rate_per_s, size_t n) {
  check_rate(rate_per_s);
  std::vector<double> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<double>(i) / rate_per_s);
  return out;
}

std::vector<int32_t> lognormal_lengths(size_t n, double median, double sigma, int32_t min, int32_t max,
                                       uint64_t seed) {
  if (!(median > 0) || !(sigma >= 0) || min > max)
    throw std::invalid_argument("lognormal_lengths: need median > 0, sigma >= 0, min <= max");
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(std::log(median), sigma);
  std::vector<int32_t> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const double x = std::clamp(std::round(dist(rng)), static_cast<double>(min), static_cast<double>(max));
    out.push_back(static_cast<int32_t>(x));
  }
  return out;
}

}  // namespace pagoda::bench
