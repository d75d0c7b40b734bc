// F16 / F32 weights (engine/cpu/float_matrix.h): the result is the dot product to float rounding, a row's
// result does not depend on the other rows of the step, and the order of summation follows ggml's choice
// by M (one activation row: ggml_vec_dot's four accumulators; two or more: tinyBLAS's one), which the
// golden test against llama.cpp (architecture_golden_test.cpp) checks end to end.
#include "engine/cpu/float_matrix.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/quant/dequant.h"

namespace pagoda::engine::cpu {
namespace {

struct Parts {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<GgufTensorInfo> infos;
  std::vector<const GgufTensorInfo*> ptrs;
};

Parts random_parts(GgmlType type, std::vector<int64_t> rows, int64_t cols, uint32_t seed) {
  Parts p;
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  p.bytes.resize(rows.size());
  p.infos.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t n = static_cast<size_t>(rows[i] * cols);
    p.bytes[i].resize(n * (type == GgmlType::F16 ? 2 : 4));
    for (size_t e = 0; e < n; ++e) {
      const float v = dist(rng);
      if (type == GgmlType::F16) {
        const uint16_t h = fp32_to_fp16(v);
        std::memcpy(&p.bytes[i][2 * e], &h, 2);
      } else {
        std::memcpy(&p.bytes[i][4 * e], &v, 4);
      }
    }
    GgufTensorInfo& t = p.infos[i];
    t.name = "part" + std::to_string(i);
    t.dims = {cols, rows[i]};
    t.type = type;
    t.data = p.bytes[i].data();
    t.nbytes = p.bytes[i].size();
  }
  for (const GgufTensorInfo& t : p.infos) p.ptrs.push_back(&t);
  return p;
}

void check(GgmlType type, std::vector<int64_t> rows, int64_t cols, bool tinyblas) {
  Parts parts = random_parts(type, rows, cols, 7);
  ASSERT_TRUE(is_float_matrix(parts.ptrs));
  auto fm = make_float_matrix(parts.ptrs);
  ASSERT_TRUE(fm.ok()) << fm.message();
  const FloatMatrix& w = fm.value();
  EXPECT_EQ(w.tinyblas, tinyblas);
  const int64_t N = w.rows;
  std::vector<float> W(static_cast<size_t>(N * cols));
  for (int64_t r = 0; r < N; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      W[r * cols + k] = w.f16 ? static_cast<float>(w.h[r * cols + k]) : w.f[r * cols + k];
    }
  }
  std::mt19937 rng(11);
  std::normal_distribution<float> dist;
  std::vector<float> scratch;
  for (int32_t M : {1, 2, 3, 4, 5, 9}) {
    std::vector<float> x(static_cast<size_t>(M * cols));
    for (float& v : x) v = dist(rng);
    std::vector<float> ref(static_cast<size_t>(M * N));
    float_gemv(w, x.data(), M, ref.data(), scratch);
    std::vector<float> generic(ref.size());
    float_gemv_generic(w, x.data(), M, generic.data(), scratch);
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(generic[i], ref[i]) << "M " << M << " index " << i;
    // Row 0 of this step again, in a two-row step: the same bits (one chain per output; the tiles of
    // four rows must not change them).
    if (M >= 2) {
      std::vector<float> x2(x.begin(), x.begin() + cols), y2(2 * N);
      x2.insert(x2.end(), x.begin(), x.begin() + cols);
      float_gemv(w, x2.data(), 2, y2.data(), scratch);
      for (int64_t n = 0; n < N; ++n) ASSERT_EQ(y2[n], ref[n]) << "M " << M << " row " << n;
    }
    for (int32_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        double exact = 0, norm = 0;
        for (int64_t k = 0; k < cols; ++k) {
          // F16 weights meet fp16-rounded activations, as in ggml.
          const float xv = type == GgmlType::F16 ? fp16_to_fp32(fp32_to_fp16(x[m * cols + k])) : x[m * cols + k];
          exact += double(W[n * cols + k]) * xv;
          norm += std::fabs(double(W[n * cols + k]) * xv);
        }
        ASSERT_NEAR(ref[m * N + n], exact, 1e-6 * norm + 1e-6) << "M " << M << " row " << n;
      }
    }
  }
}

TEST(FloatMatrix, F16StackedPartsMatchTheDotProduct) { check(GgmlType::F16, {24, 16}, 192, /*tinyblas=*/true); }
TEST(FloatMatrix, F32MatchesTheDotProduct) { check(GgmlType::F32, {40}, 128, true); }
// K % 64 != 0: ggml_vec_dot's one-at-a-time tail; rows % 4 != 0 or K % 16 != 0: tinyBLAS declines.
TEST(FloatMatrix, TailsAndDeclinedShapes) {
  check(GgmlType::F16, {12}, 80, true);
  check(GgmlType::F32, {10}, 64, false);
  check(GgmlType::F16, {8}, 72, false);
}

// One activation row and several sum in different orders (ggml does); both are the dot product, and on
// random data they round differently somewhere.
TEST(FloatMatrix, OneRowAndManyRowsSumInGgmlsTwoOrders) {
  Parts parts = random_parts(GgmlType::F32, {64}, 256, 3);
  const FloatMatrix w = make_float_matrix(parts.ptrs).value();
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<float> x(2 * 256);
  for (float& v : x) v = dist(rng);
  std::copy(x.begin(), x.begin() + 256, x.begin() + 256);  // two identical rows
  std::vector<float> one(64), two(128), scratch;
  float_gemv(w, x.data(), 1, one.data(), scratch);
  float_gemv(w, x.data(), 2, two.data(), scratch);
  int differ = 0;
  for (int r = 0; r < 64; ++r) {
    EXPECT_EQ(two[r], two[64 + r]);
    differ += one[r] != two[r];
  }
  EXPECT_GT(differ, 0);
}

TEST(FloatMatrix, MixedTypesAreNotAFloatMatrix) {
  Parts a = random_parts(GgmlType::F16, {8}, 32, 1), b = random_parts(GgmlType::F32, {8}, 32, 2);
  EXPECT_FALSE(is_float_matrix({a.ptrs[0], b.ptrs[0]}));
  EXPECT_FALSE(make_float_matrix({a.ptrs[0], b.ptrs[0]}).ok());
}

}  // namespace
}  // namespace pagoda::engine::cpu
