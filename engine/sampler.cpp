#include "engine/sampler.h"

#include <algorithm>
#include <cmath>

namespace pagoda::engine {

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(logits.size()); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params, std::span<const int32_t> prompt)
    : p_(params), rng_(params.seed), prompt_tokens_(prompt.begin(), prompt.end()) {}

void Sampler::accept(int32_t token) { ++output_counts_[token]; }

SampleResult Sampler::sample(std::span<const float> logits) {
  SampleResult r;
  r.token = pick(logits);
  return r;
}

int32_t Sampler::pick(std::span<const float> logits) {
  if (p_.temperature <= 0.0f || p_.top_k == 1) return argmax(logits);
  const int32_t n = static_cast<int32_t>(logits.size());
  // Candidates sorted by logit, truncated by top-k first (cheap partial sort), then softmax.
  const int32_t k = p_.top_k > 0 ? std::min(p_.top_k, n) : n;
  cand_.resize(n);
  for (int32_t i = 0; i < n; ++i) cand_[i] = {logits[i], i};
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), by_logit);
  cand_.resize(k);
  const float max_logit = cand_[0].first;
  double sum = 0;
  for (auto& [v, id] : cand_) {
    v = std::exp((v - max_logit) / p_.temperature);
    sum += v;
  }
  for (auto& c : cand_) c.first = static_cast<float>(c.first / sum);
  // min-p: drop tokens below min_p * p(top); top-p: smallest prefix with mass >= top_p.
  size_t keep = cand_.size();
  if (p_.min_p > 0.0f) {
    const float floor = p_.min_p * cand_[0].first;
    keep = std::max<size_t>(1, std::count_if(cand_.begin(), cand_.end(), [&](auto& c) { return c.first >= floor; }));
  }
  if (p_.top_p < 1.0f) {
    double mass = 0;
    for (size_t i = 0; i < keep; ++i) {
      mass += cand_[i].first;
      if (mass >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += cand_[i].first;
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += cand_[i].first;
    if (r < acc) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace pagoda::engine
