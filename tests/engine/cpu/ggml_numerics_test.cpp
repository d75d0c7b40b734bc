// ggml_v_expf on every instruction set this machine runs gives the same bits, and stays within a few
// ulp of std::exp over softmax's range.
#include "engine/cpu/ggml_numerics.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "engine/cpu/cpu_features.h"

namespace pagoda::engine::cpu {
namespace {

// Inputs in chunks of 16: softmax's range (x <= 0), the edges of normal results, the subnormal and
// overflow ranges (one such lane sends the AVX2 variant's chunk through the scalar lanes), inf and NaN.
std::vector<float> exp_inputs() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> softmax(-30.0f, 0.0f), wide(-120.0f, 120.0f);
  std::vector<float> x;
  for (int i = 0; i < 16 * 64; ++i) x.push_back(softmax(rng));
  for (int i = 0; i < 16 * 64; ++i) x.push_back(wide(rng));
  const float edges[] = {-87.3f, -86.6f, -88.0f, -100.0f, -103.9f, -104.0f, -150.0f, 88.0f, 88.7f, 89.0f, 120.0f,
                         0.0f,   -0.0f,  1e-30f,  -1e-30f, std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  for (float e : edges) {
    for (int l = 0; l < 16; ++l) x.push_back(l == 5 ? e : softmax(rng));  // one odd lane per chunk
  }
  for (float e : edges) x.push_back(e);
  while (x.size() % 16 != 0) x.push_back(-1.0f);
  return x;
}

TEST(GgmlNumerics, ExpGivesTheSameBitsOnEveryInstructionSet) {
  const std::vector<float> x = exp_inputs();
  std::vector<float> ref(x.size()), y(x.size());
  for (size_t c = 0; c < x.size(); c += 16) ggml_exp16_scalar(&x[c], &ref[c]);
  auto same_bits = [&](const char* isa) {
    for (size_t i = 0; i < x.size(); ++i) {
      if (std::isnan(x[i])) {  // a NaN's sign bit is not ggml's concern, nor ours
        ASSERT_TRUE(std::isnan(y[i])) << isa;
        continue;
      }
      ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(ref[i])) << isa << ": exp(" << x[i] << ")";
    }
  };
  for (size_t c = 0; c < x.size(); c += 16) ggml_exp16(&x[c], &y[c]);
  same_bits("dispatched");
  if (cpu_features().avx2 && cpu_features().fma) {
    for (size_t c = 0; c < x.size(); c += 16) ggml_exp16_avx2(&x[c], &y[c]);
    same_bits("avx2");
  }
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(ref[i]));
    } else if (std::isinf(x[i])) {
      EXPECT_EQ(ref[i], x[i] > 0 ? x[i] : 0.0f);
    } else if (x[i] > -80.0f && x[i] < 80.0f) {
      EXPECT_NEAR(ref[i], std::exp(x[i]), 4e-7 * std::exp(x[i])) << "exp(" << x[i] << ")";
    }
  }
}

}  // namespace
}  // namespace pagoda::engine::cpu
