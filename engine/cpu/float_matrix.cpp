// F16 / F32 matmuls with ggml's two orders of summation (float_matrix.h). A generic version written as
// lane loops with the reduction spelled out (ggml_numerics.h's style: each lane is one fma chain, so any
// vectorization the compiler picks gives the same bits) and an AVX-512 one with the lanes in registers.
#include "engine/cpu/float_matrix.h"

#include <immintrin.h>
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/cpu/cpu_features.h"
#include "engine/cpu/ggml_numerics.h"

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized (GCC bug 105593), as in quant_gemv.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace pagoda::engine::cpu {

namespace {

#define PAGODA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define PAGODA_INLINE inline __attribute__((always_inline))

// x * y rounded to float before any add: the product is never fused into an fma (measured against
// llama.cpp: its F32 vec_dot tail adds rounded products).
inline float rounded_product(float x, float y) {
  volatile float p = x * y;
  return p;
}

// ggml_vec_dot_f16 / ggml_vec_dot_f32 (AVX-512: GGML_F32x16_REDUCE) on one row.
template <class W>
PAGODA_INLINE float dot_vec(const W* w, const float* x, int64_t K) {
  float sum[4][kLanes] = {};
  const int64_t np = K & ~int64_t{63};
  for (int64_t i = 0; i < np; i += 64) {
    for (int j = 0; j < 4; ++j) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        sum[j][l] = std::fma(x[i + j * kLanes + l], static_cast<float>(w[i + j * kLanes + l]), sum[j][l]);
      }
    }
  }
  float x0[kLanes];
  for (int l = 0; l < kLanes; ++l) x0[l] = (sum[0][l] + sum[2][l]) + (sum[1][l] + sum[3][l]);
  if constexpr (sizeof(W) == 2) {  // ggml_vec_dot_f16 keeps its sum, and the tail, in double
    double d = ggml_reduce16(x0);
    for (int64_t i = np; i < K; ++i) d += static_cast<double>(x[i] * static_cast<float>(w[i]));
    return static_cast<float>(d);
  } else {  // ggml_vec_dot_f32: a float sum; its `sumf += x[i]*y[i]` is not contracted to an fma
    float f = ggml_reduce16(x0);
    for (int64_t i = np; i < K; ++i) f += rounded_product(x[i], w[i]);
    return f;
  }
}

// tinyBLAS's gemm_bloc on MT outputs of one weight row (MT independent chains keep the FMA unit busy).
template <class W, int MT>
PAGODA_INLINE void dot_tinyblas(const W* w, const float* x, int64_t K, float* out) {
  float acc[MT][kLanes] = {};
  for (int64_t i = 0; i < K; i += kLanes) {
    for (int m = 0; m < MT; ++m) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) acc[m][l] = std::fma(static_cast<float>(w[i + l]), x[m * K + i + l], acc[m][l]);
    }
  }
  for (int m = 0; m < MT; ++m) out[m] = ggml_reduce16(acc[m]);
}

// One weight row against M activation rows.
template <class W>
PAGODA_INLINE void row_generic(const W* w, const float* x, int64_t K, int32_t M, bool tiny, float* out) {
  int32_t m = 0;
  if (tiny) {
    for (; m + 4 <= M; m += 4) dot_tinyblas<W, 4>(w, x + m * K, K, out + m);
    for (; m < M; ++m) dot_tinyblas<W, 1>(w, x + m * K, K, out + m);
  } else {
    for (; m < M; ++m) out[m] = dot_vec(w, x + m * K, K);
  }
}

// Per instruction set: clones of plain functions (compilers do not multiversion templates), each with the
// lane loops above inlined.
PAGODA_CLONES void row_f16(const _Float16* w, const float* x, int64_t K, int32_t M, bool tiny, float* out) {
  row_generic(w, x, K, M, tiny, out);
}
PAGODA_CLONES void row_f32(const float* w, const float* x, int64_t K, int32_t M, bool tiny, float* out) {
  row_generic(w, x, K, M, tiny, out);
}

// AVX-512: the same lanes as one zmm register each (what the generic loops above describe), written out
// because compilers do not keep the 4 x 16 accumulators in registers on their own (measured 3.6 GB/s).
#define PAGODA_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

PAGODA_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
PAGODA_AVX512 inline __m512 load16(const _Float16* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <class W>
PAGODA_AVX512 float dot_vec_avx512(const W* w, const float* x, int64_t K) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  const int64_t np = K & ~int64_t{63};
  for (int64_t i = 0; i < np; i += 64) {
    s0 = _mm512_fmadd_ps(load16(x + i), load16(w + i), s0);
    s1 = _mm512_fmadd_ps(load16(x + i + 16), load16(w + i + 16), s1);
    s2 = _mm512_fmadd_ps(load16(x + i + 32), load16(w + i + 32), s2);
    s3 = _mm512_fmadd_ps(load16(x + i + 48), load16(w + i + 48), s3);
  }
  float x0[kLanes];
  _mm512_storeu_ps(x0, _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3)));
  if constexpr (sizeof(W) == 2) {
    double d = ggml_reduce16(x0);
    for (int64_t i = np; i < K; ++i) d += static_cast<double>(x[i] * static_cast<float>(w[i]));
    return static_cast<float>(d);
  } else {
    float f = ggml_reduce16(x0);
    for (int64_t i = np; i < K; ++i) f += rounded_product(x[i], w[i]);
    return f;
  }
}

template <class W, int MT>
PAGODA_AVX512 void dot_tinyblas_avx512(const W* w, const float* x, int64_t K, float* out) {
  __m512 acc[MT];
  for (int m = 0; m < MT; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t i = 0; i < K; i += kLanes) {
    const __m512 wv = load16(w + i);
    for (int m = 0; m < MT; ++m) acc[m] = _mm512_fmadd_ps(wv, load16(x + m * K + i), acc[m]);
  }
  for (int m = 0; m < MT; ++m) {
    float lanes[kLanes];
    _mm512_storeu_ps(lanes, acc[m]);
    out[m] = ggml_reduce16(lanes);
  }
}

template <class W>
PAGODA_AVX512 void row_avx512(const W* w, const float* x, int64_t K, int32_t M, bool tiny, float* out) {
  int32_t m = 0;
  if (tiny) {
    for (; m + 4 <= M; m += 4) dot_tinyblas_avx512<W, 4>(w, x + m * K, K, out + m);
    for (; m < M; ++m) dot_tinyblas_avx512<W, 1>(w, x + m * K, K, out + m);
  } else {
    for (; m < M; ++m) out[m] = dot_vec_avx512(w, x + m * K, K);
  }
}

inline void row(const _Float16* w, const float* x, int64_t K, int32_t M, bool tiny, float* out, bool avx512) {
  avx512 ? row_avx512(w, x, K, M, tiny, out) : row_f16(w, x, K, M, tiny, out);
}
inline void row(const float* w, const float* x, int64_t K, int32_t M, bool tiny, float* out, bool avx512) {
  avx512 ? row_avx512(w, x, K, M, tiny, out) : row_f32(w, x, K, M, tiny, out);
}

template <class W>
void run(const W* wd, const float* xd, const FloatMatrix& w, int32_t M, float* y, bool avx512) {
  const bool tiny = M >= 2 && w.tinyblas;
  const int64_t K = w.cols, N = w.rows;
  constexpr int64_t kRowsPerTask = 16;
  const int64_t tasks = (N + kRowsPerTask - 1) / kRowsPerTask;
#pragma omp parallel for schedule(static) if (N * K * M >= (1 << 16))
  for (int64_t t = 0; t < tasks; ++t) {
    float out[64];
    for (int64_t r = t * kRowsPerTask; r < std::min(N, (t + 1) * kRowsPerTask); ++r) {
      for (int32_t m0 = 0; m0 < M; m0 += 64) {  // out[] holds 64 activation rows at a time
        const int32_t mt = std::min<int32_t>(64, M - m0);
        row(wd + r * K, xd + m0 * K, K, mt, tiny, out, avx512);
        for (int32_t m = 0; m < mt; ++m) y[(m0 + m) * N + r] = out[m];
      }
    }
  }
}

}  // namespace

bool is_float_matrix(const std::vector<const GgufTensorInfo*>& parts) {
  if (parts.empty()) return false;
  const GgmlType t = parts[0]->type;
  if (t != GgmlType::F16 && t != GgmlType::F32) return false;
  for (const GgufTensorInfo* p : parts) {
    if (p->type != t) return false;
  }
  return true;
}

void move_into(FloatMatrix& w, const std::shared_ptr<HugePageArena>& arena) {
  w.h = copy_into(w.h, arena);
  w.f = copy_into(w.f, arena);
}

Result<FloatMatrix> make_float_matrix(const std::vector<const GgufTensorInfo*>& parts, bool tinyblas_allowed) {
  if (!is_float_matrix(parts)) return Status::error("make_float_matrix: the parts are not all F16 or all F32");
  FloatMatrix w;
  w.cols = parts[0]->dims[0];
  w.f16 = parts[0]->type == GgmlType::F16;
  w.tinyblas = tinyblas_allowed && w.cols % kLanes == 0;
  for (const GgufTensorInfo* t : parts) {
    if (t->dims.size() != 2 || t->dims[0] != w.cols) {
      return Status::error(fmt::format("tensor '{}': cannot stack into a {}-column matrix", t->name, w.cols));
    }
    w.rows += t->dims[1];
    if (t->dims[1] % 4 != 0) w.tinyblas = false;  // llama.cpp multiplies each part on its own
  }
  const size_t n = static_cast<size_t>(w.rows * w.cols);
  if (w.f16) {
    w.h.resize(n);
  } else {
    w.f.resize(n);
  }
  size_t at = 0;
  for (const GgufTensorInfo* t : parts) {
    const size_t count = static_cast<size_t>(t->num_elements());
    if (w.f16) {
      std::memcpy(w.h.data() + at, t->data, count * sizeof(_Float16));
    } else {
      std::memcpy(w.f.data() + at, t->data, count * sizeof(float));
    }
    at += count;
  }
  return w;
}

namespace {

void gemv(const FloatMatrix& w, const float* x, int32_t M, float* y, std::vector<float>& scratch, bool avx512) {
  if (!w.f16) return run(w.f.data(), x, w, M, y, avx512);
  // ggml converts the activations to its vec_dot_type, fp16 (round to nearest even), then back up.
  scratch.resize(static_cast<size_t>(M) * static_cast<size_t>(w.cols));
  for (size_t i = 0; i < scratch.size(); ++i) scratch[i] = static_cast<float>(static_cast<_Float16>(x[i]));
  run(w.h.data(), scratch.data(), w, M, y, avx512);
}

}  // namespace

void float_gemv(const FloatMatrix& w, const float* x, int32_t M, float* y, std::vector<float>& scratch) {
  static const bool avx512 = cpu_features().avx512;
  gemv(w, x, M, y, scratch, avx512);
}

void float_gemv_generic(const FloatMatrix& w, const float* x, int32_t M, float* y, std::vector<float>& scratch) {
  gemv(w, x, M, y, scratch, false);
}

}  // namespace pagoda::engine::cpu
