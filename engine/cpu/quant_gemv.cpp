// The small-batch GEMV kernels over QuantMatrix (see quant_matrix.h for the math). One template per
// instruction set, instantiated for each M (activation rows) and bit width; quant_gemv() picks the
// widest the CPU has and splits the rows of W across OpenMP threads.
#include <immintrin.h>

#include <cmath>

#include "engine/cpu/cpu_features.h"
#include "engine/cpu/quant_matrix.h"

namespace pagoda::engine::cpu {

namespace {

constexpr int kMaxM = 8;

// sum_b c[b] * s[b]: the affine-offset term of row n against activation row m.
inline float offset_term(const QuantMatrix& w, const QuantActs& x, int64_t n, int m) {
  const int64_t nb = w.blocks_per_row();
  const float* c = &w.c[n * nb];
  const float* s = w.c_uses_q8_1_sum[n] ? &x.s_q8_1[m * nb] : &x.s_exact[m * nb];
  // ggml's `summs += m * s` compiles to a fused multiply-add (gnu11, FP contraction on).
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) acc = std::fma(c[b], s[b], acc);
  return acc;
}

template <int M, int BITS>
void rows_scalar(const QuantMatrix& w, const QuantActs& x, int64_t n0, int64_t n1, float* y) {
  const int64_t nb = w.blocks_per_row(), K = w.cols, N = w.rows;
  for (int64_t n = n0; n < n1; ++n) {
    for (int m = 0; m < M; ++m) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* ub = w.u.data() + (n * nb + b) * w.bytes_per_block();
        const int8_t* qa = x.q.data() + m * K + b * kQBlock;
        int32_t dot = 0;
        for (int j = 0; j < kQBlock; ++j) {
          const int u = BITS == 4 ? (j < 16 ? ub[j] & 0x0F : ub[j - 16] >> 4) : ub[j];
          dot += u * qa[j];
        }
        acc += w.d[n * nb + b] * x.d[m * nb + b] * static_cast<float>(dot);
      }
      y[m * N + n] = acc + offset_term(w, x, n, m);
    }
  }
}

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int BITS>
__attribute__((target("avx2,fma"))) inline __m256i load_u8x32(const uint8_t* ub) {
  if constexpr (BITS == 4) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ub));
    const __m128i mask = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), _mm_and_si128(raw, mask));
  } else {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ub));
  }
}

template <int M, int BITS>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma"))) void rows_vnni(const QuantMatrix& w,
                                                                                       const QuantActs& x, int64_t n0,
                                                                                       int64_t n1, float* y) {
  const int64_t nb = w.blocks_per_row(), K = w.cols, N = w.rows;
  for (int64_t n = n0; n < n1; ++n) {
    __m256 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_ps();
    const uint8_t* urow = w.u.data() + n * nb * w.bytes_per_block();
    const float* drow = w.d.data() + n * nb;
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i u = load_u8x32<BITS>(urow + b * w.bytes_per_block());
      for (int m = 0; m < M; ++m) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q.data() + m * K + b * kQBlock));
        const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, a);
        acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(drow[b] * x.d[m * nb + b]), acc[m]);
      }
    }
    for (int m = 0; m < M; ++m) y[m * N + n] = hsum256(acc[m]) + offset_term(w, x, n, m);
  }
}

template <int M, int BITS>
__attribute__((target("avx2,fma"))) void rows_avx2(const QuantMatrix& w, const QuantActs& x, int64_t n0, int64_t n1,
                                                   float* y) {
  const int64_t nb = w.blocks_per_row(), K = w.cols, N = w.rows;
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (int64_t n = n0; n < n1; ++n) {
    __m256 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_ps();
    const uint8_t* urow = w.u.data() + n * nb * w.bytes_per_block();
    const float* drow = w.d.data() + n * nb;
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i u = load_u8x32<BITS>(urow + b * w.bytes_per_block());
      // 8-bit weights: u*a pairs overflow int16 in maddubs, so use signed w = u - 128 with the sign
      // trick and add 128*sum(a) back; 4-bit weights go straight through maddubs.
      const __m256i ws = BITS == 8 ? _mm256_xor_si256(u, _mm256_set1_epi8(static_cast<char>(0x80))) : u;
      for (int m = 0; m < M; ++m) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q.data() + m * K + b * kQBlock));
        __m256i dot;
        if constexpr (BITS == 8) {
          dot = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(ws, ws), _mm256_sign_epi8(a, ws)), ones16);
          dot = _mm256_add_epi32(dot, _mm256_set1_epi32(16 * x.qsum[m * nb + b]));  // 8 lanes * 16 = 128 * sum
        } else {
          dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ws, a), ones16);
        }
        acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(drow[b] * x.d[m * nb + b]), acc[m]);
      }
    }
    for (int m = 0; m < M; ++m) y[m * N + n] = hsum256(acc[m]) + offset_term(w, x, n, m);
  }
}

using RowsFn = void (*)(const QuantMatrix&, const QuantActs&, int64_t, int64_t, float*);

using Isa = GemvIsa;

Isa pick_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512_vnni) return Isa::Vnni;
  if (f.avx2 && f.fma) return Isa::Avx2;
  return Isa::Scalar;
}

template <int M, int BITS>
RowsFn pick_fn(Isa isa) {
  switch (isa) {
    case Isa::Vnni: return rows_vnni<M, BITS>;
    case Isa::Avx2: return rows_avx2<M, BITS>;
    default: return rows_scalar<M, BITS>;
  }
}

template <int BITS, int... Ms>
RowsFn pick_by_m(Isa isa, int m, std::integer_sequence<int, Ms...>) {
  RowsFn fn = nullptr;
  ((m == Ms + 1 ? (fn = pick_fn<Ms + 1, BITS>(isa), 0) : 0), ...);
  return fn;
}

}  // namespace

std::string quant_gemv_kernel_name() {
  switch (pick_isa()) {
    case Isa::Vnni: return "avx512_vnni";
    case Isa::Avx2: return "avx2";
    default: return "scalar";
  }
}

void quant_gemv(const QuantMatrix& w, const QuantActs& x, float* y) {
  static const Isa isa = pick_isa();
  quant_gemv_with(isa, w, x, y);
}

void quant_gemv_with(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y) {
  // Larger batches are processed kMaxM rows at a time (callers normally route them to the GEMM path).
  for (int32_t m0 = 0; m0 < x.M; m0 += kMaxM) {
    const int m = std::min(kMaxM, x.M - m0);
    QuantActs part;
    const QuantActs* xs = &x;
    if (x.M > kMaxM) {  // slice rows m0.. of the activations
      const int64_t nb = x.K / kQBlock;
      part.M = m;
      part.K = x.K;
      part.q.assign(x.q.begin() + m0 * x.K, x.q.begin() + (m0 + m) * x.K);
      part.d.assign(x.d.begin() + m0 * nb, x.d.begin() + (m0 + m) * nb);
      part.s_q8_1.assign(x.s_q8_1.begin() + m0 * nb, x.s_q8_1.begin() + (m0 + m) * nb);
      part.s_exact.assign(x.s_exact.begin() + m0 * nb, x.s_exact.begin() + (m0 + m) * nb);
      part.qsum.assign(x.qsum.begin() + m0 * nb, x.qsum.begin() + (m0 + m) * nb);
      xs = &part;
    }
    const RowsFn fn = w.bits == 4 ? pick_by_m<4>(isa, m, std::make_integer_sequence<int, kMaxM>{})
                                  : pick_by_m<8>(isa, m, std::make_integer_sequence<int, kMaxM>{});
    float* ym = y + static_cast<int64_t>(m0) * w.rows;
    constexpr int64_t kRowsPerTask = 16;
    const int64_t tasks = (w.rows + kRowsPerTask - 1) / kRowsPerTask;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      fn(w, *xs, t * kRowsPerTask, std::min(w.rows, (t + 1) * kRowsPerTask), ym);
    }
  }
}

}  // namespace pagoda::engine::cpu
