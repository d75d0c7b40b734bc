#include "engine/cpu/ggml_numerics.h"

#include <immintrin.h>

#include <cmath>

#include "engine/cpu/cpu_features.h"

// GCC 12's AVX-512 headers pass an intentionally undefined vector through masked builtins, which
// -Wuninitialized flags at every inlined use (GCC bug 105593); the warning says nothing about our code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace pagoda::engine::cpu {

namespace {

// ggml_v_expf, one lane at a time: the same operations and roundings as the AVX-512 version.
inline float expf_lane(float x) {
  const float r = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
  return std::ldexp(j, static_cast<int>(n));  // == VSCALEFPS(j, n) for integral n in range
}

__attribute__((target("avx512f,avx512dq"))) void exp16_avx512(const float* xp, float* yp) {
  const __m512 x = _mm512_loadu_ps(xp);
  const __m512 r = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
  const __m512 n = _mm512_sub_ps(z, r);
  const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                    _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
  const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 j = _mm512_fmadd_ps(
      _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                      _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
      u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0F)));
  __m512 res = _mm512_scalef_ps(j, n);
  if (!_mm512_kortestz(d, d)) {
    const __m512 zero = _mm512_setzero_ps();
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
    res = _mm512_mask_blend_ps(d, res, alt);
  }
  _mm512_storeu_ps(yp, res);
}

// The same operations on eight lanes at a time. VSCALEFPS is AVX-512 only: where every lane's result
// is a normal float (n in [-125, 127], j in [0.7, 1.5)), j * 2^n built from the exponent bits is exact
// and equal to it; otherwise (over/underflow, inf, NaN) the eight lanes go through expf_lane.
__attribute__((target("avx2,fma"))) void exp8_avx2(const float* xp, float* yp) {
  const __m256 x = _mm256_loadu_ps(xp);
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  const __m256 n = _mm256_sub_ps(z, r);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                      _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0F)));
  const __m256 normal = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-125.0f), _CMP_GE_OQ),
                                      _mm256_cmp_ps(n, _mm256_set1_ps(127.0f), _CMP_LE_OQ));
  if (_mm256_movemask_ps(normal) != 0xFF) {
    for (int l = 0; l < 8; ++l) yp[l] = expf_lane(xp[l]);
    return;
  }
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  _mm256_storeu_ps(yp, _mm256_mul_ps(j, _mm256_castsi256_ps(bits)));
}

}  // namespace

void ggml_exp16_scalar(const float* x, float* y) {
  for (int l = 0; l < kLanes; ++l) y[l] = expf_lane(x[l]);
}

void ggml_exp16_avx2(const float* x, float* y) {
  exp8_avx2(x, y);
  exp8_avx2(x + 8, y + 8);
}

void ggml_exp16(const float* x, float* y) {
  static const auto exp16 = cpu_features().avx512                        ? exp16_avx512
                            : cpu_features().avx2 && cpu_features().fma ? ggml_exp16_avx2
                                                                         : ggml_exp16_scalar;
  exp16(x, y);
}

float ggml_reduce16(const float* a) {
  float t3[8], t6[4];
  for (int k = 0; k < 8; ++k) t3[k] = a[8 + k] + a[k];
  for (int k = 0; k < 4; ++k) t6[k] = t3[4 + k] + t3[k];
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) float ggml_dot_f16_vec(
    const float* x, const _Float16* y, int n) {
  float sum[4][kLanes] = {};
  const int np = n & ~63;
  for (int i = 0; i < np; i += 64) {
    for (int j = 0; j < 4; ++j) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        sum[j][l] = std::fma(x[i + j * kLanes + l], static_cast<float>(y[i + j * kLanes + l]), sum[j][l]);
      }
    }
  }
  float x0[kLanes];
  for (int l = 0; l < kLanes; ++l) x0[l] = (sum[0][l] + sum[2][l]) + (sum[1][l] + sum[3][l]);
  double sumf = ggml_reduce16(x0);
  for (int i = np; i < n; ++i) sumf += static_cast<double>(x[i] * static_cast<float>(y[i]));
  return static_cast<float>(sumf);
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) float ggml_dot_f16_gemm(
    const float* x, const _Float16* y, int n) {
  float acc[kLanes] = {};
  for (int i = 0; i < n; i += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) acc[l] = std::fma(static_cast<float>(y[i + l]), x[i + l], acc[l]);
  }
  return ggml_reduce16(acc);
}

}  // namespace pagoda::engine::cpu
