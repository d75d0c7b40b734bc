// Kernels of the int8 matmul path (quant_matrix.h has the arithmetic they share with ggml). One
// template per instruction set and weight kind; quant_gemv() picks the widest the CPU has and splits
// the row pairs of W across OpenMP threads. Every kernel produces the same bits.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/cpu_features.h"
#include "engine/cpu/quant_matrix.h"
#include "engine/quant/dequant.h"

// GCC 12's AVX-512 headers pass an intentionally undefined vector through masked builtins, which
// -Wuninitialized flags at every inlined use (GCC bug 105593); the warning says nothing about our code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace pagoda::engine::cpu {

namespace {

constexpr int kMaxM = 8;  // activation rows per pass (accumulators held in registers)
constexpr size_t kKeepBytes = size_t{4} << 20;  // widened activations kept between calls (64 rows at K = 16k)

// ggml's hsum_float_8 on eight lanes.
inline float hsum8(const float* a) {
  const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
  return (r0 + r2) + (r1 + r3);
}

template <QuantKind K>
inline int weight_at(const uint8_t* u, int e) {
  if constexpr (K == QuantKind::Q8) {
    return static_cast<int8_t>(u[e] ^ 0x80);
  } else {
    const int nib = e < 16 ? u[e] & 0x0F : u[e - 16] >> 4;
    return K == QuantKind::Q4_0 ? nib - 8 : nib;
  }
}

// Reference kernel: one row at a time, the arithmetic spelled out.
template <QuantKind K>
void rows_scalar(const QuantMatrix& w, const QuantActs& x, int64_t p0, int64_t p1, float* y) {
  const int64_t nb = w.blocks_per_row(), rbb = w.row_block_bytes();
  for (int64_t row = 2 * p0; row < std::min(2 * p1, w.rows); ++row) {
    const int64_t pair = row / 2, half = row % 2;
    for (int32_t m = 0; m < x.M; ++m) {
      float acc[8] = {};
      float summs = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t slot = (pair * nb + b) * 2 + half;
        const uint8_t* u = w.u.data() + slot * rbb;
        const int8_t* a = x.q.data() + m * x.K + b * kQBlock;
        int32_t lanes[8] = {};
        for (int e = 0; e < kQBlock; ++e) lanes[e / 4] += weight_at<K>(u, e) * a[e];
        const float d = fp16_to_fp32(w.d[slot]) * x.d[m * nb + b];
        for (int k = 0; k < 8; ++k) acc[k] = std::fma(d, static_cast<float>(lanes[k]), acc[k]);
        if constexpr (K == QuantKind::Q4_1) summs = std::fma(fp16_to_fp32(w.m[w.m_index(row, b)]), x.s_q8_1[m * nb + b], summs);
      }
      y[m * w.rows + row] = hsum8(acc) + summs;
    }
  }
}

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// AVX2: ggml's non-VNNI lane sums (maddubs + madd). One weight row at a time; each of its blocks is
// unpacked once and multiplied with a tile of up to 4 activation rows, so extra rows (a batch, a
// prefill chunk, speculative drafts) cost the dot products but not the unpacking. Per (row, m) the
// operations and their order are those of a one-row pass, so the bits do not depend on M.
template <QuantKind K, int MT>
__attribute__((target("avx2,fma,f16c"))) inline void row_tile_avx2(const QuantMatrix& w, const QuantActs& x,
                                                                   int64_t row, int32_t m0, float* y) {
  const int64_t nb = w.blocks_per_row(), rbb = w.row_block_bytes();
  const int64_t pair = row / 2, half = row % 2;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MT];
  float summs[MT];
  for (int i = 0; i < MT; ++i) {
    acc[i] = _mm256_setzero_ps();
    summs[i] = 0.0f;
  }
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t slot = (pair * nb + b) * 2 + half;
    const uint8_t* u = w.u.data() + slot * rbb;
    __m256i q;
    if constexpr (K == QuantKind::Q8) {
      q = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u)), _mm256_set1_epi8(-128));
    } else {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
      const __m128i lo = _mm_set1_epi8(0x0F);
      q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), lo), _mm_and_si128(raw, lo));
      if constexpr (K == QuantKind::Q4_0) q = _mm256_sub_epi8(q, _mm256_set1_epi8(8));
    }
    const __m256i q_abs = _mm256_sign_epi8(q, q);  // signed kinds: |w|, the sign goes onto a
    const float wd = _cvtsh_ss(w.d[slot]);
    for (int i = 0; i < MT; ++i) {
      const int32_t m = m0 + i;
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q.data() + m * x.K + b * kQBlock));
      __m256i dot;
      if constexpr (K == QuantKind::Q4_1) {
        dot = _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), ones);
      } else {  // signed weights: |w| x sign(a, w), as ggml's mul_sum_i8_pairs_float
        dot = _mm256_madd_epi16(_mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(a, q)), ones);
      }
      const float d = wd * x.d[m * nb + b];
      acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot), acc[i]);
      if constexpr (K == QuantKind::Q4_1) summs[i] = std::fma(_cvtsh_ss(w.m[w.m_index(row, b)]), x.s_q8_1[m * nb + b], summs[i]);
    }
  }
  for (int i = 0; i < MT; ++i) y[(m0 + i) * w.rows + row] = hsum256(acc[i]) + summs[i];
}

template <QuantKind K>
__attribute__((target("avx2,fma,f16c"))) void rows_avx2(const QuantMatrix& w, const QuantActs& x, int64_t p0,
                                                        int64_t p1, float* y) {
  for (int64_t row = 2 * p0; row < std::min(2 * p1, w.rows); ++row) {
    int32_t m0 = 0;
    for (; m0 + 4 <= x.M; m0 += 4) row_tile_avx2<K, 4>(w, x, row, m0, y);
    switch (x.M - m0) {
      case 3: row_tile_avx2<K, 3>(w, x, row, m0, y); break;
      case 2: row_tile_avx2<K, 2>(w, x, row, m0, y); break;
      case 1: row_tile_avx2<K, 1>(w, x, row, m0, y); break;
      default: break;
    }
  }
}

// Activations laid out for the 512-bit kernel, once per call: each block duplicated so that one
// VPDPBUSD multiplies it with the same block of both rows of a pair.
struct WideActs {
  std::vector<uint8_t> a;    // [M][nb][64]
  std::vector<int32_t> zp;   // [M][nb][16]: per-lane -(zero_point * a) sums (Q4_0: 8, Q8: 128), VPDPBUSD's start
  int32_t m_stride = 0;      // M rounded up to kMaxM
  std::vector<float> d_t;    // [nb][m_stride]: activation scales, m fastest (one load per block)
  std::vector<float> s_t;    // [nb][m_stride]: Q8_1 sums, m fastest
};

constexpr int zero_point(QuantKind k) { return k == QuantKind::Q4_0 ? 8 : k == QuantKind::Q8 ? 128 : 0; }

void widen_acts(QuantKind kind, const QuantActs& x, WideActs& out) {
  const int64_t nb = x.K / kQBlock;
  out.a.resize(static_cast<size_t>(x.M * nb * 64));
  out.zp.resize(static_cast<size_t>(x.M * nb * 16));
  out.m_stride = (x.M + kMaxM - 1) / kMaxM * kMaxM;
  out.d_t.assign(static_cast<size_t>(nb * out.m_stride), 0.0f);
  out.s_t.assign(out.d_t.size(), 0.0f);
  for (int32_t m = 0; m < x.M; ++m) {
    for (int64_t b = 0; b < nb; ++b) {
      out.d_t[b * out.m_stride + m] = x.d[m * nb + b];
      out.s_t[b * out.m_stride + m] = x.s_q8_1[m * nb + b];
    }
  }
  const int zp = zero_point(kind);
#pragma omp parallel for schedule(static) if (x.M * nb >= 256)
  for (int64_t i = 0; i < x.M * nb; ++i) {
    const uint8_t* src = reinterpret_cast<const uint8_t*>(x.q.data()) + i * kQBlock;
    uint8_t* dst = out.a.data() + i * 64;
    if (kind == QuantKind::Q8) {  // [a0..31 | a0..31]: zmm lanes 0-7 row A, 8-15 row B
      std::copy_n(src, 32, dst);
      std::copy_n(src, 32, dst + 32);
    } else {  // [a0..15 | a0..15 | a16..31 | a16..31], matching [A_lo | B_lo | A_hi | B_hi]
      std::copy_n(src, 16, dst);
      std::copy_n(src, 16, dst + 16);
      std::copy_n(src + 16, 16, dst + 32);
      std::copy_n(src + 16, 16, dst + 48);
    }
    for (int lane = 0; lane < 16; ++lane) {
      int32_t s = 0;
      for (int j = 0; j < 4; ++j) s += static_cast<int8_t>(dst[lane * 4 + j]);
      out.zp[i * 16 + lane] = -zp * s;
    }
  }
}

#define PAGODA_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

// Q4_1's block-minimum term for one group of 16 weight rows and MC activation rows, written to y: lane r
// holds row 16g + r's chain summs = fma(m_b, s_b, summs) over the blocks in order, ggml's scalar loop per
// (row, m). The pair kernel then adds its lane sum to it (hsum + summs, as ggml; addition commutes).
// One 16-row load and convert per block replaces a load, a convert and two 256-bit FMAs per row pair.
template <int MC>
PAGODA_VNNI_TARGET void q4_1_summs_vnni(const QuantMatrix& w, const WideActs& wa, int64_t g, int32_t m0, float* y) {
  const int64_t nb = w.blocks_per_row();
  const uint16_t* mg = w.m.data() + g * nb * 16;
  __m512 acc[MC];
  for (int m = 0; m < MC; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 mv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mg + b * 16)));
    const float* s = &wa.s_t[b * wa.m_stride + m0];
    for (int m = 0; m < MC; ++m) acc[m] = _mm512_fmadd_ps(mv, _mm512_set1_ps(s[m]), acc[m]);
  }
  const int64_t row0 = g * 16;
  const auto mask = static_cast<__mmask16>((1u << std::min<int64_t>(16, w.rows - row0)) - 1);
  for (int m = 0; m < MC; ++m) _mm512_mask_storeu_ps(y + static_cast<int64_t>(m0 + m) * w.rows + row0, mask, acc[m]);
}

void q4_1_summs_group(const QuantMatrix& w, const WideActs& wa, int32_t M, int64_t g, float* y) {
  for (int32_t m0 = 0; m0 < M; m0 += kMaxM) {
    switch (std::min(kMaxM, M - m0)) {
      case 1: q4_1_summs_vnni<1>(w, wa, g, m0, y); break;
      case 2: q4_1_summs_vnni<2>(w, wa, g, m0, y); break;
      case 3: q4_1_summs_vnni<3>(w, wa, g, m0, y); break;
      case 4: q4_1_summs_vnni<4>(w, wa, g, m0, y); break;
      case 5: q4_1_summs_vnni<5>(w, wa, g, m0, y); break;
      case 6: q4_1_summs_vnni<6>(w, wa, g, m0, y); break;
      case 7: q4_1_summs_vnni<7>(w, wa, g, m0, y); break;
      default: q4_1_summs_vnni<8>(w, wa, g, m0, y); break;
    }
  }
}

// AVX-512 VNNI: P pairs of rows (P = 1 or 2) and one block per step, for up to kMaxM activation rows.
// With P = 2 one activation load and one scale broadcast feed two VPDPBUSDs, which is what bounds
// large steps (prefill, batched decode); each pair's arithmetic is unchanged. Q4_1's minimum term is
// already in y (q4_1_summs_vnni).
template <QuantKind K, int M, int P>
PAGODA_VNNI_TARGET void pairs_step_vnni(const QuantMatrix& w, const WideActs& wa, int32_t m0, int64_t pair0, float* y) {
  const int64_t nb = w.blocks_per_row(), rbb = w.row_block_bytes();
  // Lane pattern of the per-row scales: 4-bit layout [A B A B] x4 lanes, 8-bit layout [A B] x8 lanes.
  const __m512i scale_idx = K == QuantKind::Q8 ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
                                               : _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
  // 4-bit kinds: the pair's 32 bytes in both halves, the upper half shifted to its high nibbles.
  const __m512i nibble_shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
  const __m512i lo4 = _mm512_set1_epi8(0x0F);
  __m512 acc[P][M];
  for (int p = 0; p < P; ++p) {
    for (int m = 0; m < M; ++m) acc[p][m] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    __m512i u[P];
    __m512 dw[P];
    for (int p = 0; p < P; ++p) {
      const uint8_t* ub = w.u.data() + ((pair0 + p) * nb + b) * 2 * rbb;
      if constexpr (K == QuantKind::Q8) {
        u[p] = _mm512_loadu_si512(ub);
      } else {
        const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ub)));
        u[p] = _mm512_and_si512(_mm512_srlv_epi64(v, nibble_shift), lo4);
      }
      const int64_t slot = ((pair0 + p) * nb + b) * 2;
      uint32_t d2;
      __builtin_memcpy(&d2, &w.d[slot], 4);
      dw[p] = _mm512_permutexvar_ps(scale_idx, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(d2)))));
    }
    const float* da = &wa.d_t[b * wa.m_stride + m0];
    for (int m = 0; m < M; ++m) {
      const int64_t ab = (m0 + m) * nb + b;
      const __m512i a = _mm512_loadu_si512(wa.a.data() + ab * 64);
      const __m512 dam = _mm512_set1_ps(da[m]);
      // Q4_0 / Q8: the lanes start at -(zero point * a), so the weights' offset costs no extra op.
      const __m512i start = K == QuantKind::Q4_1 ? _mm512_setzero_si512() : _mm512_loadu_si512(wa.zp.data() + ab * 16);
      for (int p = 0; p < P; ++p) {
        const __m512i lanes = _mm512_dpbusd_epi32(start, u[p], a);
        acc[p][m] = _mm512_fmadd_ps(_mm512_mul_ps(dw[p], dam), _mm512_cvtepi32_ps(lanes), acc[p][m]);
      }
    }
  }
  for (int p = 0; p < P; ++p) {
    const int64_t rowA = 2 * (pair0 + p);
    for (int m = 0; m < M; ++m) {
      // Back to ggml's lane order per row: 8-bit [A | B]; 4-bit [A_lo B_lo A_hi B_hi] -> [A_lo A_hi | B_lo B_hi].
      const __m512 r = K == QuantKind::Q8 ? acc[p][m] : _mm512_shuffle_f32x4(acc[p][m], acc[p][m], _MM_SHUFFLE(3, 1, 2, 0));
      float* ym = y + static_cast<int64_t>(m0 + m) * w.rows;
      const float sum_a = hsum256(_mm512_castps512_ps256(r)), sum_b = hsum256(_mm512_extractf32x8_ps(r, 1));
      ym[rowA] = K == QuantKind::Q4_1 ? sum_a + ym[rowA] : sum_a;
      if (rowA + 1 < w.rows) ym[rowA + 1] = K == QuantKind::Q4_1 ? sum_b + ym[rowA + 1] : sum_b;
    }
  }
}

template <QuantKind K, int P>
void pairs_chunked_vnni(const QuantMatrix& w, const WideActs& wa, int32_t M, int64_t pair0, float* y) {
  for (int32_t m0 = 0; m0 < M; m0 += kMaxM) {
    switch (std::min(kMaxM, M - m0)) {
      case 1: pairs_step_vnni<K, 1, P>(w, wa, m0, pair0, y); break;
      case 2: pairs_step_vnni<K, 2, P>(w, wa, m0, pair0, y); break;
      case 3: pairs_step_vnni<K, 3, P>(w, wa, m0, pair0, y); break;
      case 4: pairs_step_vnni<K, 4, P>(w, wa, m0, pair0, y); break;
      case 5: pairs_step_vnni<K, 5, P>(w, wa, m0, pair0, y); break;
      case 6: pairs_step_vnni<K, 6, P>(w, wa, m0, pair0, y); break;
      case 7: pairs_step_vnni<K, 7, P>(w, wa, m0, pair0, y); break;
      default: pairs_step_vnni<K, 8, P>(w, wa, m0, pair0, y); break;
    }
  }
}

// Two pairs per step only pay off when the activation rows are reused enough (prefill, batched decode);
// a one- or two-row step is bandwidth-bound and streams one pair at a time faster (measured: 1 row
// 270-320 tok/s with one pair vs 204 with two).
constexpr int32_t kTwoPairsMinRows = 4;

template <QuantKind K>
void pairs_vnni(const QuantMatrix& w, const QuantActs& x, const WideActs& wa, int64_t p0, int64_t p1, float* y) {
  int64_t p = p0;
  if (x.M >= kTwoPairsMinRows) {
    for (; p + 2 <= p1; p += 2) pairs_chunked_vnni<K, 2>(w, wa, x.M, p, y);
  }
  for (; p < p1; ++p) pairs_chunked_vnni<K, 1>(w, wa, x.M, p, y);
}

GemvIsa pick_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512_vnni) return GemvIsa::Vnni;
  if (f.avx2 && f.fma) return GemvIsa::Avx2;
  return GemvIsa::Scalar;
}

template <QuantKind K>
void run_kind(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y) {
  // Reused across calls (this runs outside the parallel region, one caller per thread): a fresh one
  // per call zeroed and page-faulted up to 0.4 MiB each time (64 rows of K = 1536), ~3% of a 64-stream step.
  static thread_local WideActs caller_wa;
  WideActs& wa = caller_wa;  // shared with the parallel region below: the caller's, not each worker's own
  if (isa == GemvIsa::Vnni) widen_acts(K, x, wa);
  // A long prefill step's buffers (tens of MiB at 2,048 rows) are not kept for the decode steps after it.
  struct Trim {
    WideActs& wa;
    ~Trim() {
      if (wa.a.capacity() > kKeepBytes) wa = WideActs();
    }
  } trim{wa};
  // Work unit: a few row pairs; enough units for both threads, few enough to keep overhead low. One
  // unit is one 16-row group of Q4_1's minima.
  constexpr int64_t kPairsPerTask = 8;
  static_assert(2 * kPairsPerTask == 16, "a task's rows are one group of QuantMatrix::m");
  const int64_t tasks = (w.pairs() + kPairsPerTask - 1) / kPairsPerTask;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t p0 = t * kPairsPerTask, p1 = std::min(w.pairs(), p0 + kPairsPerTask);
    switch (isa) {
      case GemvIsa::Vnni:
        if constexpr (K == QuantKind::Q4_1) q4_1_summs_group(w, wa, x.M, t, y);
        pairs_vnni<K>(w, x, wa, p0, p1, y);
        break;
      case GemvIsa::Avx2: rows_avx2<K>(w, x, p0, p1, y); break;
      default: rows_scalar<K>(w, x, p0, p1, y); break;
    }
  }
}

}  // namespace

std::string quant_gemv_kernel_name() {
  switch (pick_isa()) {
    case GemvIsa::Vnni: return "avx512_vnni";
    case GemvIsa::Avx2: return "avx2";
    default: return "scalar";
  }
}

void quant_gemv(const QuantMatrix& w, const QuantActs& x, float* y) {
  static const GemvIsa isa = pick_isa();
  quant_gemv_with(isa, w, x, y);
}

void quant_gemv_with(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y) {
  switch (w.kind) {
    case QuantKind::Q4_1: run_kind<QuantKind::Q4_1>(isa, w, x, y); break;
    case QuantKind::Q4_0: run_kind<QuantKind::Q4_0>(isa, w, x, y); break;
    case QuantKind::Q4_0x8: repacked_q4_0_gemv(isa, w, x, y); break;
    case QuantKind::Q8: run_kind<QuantKind::Q8>(isa, w, x, y); break;
  }
}

}  // namespace pagoda::engine::cpu
