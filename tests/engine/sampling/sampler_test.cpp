// Sampler: greedy ties, seeded reproducibility, top-k / top-p / min-p masks against a naive full-sort
// reference (membership and frequencies), penalties through crafted logits, raw logprobs.
#include "engine/sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

namespace pagoda::engine {
namespace {

std::vector<float> random_logits(size_t n, uint64_t seed, float scale = 3.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// The reference: full sort in double, each filter exactly as documented, renormalized probabilities (0 for
// masked tokens).
std::vector<double> reference_probs(const std::vector<float>& logits, const SamplingParams& p) {
  const size_t n = logits.size();
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  size_t keep = n;
  if (p.top_k > 0) keep = std::min<size_t>(keep, p.top_k);
  const double m = logits[order[0]];
  std::vector<double> e(n, 0.0);
  double sum = 0;
  for (size_t r = 0; r < keep; ++r) sum += e[order[r]] = std::exp((logits[order[r]] - m) / p.temperature);
  if (p.top_p < 1.0f) {
    double cum = 0;
    for (size_t r = 0; r < keep; ++r) {
      cum += e[order[r]] / sum;
      if (cum >= p.top_p) {
        keep = r + 1;
        break;
      }
    }
  }
  std::vector<double> probs(n, 0.0);
  double total = 0;
  for (size_t r = 0; r < keep; ++r) {
    if (e[order[r]] >= p.min_p * 1.0) total += probs[order[r]] = e[order[r]];  // e(max) = 1
  }
  for (auto& x : probs) x /= total;
  return probs;
}

std::vector<double> frequencies(const std::vector<float>& logits, const SamplingParams& p, int draws) {
  Sampler s(p);
  std::vector<double> f(logits.size(), 0.0);
  for (int i = 0; i < draws; ++i) f[s.sample(logits).token] += 1.0 / draws;
  return f;
}

TEST(SamplerGreedy, ArgmaxTakesTheLowestIndexOnTies) {
  EXPECT_EQ(argmax(std::vector<float>{1, 3, 3, 2}), 1);
  // Ties in different SIMD lanes and blocks: the lowest index still wins.
  std::vector<float> v(1000, 0.0f);
  v[777] = 5.0f;
  v[37] = 5.0f;
  v[998] = 5.0f;
  EXPECT_EQ(argmax(v), 37);
  v[999] = 6.0f;  // in the scalar tail
  EXPECT_EQ(argmax(v), 999);
  EXPECT_EQ(argmax(std::vector<float>(50, -INFINITY)), 0);
  const auto r = random_logits(49152, 3);
  EXPECT_EQ(argmax(r), std::max_element(r.begin(), r.end()) - r.begin());
}

TEST(SamplerGreedy, TemperatureZeroIgnoresTheSeed) {
  const auto logits = random_logits(1000, 11);
  const int32_t best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  for (uint64_t seed : {0ull, 1ull, 12345ull}) {
    SamplingParams p;
    p.temperature = 0.0f;
    p.top_k = 5;
    p.seed = seed;
    Sampler s(p);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(logits).token, best);
  }
}

TEST(SamplerSeed, SameSeedReproducesDifferentSeedsDiffer) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.95f;
  p.seed = 42;
  Sampler a(p), b(p);
  p.seed = 43;
  Sampler c(p);
  bool differ = false;
  for (int step = 0; step < 100; ++step) {
    const auto logits = random_logits(1000, 1000 + step, 1.0f);
    const int32_t ta = a.sample(logits).token, tb = b.sample(logits).token, tc = c.sample(logits).token;
    EXPECT_EQ(ta, tb) << "step " << step;
    differ = differ || ta != tc;
    a.accept(ta);
    b.accept(tb);
    c.accept(tc);
  }
  EXPECT_TRUE(differ);
}

struct MaskCase {
  int32_t top_k;
  float top_p;
  float min_p;
};
const MaskCase kMaskCases[] = {{50, 1.0f, 0.0f},    {0, 0.9f, 0.0f}, {0, 1.0f, 0.05f}, {100, 0.8f, 0.0f},
                               {200, 0.95f, 0.02f}, {0, 0.5f, 0.1f}, {7, 1.0f, 0.3f},  {0, 0.0f, 0.0f}};

TEST(SamplerMasks, SampledTokensAreInTheReferenceSet) {
  for (uint64_t seed : {1ull, 2ull, 3ull, 4ull}) {
    const auto logits = random_logits(1000, seed, 2.0f);
    for (const auto& c : kMaskCases) {
      SamplingParams p;
      p.temperature = 0.7f + 0.2f * static_cast<float>(seed);
      p.top_k = c.top_k;
      p.top_p = c.top_p;
      p.min_p = c.min_p;
      p.seed = seed;
      const auto ref = reference_probs(logits, p);
      Sampler s(p);
      for (int i = 0; i < 2000; ++i) {
        const int32_t t = s.sample(logits).token;
        ASSERT_GT(ref[t], 0.0) << "token " << t << " seed " << seed << " k " << c.top_k << " p " << c.top_p
                               << " min_p " << c.min_p;
      }
    }
  }
}

TEST(SamplerMasks, LargeFlatVocabularyTopPAndTopK) {
  // Flat logits put thousands of tokens in the boundary bucket (the chunked partial-sort path).
  const auto logits = random_logits(49152, 9, 0.5f);
  for (const auto& c : {MaskCase{0, 0.9f, 0.0f}, MaskCase{3000, 1.0f, 0.0f}, MaskCase{20000, 0.3f, 0.0f}}) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.seed = 5;
    const auto ref = reference_probs(logits, p);
    Sampler s(p);
    for (int i = 0; i < 500; ++i) {
      const int32_t t = s.sample(logits).token;
      ASSERT_GT(ref[t], 0.0) << "token " << t << " k " << c.top_k << " p " << c.top_p;
    }
  }
}

TEST(SamplerMasks, FrequenciesMatchRenormalizedProbabilities) {
  for (uint64_t seed : {5ull, 6ull}) {
    const auto logits = random_logits(20, seed, 1.0f);
    for (const auto& c : kMaskCases) {
      SamplingParams p;
      p.temperature = 1.0f;
      p.top_k = c.top_k > 10 ? 10 : c.top_k;
      p.top_p = c.top_p;
      p.min_p = c.min_p;
      p.seed = seed * 31;
      const auto ref = reference_probs(logits, p);
      const auto f = frequencies(logits, p, 20000);
      for (size_t t = 0; t < ref.size(); ++t) {
        if (ref[t] == 0.0) {
          EXPECT_EQ(f[t], 0.0) << "masked token " << t;
        }
        EXPECT_NEAR(f[t], ref[t], 0.03) << "token " << t << " k " << p.top_k << " p " << p.top_p;
      }
    }
  }
}

TEST(SamplerMasks, TopKTiesKeepTheLowestIds) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 3;
  const std::vector<float> flat(100, 1.0f);
  Sampler s(p);
  for (int i = 0; i < 300; ++i) EXPECT_LT(s.sample(flat).token, 3);
}

int32_t greedy_after(const std::vector<float>& logits, const SamplingParams& p, std::vector<int32_t> prompt,
                     std::vector<int32_t> outputs) {
  Sampler s(p, prompt);
  for (const int32_t t : outputs) s.accept(t);
  return s.sample(logits).token;
}

TEST(SamplerPenalties, RepetitionDividesPositiveAndMultipliesNegative) {
  SamplingParams p;
  p.repetition_penalty = 1.1f;  // 2.0 / 1.1 = 1.818 < 1.9
  EXPECT_EQ(greedy_after({2.0f, 1.9f}, p, {0}, {}), 1);
  EXPECT_EQ(greedy_after({2.0f, 1.9f}, p, {}, {0}), 1);  // output tokens count too
  EXPECT_EQ(greedy_after({2.0f, 1.9f}, p, {5, 6}, {}), 0);
  p.repetition_penalty = 1.05f;  // 2.0 / 1.05 = 1.905 > 1.9
  EXPECT_EQ(greedy_after({2.0f, 1.9f}, p, {0}, {}), 0);
  p.repetition_penalty = 1.1f;  // -1.0 * 1.1 = -1.1 < -1.05
  EXPECT_EQ(greedy_after({-1.0f, -1.05f}, p, {0}, {}), 1);
  p.repetition_penalty = 1.04f;  // -1.04 > -1.05
  EXPECT_EQ(greedy_after({-1.0f, -1.05f}, p, {0}, {}), 0);
  // In prompt and output: applied once, not twice (2 / 1.1 / 1.1 = 1.65 would lose to 1.7).
  p.repetition_penalty = 1.1f;
  EXPECT_EQ(greedy_after({2.0f, 1.7f}, p, {0}, {0, 0}), 0);
}

TEST(SamplerPenalties, PresenceAndFrequencyUseOutputCounts) {
  SamplingParams p;
  p.frequency_penalty = 0.3f;
  EXPECT_EQ(greedy_after({3.0f, 2.5f}, p, {}, {0}), 0);     // 3 - 0.3 = 2.7
  EXPECT_EQ(greedy_after({3.0f, 2.5f}, p, {}, {0, 0}), 1);  // 3 - 0.6 = 2.4
  EXPECT_EQ(greedy_after({3.0f, 2.5f}, p, {0, 0}, {}), 0);  // prompt tokens do not count
  p.frequency_penalty = 0.0f;
  p.presence_penalty = 0.4f;
  EXPECT_EQ(greedy_after({3.0f, 2.5f}, p, {}, {0, 0, 0}), 0);  // 2.6 whatever the count
  p.presence_penalty = 0.6f;
  EXPECT_EQ(greedy_after({3.0f, 2.5f}, p, {}, {0}), 1);  // 2.4
  p.presence_penalty = -0.6f;                            // negative encourages
  EXPECT_EQ(greedy_after({2.0f, 2.5f}, p, {}, {0}), 0);
}

TEST(SamplerPenalties, SampledDistributionFollowsTheFormulas) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 3;
  {
    // Frequency ln(3) on a token seen once, equal logits: p(0) = 1 / (1 + 3).
    p.frequency_penalty = std::log(3.0f);
    Sampler s(p);
    s.accept(0);
    double f0 = 0;
    for (int i = 0; i < 20000; ++i)
      f0 += s.sample(std::vector<float>{0.0f, 0.0f}).token == 0 ? 1.0 / 20000 : 0.0;
    EXPECT_NEAR(f0, 0.25, 0.015);
    p.frequency_penalty = 0.0f;
  }
  for (const auto& logits : {std::vector<float>{2.0f, 1.0f}, std::vector<float>{-1.0f, -2.0f}}) {
    // Repetition 2: 2 -> 1 and -1 -> -2, equal to the other token: p(0) = 1/2.
    p.repetition_penalty = 2.0f;
    const std::vector<int32_t> prompt = {0};
    Sampler s(p, prompt);
    double f0 = 0;
    for (int i = 0; i < 20000; ++i) f0 += s.sample(logits).token == 0 ? 1.0 / 20000 : 0.0;
    EXPECT_NEAR(f0, 0.5, 0.015);
  }
}

std::vector<double> log_softmax(const std::vector<float>& x) {
  const double m = *std::max_element(x.begin(), x.end());
  double s = 0;
  for (const float v : x) s += std::exp(v - m);
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] - m - std::log(s);
  return out;
}

TEST(SamplerLogprobs, AreTheLogSoftmaxOfRawLogits) {
  auto logits = random_logits(1000, 21, 4.0f);
  logits[100] = logits[200] = 20.0f;  // a tie at the top: lower id first
  const auto ref = log_softmax(logits);
  SamplingParams p;
  p.temperature = 0.5f;
  p.repetition_penalty = 1.5f;  // neither penalties nor temperature change the reported values
  p.presence_penalty = 1.0f;
  p.logprobs = 5;
  const std::vector<int32_t> prompt = {100, 3, 4};
  Sampler s(p, prompt);
  s.accept(200);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  for (int i = 0; i < 20; ++i) {
    const auto r = s.sample(logits);
    EXPECT_NEAR(r.logprob, ref[r.token], 1e-4);
    ASSERT_EQ(r.top.size(), 5u);
    for (size_t k = 0; k < 5; ++k) {
      EXPECT_EQ(r.top[k].token, order[k]);
      EXPECT_NEAR(r.top[k].logprob, ref[order[k]], 1e-4);
    }
  }
  p.logprobs = 0;
  Sampler zero(p);
  const auto r0 = zero.sample(logits);
  EXPECT_TRUE(r0.top.empty());
  EXPECT_NEAR(r0.logprob, ref[r0.token], 1e-4);
}

// Prints time per call for the production vocabulary; never asserts timing.
TEST(SamplerBench, PrintsTimePerCallAtVocab49152) {
  const auto logits = random_logits(49152, 77, 3.0f);
  struct Case {
    const char* name;
    SamplingParams p;
  };
  SamplingParams base;
  base.temperature = 0.8f;
  std::vector<Case> cases;
  cases.push_back({"greedy", SamplingParams{}});
  cases.push_back({"T=0.8", base});
  auto k = base;
  k.top_k = 50;
  cases.push_back({"top-k 50", k});
  auto tp = base;
  tp.top_p = 0.9f;
  cases.push_back({"top-p 0.9", tp});
  auto mp = base;
  mp.min_p = 0.05f;
  cases.push_back({"min-p 0.05", mp});
  auto all = base;
  all.top_k = 40;
  all.top_p = 0.95f;
  all.min_p = 0.05f;
  all.repetition_penalty = 1.1f;
  all.presence_penalty = 0.5f;
  all.frequency_penalty = 0.2f;
  cases.push_back({"k40+p0.95+minp0.05+penalties", all});
  auto lp = all;
  lp.logprobs = 5;
  cases.push_back({"... + logprobs 5", lp});
  std::vector<int32_t> prompt(64);
  std::iota(prompt.begin(), prompt.end(), 1000);
  for (const auto& c : cases) {
    Sampler s(c.p, prompt);
    for (int32_t t = 0; t < 64; ++t) s.accept(2000 + t * 7);
    int64_t sink = s.sample(logits).token;  // warm the scratch buffers
    const int iters = 300;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) sink += s.sample(logits).token;
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ SamplerBench ] %-30s %8.1f us/call (checksum %lld)\n", c.name, us / iters,
                static_cast<long long>(sink));
  }
}

}  // namespace
}  // namespace pagoda::engine
