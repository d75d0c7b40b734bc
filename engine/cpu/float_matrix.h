#pragma once
// Unquantized (F16 and F32) weights, kept in their own type and multiplied with ggml's arithmetic, so
// such GGUFs give llama.cpp's logits bit for bit as the quantized ones do (quant_matrix.h).
//
// ggml's CPU backend (the AVX-512 build of the oracle, as ggml_numerics.h) computes an F16/F32 matmul
// one of two ways, chosen per matmul by its number of activation rows n:
//  - n == 1 (a decode step), or a matrix tinyBLAS declines: ggml_vec_dot_f16 / _f32: four accumulators
//    of 16 lanes, fma over 64 elements per step, reduced as (acc0 + acc2) + (acc1 + acc3) and then
//    _mm512_reduce_add_ps (ggml_reduce16); the K % 64 tail added one product at a time.
//  - n >= 2 (llamafile's tinyBLAS, "only for prompt processing") when every stacked matrix has rows % 4
//    == 0 and K % 16 == 0: one accumulator of 16 lanes per output, fma over 16 elements per step,
//    reduced by ggml_reduce16.
// For F16 weights the activations are rounded to fp16 first in both (ggml's vec_dot_type); for F32
// they stay f32.
#include <cstdint>
#include <vector>

#include "engine/cpu/huge_page_arena.h"
#include "engine/model/model_weights.h"
#include "engine/status.h"

namespace pagoda::engine::cpu {

struct FloatMatrix {
  int64_t rows = 0, cols = 0;      // y[rows] = W[rows][cols] . x[cols]
  bool f16 = true;                 // storage: h (fp16 bits) or f (f32)
  bool tinyblas = false;           // n >= 2 takes the tinyBLAS arithmetic (see above)
  ArenaVector<_Float16> h;         // [rows][cols]
  ArenaVector<float> f;            // [rows][cols]
  int64_t weight_bytes() const { return static_cast<int64_t>(h.size() * sizeof(_Float16) + f.size() * sizeof(float)); }
};

// True when every part is F16, or every part is F32: what make_float_matrix takes.
bool is_float_matrix(const std::vector<const GgufTensorInfo*>& parts);
// One matrix from row-stacked GGUF tensors (Q, K and V fused...), all F16 or all F32, sharing cols.
// `tinyblas_allowed` false: always ggml_vec_dot's order (what ggml's MUL_MAT_ID does for experts).
Result<FloatMatrix> make_float_matrix(const std::vector<const GgufTensorInfo*>& parts, bool tinyblas_allowed = true);
// Moves w's weights into the arena (huge pages, packed with the model's other matrices).
void move_into(FloatMatrix& w, const std::shared_ptr<HugePageArena>& arena);

// y[m][r] = sum_k W[r][k] x[m][k] for M activation rows, with the arithmetic ggml uses for that M.
// Parallel over rows (OpenMP).
// `scratch` holds the fp16-rounded activations of an F16 matrix.
void float_gemv(const FloatMatrix& w, const float* x, int32_t M, float* y, std::vector<float>& scratch);
// The same without the AVX-512 kernels (tests: both give the same bits).
void float_gemv_generic(const FloatMatrix& w, const float* x, int32_t M, float* y, std::vector<float>& scratch);

}  // namespace pagoda::engine::cpu
