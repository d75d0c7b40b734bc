#pragma once
// Weights of the int8 matmul path, kept at GGUF's own bit width so a decode step reads as few bytes
// as llama.cpp does, and computed with ggml's exact arithmetic (see ggml_numerics.h for why):
//  - activations are quantized per block of 32 as ggml's Q8_1 / Q8_0: q = round(x * 127 / amax),
//    scale d = amax / 127 stored as fp16, s = fp16(d * sum(q));
//  - per block, eight int32 lanes each hold the dot product of 4 consecutive elements (ggml's
//    mul_sum_*_pairs lanes), then  acc[lane] = fma(d_w * d_a, lane, acc[lane]);
//  - a row's result is hsum(acc) (+ sum_b fma(m_w, s_a) for Q4_1's block minimum).
// Q4_0, Q4_1 and Q8_0 tensors are exact; other formats are requantized to Q8_0 at load.
// Rows sit in the vector lanes: groups of 16 rows, and per group and block, runs of 64 bytes (run t:
// each row's bytes 4t..4t+3), so one VPDPBUSD gives 16 rows' 4-element dot products, one ggml lane
// each. The per-row arithmetic above is unchanged; only the rows computed at once are.
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
// one acc = fma(float(sum), d_w * d_a, acc) per block and output, no eight lanes. So do we
// (repacked_gemv.cpp), on the same layout.

struct QuantMatrix {
  int64_t rows = 0, cols = 0;  // y[rows] = W[rows][cols] . x[cols]
  QuantKind kind = QuantKind::Q8;
  // [group of 16 rows][block][run][row 16][4 bytes], runs kRunBytes apart. 4-bit kinds: 4 runs, GGUF's
  // bytes (byte j holds elements j and j + 16), so run t's low nibbles are lane t and its high nibbles
  // lane t + 4. Q8: 8 runs of u = q ^ 0x80 (q signed), run k is lane k. Rows past `rows` are zero
  // weights with zero scales.
  ArenaVector<uint8_t> u;
  ArenaVector<uint16_t> d;  // fp16 [group][block][row 16]: the blocks' scales
  ArenaVector<uint16_t> m;  // fp16 [group][block][row 16]: Q4_1's block minima
  static constexpr int kGroup = 16, kRunBytes = 64;
  int64_t groups() const { return (rows + kGroup - 1) / kGroup; }
  int64_t blocks_per_row() const { return cols / kQBlock; }
  int runs_per_block() const { return kind == QuantKind::Q8 ? 8 : 4; }
  // Where run t of group g's block b starts in u, and where row `row`'s scale (minimum) of block b is in d (m).
  int64_t run_offset(int64_t g, int64_t b, int t) const { return ((g * blocks_per_row() + b) * runs_per_block() + t) * kRunBytes; }
  int64_t scale_index(int64_t row, int64_t b) const { return ((row / kGroup) * blocks_per_row() + b) * kGroup + row % kGroup; }
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

// y[m][n] = sum_k W[n][k] x[m][k], any M. Parallel over row groups (OpenMP).
void quant_gemv(const QuantMatrix& w, const QuantActs& x, float* y);

// Which kernel quant_gemv runs on this machine ("avx512_vnni", "avx2", "scalar").
std::string quant_gemv_kernel_name();

// The same with a named kernel, for tests that compare every kernel the machine can run.
enum class GemvIsa { Scalar, Avx2, Vnni };
void quant_gemv_with(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y);
// quant_gemv of a Q4_0x8 matrix (repacked_gemv.cpp).
void repacked_q4_0_gemv(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y);

}  // namespace pagoda::engine::cpu
