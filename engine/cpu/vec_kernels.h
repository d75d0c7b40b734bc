#pragma once
// Element-wise and row kernels of the CPU forward pass. Each is a plain loop written for the
// auto-vectorizer (`omp simd`), compiled three times (AVX-512, AVX2+FMA, baseline) with GCC
// target_clones; the loader picks the widest one the CPU has at run time. rms_norm, rope and
// silu_mul round exactly as ggml's CPU ops do (see ggml_numerics.h for why).
#include <cstdint>

namespace pagoda::engine::cpu {

// out[i] = x[i] * (1 / sqrt(mean(x^2) + eps)) * weight[i], for one row of n (sum of squares in double).
void rms_norm(const float* x, const float* weight, float* out, int n, float eps);
// out[i] = silu(gate[i]) * up[i], silu through ggml's vectorized expf.
void silu_mul(const float* gate, const float* up, float* out, int n);
// As ggml_vec_geglu_f32 (GGML_GELU_FP16): gelu(gate) from a table indexed by gate rounded to fp16, times
// up; gate <= -10 gives 0 and gate >= 10 gives gate * up. gelu is the tanh approximation, the table
// entries ggml's ggml_table_gelu_f16 (checked bit for bit in the tests).
void gelu_mul(const float* gate, const float* up, float* out, int n);
const _Float16* gelu_f16_table();  // 65536 entries, by the fp16 bits of x
// x = cap * tanh(x / cap), as ggml's scale, tanh, scale (logit soft-capping).
void softcap_inplace(float* x, float cap, int64_t n);
// x[i] += y[i]
void add_inplace(float* x, const float* y, int64_t n);
void scale_inplace(float* x, float s, int64_t n);  // x *= s, one rounding per element (ggml_scale)
// RoPE in llama.cpp's "normal" mode: pair (2i, 2i+1) of each head turns by theta_i / factor_i,
// theta_i = pos * base^(-2i/head_dim) computed by repeated multiplication as ggml does.
// rope_cache fills cos/sin pairs [head_dim] for one position; freq_factors may be null. Both are multiplied
// by mscale (LongRoPE's attn_factor; 1 otherwise), as ggml's rope_yarn does.
// freq_scale multiplies each angle (linear RoPE scaling), as rope_yarn's theta_interp.
void rope_cache(int pos, int head_dim, float theta_scale, const float* freq_factors, float* cos_sin,
                float mscale = 1.0f, float freq_scale = 1.0f);
void rope_apply(float* x, int n_heads, int head_dim, const float* cos_sin);
// The same angles in llama.cpp's "neox" mode (RopeStyle::HalfSplit): pair i is (i, i + head_dim/2).
void rope_apply_half_split(float* x, int n_heads, int head_dim, const float* cos_sin);
// f32 -> bf16, round to nearest even.
void f32_to_bf16(const float* x, uint16_t* out, int64_t n);
float dot_f32(const float* a, const float* b, int n);
// y[i] += a * x[i]
void axpy_f32(float a, const float* x, float* y, int n);
// The same with fp16 x / b (the KV cache), widened to f32 (F16C on AVX2 / AVX-512).
float dot_f16(const float* a, const _Float16* b, int n);
void axpy_f16(float a, const _Float16* x, float* y, int n);
// x[i] = round_to_fp16(x[i]), kept in f32.
void round_to_f16(float* x, int n);
// out[i] = fp16(x[i]), round to nearest even (F16C where the CPU has it).
void store_f16(const float* x, _Float16* out, int n);

}  // namespace pagoda::engine::cpu
