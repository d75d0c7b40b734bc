#include "engine/cpu/paged_attention.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/cpu/attention_kernels.h"
#include "engine/cpu/cpu_features.h"
#include "engine/cpu/ggml_numerics.h"
#include "engine/cpu/vec_kernels.h"

// GCC 12's AVX-512 headers trip -Wuninitialized inside masked builtins (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace pagoda::engine::cpu {

void write_kv(const StepPlan& plan, const float* k, const float* v, const PagedKvLayer& kv) {
  const int32_t T = plan.num_tokens();
  const int32_t row = kv.n_kv_heads * kv.head_dim;
  for (int32_t t = 0; t < T; ++t) {
    const int32_t slot = kv.window_pool ? plan.window_slot_mapping[t] : plan.slot_mapping[t];
    const int32_t block = slot / kv.block_size, off = slot % kv.block_size;
    for (int32_t h = 0; h < kv.n_kv_heads; ++h) {
      KvScalar* kd = kv.key(block, h) + off * kv.head_dim;
      KvScalar* vd = kv.value(block, h) + off * kv.head_dim;
      const float* ks = k + t * row + h * kv.head_dim;
      const float* vs = v + t * row + h * kv.head_dim;
      store_f16(ks, kd, kv.head_dim);
      store_f16(vs, vd, kv.head_dim);
    }
  }
}

void gather_kv_rows(const PagedKvLayer& kv, std::span<const int32_t> table, int32_t kv_head, int32_t first,
                    int32_t n_ctx, AttentionScratch& s) {
  const int32_t bs = kv.block_size, hd = kv.head_dim;
  s.krows.resize(n_ctx);
  s.vrows.resize(n_ctx);
  for (int32_t j0 = first / bs * bs; j0 < n_ctx; j0 += bs) {
    const KvScalar* kb = kv.key(table[j0 / bs], kv_head);
    const KvScalar* vb = kv.value(table[j0 / bs], kv_head);
    for (int32_t j = std::max(j0, first); j < std::min(j0 + bs, n_ctx); ++j) {
      s.krows[j] = kb + (j - j0) * hd;
      s.vrows[j] = vb + (j - j0) * hd;
    }
  }
}

namespace {

// llama.cpp runs a prompt as multi-row steps and each generated token as a one-row step, so a prompt
// token takes the Gemm order (a one-token prompt is one row: Vec) and a generated token the Vec one.
// A plan without the prompt length falls back to this step's row count, as llama.cpp does.
bool prefill_order(const StepPlan& plan, int32_t b, int32_t t) {
  const int32_t prompt_len = plan.prompt_lens.empty() ? -1 : plan.prompt_lens[b];
  if (prompt_len < 0) return plan.cu_seqlens[b + 1] - plan.cu_seqlens[b] > 1;
  return prompt_len >= 2 && plan.positions[t] < prompt_len;
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void fma_row(float* acc, const KvScalar* v,
                                                                                          float p, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) acc[i] = std::fma(static_cast<float>(v[i]), p, acc[i]);
}

#define PAGODA_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,f16c,fma")))

PAGODA_AVX512 inline __m512 load_f16x16(const KvScalar* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// The sixteen horizontal sums of d[0..15] at once, each with the bits of _mm512_reduce_add_ps(d[k]):
// GCC's order is 256-bit halves added, then 128-bit halves, then elements [0]+[2] and [1]+[3], then
// [0]+[1]. Every addition below pairs the same two numbers that tree pairs (addition commutes), with
// the sixteen vectors' partial sums packed side by side, so a chunk of 16 keys costs 15 additions
// instead of 16 reductions. a[m]: the 256-bit step of keys 2m and 2m+1 (halves_added).
PAGODA_AVX512 inline __m512 reduce_add_16(const __m512* a) {
  __m512 b[4];
  for (int n = 0; n < 4; ++n) {  // 128-bit lane k of b[n]: the 4-element step of key 4n+k
    b[n] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * n], a[2 * n + 1], 0xDD),
                         _mm512_shuffle_f32x4(a[2 * n], a[2 * n + 1], 0x88));
  }
  // 128-bit lane k: elements [0]+[2], [1]+[3] of keys k, 4+k (c0) and 8+k, 12+k (c1).
  const __m512 c0 = _mm512_add_ps(_mm512_shuffle_ps(b[0], b[1], 0x44), _mm512_shuffle_ps(b[0], b[1], 0xEE));
  const __m512 c1 = _mm512_add_ps(_mm512_shuffle_ps(b[2], b[3], 0x44), _mm512_shuffle_ps(b[2], b[3], 0xEE));
  // Element 4k+i: key 4i+k; put key m at element m.
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(c0, c1, 0x88), _mm512_shuffle_ps(c0, c1, 0xDD));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}

// The 256-bit step of _mm512_reduce_add_ps for two keys' 16-lane partial sums: keys x (elements 0-7)
// and y (8-15).
PAGODA_AVX512 inline __m512 halves_added(__m512 x, __m512 y) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0xEE), _mm512_shuffle_f32x4(x, y, 0x44));
}

// One key's 16-lane partial sums of q . k before the horizontal reduction, in ggml's order for the step:
// tinyBLAS (Gemm) is one FMA chain over 16-lane chunks; ggml_vec_dot_f16 (Vec) keeps 4 accumulators over
// 64-element steps and adds them as a tree.
template <int NC>
PAGODA_AVX512 inline __m512 key_partials(const float* k, const __m512* q, DotOrder order) {
  if (order == DotOrder::Gemm) {
    __m512 acc = _mm512_setzero_ps();
    for (int c = 0; c < NC; ++c) acc = _mm512_fmadd_ps(_mm512_loadu_ps(k + 16 * c), q[c], acc);
    return acc;
  }
  __m512 sum[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int c = 0; c < NC; ++c) sum[c % 4] = _mm512_fmadd_ps(_mm512_loadu_ps(k + 16 * c), q[c], sum[c % 4]);
  return _mm512_add_ps(_mm512_add_ps(sum[0], sum[2]), _mm512_add_ps(sum[1], sum[3]));
}

// PV for HS query heads at once, one accumulator lane at a time: lane l (position mod `lanes`) gets
// its FMA chain over positions l, l + lanes, ... in order, as the position-ordered loop gives it, but
// with the HS heads' accumulators in registers and each V row converted once for all of them.
// p: the heads' softmax weights ([HS] rows of p_stride); acc: [HS][lanes][head_dim].
template <int NC, int HS>
PAGODA_AVX512 void pv_lanes(const KvScalar* const* vrows, int32_t first, int32_t n_ctx, int32_t lanes, const float* p,
                            int32_t p_stride, float* acc) {
  constexpr int32_t hd = NC * 16;
  for (int32_t l = 0; l < lanes; ++l) {
    __m512 a[HS][NC];
    for (int h = 0; h < HS; ++h)
      for (int c = 0; c < NC; ++c) a[h][c] = _mm512_setzero_ps();
    for (int32_t j = first + ((l - first % lanes) + lanes) % lanes; j < n_ctx; j += lanes) {
      const KvScalar* v = vrows[j];
      __m512 vv[NC];
      for (int c = 0; c < NC; ++c) vv[c] = load_f16x16(v + 16 * c);
      for (int h = 0; h < HS; ++h) {
        const __m512 pb = _mm512_set1_ps(p[h * p_stride + j]);
        for (int c = 0; c < NC; ++c) a[h][c] = _mm512_fmadd_ps(vv[c], pb, a[h][c]);
      }
    }
    for (int h = 0; h < HS; ++h)
      for (int c = 0; c < NC; ++c) _mm512_storeu_ps(acc + (static_cast<size_t>(h) * lanes + l) * hd + 16 * c, a[h][c]);
  }
}

// How many heads' accumulators stay in registers at once (HS * NC <= 16 of the 32 zmm registers).
template <int NC>
constexpr int kPvHeads = NC <= 4 ? 4 : NC <= 8 ? 2 : 1;

template <int NC>
PAGODA_AVX512 void pv_heads(const KvScalar* const* vrows, int32_t first, int32_t n_ctx, int32_t lanes, const float* p,
                            int32_t p_stride, int32_t n_q, float* acc) {
  const size_t acc_head = static_cast<size_t>(lanes) * NC * 16;
  for (int32_t h = 0; h < n_q;) {
    const int32_t r = std::min(kPvHeads<NC>, n_q - h);
    const float* ph = p + static_cast<size_t>(h) * p_stride;
    float* ah = acc + h * acc_head;
    if constexpr (kPvHeads<NC> >= 4) {
      if (r == 4) pv_lanes<NC, 4>(vrows, first, n_ctx, lanes, ph, p_stride, ah);
      if (r == 3) pv_lanes<NC, 3>(vrows, first, n_ctx, lanes, ph, p_stride, ah);
    }
    if constexpr (kPvHeads<NC> >= 2) {
      if (r == 2) pv_lanes<NC, 2>(vrows, first, n_ctx, lanes, ph, p_stride, ah);
    }
    if (r == 1) pv_lanes<NC, 1>(vrows, first, n_ctx, lanes, ph, p_stride, ah);
    h += r;
  }
}

// attend_one's arithmetic for the n_q query heads that share one KV head (grouped-query attention:
// 3 per KV head in SmolLM2), in AVX-512 registers: each K and V row is loaded and converted once for
// all of them, the scores of 16 keys are reduced together, and the PV accumulators live in registers.
// q_in and out: n_q rows of head_dim (consecutive heads). Keys [first, n_ctx) are attended to; those
// before `first` (outside a sliding window) are masked: -inf scores, never read. Lanes and softmax
// chunks stay those of the absolute positions, so the sums are ggml's over the whole masked row.
template <int NC>
PAGODA_AVX512 void attend_group_avx512(const float* q_in, int32_t n_q, const PagedKvLayer& kv,
                                       std::span<const int32_t> table, int32_t kv_head, int32_t first, int32_t n_ctx,
                                       const AttentionParams& params, DotOrder order, AttentionScratch& s, float* out) {
  constexpr int32_t hd = NC * 16;
  const float inv_cap = params.softcap > 0.0f ? 1.0f / params.softcap : 0.0f;
  const int32_t padded = (n_ctx + kLanes - 1) / kLanes * kLanes;
  const int32_t chunk0 = first / kLanes * kLanes;  // the softmax's first chunk with an unmasked key
  s.scores.resize(static_cast<size_t>(n_q) * padded);
  s.keys.resize(static_cast<size_t>(kLanes) * hd);
  s.q.resize(static_cast<size_t>(n_q) * hd);
  for (int32_t i = 0; i < n_q * hd; i += 16) {  // rounded to fp16 as ggml converts q
    _mm512_storeu_ps(&s.q[i], _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(q_in + i), _MM_FROUND_TO_NEAREST_INT)));
  }
  gather_kv_rows(kv, table, kv_head, first, n_ctx, s);
  constexpr size_t row_bytes = hd * sizeof(KvScalar);

  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int32_t c0 = chunk0; c0 < n_ctx; c0 += kLanes) {
    const int32_t lo = std::max(first, c0) - c0, hi = std::min(n_ctx, c0 + kLanes) - c0;  // keys [lo, hi) attended
    const __mmask16 valid = static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
    // Paged blocks are not contiguous, so the hardware prefetchers stall at each block boundary: ask for
    // the next chunk's K rows now, and this chunk's V rows (into L2) for the PV pass.
    // (Prefetching further ahead measured no faster: bench/attention_micro.cpp.)
    for (int32_t j = c0 + kLanes; j < std::min(n_ctx, c0 + 2 * kLanes); ++j)
      prefetch_row(s.krows[j], row_bytes, PrefetchTo::L1);
    for (int32_t jj = lo; jj < hi; ++jj) {
      prefetch_row(s.vrows[c0 + jj], row_bytes, PrefetchTo::L2);
      const KvScalar* k = s.krows[c0 + jj];
      for (int c = 0; c < NC; ++c) _mm512_storeu_ps(&s.keys[jj * hd + 16 * c], load_f16x16(k + 16 * c));
    }
    for (int32_t h = 0; h < n_q; ++h) {
      __m512 q[NC];
      for (int c = 0; c < NC; ++c) q[c] = _mm512_loadu_ps(&s.q[h * hd + 16 * c]);
      __m512 pairs[8];
      for (int32_t m = 0; m < 8; ++m) {
        __m512 x[2];
        for (int32_t i = 0; i < 2; ++i) {
          const int32_t jj = 2 * m + i;
          x[i] = jj >= lo && jj < hi ? key_partials<NC>(&s.keys[jj * hd], q, order) : _mm512_setzero_ps();
        }
        pairs[m] = halves_added(x[0], x[1]);
      }
      const __m512 dots = reduce_add_16(pairs);
      __m512 sc;
      if (params.softcap > 0.0f) {
        alignas(64) float d[kLanes];
        _mm512_store_ps(d, dots);
        for (int32_t jj = lo; jj < hi; ++jj) d[jj] = score_of(d[jj], params, inv_cap);
        sc = _mm512_load_ps(d);
      } else {
        sc = _mm512_mul_ps(dots, _mm512_set1_ps(params.scale));
      }
      _mm512_storeu_ps(&s.scores[static_cast<size_t>(h) * padded + c0], _mm512_mask_blend_ps(valid, neg_inf, sc));
    }
  }

  // Softmax per head as ggml_vec_soft_max_f32: 16-lane expf chunks, chunk sums added in double; then the
  // weights rounded to fp16 for the PV matmul.
  for (int32_t h = 0; h < n_q; ++h) {
    float* sc = &s.scores[static_cast<size_t>(h) * padded];
    float max_score = -std::numeric_limits<float>::infinity();
    for (int32_t j = first; j < n_ctx; ++j) max_score = std::max(max_score, sc[j]);
    double sum = 0.0;
    for (int32_t c = chunk0; c < padded; c += kLanes) {
      alignas(64) float x[kLanes];
      _mm512_store_ps(x, _mm512_sub_ps(_mm512_loadu_ps(&sc[c]), _mm512_set1_ps(max_score)));
      ggml_exp16(x, &sc[c]);
      sum += _mm512_reduce_add_ps(_mm512_loadu_ps(&sc[c]));
    }
    const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / sum));
    for (int32_t c = chunk0; c < padded; c += kLanes) {
      const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(&sc[c]), inv);
      _mm512_storeu_ps(&sc[c], _mm512_cvtph_ps(_mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT)));
    }
  }

  // PV accumulators: lane = position mod 16 (Gemm) or mod 64 (Vec), each a row of head_dim.
  const int32_t lanes = order == DotOrder::Gemm ? 16 : 64;
  s.acc.resize(static_cast<size_t>(n_q) * lanes * hd);
  pv_heads<NC>(s.vrows.data(), first, n_ctx, lanes, s.scores.data(), padded, n_q, s.acc.data());

  // out[i] = reduce over the 16 lanes (after ggml's 4-accumulator tree for Vec), 16 dims at a time:
  // the tree of _mm512_reduce_add_ps applied across registers that each hold one lane for 16 dims.
  for (int32_t h = 0; h < n_q; ++h) {
    const float* acc = &s.acc[static_cast<size_t>(h) * lanes * hd];
    for (int c = 0; c < NC; ++c) {
      __m512 l[16];
      for (int k = 0; k < 16; ++k) {
        const float* a = &acc[static_cast<size_t>(k) * hd + 16 * c];  // lane k of group 0; group g is 16 rows on
        const size_t g = static_cast<size_t>(16) * hd;
        l[k] = order == DotOrder::Gemm
                   ? _mm512_loadu_ps(a)
                   : _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(a + 2 * g)),
                                   _mm512_add_ps(_mm512_loadu_ps(a + g), _mm512_loadu_ps(a + 3 * g)));
      }
      __m512 t3[8], t6[4];
      for (int k = 0; k < 8; ++k) t3[k] = _mm512_add_ps(l[8 + k], l[k]);
      for (int k = 0; k < 4; ++k) t6[k] = _mm512_add_ps(t3[4 + k], t3[k]);
      _mm512_storeu_ps(out + h * hd + 16 * c, _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3])));
    }
  }
}

void attend_group_avx512(const float* q_in, int32_t n_q, const PagedKvLayer& kv, std::span<const int32_t> table,
                         int32_t kv_head, int32_t first, int32_t n_ctx, const AttentionParams& params, DotOrder order,
                         AttentionScratch& s, float* out) {
  switch (kv.head_dim) {
    case 64: return attend_group_avx512<4>(q_in, n_q, kv, table, kv_head, first, n_ctx, params, order, s, out);
    case 128: return attend_group_avx512<8>(q_in, n_q, kv, table, kv_head, first, n_ctx, params, order, s, out);
    case 192: return attend_group_avx512<12>(q_in, n_q, kv, table, kv_head, first, n_ctx, params, order, s, out);
    default: return attend_group_avx512<16>(q_in, n_q, kv, table, kv_head, first, n_ctx, params, order, s, out);
  }
}

std::atomic<AttentionKernel> g_kernel{AttentionKernel::Auto};

// The head sizes the grouped kernels are built for (multiples of ggml's 64-element vec_dot step).
bool grouped_head_dim(int32_t hd) { return hd == 64 || hd == 128 || hd == 192 || hd == 256; }

// The kernel a step runs: the one asked for (tests) where this CPU has it, else the widest it has.
AttentionKernel pick_kernel(int32_t head_dim) {
  const AttentionKernel asked = g_kernel.load(std::memory_order_relaxed);
  if (asked == AttentionKernel::Portable || !grouped_head_dim(head_dim)) return AttentionKernel::Portable;
  if (asked != AttentionKernel::Auto) return attention_kernel_available(asked) ? asked : AttentionKernel::Portable;
  if (attention_kernel_available(AttentionKernel::Avx512)) return AttentionKernel::Avx512;
  if (attention_kernel_available(AttentionKernel::Avx2)) return AttentionKernel::Avx2;
  return AttentionKernel::Portable;
}

void attend_one(const float* q_in, const PagedKvLayer& kv, std::span<const int32_t> table, int32_t kv_head,
                int32_t first, int32_t n_ctx, const AttentionParams& params, DotOrder order, AttentionScratch& s,
                float* out) {
  const float inv_cap = params.softcap > 0.0f ? 1.0f / params.softcap : 0.0f;
  const int32_t bs = kv.block_size, hd = kv.head_dim;
  float q[256];  // head_dim <= 256 (checked at load); q is rounded to fp16 as ggml converts it
  std::copy_n(q_in, hd, q);
  round_to_f16(q, hd);

  // Scores, scaled; padded with -inf to whole 16-lane chunks for the softmax.
  const int32_t padded = (n_ctx + kLanes - 1) / kLanes * kLanes;
  s.scores.assign(padded, -std::numeric_limits<float>::infinity());
  const bool gemm = order == DotOrder::Gemm && hd % kLanes == 0;
  for (int32_t j = first; j < n_ctx; ++j) {
    const KvScalar* k = kv.key(table[j / bs], kv_head) + (j % bs) * hd;
    s.scores[j] = score_of(gemm ? ggml_dot_f16_gemm(q, k, hd) : ggml_dot_f16_vec(q, k, hd), params, inv_cap);
  }

  // Softmax as ggml_vec_soft_max_f32: 16-lane expf chunks, chunk sums added in double (chunks wholly
  // before the window add exactly zero).
  float max_score = -std::numeric_limits<float>::infinity();
  for (int32_t j = first; j < n_ctx; ++j) max_score = std::max(max_score, s.scores[j]);
  double sum = 0.0;
  float x[kLanes];
  for (int32_t c = first / kLanes * kLanes; c < padded; c += kLanes) {
    for (int l = 0; l < kLanes; ++l) x[l] = s.scores[c + l] - max_score;
    ggml_exp16(x, &s.scores[c]);
    sum += ggml_reduce16(&s.scores[c]);
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int32_t j = first; j < n_ctx; ++j) s.scores[j] *= inv;
  round_to_f16(s.scores.data() + first, n_ctx - first);  // ggml converts them to fp16 for the PV matmul

  // PV: output dim i is a dot product over positions, whose lanes are positions mod 16 (Gemm) or
  // (position mod 64) in 4 accumulators of 16 (Vec); masked positions have p = 0 and add nothing.
  const int32_t groups = order == DotOrder::Gemm ? 1 : 4;
  s.acc.assign(static_cast<size_t>(groups) * kLanes * hd, 0.0f);
  for (int32_t j = first; j < n_ctx; ++j) {
    const KvScalar* v = kv.value(table[j / bs], kv_head) + (j % bs) * hd;
    const int32_t lane = order == DotOrder::Gemm ? j % kLanes : j % 64;
    fma_row(&s.acc[static_cast<size_t>(lane) * hd], v, s.scores[j], hd);
  }
  float lanes[kLanes];
  for (int32_t i = 0; i < hd; ++i) {
    if (order == DotOrder::Gemm) {
      for (int l = 0; l < kLanes; ++l) lanes[l] = s.acc[l * hd + i];
      out[i] = ggml_reduce16(lanes);
    } else {
      auto a = [&](int g, int l) { return s.acc[(g * kLanes + l) * hd + i]; };
      for (int l = 0; l < kLanes; ++l) lanes[l] = (a(0, l) + a(2, l)) + (a(1, l) + a(3, l));
      out[i] = static_cast<float>(static_cast<double>(ggml_reduce16(lanes)));
    }
  }
}

}  // namespace

bool attention_kernel_available(AttentionKernel kernel) {
  static const bool avx512 = cpu_features().avx512;
  static const bool avx2 = cpu_features().avx2 && cpu_features().fma && __builtin_cpu_supports("f16c");
  switch (kernel) {
    case AttentionKernel::Avx512:
      return avx512;
    case AttentionKernel::Avx2:
      return avx2;
    default:
      return true;
  }
}

void set_attention_kernel(AttentionKernel kernel) { g_kernel = kernel; }

void paged_attention(const StepPlan& plan, const float* q, const PagedKvLayer& kv, int32_t n_heads,
                     const AttentionParams& params, float* out) {
  const int32_t T = plan.num_tokens();
  const int32_t group = n_heads / kv.n_kv_heads;
  const int32_t row = n_heads * kv.head_dim;
  // token -> sequence, so the parallel loop can be flat over (token, heads).
  std::vector<int32_t> seq_of(T);
  for (int32_t b = 0; b < plan.num_seqs(); ++b) {
    for (int32_t t = plan.cu_seqlens[b]; t < plan.cu_seqlens[b + 1]; ++t) seq_of[t] = b;
  }
  const AttentionKernel kernel = pick_kernel(kv.head_dim);
  const bool grouped = kernel != AttentionKernel::Portable;
  // A work item is one token's query heads that share a KV head: all `group` of them where a grouped
  // kernel runs, so each K/V row is converted once for the group. A step with fewer groups than threads
  // (one decode of a model with 1 or 2 KV heads) splits each group so every thread has heads to run.
  // (Splitting SmolLM2's 3 groups for 2 threads measured no faster, so it is only done below that.)
  int32_t per_item = grouped ? group : 1;
  const int64_t groups_in_step = static_cast<int64_t>(T) * kv.n_kv_heads;
  const int32_t threads = omp_get_max_threads();
  if (grouped && groups_in_step < threads) {
    const int64_t parts = std::min<int64_t>(group, (threads + groups_in_step - 1) / groups_in_step);
    per_item = static_cast<int32_t>((group + parts - 1) / parts);
  }
  const int32_t items_per_group = (group + per_item - 1) / per_item;
  const int64_t work = groups_in_step * items_per_group;
#pragma omp parallel if (work > 2)
  {
    AttentionScratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < work; ++w) {
      const int32_t t = static_cast<int32_t>(w / (kv.n_kv_heads * items_per_group));
      const int32_t kv_head = static_cast<int32_t>(w / items_per_group % kv.n_kv_heads);
      const int32_t h0 = kv_head * group + static_cast<int32_t>(w % items_per_group) * per_item;
      const int32_t n_q = std::min(per_item, (kv_head + 1) * group - h0);
      const int32_t b = seq_of[t];
      const DotOrder order = prefill_order(plan, b, t) ? DotOrder::Gemm : DotOrder::Vec;
      // Causal: token at position p sees keys 0..p of its own sequence (p - window + 1 .. p with a window).
      const int32_t n_ctx = plan.positions[t] + 1;
      const int32_t first = params.window > 0 ? std::max(0, n_ctx - params.window) : 0;
      const float* qt = q + t * row + h0 * kv.head_dim;
      float* ot = out + t * row + h0 * kv.head_dim;
      const std::span<const int32_t> table = kv.window_pool ? plan.window_block_table(b) : plan.block_table(b);
      if (kernel == AttentionKernel::Avx512) {
        attend_group_avx512(qt, n_q, kv, table, kv_head, first, n_ctx, params, order, scratch, ot);
      } else if (kernel == AttentionKernel::Avx2) {
        attend_group_avx2(qt, n_q, kv, table, kv_head, first, n_ctx, params, order, scratch, ot);
      } else {
        for (int32_t i = 0; i < n_q; ++i) {
          attend_one(qt + i * kv.head_dim, kv, table, kv_head, first, n_ctx, params, order, scratch,
                     ot + i * kv.head_dim);
        }
      }
    }
  }
}

}  // namespace pagoda::engine::cpu
