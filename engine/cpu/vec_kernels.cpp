#include "engine/cpu/vec_kernels.h"

#include "engine/cpu/ggml_numerics.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#define PAGODA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace pagoda::engine::cpu {

// As ggml_compute_forward_rms_norm_f32: float squares summed in double, float scale, then
// (x * scale) * w.
PAGODA_CLONES void rms_norm(const float* x, const float* weight, float* out, int n, float eps) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / n);
  const float scale = 1.0f / std::sqrt(mean + eps);
#pragma omp simd
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

// As ggml_vec_swiglu_f32: 16 lanes at a time through ggml's expf, x / (1 + e^-x) * g; the tail
// (n % 16) through libm expf as ggml_silu_f32.
void silu_mul(const float* gate, const float* up, float* out, int n) {
  int i = 0;
  float neg[kLanes], e[kLanes];
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) neg[l] = 0.0f - gate[i + l];
    ggml_exp16(neg, e);
    for (int l = 0; l < kLanes; ++l) out[i + l] = gate[i + l] / (1.0f + e[l]) * up[i + l];
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

namespace {

// ggml_gelu_f32 as ggml-cpu.c compiles it (C, FP contraction on): the one product-then-add fuses.
float gelu_tanh(float x) {
  constexpr float kCoefA = 0.044715f, kSqrt2OverPi = 0.79788456080286535587989211986876f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * std::fma(kCoefA * x, x, 1.0f)));
}

}  // namespace

const _Float16* gelu_f16_table() {
  static const std::vector<_Float16> table = [] {
    std::vector<_Float16> t(1 << 16);
    for (uint32_t i = 0; i < t.size(); ++i) {
      const uint16_t bits = static_cast<uint16_t>(i);
      _Float16 h;
      std::memcpy(&h, &bits, 2);
      const float g = gelu_tanh(static_cast<float>(h));
      // NaN inputs give ggml's one quiet NaN (F16C's conversion of tanhf's NaN there), unreachable from
      // gelu_mul's finite path but kept so the table is ggml's bit for bit.
      if (std::isnan(g)) {
        const uint16_t qnan = std::signbit(g) ? 0xfe00 : 0x7e00;
        std::memcpy(&t[i], &qnan, 2);
      } else {
        t[i] = static_cast<_Float16>(g);
      }
    }
    return t;
  }();
  return table.data();
}

void gelu_mul(const float* gate, const float* up, float* out, int n) {
  const _Float16* table = gelu_f16_table();
  for (int i = 0; i < n; ++i) {
    const float x = gate[i];
    if (x <= -10.0f) {
      out[i] = 0.0f;
    } else if (x >= 10.0f) {
      out[i] = x * up[i];
    } else {
      const _Float16 h = static_cast<_Float16>(x);
      uint16_t bits;
      std::memcpy(&bits, &h, 2);
      out[i] = static_cast<float>(table[bits]) * up[i];
    }
  }
}

void softcap_inplace(float* x, float cap, int64_t n) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] * inv) * cap;
}

PAGODA_CLONES void add_inplace(float* x, const float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

PAGODA_CLONES void scale_inplace(float* x, float s, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void rope_cache(int pos, int head_dim, float theta_scale, const float* freq_factors, float* cos_sin, float mscale,
                float freq_scale) {
  float theta = static_cast<float>(pos);
  for (int i0 = 0; i0 < head_dim; i0 += 2) {
    const float ff = freq_factors ? freq_factors[i0 / 2] : 1.0f;
    const float angle = freq_scale * (theta / ff);
    cos_sin[i0] = std::cos(angle) * mscale;
    cos_sin[i0 + 1] = std::sin(angle) * mscale;
    theta *= theta_scale;
  }
}

// ggml's rotate_pairs compiled with FP contraction (gnu++17): the first product of each line fuses.
PAGODA_CLONES void rope_apply(float* x, int n_heads, int head_dim, const float* cos_sin) {
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
#pragma omp simd
    for (int i = 0; i < head_dim; i += 2) {
      const float c = cos_sin[i], s = cos_sin[i + 1];
      const float x0 = v[i], x1 = v[i + 1];
      v[i] = std::fma(x0, c, -(x1 * s));
      v[i + 1] = std::fma(x0, s, x1 * c);
    }
  }
}

PAGODA_CLONES void rope_apply_half_split(float* x, int n_heads, int head_dim, const float* cos_sin) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
#pragma omp simd
    for (int i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      const float x0 = v[i], x1 = v[i + half];
      v[i] = std::fma(x0, c, -(x1 * s));
      v[i + half] = std::fma(x0, s, x1 * c);
    }
  }
}

PAGODA_CLONES void f32_to_bf16(const float* x, uint16_t* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even (activations are finite)
    out[i] = static_cast<uint16_t>(u >> 16);
  }
}

PAGODA_CLONES float dot_f32(const float* a, const float* b, int n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

PAGODA_CLONES void axpy_f32(float a, const float* x, float* y, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

PAGODA_CLONES float dot_f16(const float* a, const _Float16* b, int n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; ++i) s += a[i] * static_cast<float>(b[i]);
  return s;
}

PAGODA_CLONES void axpy_f16(float a, const _Float16* x, float* y, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) y[i] += a * static_cast<float>(x[i]);
}

PAGODA_CLONES void store_f16(const float* x, _Float16* out, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) out[i] = static_cast<_Float16>(x[i]);
}

PAGODA_CLONES void round_to_f16(float* x, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<_Float16>(x[i]));
}

}  // namespace pagoda::engine::cpu
