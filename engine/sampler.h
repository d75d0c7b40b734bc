#pragma once
// Per-sequence token sampling from one row of logits (vectorized over the vocabulary):
// penalties (repetition, presence, frequency), temperature, top-k, top-p, min-p, from a seeded
// generator (same seed + same logits -> same tokens), optionally with log-probabilities.
// Greedy (temperature 0) is the argmax with the lowest index on ties, as llama.cpp.
#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

namespace pagoda::engine {

struct SamplingParams {
  float temperature = 0.0f;          // 0 = greedy
  int32_t top_k = 0;                 // 0 = off
  float top_p = 1.0f;                // 1 = off
  float min_p = 0.0f;                // 0 = off
  float repetition_penalty = 1.0f;   // 1 = off; > 1 discourages tokens seen in prompt or output (HF/vLLM)
  float presence_penalty = 0.0f;     // OpenAI semantics, over output tokens
  float frequency_penalty = 0.0f;    // OpenAI semantics, over output tokens
  uint64_t seed = 0;
  int32_t logprobs = -1;             // -1 = none; 0 = the sampled token's; N = also the top N (max 20)
};

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;
};

struct SampleResult {
  int32_t token = -1;
  // Log-probabilities are the model's: log-softmax of the raw logits, before penalties and temperature
  // (what vLLM and the OpenAI API report).
  float logprob = 0.0f;           // of the sampled token
  std::vector<TokenLogprob> top;  // the `logprobs` most likely tokens, most likely first
};

// Index of the largest logit (lowest index on ties).
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  // prompt: the sequence's prompt ids (repetition penalty applies to them too).
  Sampler(const SamplingParams& params, std::span<const int32_t> prompt);
  explicit Sampler(const SamplingParams& params) : Sampler(params, {}) {}
  // Samples from logits (penalties applied to a copy); does not record the token.
  SampleResult sample(std::span<const float> logits);
  // Records an output token (for the penalties).
  void accept(int32_t token);
  const SamplingParams& params() const { return p_; }

 private:
  const float* penalized(std::span<const float> logits);  // logits, or z_ with the penalties applied
  int32_t draw(const float* z, int32_t n);                 // temperature, top-k, top-p, min-p, draw
  void collect_bucket(const float* z, int32_t n, int32_t b);
  bool cut_sorted_by_mass(double cum, double target);
  void fill_logprobs(std::span<const float> logits, SampleResult& r);

  SamplingParams p_;
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int32_t> output_counts_;
  std::vector<int32_t> prompt_tokens_;  // unique prompt ids, sorted (repetition penalty)
  // Scratch reused across calls (no allocation per step after the first).
  std::vector<float> z_;                         // penalized logits
  std::vector<float> e_;                         // exp((z - max) / T), unnormalized probabilities
  std::vector<int32_t> hist_count_;              // per e-bucket (see sampler.cpp)
  std::vector<double> hist_mass_;                // per e-bucket mass
  std::vector<std::pair<float, int32_t>> part_;  // boundary bucket members (z, id), sorted prefix
  std::vector<float> block_sum_;                 // kept mass per block of the vocabulary
  std::vector<std::pair<float, int32_t>> top_;   // top-N raw logits for logprobs
};

}  // namespace pagoda::engine
