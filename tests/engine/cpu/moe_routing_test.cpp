// The mixture-of-experts router (engine/cpu/moe_routing.h): the k most probable experts, most probable
// first, with their softmax probabilities renormalized over the k; what ggml's softmax gives for large
// expert counts (its 16-lane expf) and small ones (libm's expf) alike.
#include "engine/cpu/moe_routing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace pagoda::engine::cpu {
namespace {

TEST(MoeRouting, TopKExpertsWithRenormalizedProbabilities) {
  std::mt19937 rng(4);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (int n : {8, 60, 128}) {
    for (int k : {1, 2, 8}) {
      std::vector<float> logits(n);
      for (float& v : logits) v = dist(rng);
      std::vector<int32_t> experts(k);
      std::vector<float> weights(k);
      moe_route(logits.data(), n, k, experts.data(), weights.data());
      // The reference: double softmax, sorted, renormalized.
      double mx = -1e300, total = 0.0;
      for (float v : logits) mx = std::max(mx, double(v));
      std::vector<double> p(n);
      for (int e = 0; e < n; ++e) total += (p[e] = std::exp(double(logits[e]) - mx));
      std::vector<int> order(n);
      for (int e = 0; e < n; ++e) order[e] = e;
      std::sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
      double chosen = 0.0;
      for (int i = 0; i < k; ++i) chosen += p[order[i]];
      float sum = 0.0f;
      for (int i = 0; i < k; ++i) {
        EXPECT_EQ(experts[i], order[i]) << "n " << n << " k " << k << " rank " << i;
        EXPECT_NEAR(weights[i], p[order[i]] / chosen, 1e-6) << "n " << n << " k " << k << " rank " << i;
        if (i > 0) {
          EXPECT_GE(weights[i - 1], weights[i]);
        }
        sum += weights[i];
      }
      EXPECT_NEAR(sum, 1.0f, 1e-6);
    }
  }
}

// Every expert can win: the router is not biased towards low or high ids.
TEST(MoeRouting, EveryExpertIsChosenForSomeLogits) {
  std::mt19937 rng(9);
  std::normal_distribution<float> dist;
  const int n = 64;
  std::vector<int> hits(n, 0);
  std::vector<float> logits(n);
  for (int trial = 0; trial < 2000; ++trial) {
    for (float& v : logits) v = dist(rng);
    int32_t experts[2];
    float weights[2];
    moe_route(logits.data(), n, 2, experts, weights);
    ++hits[experts[0]];
    ++hits[experts[1]];
  }
  for (int e = 0; e < n; ++e) EXPECT_GT(hits[e], 0) << "expert " << e;
}

}  // namespace
}  // namespace pagoda::engine::cpu
