// The small-batch quantized GEMV: every kernel this CPU can run against a double-precision dot
// product of the dequantized weights with the quantized activations (the exact math of the format).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/cpu/cpu_features.h"
#include "engine/cpu/quant_matrix.h"
#include "engine/quant/dequant.h"

namespace pagoda::engine::cpu {
namespace {

// Random GGUF tensor bytes of a block type, with sane fp16 scales.
std::vector<uint8_t> random_blocks(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * ggml_row_bytes(*info, cols)));
  std::mt19937 rng(seed);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  if (type == GgmlType::F32) {
    std::normal_distribution<float> dist;
    for (size_t i = 0; i < bytes.size(); i += 4) {
      const float f = dist(rng);
      std::memcpy(&bytes[i], &f, 4);
    }
    return bytes;
  }
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  const int header = type == GgmlType::Q4_1 ? 2 : 1;  // fp16 fields at the start of each block
  for (size_t off = 0; off < bytes.size(); off += info->type_size) {
    for (int h = 0; h < header; ++h) {
      const uint16_t v = fp32_to_fp16(h == 0 ? scale(rng) : -scale(rng) * 8);
      std::memcpy(&bytes[off + 2 * h], &v, 2);
    }
  }
  return bytes;
}

GgufTensorInfo tensor(const char* name, GgmlType type, int64_t rows, int64_t cols, const std::vector<uint8_t>& data) {
  GgufTensorInfo t;
  t.name = name;
  t.dims = {cols, rows};
  t.type = type;
  t.data = data.data();
  t.nbytes = data.size();
  return t;
}

std::vector<GemvIsa> runnable_isas() {
  std::vector<GemvIsa> v = {GemvIsa::Scalar};
  if (cpu_features().avx2 && cpu_features().fma) v.push_back(GemvIsa::Avx2);
  if (cpu_features().avx512_vnni) v.push_back(GemvIsa::Vnni);
  return v;
}

// Every kernel must give the scalar kernel's bits (the arithmetic is ggml's, lane for lane), and the
// scalar kernel must match a double-precision dot product of the dequantized weights with the
// dequantized int8 activations to float rounding.
void check_type(GgmlType type, int64_t rows_a, int64_t rows_b) {
  const int64_t cols = 96;
  auto bytes_a = random_blocks(type, rows_a, cols, 1), bytes_b = random_blocks(type, std::max<int64_t>(rows_b, 1), cols, 2);
  GgufTensorInfo ta = tensor("a", type, rows_a, cols, bytes_a), tb = tensor("b", type, rows_b, cols, bytes_b);
  std::vector<const GgufTensorInfo*> parts = {&ta};
  if (rows_b > 0) parts.push_back(&tb);
  auto qm = make_quant_matrix(parts);
  ASSERT_TRUE(qm.ok()) << qm.message();
  const int64_t N = rows_a + rows_b;
  ASSERT_EQ(qm.value().rows, N);

  // Reference weights: dequantized rows of the stacked parts (requantized formats: their Q8_0 form).
  std::vector<float> W(N * cols);
  for (int64_t r = 0; r < N; ++r) {
    const GgufTensorInfo& t = r < rows_a ? ta : tb;
    const int64_t rr = r < rows_a ? r : r - rows_a;
    const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
    ASSERT_TRUE(dequantize_row(type, t.data + rr * ggml_row_bytes(*info, cols), &W[r * cols], cols).ok());
  }
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  for (int32_t M : {1, 2, 3, 5, 8, 11, 17}) {
    std::vector<float> x(M * cols);
    for (float& v : x) v = dist(rng);
    QuantActs qa;
    quantize_acts(x.data(), M, cols, qa);
    std::vector<float> y_ref(M * N);
    quant_gemv_with(GemvIsa::Scalar, qm.value(), qa, y_ref.data());
    for (GemvIsa isa : runnable_isas()) {
      std::vector<float> y(M * N);
      quant_gemv_with(isa, qm.value(), qa, y.data());
      for (int64_t i = 0; i < M * N; ++i) ASSERT_EQ(y[i], y_ref[i]) << "isa " << int(isa) << " M " << M << " index " << i;
    }
    for (int32_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        double ref = 0, ref_f = 0, w2 = 0, x2 = 0;
        for (int64_t k = 0; k < cols; ++k) {
          ref += double(W[n * cols + k]) * qa.d[(m * cols + k) / 32] * qa.q[m * cols + k];
          ref_f += double(W[n * cols + k]) * x[m * cols + k];
          w2 += double(W[n * cols + k]) * W[n * cols + k];
          x2 += double(x[m * cols + k]) * x[m * cols + k];
        }
        // Exact in the quantized operands up to float rounding and the fp16 rounding of Q4_1's
        // block sums; within ~1% of |w||x| of the float product (int8 activations, and for
        // requantized formats int8 weights).
        const double norm = std::sqrt(w2 * x2);
        if (type != GgmlType::F32) {
          ASSERT_NEAR(y_ref[m * N + n], ref, 1e-3 * norm + 1e-5) << "M " << M << " row " << n;
        }
        ASSERT_NEAR(y_ref[m * N + n], ref_f, 0.02 * norm) << "M " << M << " row " << n;
      }
    }
  }
}

TEST(QuantGemv, Q4_1MatchesDequantizedReference) { check_type(GgmlType::Q4_1, 37, 0); }
TEST(QuantGemv, Q4_0MatchesDequantizedReference) { check_type(GgmlType::Q4_0, 37, 0); }
TEST(QuantGemv, Q8_0MatchesDequantizedReference) { check_type(GgmlType::Q8_0, 37, 0); }
// Rows a multiple of 8: ggml's repacked Q4_0 order of summation (QuantKind::Q4_0x8).
TEST(QuantGemv, RepackedQ4_0MatchesDequantizedReference) { check_type(GgmlType::Q4_0, 40, 16); }

// Where llama.cpp repacks a Q4_0 matrix: every part's rows a multiple of 8.
TEST(QuantGemv, Q4_0IsRepackedWhereLlamaCppRepacksIt) {
  auto a = random_blocks(GgmlType::Q4_0, 40, 64, 1), b = random_blocks(GgmlType::Q4_0, 37, 64, 2);
  GgufTensorInfo ta = tensor("a", GgmlType::Q4_0, 40, 64, a), tb = tensor("b", GgmlType::Q4_0, 37, 64, b);
  EXPECT_EQ(make_quant_matrix({&ta}).value().kind, QuantKind::Q4_0x8);
  EXPECT_EQ(make_quant_matrix({&tb}).value().kind, QuantKind::Q4_0);
  EXPECT_EQ(make_quant_matrix({&ta, &tb}).value().kind, QuantKind::Q4_0);
  // The two orders of summation are different arithmetic: somewhere they round differently.
  std::mt19937 rng(5);
  std::normal_distribution<float> dist;
  std::vector<float> x(8 * 64);
  for (float& v : x) v = dist(rng);
  QuantActs qa;
  quantize_acts(x.data(), 8, 64, qa);
  // The same 40 rows stacked with 37 more are not repacked: summed in ggml's vec_dot lanes.
  std::vector<float> y8(8 * 40), y(8 * 77);
  quant_gemv_with(GemvIsa::Scalar, make_quant_matrix({&ta}).value(), qa, y8.data());
  quant_gemv_with(GemvIsa::Scalar, make_quant_matrix({&ta, &tb}).value(), qa, y.data());
  int differ = 0;
  for (int m = 0; m < 8; ++m) {
    for (int r = 0; r < 40; ++r) differ += y[m * 77 + r] != y8[m * 40 + r];
  }
  EXPECT_GT(differ, 0);
}
TEST(QuantGemv, StackedPartsActAsOneMatrix) { check_type(GgmlType::Q4_1, 37, 21); }
TEST(QuantGemv, OtherTypesAreRequantizedTo8Bits) { check_type(GgmlType::F32, 38, 0); }

// ggml's vec_dot of one GGUF row with activation row m, from the file's own blocks (no layout of ours):
// eight int32 lanes of 4 elements per block, acc[k] = fma(d_w * d_a, lane, acc[k]), hsum_float_8, then
// Q4_1's summs chain; or, repacked Q4_0 (q4_0_8x8), one integer sum and one fma per block.
float ggml_vec_dot_row(GgmlType type, bool repacked, const uint8_t* row, const QuantActs& x, int32_t m) {
  const int64_t nb = x.K / kQBlock;
  float acc[8] = {}, summs = 0.0f, acc1 = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* a = x.q.data() + m * x.K + b * kQBlock;
    int w[kQBlock];
    uint16_t dh, mh = 0;
    if (type == GgmlType::Q8_0) {
      const uint8_t* blk = row + b * 34;
      std::memcpy(&dh, blk, 2);
      for (int e = 0; e < kQBlock; ++e) w[e] = static_cast<int8_t>(blk[2 + e]);
    } else {
      const int header = type == GgmlType::Q4_1 ? 4 : 2;
      const uint8_t* blk = row + b * (16 + header);
      std::memcpy(&dh, blk, 2);
      if (type == GgmlType::Q4_1) std::memcpy(&mh, blk + 2, 2);
      for (int e = 0; e < kQBlock; ++e) {
        const int nib = e < 16 ? blk[header + e] & 0x0F : blk[header + e - 16] >> 4;
        w[e] = type == GgmlType::Q4_0 ? nib - 8 : nib;
      }
    }
    int32_t lanes[8] = {};
    for (int e = 0; e < kQBlock; ++e) lanes[e / 4] += w[e] * a[e];
    const float d = fp16_to_fp32(dh) * x.d[m * nb + b];
    if (repacked) {
      const int32_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
      acc1 = std::fma(static_cast<float>(sum), d, acc1);
    } else {
      for (int k = 0; k < 8; ++k) acc[k] = std::fma(d, static_cast<float>(lanes[k]), acc[k]);
      if (type == GgmlType::Q4_1) summs = std::fma(fp16_to_fp32(mh), x.s_q8_1[m * nb + b], summs);
    }
  }
  if (repacked) return acc1;
  const float r0 = acc[4] + acc[0], r1 = acc[5] + acc[1], r2 = acc[6] + acc[2], r3 = acc[7] + acc[3];
  const float hsum = (r0 + r2) + (r1 + r3);
  return type == GgmlType::Q4_1 ? hsum + summs : hsum;
}

// Every kernel against ggml's vec_dot bit for bit, per weight format, on row counts that fill and part-fill
// the last group of 16, activation rows that take every tile path, and extreme weights and activations
// (Q8_0 weights of -128 against activations of +-127: the largest 4-element lane sums).
TEST(QuantGemv, EveryKernelGivesGgmlVecDotBits) {
  struct Case {
    GgmlType type;
    int64_t rows;
    bool extreme;
  };
  // 27 rows: a last group of 11, whose second half (8 rows to a register on AVX2) is partial.
  const Case cases[] = {{GgmlType::Q4_1, 37, false}, {GgmlType::Q4_1, 16, true}, {GgmlType::Q4_1, 27, false},
                        {GgmlType::Q4_0, 37, false}, {GgmlType::Q4_0, 27, true}, {GgmlType::Q4_0, 40, false},
                        {GgmlType::Q8_0, 37, false}, {GgmlType::Q8_0, 9, true}};
  const int64_t cols = 128;
  for (const Case& c : cases) {
    auto bytes = random_blocks(c.type, c.rows, cols, 21);
    const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(c.type));
    const int64_t row_bytes = ggml_row_bytes(*info, cols);
    if (c.extreme) {  // every weight at its most negative (Q8_0: -128, 4-bit: nibble 0), scales kept
      const int header = c.type == GgmlType::Q4_1 ? 4 : 2;
      for (size_t off = 0; off < bytes.size(); off += info->type_size) {
        std::memset(&bytes[off + header], c.type == GgmlType::Q8_0 ? 0x80 : 0x00, info->type_size - header);
      }
    }
    GgufTensorInfo t = tensor("w", c.type, c.rows, cols, bytes);
    auto qm = make_quant_matrix({&t});
    ASSERT_TRUE(qm.ok()) << qm.message();
    const bool repacked = qm.value().kind == QuantKind::Q4_0x8;
    std::mt19937 rng(4);
    std::normal_distribution<float> dist;
    for (int32_t M : {1, 2, 3, 4, 9}) {
      std::vector<float> x(M * cols);
      for (int64_t i = 0; i < M * cols; ++i) x[i] = c.extreme ? (i % 3 == 0 ? -1.0f : 1.0f) : dist(rng);
      QuantActs qa;
      quantize_acts(x.data(), M, cols, qa);
      for (GemvIsa isa : runnable_isas()) {
        std::vector<float> y(M * c.rows);
        quant_gemv_with(isa, qm.value(), qa, y.data());
        for (int64_t r = 0; r < c.rows; ++r) {
          for (int32_t m = 0; m < M; ++m) {
            const float ref = ggml_vec_dot_row(c.type, repacked, bytes.data() + r * row_bytes, qa, m);
            ASSERT_EQ(std::bit_cast<uint32_t>(y[m * c.rows + r]), std::bit_cast<uint32_t>(ref))
                << "type " << int(c.type) << " isa " << int(isa) << " M " << M << " row " << r << " m " << m;
          }
        }
      }
    }
  }
}

// In a stack of formats (Q8_0 with F16: one common 8-bit form), the Q8_0 rows keep their exact blocks.
TEST(QuantGemv, MixedStackKeepsTheExactPartsBlocks) {
  const int64_t cols = 64;
  auto a = random_blocks(GgmlType::Q8_0, 11, cols, 1), b = random_blocks(GgmlType::F32, 7, cols, 2),
       c = random_blocks(GgmlType::Q8_0, 13, cols, 3);
  GgufTensorInfo ta = tensor("a", GgmlType::Q8_0, 11, cols, a), tb = tensor("b", GgmlType::F32, 7, cols, b),
                 tc = tensor("c", GgmlType::Q8_0, 13, cols, c);
  auto qm = make_quant_matrix({&ta, &tb, &tc});
  ASSERT_TRUE(qm.ok()) << qm.message();
  EXPECT_EQ(qm.value().kind, QuantKind::Q8);
  std::vector<float> x(3 * cols);
  std::mt19937 rng(9);
  std::normal_distribution<float> dist;
  for (float& v : x) v = dist(rng);
  QuantActs qa;
  quantize_acts(x.data(), 3, cols, qa);
  const int64_t N = 31, row_bytes = ggml_row_bytes(*ggml_type_info(static_cast<uint32_t>(GgmlType::Q8_0)), cols);
  for (GemvIsa isa : runnable_isas()) {
    std::vector<float> y(3 * N);
    quant_gemv_with(isa, qm.value(), qa, y.data());
    for (int32_t m = 0; m < 3; ++m) {
      for (int64_t r = 0; r < 11; ++r) {
        EXPECT_EQ(y[m * N + r], ggml_vec_dot_row(GgmlType::Q8_0, false, a.data() + r * row_bytes, qa, m));
      }
      for (int64_t r = 0; r < 13; ++r) {
        EXPECT_EQ(y[m * N + 18 + r], ggml_vec_dot_row(GgmlType::Q8_0, false, c.data() + r * row_bytes, qa, m));
      }
    }
  }
}

// ggml's Q8_1 block for a known input: scale amax/127 in fp16, q = round(x * 127 / amax).
TEST(QuantGemv, ActivationQuantizationIsGgmlQ8_1) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = (i < 32 ? 1.0f : 100.0f) * static_cast<float>(i % 32 - 16);
  QuantActs qa;
  quantize_acts(x.data(), 1, 64, qa);
  EXPECT_FLOAT_EQ(qa.d[0], fp16_to_fp32(fp32_to_fp16(16.0f / 127.0f)));
  EXPECT_FLOAT_EQ(qa.d[1], fp16_to_fp32(fp32_to_fp16(1600.0f / 127.0f)));
  EXPECT_EQ(qa.q[0], -127);
  EXPECT_EQ(qa.q[32], -127);
  EXPECT_EQ(qa.q[16], 0);
  int sum = 0;
  for (int i = 0; i < 32; ++i) sum += qa.q[i];
  EXPECT_FLOAT_EQ(qa.s_q8_1[0], fp16_to_fp32(fp32_to_fp16(16.0f / 127.0f * static_cast<float>(sum))));
}

// Every block as ggml's quantize_row_q8_1 computes it, spelled out here: random magnitudes, a block
// of ties (x * 127 / amax exactly halfway between integers, rounded to even) and an all-zero block.
TEST(QuantGemv, ActivationQuantizationMatchesGgmlOnEveryBlock) {
  const int32_t M = 3;
  const int64_t K = 320, nb = K / 32;
  std::mt19937 rng(11);
  std::normal_distribution<float> dist;
  std::vector<float> x(M * K);
  for (int64_t i = 0; i < M * K; ++i) x[i] = dist(rng) * std::ldexp(1.0f, static_cast<int>(i / 32 % 9) - 4);
  const float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -3.5f, 126.5f, -126.5f};
  for (int j = 0; j < 32; ++j) x[32 + j] = j == 0 ? 127.0f : ties[j % 8];  // amax 127: x * 127 / amax == x
  for (int j = 0; j < 32; ++j) x[64 + j] = 0.0f;
  QuantActs qa;
  quantize_acts(x.data(), M, K, qa);
  for (int64_t b = 0; b < M * nb; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = static_cast<int>(std::nearbyint(x[b * 32 + j] * id));
      ASSERT_EQ(qa.q[b * 32 + j], q) << "block " << b << " element " << j;
      sum += q;
    }
    ASSERT_EQ(qa.d[b], fp16_to_fp32(fp32_to_fp16(d))) << "block " << b;
    ASSERT_EQ(qa.s_q8_1[b], fp16_to_fp32(fp32_to_fp16(d * static_cast<float>(sum)))) << "block " << b;
  }
  EXPECT_EQ(qa.q[32 + 2], 2);   // 2.5 rounds to even
  EXPECT_EQ(qa.q[32 + 13], -4);  // -3.5 rounds to even
}

}  // namespace
}  // namespace pagoda::engine::cpu
