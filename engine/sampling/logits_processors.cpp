#include "engine/sampling/logits_processors.h"

#include <algorithm>
#include <limits>

#include "engine/grammar/grammar.h"

namespace pagoda::engine {

PenaltiesProcessor::PenaltiesProcessor(const SamplingParams& p, std::span<const int32_t> prompt)
    : repetition_(p.repetition_penalty), presence_(p.presence_penalty), frequency_(p.frequency_penalty),
      prompt_tokens_(prompt.begin(), prompt.end()) {
  std::sort(prompt_tokens_.begin(), prompt_tokens_.end());
  prompt_tokens_.erase(std::unique(prompt_tokens_.begin(), prompt_tokens_.end()), prompt_tokens_.end());
}

bool PenaltiesProcessor::active() const {
  const bool rep = repetition_ != 1.0f && repetition_ > 0.0f && (!prompt_tokens_.empty() || !output_counts_.empty());
  const bool add = (presence_ != 0.0f || frequency_ != 0.0f) && !output_counts_.empty();
  return rep || add;
}

void PenaltiesProcessor::apply(std::span<float> z) {
  const int32_t n = static_cast<int32_t>(z.size());
  if (repetition_ != 1.0f && repetition_ > 0.0f) {
    const float rp = repetition_;
    auto repeat = [&](int32_t id) {
      if (id < 0 || id >= n) return;
      z[id] = z[id] > 0.0f ? z[id] / rp : z[id] * rp;
    };
    for (const int32_t id : prompt_tokens_) repeat(id);
    for (const auto& [id, count] : output_counts_) {
      if (!std::binary_search(prompt_tokens_.begin(), prompt_tokens_.end(), id)) repeat(id);
    }
  }
  if (presence_ != 0.0f || frequency_ != 0.0f) {
    for (const auto& [id, count] : output_counts_) {
      if (id < 0 || id >= n || count <= 0) continue;
      z[id] -= presence_ + frequency_ * static_cast<float>(count);
    }
  }
}

void LogitBiasProcessor::apply(std::span<float> z) {
  const int32_t n = static_cast<int32_t>(z.size());
  for (const auto& [id, bias] : bias_) {
    if (id >= 0 && id < n) z[id] += bias;
  }
}

void apply_token_mask(std::span<float> z, std::span<const uint32_t> allowed) {
  const int32_t n = static_cast<int32_t>(z.size());
  const int32_t words = std::min<int32_t>(token_mask_words(n), static_cast<int32_t>(allowed.size()));
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int32_t w = 0; w < words; ++w) {
    const uint32_t bits = allowed[w];
    if (bits == 0xFFFFFFFFu) continue;
    const int32_t lo = w * 32, hi = std::min(n, lo + 32);
    for (int32_t t = lo; t < hi; ++t) {
      if (!((bits >> (t - lo)) & 1u)) z[t] = kNegInf;
    }
  }
  for (int32_t t = words * 32; t < n; ++t) z[t] = kNegInf;  // a short mask allows nothing past its end
}

std::vector<std::unique_ptr<LogitsProcessor>> make_logits_processors(const SamplingParams& p,
                                                                     std::span<const int32_t> prompt) {
  std::vector<std::unique_ptr<LogitsProcessor>> stages;
  const bool rep = p.repetition_penalty != 1.0f && p.repetition_penalty > 0.0f;
  if (rep || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    stages.push_back(std::make_unique<PenaltiesProcessor>(p, prompt));
  }
  if (!p.logit_bias.empty()) stages.push_back(std::make_unique<LogitBiasProcessor>(p.logit_bias));
  if (p.grammar) stages.push_back(std::make_unique<GrammarProcessor>(p.grammar));
  return stages;
}

}  // namespace pagoda::engine
