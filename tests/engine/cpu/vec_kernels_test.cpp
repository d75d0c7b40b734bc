// The CPU row kernels against naive double-precision references.
#include "engine/cpu/vec_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace pagoda::engine::cpu {
namespace {

std::vector<float> random_vec(int n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(CpuKernels, RmsNormMatchesReference) {
  for (int n : {1, 7, 64, 576, 1000}) {
    auto x = random_vec(n, n), w = random_vec(n, n + 1);
    std::vector<float> out(n);
    rms_norm(x.data(), w.data(), out.data(), n, 1e-5f);
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; ++i) EXPECT_NEAR(out[i], x[i] * scale * w[i], 1e-4 * (1 + std::fabs(x[i] * scale * w[i])));
  }
}

TEST(CpuKernels, SiluMulMatchesReference) {
  auto g = random_vec(1536, 1, 4.0f), u = random_vec(1536, 2);
  std::vector<float> out(1536);
  silu_mul(g.data(), u.data(), out.data(), 1536);
  for (int i = 0; i < 1536; ++i) {
    const double ref = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
    EXPECT_NEAR(out[i], ref, 1e-5 * (1 + std::fabs(ref)));
  }
}

// RoPE in both of llama.cpp's pair layouts: "normal" (RopeStyle::Interleaved) rotates pairs (2i, 2i+1),
// "neox" (HalfSplit) pairs (i, i + d/2), each by pos * base^(-2i/d) / factor_i. The angles come from
// repeated float multiplication (as ggml), so large positions drift from the exact angle by
// ~1e-7 * pos * i; the positions here keep that below the tolerance.
TEST(CpuKernels, RopeMatchesReference) {
  const int heads = 3, hd = 64;
  const float base = 100000.0f;
  std::vector<float> factors(hd / 2);
  for (int i = 0; i < hd / 2; ++i) factors[i] = i % 3 == 0 ? 2.0f : 1.0f;
  for (int pos : {0, 1, 17, 100, 500}) {
    for (const bool half_split : {false, true}) {
      auto x = random_vec(heads * hd, pos + 3);
      auto y = x;
      std::vector<float> cs(hd);
      rope_cache(pos, hd, std::pow(base, -2.0f / hd), factors.data(), cs.data());
      (half_split ? rope_apply_half_split : rope_apply)(y.data(), heads, hd, cs.data());
      for (int h = 0; h < heads; ++h) {
        for (int i = 0; i < hd / 2; ++i) {
          const double th = double(pos) * std::pow(double(base), -2.0 * i / hd) / factors[i];
          const int a = h * hd + (half_split ? i : 2 * i), b = h * hd + (half_split ? i + hd / 2 : 2 * i + 1);
          const double x0 = x[a], x1 = x[b];
          EXPECT_NEAR(y[a], x0 * std::cos(th) - x1 * std::sin(th), 2e-3) << pos << " " << i << " " << half_split;
          EXPECT_NEAR(y[b], x0 * std::sin(th) + x1 * std::cos(th), 2e-3) << pos << " " << i << " " << half_split;
        }
      }
      if (pos == 0) {
        EXPECT_EQ(x, y);  // position 0 is the identity rotation
      }
    }
  }
}

TEST(CpuKernels, Bf16RoundsToNearestEven) {
  const std::vector<float> x = {1.0f, -2.5f, 1.00390625f /* 1 + 2^-8: tie, rounds to even (1.0) */,
                                1.01171875f /* 1 + 3*2^-8: tie, rounds up to 1 + 2^-6 */};
  std::vector<uint16_t> out(x.size());
  f32_to_bf16(x.data(), out.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(out[0], 0x3F80);
  EXPECT_EQ(out[1], 0xC020);
  EXPECT_EQ(out[2], 0x3F80);
  EXPECT_EQ(out[3], 0x3F82);
}

// The GELU table is ggml's ggml_table_gelu_f16 bit for bit: its FNV-1a 64 hash, read from llama.cpp's
// libggml-cpu.so after ggml_cpu_init() (llama-cpp-python 0.3.36's llama.cpp, the golden data's oracle).
TEST(CpuKernels, GeluTableIsGgmlsBitForBit) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(gelu_f16_table());
  uint64_t h = 0xCBF29CE484222325ull;
  for (size_t i = 0; i < 2 * 65536; ++i) h = (h ^ bytes[i]) * 0x100000001B3ull;
  EXPECT_EQ(h, 0xab044edba0ed200cull);
}

TEST(CpuKernels, GeluMulUsesTheTableInsideTenAndTheLimitsOutside) {
  const std::vector<float> gate = {-12.0f, -10.0f, -1.0f, 0.0f, 0.5f, 3.0f, 10.0f, 12.5f};
  const std::vector<float> up = {2.0f, 2.0f, 2.0f, 2.0f, 2.0f, 2.0f, 2.0f, 2.0f};
  std::vector<float> out(gate.size());
  gelu_mul(gate.data(), up.data(), out.data(), static_cast<int>(gate.size()));
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_EQ(out[6], 20.0f);
  EXPECT_EQ(out[7], 25.0f);
  for (size_t i : {2u, 4u, 5u}) {  // gelu(x) to fp16 precision: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const double x = gate[i];
    const double g = 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    EXPECT_NEAR(out[i], 2 * g, 2 * std::abs(g) * 1e-3 + 1e-6) << x;
  }
}

TEST(CpuKernels, SoftcapKeepsSmallValuesAndBoundsLargeOnes) {
  std::vector<float> x = {0.01f, -0.01f, 100.0f, -1000.0f, 3.0f};
  softcap_inplace(x.data(), 5.0f, static_cast<int64_t>(x.size()));
  EXPECT_NEAR(x[0], 0.01f, 1e-6);
  EXPECT_NEAR(x[1], -0.01f, 1e-6);
  EXPECT_FLOAT_EQ(x[2], 5.0f);
  EXPECT_FLOAT_EQ(x[3], -5.0f);
  EXPECT_FLOAT_EQ(x[4], std::tanh(3.0f * (1.0f / 5.0f)) * 5.0f);
}

}  // namespace
}  // namespace pagoda::engine::cpu
