#include "engine/spec/step_cost_model.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <bit>

namespace pagoda::engine {

namespace {
constexpr int32_t kExact = 16;                  // buckets 1..16 are exact token counts
constexpr int32_t kBuckets = kExact + 1 + 16;  // then 32, 64, ... 2^20
constexpr double kWeight = 0.2;                 // of a new measurement in the moving average
}  // namespace

StepCostModel::StepCostModel() : ms_(kBuckets, 0.0), tokens_(kBuckets, 0.0), n_(kBuckets, 0) {}

int32_t StepCostModel::bucket_of(int32_t tokens) {
  if (tokens <= kExact) return std::max(tokens, 1);
  const int32_t log2 = std::bit_width(static_cast<uint32_t>(tokens - 1));  // 17..32 -> 5, 33..64 -> 6
  return std::min(kBuckets - 1, kExact + log2 - 4);
}

void StepCostModel::observe(int32_t tokens, double ms) {
  if (tokens < 1 || !(ms > 0)) return;
  const int32_t b = bucket_of(tokens);
  // Above the exact range a bucket spans a factor of two: it keeps the average size of its steps with
  // their average time, and estimates interpolate between those points (no cost shape assumed).
  ms_[b] = n_[b] == 0 ? ms : (1 - kWeight) * ms_[b] + kWeight * ms;
  tokens_[b] = n_[b] == 0 ? tokens : (1 - kWeight) * tokens_[b] + kWeight * tokens;
  ++n_[b];
}

bool StepCostModel::ready() const {
  return n_[1] > 0 && std::any_of(n_.begin() + 2, n_.end(), [](int32_t n) { return n > 0; });
}

bool StepCostModel::covers(int32_t tokens) const {
  for (int32_t b = 1; b < kBuckets; ++b) {
    if (n_[b] > 0 && tokens_[b] <= std::max(tokens, 1)) return true;
  }
  return false;
}

double StepCostModel::estimate_ms(int32_t tokens) const {
  const double t = std::max(tokens, 1);
  int32_t lo = -1, hi = -1;  // measured buckets around `tokens` (buckets' sizes increase with b)
  for (int32_t b = 1; b < kBuckets; ++b) {
    if (n_[b] == 0) continue;
    if (tokens_[b] <= t) lo = b;
    if (tokens_[b] >= t && hi < 0) hi = b;
  }
  if (lo < 0 && hi < 0) return 0.0;
  if (lo < 0) return ms_[hi];
  if (hi < 0) {
    // Past the largest measurement: grow with the slope between the two largest measured buckets.
    int32_t below = -1;
    for (int32_t b = lo - 1; b >= 1 && below < 0; --b) below = n_[b] ? b : -1;
    if (below < 0) return ms_[lo] * t / tokens_[lo];
    const double slope = (ms_[lo] - ms_[below]) / (tokens_[lo] - tokens_[below]);
    return ms_[lo] + std::max(0.0, slope) * (t - tokens_[lo]);
  }
  if (lo == hi || tokens_[hi] <= tokens_[lo]) return ms_[lo];
  const double f = (t - tokens_[lo]) / (tokens_[hi] - tokens_[lo]);
  return ms_[lo] + f * (ms_[hi] - ms_[lo]);
}

std::string StepCostModel::describe() const {
  std::string s;
  for (int32_t b = 1; b < kBuckets; ++b) {
    if (n_[b] > 0) s += fmt::format("{}{:.0f}:{:.1f}ms", s.empty() ? "" : " ", tokens_[b], ms_[b]);
  }
  return s.empty() ? "nothing measured" : s;
}

}  // namespace pagoda::engine
