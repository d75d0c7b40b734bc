#pragma once
// The stages of the sampler pipeline that rewrite a row of logits before the draw (llama.cpp's sampler
// chain: each stage has apply and accept). engine/sampling/sampler.h runs them in one fixed order:
//
//   1. penalties   repetition (prompt and output ids), presence and frequency (output ids)
//   2. logit bias  a fixed per-token offset from the request
//   3. token mask  the allowed set for this row: the sequence's grammar (engine/grammar/grammar.h, a
//                  stage that sees every committed token) and/or a mask given per call (the plan's)
//   4. temperature, top-k, top-p, min-p and the draw (engine/sampler.cpp), or the argmax when greedy
//
// Stages 1-3 are per-sequence objects that see every committed token through accept(); a per-call mask
// comes with the step (StepPlan::token_masks).
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/sampling/sampling_params.h"

namespace pagoda::engine {

class LogitsProcessor {
 public:
  virtual ~LogitsProcessor() = default;
  virtual const char* name() const = 0;
  // Whether apply() would change a row now (the sampler copies the row only when some stage does).
  virtual bool active() const = 0;
  virtual void apply(std::span<float> logits) = 0;
  // A token was committed to the sequence.
  virtual void accept(int32_t /*token*/) {}
};

// Repetition penalty (HF / vLLM: divide positive logits, multiply negative ones) over the prompt and the
// output, then OpenAI's presence and frequency penalties over the output.
class PenaltiesProcessor final : public LogitsProcessor {
 public:
  PenaltiesProcessor(const SamplingParams& p, std::span<const int32_t> prompt);
  const char* name() const override { return "penalties"; }
  bool active() const override;
  void apply(std::span<float> logits) override;
  void accept(int32_t token) override { ++output_counts_[token]; }

 private:
  float repetition_, presence_, frequency_;
  std::vector<int32_t> prompt_tokens_;  // unique prompt ids, sorted
  std::unordered_map<int32_t, int32_t> output_counts_;
};

// OpenAI's logit_bias: logits[token] += bias. Ids outside the row are ignored (validated up front).
class LogitBiasProcessor final : public LogitsProcessor {
 public:
  explicit LogitBiasProcessor(std::vector<std::pair<int32_t, float>> bias) : bias_(std::move(bias)) {}
  const char* name() const override { return "logit_bias"; }
  bool active() const override { return !bias_.empty(); }
  void apply(std::span<float> logits) override;

 private:
  std::vector<std::pair<int32_t, float>> bias_;
};

// Stage 3: tokens whose bit is clear in `allowed` ([token_mask_words(n)] words) get -inf.
void apply_token_mask(std::span<float> logits, std::span<const uint32_t> allowed);

// Stages 1-3 (the grammar's) for these parameters, in pipeline order; stages with nothing to do are left out.
std::vector<std::unique_ptr<LogitsProcessor>> make_logits_processors(const SamplingParams& p,
                                                                     std::span<const int32_t> prompt);

}  // namespace pagoda::engine
