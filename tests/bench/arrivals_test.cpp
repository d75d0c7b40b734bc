#include "bench/arrivals.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace pagoda::bench {
namespace {

TEST(ArrivalsPoisson, SameSeedSameScheduleOtherSeedDiffers) {
  const auto a = poisson_arrivals(4.0, 1000, 42);
  const auto b = poisson_arrivals(4.0, 1000, 42);
  const auto c = poisson_arrivals(4.0, 1000, 43);
  ASSERT_EQ(a.size(), 1000u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(ArrivalsPoisson, MeanGapAndMonotonic) {
  const double rate = 8.0;
  const size_t n = 20000;
  const auto t = poisson_arrivals(rate, n, 7);
  ASSERT_EQ(t.size(), n);
  EXPECT_GT(t.front(), 0.0);  // first arrival at the first gap, not at 0
  for (size_t i = 1; i < n; ++i) ASSERT_GE(t[i], t[i - 1]) << i;
  const double mean_gap = t.back() / static_cast<double>(n);  // n gaps, starting from 0
  EXPECT_NEAR(mean_gap, 1.0 / rate, 0.05 / rate);
}

TEST(ArrivalsPoisson, EmptyAndBadRate) {
  EXPECT_TRUE(poisson_arrivals(1.0, 0, 1).empty());
  EXPECT_THROW(poisson_arrivals(0.0, 10, 1), std::invalid_argument);
  EXPECT_THROW(poisson_arrivals(-1.0, 10, 1), std::invalid_argument);
}

TEST(ArrivalsConstant, Exact) {
  const auto t = constant_arrivals(4.0, 5);
  const std::vector<double> want = {0.0, 0.25, 0.5, 0.75, 1.0};
  EXPECT_EQ(t, want);
  EXPECT_TRUE(constant_arrivals(2.0, 0).empty());
  EXPECT_THROW(constant_arrivals(0.0, 3), std::invalid_argument);
}

TEST(ArrivalsLognormal, MedianAndDeterminism) {
  const size_t n = 20000;
  auto v = lognormal_lengths(n, 200.0, 1.0, 1, 1000000, 11);
  ASSERT_EQ(v.size(), n);
  EXPECT_EQ(v, lognormal_lengths(n, 200.0, 1.0, 1, 1000000, 11));
  std::sort(v.begin(), v.end());
  const double median = (v[n / 2 - 1] + v[n / 2]) / 2.0;
  EXPECT_NEAR(median, 200.0, 0.05 * 200.0);
}

TEST(ArrivalsLognormal, Clamped) {
  const auto v = lognormal_lengths(20000, 200.0, 1.5, 50, 400, 3);
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  EXPECT_EQ(*lo, 50);   // sigma 1.5 puts plenty of mass below 50 and above 400
  EXPECT_EQ(*hi, 400);
  EXPECT_THROW(lognormal_lengths(1, 200.0, 1.0, 10, 5, 1), std::invalid_argument);
  EXPECT_THROW(lognormal_lengths(1, 0.0, 1.0, 1, 5, 1), std::invalid_argument);
}

}  // namespace
}  // namespace pagoda::bench
