#pragma once
// Arithmetic that reproduces ggml-cpu's x86 kernels bit for bit (llama.cpp's CPU backend, built for
// AVX-512). Why: llama.cpp is our correctness oracle, and a quantized forward pass is chaotic: one
// rounding that differs (an activation landing on the other side of an int8 rounding boundary)
// spreads through 30 layers into logit differences as large as the quantization noise itself.
// Matching the oracle token for token therefore means matching its lane order and fused
// multiply-adds, not only its formulas. The algorithms follow ggml (MIT licence):
//   expf   - ggml_v_expf (vec.h), a range-reduced polynomial finished with VSCALEFPS
//   reduce - _mm512_reduce_add_ps as GCC expands it (halves, quarters, pairs)
//   dots   - ggml_vec_dot_f16 (4 x 16-lane accumulators over 64-element steps) for one query row,
//            tinyBLAS (llamafile sgemm: one 16-lane FMA chain, then reduce) for two or more rows.
#include <cstdint>

namespace pagoda::engine::cpu {

inline constexpr int kLanes = 16;

// y[l] = ggml_v_expf(x[l]) for 16 lanes, on the widest instructions the CPU has; every variant gives
// the AVX-512 version's bits. The narrower ones by name, for tests (the AVX2 one needs AVX2 and FMA).
void ggml_exp16(const float* x, float* y);
void ggml_exp16_scalar(const float* x, float* y);
void ggml_exp16_avx2(const float* x, float* y);
// The sum of 16 lanes in _mm512_reduce_add_ps's order.
float ggml_reduce16(const float* lanes);

// Dot products of an f32 row (already rounded to fp16 values) with an fp16 row, in ggml's two orders.
float ggml_dot_f16_vec(const float* x, const _Float16* y, int n);   // ggml_vec_dot_f16
float ggml_dot_f16_gemm(const float* x, const _Float16* y, int n);  // tinyBLAS, n % 16 == 0

}  // namespace pagoda::engine::cpu
