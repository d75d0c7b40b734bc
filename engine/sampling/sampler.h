#pragma once
// Per-sequence token sampling from one row of logits, as a pipeline in a fixed order
// (logits_processors.h): penalties -> logit bias -> token mask -> temperature, top-k, top-p, min-p and
// the draw from a seeded generator (same seed + same logits -> same tokens), optionally with
// log-probabilities. Greedy (temperature 0) is the argmax with the lowest index on ties, as llama.cpp.
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "engine/sampling/logits_processors.h"
#include "engine/sampling/sampling_params.h"

namespace pagoda::engine {

// Index of the largest logit (lowest index on ties).
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  // prompt: the sequence's prompt ids (repetition penalty applies to them too).
  Sampler(const SamplingParams& params, std::span<const int32_t> prompt);
  explicit Sampler(const SamplingParams& params) : Sampler(params, {}) {}
  // Samples from logits (stages 1-3 applied to a copy); does not record the token. allowed: the
  // row's token mask ([token_mask_words(vocab)] words), or empty for no mask.
  SampleResult sample(std::span<const float> logits, std::span<const uint32_t> allowed = {});
  // Records a committed output token (every stage's accept).
  void accept(int32_t token);
  const SamplingParams& params() const { return p_; }

 private:
  // logits, or z_ with the stages that have something to do applied
  const float* processed(std::span<const float> logits, std::span<const uint32_t> allowed);
  int32_t draw(const float* z, int32_t n);                 // temperature, top-k, top-p, min-p, draw
  void collect_bucket(const float* z, int32_t n, int32_t b);
  bool cut_sorted_by_mass(double cum, double target);
  void fill_logprobs(std::span<const float> logits, SampleResult& r);

  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<LogitsProcessor>> stages_;  // 1-2 of the pipeline, in order
  // Scratch reused across calls (no allocation per step after the first).
  std::vector<float> z_;                         // processed logits
  std::vector<float> e_;                         // exp((z - max) / T), unnormalized probabilities
  std::vector<int32_t> hist_count_;              // per e-bucket (see sampler.cpp)
  std::vector<double> hist_mass_;                // per e-bucket mass
  std::vector<std::pair<float, int32_t>> part_;  // boundary bucket members (z, id), sorted prefix
  std::vector<float> block_sum_;                 // kept mass per block of the vocabulary
  std::vector<std::pair<float, int32_t>> top_;   // top-N raw logits for logprobs
};

}  // namespace pagoda::engine
