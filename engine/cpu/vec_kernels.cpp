#include "engine/cpu/vec_kernels.h"

#include <cmath>
#include <cstring>

#define PAGODA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace pagoda::engine::cpu {

PAGODA_CLONES void rms_norm(const float* x, const float* weight, float* out, int n, float eps) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) sum += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
#pragma omp simd
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

PAGODA_CLONES void silu_mul(const float* gate, const float* up, float* out, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

PAGODA_CLONES void add_inplace(float* x, const float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

PAGODA_CLONES void rope(float* x, int n_heads, int head_dim, int pos, const float* inv_freq) {
  const int half = head_dim / 2;
  float cos_t[128], sin_t[128];  // head_dim <= 256 (checked at load)
  for (int i = 0; i < half; ++i) {
    const float theta = static_cast<float>(pos) * inv_freq[i];
    cos_t[i] = std::cos(theta);
    sin_t[i] = std::sin(theta);
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
#pragma omp simd
    for (int i = 0; i < half; ++i) {
      const float x0 = v[2 * i], x1 = v[2 * i + 1];
      v[2 * i] = x0 * cos_t[i] - x1 * sin_t[i];
      v[2 * i + 1] = x0 * sin_t[i] + x1 * cos_t[i];
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

}  // namespace pagoda::engine::cpu
