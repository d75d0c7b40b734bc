#pragma once
// Seeded arrival schedules and prompt-length draws for the load generator (BENCH.md `chat` workload:
// Poisson arrivals, log-normal prompt lengths with median ~200). Times are seconds from the run start.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pagoda::bench {

// n arrival times with exponential inter-arrival gaps of mean 1/rate (std::mt19937_64 seeded with
// `seed`, std::exponential_distribution); the first arrival is at the first gap, not at 0. Same seed,
// same schedule. Throws std::invalid_argument if rate_per_s is not positive and finite.
std::vector<double> poisson_arrivals(double rate_per_s, size_t n, uint64_t seed);

// n arrival times i / rate for i = 0..n-1. Throws std::invalid_argument if rate_per_s is not positive
// and finite.
std::vector<double> constant_arrivals(double rate_per_s, size_t n);

// n lengths drawn from a log-normal with the given median (mu = ln(median)) and sigma (of the log),
// rounded to the nearest integer and clamped to [min, max]. Throws std::invalid_argument if median <= 0,
// sigma < 0 or min > max.
std::vector<int32_t> lognormal_lengths(size_t n, double median, double sigma, int32_t min, int32_t max,
                                       uint64_t seed);

}  // namespace pagoda::bench
