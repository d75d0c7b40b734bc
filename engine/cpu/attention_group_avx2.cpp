// The grouped attention kernel on AVX2 (laptops, Zen 3 and older servers): the AVX-512 kernel's passes
// (paged_attention.cpp) with each 16-lane vector of ggml's AVX-512 order held as two 8-lane registers,
// lo = lanes 0-7 and hi = lanes 8-15. Same operations on the same lanes, so the same bits: the first
// step of _mm512_reduce_add_ps (lane k + lane k+8) is then one vertical add, hi + lo.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "engine/cpu/attention_kernels.h"
#include "engine/cpu/ggml_numerics.h"

namespace pagoda::engine::cpu {

namespace {

#define PAGODA_AVX2 __attribute__((target("avx2,fma,f16c")))

PAGODA_AVX2 inline __m256 load_f16x8(const KvScalar* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

PAGODA_AVX2 inline __m256 round_f16x8(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

// One key's q . k as the 8 sums after the reduction's first step (lane k + lane k+8 of ggml's 16 lanes),
// in the step's order: tinyBLAS (Gemm) is one FMA chain over 16-lane chunks; ggml_vec_dot_f16 (Vec)
// keeps 4 accumulators over 64-element steps and adds them as a tree.
template <int NC>
PAGODA_AVX2 inline __m256 key_sums8(const float* k, const float* q, DotOrder order) {
  if (order == DotOrder::Gemm) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int c = 0; c < NC; ++c) {
      lo = _mm256_fmadd_ps(_mm256_loadu_ps(k + 16 * c), _mm256_loadu_ps(q + 16 * c), lo);
      hi = _mm256_fmadd_ps(_mm256_loadu_ps(k + 16 * c + 8), _mm256_loadu_ps(q + 16 * c + 8), hi);
    }
    return _mm256_add_ps(hi, lo);
  }
  __m256 lo[4], hi[4];
  for (int a = 0; a < 4; ++a) lo[a] = hi[a] = _mm256_setzero_ps();
  for (int c = 0; c < NC; ++c) {
    lo[c % 4] = _mm256_fmadd_ps(_mm256_loadu_ps(k + 16 * c), _mm256_loadu_ps(q + 16 * c), lo[c % 4]);
    hi[c % 4] = _mm256_fmadd_ps(_mm256_loadu_ps(k + 16 * c + 8), _mm256_loadu_ps(q + 16 * c + 8), hi[c % 4]);
  }
  const __m256 l = _mm256_add_ps(_mm256_add_ps(lo[0], lo[2]), _mm256_add_ps(lo[1], lo[3]));
  const __m256 h = _mm256_add_ps(_mm256_add_ps(hi[0], hi[2]), _mm256_add_ps(hi[1], hi[3]));
  return _mm256_add_ps(h, l);
}

// The rest of _mm512_reduce_add_ps for eight keys at once (t[m]: key m's 8 sums from key_sums8): the
// 128-bit halves added, then elements [0]+[2] and [1]+[3], then [0]+[1]. Every addition pairs the
// numbers that tree pairs, with the keys' partial sums packed side by side; element m is key m.
PAGODA_AVX2 inline __m256 reduce_8_keys(const __m256* t) {
  __m256 b[4];  // 128-bit lane i of b[n]: key 2n+i's four sums
  for (int n = 0; n < 4; ++n) {
    b[n] = _mm256_add_ps(_mm256_permute2f128_ps(t[2 * n], t[2 * n + 1], 0x31),
                         _mm256_permute2f128_ps(t[2 * n], t[2 * n + 1], 0x20));
  }
  // 128-bit lane i: [0]+[2], [1]+[3] of keys i, 2+i (c0) and 4+i, 6+i (c1).
  const __m256 c0 = _mm256_add_ps(_mm256_shuffle_ps(b[0], b[1], 0x44), _mm256_shuffle_ps(b[0], b[1], 0xEE));
  const __m256 c1 = _mm256_add_ps(_mm256_shuffle_ps(b[2], b[3], 0x44), _mm256_shuffle_ps(b[2], b[3], 0xEE));
  // Element 4i+k: key 2k+i; put key m at element m.
  const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(c0, c1, 0x88), _mm256_shuffle_ps(c0, c1, 0xDD));
  return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// PV for HS query heads, one accumulator lane at a time (lane l: positions l, l + lanes, ... in order,
// the FMA chain the position-ordered loop gives it), 16 dims at a time so the HS heads' accumulators
// stay in registers and each V row's slice is converted once for all of them.
// p: the heads' softmax weights ([HS] rows of p_stride); acc: [HS][lanes][head_dim].
template <int NC, int HS>
PAGODA_AVX2 void pv_lanes(const KvScalar* const* vrows, int32_t first, int32_t n_ctx, int32_t lanes, const float* p,
                          int32_t p_stride, float* acc) {
  constexpr int32_t hd = NC * 16;
  for (int32_t l = 0; l < lanes; ++l) {
    const int32_t start = first + ((l - first % lanes) + lanes) % lanes;
    for (int c = 0; c < NC; ++c) {
      __m256 lo[HS], hi[HS];
      for (int h = 0; h < HS; ++h) lo[h] = hi[h] = _mm256_setzero_ps();
      for (int32_t j = start; j < n_ctx; j += lanes) {
        const __m256 v0 = load_f16x8(vrows[j] + 16 * c), v1 = load_f16x8(vrows[j] + 16 * c + 8);
        for (int h = 0; h < HS; ++h) {
          const __m256 pb = _mm256_broadcast_ss(&p[h * p_stride + j]);
          lo[h] = _mm256_fmadd_ps(v0, pb, lo[h]);
          hi[h] = _mm256_fmadd_ps(v1, pb, hi[h]);
        }
      }
      for (int h = 0; h < HS; ++h) {
        float* a = acc + (static_cast<size_t>(h) * lanes + l) * hd + 16 * c;
        _mm256_storeu_ps(a, lo[h]);
        _mm256_storeu_ps(a + 8, hi[h]);
      }
    }
  }
}

constexpr int kPvHeads = 4;  // 8 accumulators, two V registers and a weight: 11 of the 16 ymm registers

template <int NC>
PAGODA_AVX2 void pv_heads(const KvScalar* const* vrows, int32_t first, int32_t n_ctx, int32_t lanes, const float* p,
                          int32_t p_stride, int32_t n_q, float* acc) {
  const size_t acc_head = static_cast<size_t>(lanes) * NC * 16;
  for (int32_t h = 0; h < n_q;) {
    const int32_t r = std::min(kPvHeads, n_q - h);
    const float* ph = p + static_cast<size_t>(h) * p_stride;
    float* ah = acc + h * acc_head;
    switch (r) {
      case 4:
        pv_lanes<NC, 4>(vrows, first, n_ctx, lanes, ph, p_stride, ah);
        break;
      case 3:
        pv_lanes<NC, 3>(vrows, first, n_ctx, lanes, ph, p_stride, ah);
        break;
      case 2:
        pv_lanes<NC, 2>(vrows, first, n_ctx, lanes, ph, p_stride, ah);
        break;
      default:
        pv_lanes<NC, 1>(vrows, first, n_ctx, lanes, ph, p_stride, ah);
        break;
    }
    h += r;
  }
}

template <int NC>
PAGODA_AVX2 void attend_group(const float* q_in, int32_t n_q, const PagedKvLayer& kv, std::span<const int32_t> table,
                              int32_t kv_head, int32_t first, int32_t n_ctx, const AttentionParams& params,
                              DotOrder order, AttentionScratch& s, float* out) {
  constexpr int32_t hd = NC * 16;
  const float inv_cap = params.softcap > 0.0f ? 1.0f / params.softcap : 0.0f;
  const int32_t padded = (n_ctx + kLanes - 1) / kLanes * kLanes;
  const int32_t chunk0 = first / kLanes * kLanes;  // the softmax's first chunk with an unmasked key
  s.scores.resize(static_cast<size_t>(n_q) * padded);
  s.keys.resize(static_cast<size_t>(kLanes) * hd);
  s.q.resize(static_cast<size_t>(n_q) * hd);
  for (int32_t i = 0; i < n_q * hd; i += 8) _mm256_storeu_ps(&s.q[i], round_f16x8(_mm256_loadu_ps(q_in + i)));
  gather_kv_rows(kv, table, kv_head, first, n_ctx, s);
  constexpr size_t row_bytes = hd * sizeof(KvScalar);

  // Scores, 16 keys at a time: each K row converted once for the n_q heads.
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int32_t c0 = chunk0; c0 < n_ctx; c0 += kLanes) {
    const int32_t lo = std::max(first, c0) - c0, hi = std::min(n_ctx, c0 + kLanes) - c0;  // keys [lo, hi) attended
    for (int32_t j = c0 + kLanes; j < std::min(n_ctx, c0 + 2 * kLanes); ++j)
      prefetch_row(s.krows[j], row_bytes, PrefetchTo::L1);
    for (int32_t jj = lo; jj < hi; ++jj) {
      prefetch_row(s.vrows[c0 + jj], row_bytes, PrefetchTo::L2);
      const KvScalar* k = s.krows[c0 + jj];
      for (int32_t i = 0; i < hd; i += 8) _mm256_storeu_ps(&s.keys[jj * hd + i], load_f16x8(k + i));
    }
    for (int32_t h = 0; h < n_q; ++h) {
      const float* q = &s.q[h * hd];
      float* sc = &s.scores[static_cast<size_t>(h) * padded + c0];
      for (int32_t half = 0; half < 2; ++half) {
        __m256 t[8];
        for (int32_t m = 0; m < 8; ++m) {
          const int32_t jj = 8 * half + m;
          t[m] = jj >= lo && jj < hi ? key_sums8<NC>(&s.keys[jj * hd], q, order) : _mm256_setzero_ps();
        }
        const __m256 dots = reduce_8_keys(t);
        if (params.softcap > 0.0f) {
          alignas(32) float d[8];
          _mm256_store_ps(d, dots);
          for (int32_t m = 0; m < 8; ++m) sc[8 * half + m] = score_of(d[m], params, inv_cap);
        } else {
          _mm256_storeu_ps(sc + 8 * half, _mm256_mul_ps(dots, _mm256_set1_ps(params.scale)));
        }
      }
      for (int32_t jj = 0; jj < kLanes; ++jj) {
        if (jj < lo || jj >= hi) sc[jj] = kNegInf;
      }
    }
  }

  // Softmax per head as ggml_vec_soft_max_f32: 16-lane expf chunks, chunk sums added in double; then the
  // weights rounded to fp16 for the PV matmul.
  for (int32_t h = 0; h < n_q; ++h) {
    float* sc = &s.scores[static_cast<size_t>(h) * padded];
    float max_score = kNegInf;
    for (int32_t j = first; j < n_ctx; ++j) max_score = std::max(max_score, sc[j]);
    const __m256 mx = _mm256_set1_ps(max_score);
    double sum = 0.0;
    for (int32_t c = chunk0; c < padded; c += kLanes) {
      alignas(32) float x[kLanes];
      _mm256_store_ps(x, _mm256_sub_ps(_mm256_loadu_ps(&sc[c]), mx));
      _mm256_store_ps(x + 8, _mm256_sub_ps(_mm256_loadu_ps(&sc[c + 8]), mx));
      ggml_exp16(x, &sc[c]);
      sum += ggml_reduce16(&sc[c]);
    }
    const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
    for (int32_t c = chunk0; c < padded; c += 8) {
      _mm256_storeu_ps(&sc[c], round_f16x8(_mm256_mul_ps(_mm256_loadu_ps(&sc[c]), inv)));
    }
  }

  // PV accumulators: lane = position mod 16 (Gemm) or mod 64 (Vec), each a row of head_dim.
  const int32_t lanes = order == DotOrder::Gemm ? 16 : 64;
  s.acc.resize(static_cast<size_t>(n_q) * lanes * hd);
  pv_heads<NC>(s.vrows.data(), first, n_ctx, lanes, s.scores.data(), padded, n_q, s.acc.data());

  // out[i] = the 16 lanes reduced in _mm512_reduce_add_ps's order (after ggml's 4-accumulator tree for
  // Vec), 8 dims at a time: every addition is across registers that each hold one lane for 8 dims.
  const size_t g = static_cast<size_t>(16) * hd;  // lane group g (Vec): lanes 16g .. 16g+15
  for (int32_t h = 0; h < n_q; ++h) {
    const float* acc = &s.acc[static_cast<size_t>(h) * lanes * hd];
    for (int32_t i = 0; i < hd; i += 8) {
      __m256 l[16];
      for (int k = 0; k < 16; ++k) {
        const float* a = &acc[static_cast<size_t>(k) * hd + i];
        l[k] = order == DotOrder::Gemm
                   ? _mm256_loadu_ps(a)
                   : _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(a + 2 * g)),
                                   _mm256_add_ps(_mm256_loadu_ps(a + g), _mm256_loadu_ps(a + 3 * g)));
      }
      __m256 t3[8], t6[4];
      for (int k = 0; k < 8; ++k) t3[k] = _mm256_add_ps(l[8 + k], l[k]);
      for (int k = 0; k < 4; ++k) t6[k] = _mm256_add_ps(t3[4 + k], t3[k]);
      _mm256_storeu_ps(out + h * hd + i, _mm256_add_ps(_mm256_add_ps(t6[0], t6[2]), _mm256_add_ps(t6[1], t6[3])));
    }
  }
}

}  // namespace

void attend_group_avx2(const float* q_in, int32_t n_q, const PagedKvLayer& kv, std::span<const int32_t> table,
                       int32_t kv_head, int32_t first, int32_t n_ctx, const AttentionParams& params, DotOrder order,
                       AttentionScratch& s, float* out) {
  switch (kv.head_dim) {
    case 64:
      return attend_group<4>(q_in, n_q, kv, table, kv_head, first, n_ctx, params, order, s, out);
    case 128:
      return attend_group<8>(q_in, n_q, kv, table, kv_head, first, n_ctx, params, order, s, out);
    case 192:
      return attend_group<12>(q_in, n_q, kv, table, kv_head, first, n_ctx, params, order, s, out);
    case 256:
      return attend_group<16>(q_in, n_q, kv, table, kv_head, first, n_ctx, params, order, s, out);
    default:
      std::abort();  // pick_kernel runs the grouped kernels only at these head sizes
  }
}

}  // namespace pagoda::engine::cpu
