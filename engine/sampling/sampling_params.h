#pragma once
// What a request asks of sampling, and what one draw returns. Plain values: front ends fill them, the
// scheduler carries them, the engine's sampler (engine/sampling/sampler.h) acts on them.
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace pagoda::engine {

class CompiledGrammar;  // engine/grammar/grammar.h

struct SamplingParams {
  float temperature = 0.0f;          // 0 = greedy
  int32_t top_k = 0;                 // 0 = off
  float top_p = 1.0f;                // 1 = off
  float min_p = 0.0f;                // 0 = off
  float repetition_penalty = 1.0f;   // 1 = off; > 1 discourages tokens seen in prompt or output (HF/vLLM)
  float presence_penalty = 0.0f;     // OpenAI semantics, over output tokens
  float frequency_penalty = 0.0f;    // OpenAI semantics, over output tokens
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token, bias added to its logit), OpenAI semantics
  uint64_t seed = 0;
  int32_t logprobs = -1;             // -1 = none; 0 = the sampled token's; N = also the top N (max 20)
  // Constrained decoding: the output stays inside this grammar (engine/grammar/grammar.h); null = none.
  std::shared_ptr<const CompiledGrammar> grammar;
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

// A sequence's sampler as the scheduler asks the engine for it (engine/model_runner.h): its parameters
// and prompt (the repetition penalty reads it).
struct SequenceSampling {
  uint64_t seq_id = 0;
  SamplingParams params;
  std::vector<int32_t> prompt;
};

// A per-row token mask (a grammar's allowed set): bit t of word t / 32 set = token t may be drawn.
inline int32_t token_mask_words(int32_t vocab_size) { return (vocab_size + 31) / 32; }

}  // namespace pagoda::engine
