#pragma once
// Token sampling from one row of logits: greedy, or temperature with top-k / top-p / min-p, from a
// per-request seeded generator (same seed, same logits -> same token).
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace pagoda::engine {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy (argmax)
  int32_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  uint64_t seed = 0;
};

// Index of the largest logit (lowest index on ties, as llama.cpp's greedy sampler).
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // scratch
};

}  // namespace pagoda::engine
