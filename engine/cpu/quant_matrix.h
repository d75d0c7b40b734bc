#pragma once
// Weights for the small-batch (decode) path, kept at GGUF's own bit width so each step reads as few
// bytes as llama.cpp does. Every supported block format is written as "affine u8": within a block of
// 32, w = d * u + c with u an unsigned 4- or 8-bit integer, which is exact for Q4_0 (c = -8d),
// Q4_1 (c = m) and Q8_0 (u = q + 128, c = -128d). Other formats are requantized to 8 bits at load.
// Activations are quantized per block of 32 to int8 exactly as ggml's Q8_1 (fp16 scale d_a, and
// fp16 s_a = d_a * sum(q)), so a row dot product is  sum_b d_w*d_a*dot(u, q_a) + sum_b c*s_a  and the
// inner dot is VPDPBUSD (u8 x s8) on AVX-512 VNNI. Rounding d_a and s_a to fp16 as ggml does is what
// makes the logits agree with llama.cpp's to the last bits, not only to within quantization noise.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/model_weights.h"
#include "engine/status.h"

namespace pagoda::engine::cpu {

inline constexpr int kQBlock = 32;

struct QuantMatrix {
  int64_t rows = 0, cols = 0;  // y[rows] = W[rows][cols] . x[cols]
  int32_t bits = 8;            // 4: two u per byte (low nibble = element j, high = j + 16), 8: one per byte
  std::vector<uint8_t> u;
  std::vector<float> d, c;     // [rows][cols / 32]
  // Per row: whether c multiplies ggml's fp16 Q8_1 sum (Q4_1's min term) rather than the exact
  // d_a * sum(q) (the integer offsets of Q4_0 / Q8_0 / requantized rows).
  std::vector<uint8_t> c_uses_q8_1_sum;
  int64_t blocks_per_row() const { return cols / kQBlock; }
  int64_t bytes_per_block() const { return bits == 4 ? kQBlock / 2 : kQBlock; }
  int64_t weight_bytes() const { return static_cast<int64_t>(u.size() + (d.size() + c.size()) * sizeof(float)); }
};

// Builds one matrix from row-stacked GGUF tensors (e.g. Q, K, V fused): all parts share cols.
Result<QuantMatrix> make_quant_matrix(const std::vector<const GgufTensorInfo*>& parts);

// M activation rows quantized per block of 32.
struct QuantActs {
  int32_t M = 0;
  int64_t K = 0;
  std::vector<int8_t> q;     // [M][K]
  std::vector<float> d;        // [M][K/32]: scale, rounded to fp16 as ggml stores it
  std::vector<float> s_q8_1;   // [M][K/32]: ggml's Q8_1 s = fp16(d * sum(q)), d before rounding
  std::vector<float> s_exact;  // [M][K/32]: d * sum(q) with the rounded d
  std::vector<int32_t> qsum;   // [M][K/32]: sum(q)
};
void quantize_acts(const float* x, int32_t M, int64_t K, QuantActs& out);

// y[m][n] = sum_k W[n][k] x[m][k] for M rows (M <= 8). Parallel over rows of W (OpenMP).
void quant_gemv(const QuantMatrix& w, const QuantActs& x, float* y);

// Which inner kernel quant_gemv runs on this machine ("avx512_vnni", "avx2", "scalar").
std::string quant_gemv_kernel_name();

// The same with a named kernel, for tests that compare every kernel the machine can run.
enum class GemvIsa { Scalar, Avx2, Vnni };
void quant_gemv_with(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y);

}  // namespace pagoda::engine::cpu
