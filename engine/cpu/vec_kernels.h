#pragma once
// Element-wise and row kernels of the CPU forward pass. Each is a plain loop written for the
// auto-vectorizer (`omp simd`), compiled three times (AVX-512, AVX2+FMA, baseline) with GCC
// target_clones; the loader picks the widest one the CPU has at run time.
#include <cstdint>

namespace pagoda::engine::cpu {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], for one row of n.
void rms_norm(const float* x, const float* weight, float* out, int n, float eps);
// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, float* out, int n);
// x[i] += y[i]
void add_inplace(float* x, const float* y, int64_t n);
// Rotates the (2i, 2i+1) pairs of each head of `x` (n_heads * head_dim floats, one token) by
// pos * theta_i, with theta_i = base^(-2i/head_dim) / freq_factors[i] (llama.cpp's "normal" RoPE).
void rope(float* x, int n_heads, int head_dim, int pos, const float* inv_freq);
// f32 -> bf16, round to nearest even.
void f32_to_bf16(const float* x, uint16_t* out, int64_t n);
float dot_f32(const float* a, const float* b, int n);
// y[i] += a * x[i]
void axpy_f32(float a, const float* x, float* y, int n);

}  // namespace pagoda::engine::cpu
