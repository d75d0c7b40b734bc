#pragma once
// Weights of the int8 matmul path, kept at GGUF's own bit width so a decode step reads as few bytes
// as llama.cpp does, and computed with ggml's exact arithmetic (see ggml_numerics.h for why):
//  - activations are quantized per block of 32 as ggml's Q8_1 / Q8_0: q = round(x * 127 / amax),
//    scale d = amax / 127 stored as fp16, s = fp16(d * sum(q));
//  - per block, eight int32 lanes each hold the dot product of 4 consecutive elements (ggml's
//    mul_sum_*_pairs lanes), then  acc[lane] = fma(d_w * d_a, lane, acc[lane]);
//  - a row's result is hsum(acc) (+ sum_b fma(m_w, s_a) for Q4_1's block minimum).
// Q4_0, Q4_1 and Q8_0 tensors are exact; other formats are requantized to Q8_0 at load.
// Rows are stored in pairs so one 512-bit VPDPBUSD covers the same block of two rows.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cpu/huge_page_arena.h"
#include "engine/model/model_weights.h"
#include "engine/status.h"

namespace pagoda::engine::cpu {

inline constexpr int kQBlock = 32;

enum class QuantKind : uint8_t {
  Q4_1,    // u = nibble, w = d * u + m
  Q4_0,    // u = nibble, w = d * (u - 8)
  Q4_0x8,  // Q4_0 as ggml's repacked q4_0_8x8 kernels sum it (below)
  Q8,      // u = q ^ 0x80 (q signed), w = d * q   (Q8_0, and requantized formats)
};
// ggml repacks a Q4_0 matrix whose rows are a multiple of 8 (on AVX2 and AVX-512: q4_0_8x8, its
// CPU_REPACK buffer) and multiplies it differently: each block's 32 products summed as one integer, then
// one acc = fma(float(sum), d_w * d_a, acc) per block and output, no eight lanes. So do we, on a layout
// of our own with the same idea (rows in the vector lanes, repacked_gemv.cpp): groups of 16 rows; per
// group and block, four 64-byte runs (run t: each row's bytes 4t..4t+3, i.e. elements 4t..4t+3 in the
// low nibbles and 16+4t..16+4t+3 in the high ones), then the 16 rows' fp16 scales.

struct QuantMatrix {
  int64_t rows = 0, cols = 0;  // y[rows] = W[rows][cols] . x[cols]
  QuantKind kind = QuantKind::Q8;
  // [pair][block][row A bytes, row B bytes]; 4-bit kinds keep GGUF's nibble order (byte j holds
  // elements j and j + 16). An odd last row is paired with a zero row.
  ArenaVector<uint8_t> u;
  ArenaVector<uint16_t> d;  // fp16 [pair][block][2]
  // fp16 [group of 16 rows][block][16], Q4_1 only: a block's minima of 16 rows are one 32-byte load, so
  // the VNNI kernel sums the m * s term for 16 rows in the lanes of one register (m_index below).
  ArenaVector<uint16_t> m;
  // Q4_0x8 instead: u = [group][block][run 4][row 16][4 bytes], d = fp16 [group][block][row 16]; the
  // rows past `rows` in the last group are zero.
  int64_t pairs() const { return (rows + 1) / 2; }
  int64_t blocks_per_row() const { return cols / kQBlock; }
  int64_t row_block_bytes() const { return kind == QuantKind::Q8 ? kQBlock : kQBlock / 2; }
  int64_t groups() const { return (rows + 15) / 16; }  // Q4_0x8, and Q4_1's m
  int64_t m_index(int64_t row, int64_t block) const { return ((row / 16) * blocks_per_row() + block) * 16 + row % 16; }
  int64_t weight_bytes() const { return static_cast<int64_t>(u.size() + 2 * (d.size() + m.size())); }
};

// Builds one matrix from row-stacked GGUF tensors (e.g. Q, K and V fused): all parts share cols. Q4_0
// becomes Q4_0x8 when every part's rows are a multiple of 8, as llama.cpp repacks every such matmul
// weight, a tied LM head included (ggml decides per tensor; a mix of parts stays Q4_0).
Result<QuantMatrix> make_quant_matrix(const std::vector<const GgufTensorInfo*>& parts);
// Moves w's arrays into the arena (huge pages, packed with the model's other matrices).
void move_into(QuantMatrix& w, const std::shared_ptr<HugePageArena>& arena);

// M activation rows quantized per block of 32.
struct QuantActs {
  int32_t M = 0;
  int64_t K = 0;
  std::vector<int8_t> q;      // [M][K]
  std::vector<float> d;       // [M][K/32]: scale, fp16-rounded as ggml stores it
  std::vector<float> s_q8_1;  // [M][K/32]: ggml's Q8_1 s = fp16(d * sum(q)), d before rounding
};
void quantize_acts(const float* x, int32_t M, int64_t K, QuantActs& out);

// y[m][n] = sum_k W[n][k] x[m][k], any M. Parallel over row pairs (OpenMP).
void quant_gemv(const QuantMatrix& w, const QuantActs& x, float* y);

// Which kernel quant_gemv runs on this machine ("avx512_vnni", "avx2", "scalar").
std::string quant_gemv_kernel_name();

// The same with a named kernel, for tests that compare every kernel the machine can run.
enum class GemvIsa { Scalar, Avx2, Vnni };
void quant_gemv_with(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y);
// quant_gemv of a Q4_0x8 matrix (repacked_gemv.cpp).
void repacked_q4_0_gemv(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y);

}  // namespace pagoda::engine::cpu
