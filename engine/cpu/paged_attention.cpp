#include "engine/cpu/paged_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

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
    const int32_t block = plan.slot_mapping[t] / kv.block_size, off = plan.slot_mapping[t] % kv.block_size;
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

namespace {

// ggml computes one attention head of a step as two matmuls, whose summation order depends on how
// many query rows the step has: one row goes through ggml_vec_dot_f16, more through tinyBLAS.
// We pick the same order per sequence, so a sequence's numbers never depend on its batch-mates.
enum class DotOrder { Vec, Gemm };

// llama.cpp runs a prompt as multi-row steps and each generated token as a one-row step, so a prompt
// token takes the Gemm order (a one-token prompt is one row: Vec) and a generated token the Vec one.
// A plan without the prompt length falls back to this step's row count, as llama.cpp does.
bool prefill_order(const StepPlan& plan, int32_t b, int32_t t) {
  const int32_t prompt_len = plan.prompt_lens.empty() ? -1 : plan.prompt_lens[b];
  if (prompt_len < 0) return plan.cu_seqlens[b + 1] - plan.cu_seqlens[b] > 1;
  return prompt_len >= 2 && plan.positions[t] < prompt_len;
}

struct Scratch {
  std::vector<float> scores;
  std::vector<float> acc;  // PV accumulators: [4][16][head_dim] (Vec) or [16][head_dim] (Gemm)
};

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void fma_row(float* acc, const KvScalar* v,
                                                                                          float p, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) acc[i] = std::fma(static_cast<float>(v[i]), p, acc[i]);
}

#define PAGODA_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,f16c,fma")))

PAGODA_AVX512 inline __m512 load_f16x16(const KvScalar* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Asks for the `elems` fp16 values at p (a K or V block of one head, 2 KiB at head_dim 64) to be brought
// into L1 while the current block is computed: paged blocks are not contiguous, so the hardware
// prefetchers stall at every block boundary, and attention is bound by that latency (perf: the FMAs
// that consume K and V rows took most of attend_one's samples).
inline void prefetch_block(const KvScalar* p, int32_t elems) {
  const char* c = reinterpret_cast<const char*>(p);
  for (size_t off = 0; off < static_cast<size_t>(elems) * sizeof(KvScalar); off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

// The same arithmetic as attend_one's portable loops, in AVX-512 registers: scores for a whole block
// of keys per call and the PV accumulators updated in place, without a call per position.
// head_dim must be a multiple of 64 (ggml's vec_dot step), e.g. 64 or 128.
// The score of one key as ggml's graph makes it: the dot product, capped (tanh) where the model caps,
// then scaled.
inline float score(float dot, const AttentionParams& p, float inv_cap) {
  if (p.softcap > 0.0f) dot = std::tanh(dot * inv_cap) * p.softcap;
  return dot * p.scale;
}

// Keys [first, n_ctx) are attended to; those before `first` (outside a sliding window) are masked: their
// scores are -inf and they are never read. Lanes and softmax chunks stay those of the absolute positions,
// so the sums are ggml's over the whole masked row (a masked key adds exactly zero there).
PAGODA_AVX512 void attend_one_avx512(
    const float* q_in, const PagedKvLayer& kv, std::span<const int32_t> table, int32_t kv_head, int32_t first,
    int32_t n_ctx, const AttentionParams& params, DotOrder order, Scratch& s, float* out) {
  const float inv_cap = params.softcap > 0.0f ? 1.0f / params.softcap : 0.0f;
  const int32_t bs = kv.block_size, hd = kv.head_dim, nc = hd / 16;
  __m512 q[16];  // head_dim <= 256; rounded to fp16 as ggml converts it
  for (int c = 0; c < nc; ++c) q[c] = _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(q_in + 16 * c), _MM_FROUND_TO_NEAREST_INT));

  const int32_t padded = (n_ctx + kLanes - 1) / kLanes * kLanes;
  const int32_t chunk0 = first / kLanes * kLanes;  // the softmax's first chunk with an unmasked key
  s.scores.resize(padded);
  for (int32_t j = chunk0; j < first; ++j) s.scores[j] = -std::numeric_limits<float>::infinity();
  for (int32_t j0 = first / bs * bs; j0 < n_ctx; j0 += bs) {
    const KvScalar* kb = kv.key(table[j0 / bs], kv_head);
    const int32_t n = std::min(bs, n_ctx - j0);
    if (j0 + bs < n_ctx) prefetch_block(kv.key(table[j0 / bs + 1], kv_head), bs * hd);
    for (int32_t j = std::max(0, first - j0); j < n; ++j) {
      const KvScalar* k = kb + j * hd;
      float dot;
      if (order == DotOrder::Gemm) {  // tinyBLAS: one FMA chain over 16-lane chunks
        __m512 acc = _mm512_setzero_ps();
        for (int c = 0; c < nc; ++c) acc = _mm512_fmadd_ps(load_f16x16(k + 16 * c), q[c], acc);
        dot = _mm512_reduce_add_ps(acc);
      } else {  // ggml_vec_dot_f16: 4 accumulators over 64-element steps, then a tree
        __m512 sum[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int c = 0; c < nc; ++c) sum[c % 4] = _mm512_fmadd_ps(load_f16x16(k + 16 * c), q[c], sum[c % 4]);
        dot = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(sum[0], sum[2]), _mm512_add_ps(sum[1], sum[3])));
      }
      s.scores[j0 + j] = score(dot, params, inv_cap);
    }
  }
  for (int32_t j = n_ctx; j < padded; ++j) s.scores[j] = -std::numeric_limits<float>::infinity();

  float max_score = -std::numeric_limits<float>::infinity();
  for (int32_t j = first; j < n_ctx; ++j) max_score = std::max(max_score, s.scores[j]);
  double sum = 0.0;
  for (int32_t c = chunk0; c < padded; c += kLanes) {
    alignas(64) float x[kLanes];
    _mm512_store_ps(x, _mm512_sub_ps(_mm512_loadu_ps(&s.scores[c]), _mm512_set1_ps(max_score)));
    ggml_exp16(x, &s.scores[c]);
    sum += _mm512_reduce_add_ps(_mm512_loadu_ps(&s.scores[c]));
  }
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / sum));
  for (int32_t c = chunk0; c < padded; c += kLanes) {  // p = e * inv, rounded to fp16 for the PV matmul
    const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(&s.scores[c]), inv);
    _mm512_storeu_ps(&s.scores[c], _mm512_cvtph_ps(_mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT)));
  }

  // PV accumulators: lane = position mod 16 (Gemm) or mod 64 (Vec), each a row of head_dim.
  const int32_t lanes = order == DotOrder::Gemm ? 16 : 64;
  s.acc.assign(static_cast<size_t>(lanes) * hd, 0.0f);
  for (int32_t j0 = first / bs * bs; j0 < n_ctx; j0 += bs) {
    const KvScalar* vb = kv.value(table[j0 / bs], kv_head);
    const int32_t n = std::min(bs, n_ctx - j0);
    if (j0 + bs < n_ctx) prefetch_block(kv.value(table[j0 / bs + 1], kv_head), bs * hd);
    for (int32_t j = std::max(0, first - j0); j < n; ++j) {
      const KvScalar* v = vb + j * hd;
      const __m512 p = _mm512_set1_ps(s.scores[j0 + j]);
      float* acc = &s.acc[static_cast<size_t>((j0 + j) % lanes) * hd];
      for (int c = 0; c < nc; ++c) {
        _mm512_storeu_ps(acc + 16 * c, _mm512_fmadd_ps(load_f16x16(v + 16 * c), p, _mm512_loadu_ps(acc + 16 * c)));
      }
    }
  }
  // out[i] = reduce over the 16 lanes (after ggml's 4-accumulator tree for Vec), 16 dims at a time:
  // the tree of _mm512_reduce_add_ps applied across registers that each hold one lane for 16 dims.
  for (int c = 0; c < nc; ++c) {
    __m512 l[16];
    for (int k = 0; k < 16; ++k) {
      const float* a = &s.acc[static_cast<size_t>(k) * hd + 16 * c];  // lane k of group 0; group g is 16 rows on
      const size_t g = static_cast<size_t>(16) * hd;
      l[k] = order == DotOrder::Gemm
                 ? _mm512_loadu_ps(a)
                 : _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(a + 2 * g)),
                                 _mm512_add_ps(_mm512_loadu_ps(a + g), _mm512_loadu_ps(a + 3 * g)));
    }
    __m512 t3[8], t6[4];
    for (int k = 0; k < 8; ++k) t3[k] = _mm512_add_ps(l[8 + k], l[k]);
    for (int k = 0; k < 4; ++k) t6[k] = _mm512_add_ps(t3[4 + k], t3[k]);
    _mm512_storeu_ps(out + 16 * c, _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3])));
  }
}

std::atomic<bool> g_portable_only{false};

void attend_one(const float* q_in, const PagedKvLayer& kv, std::span<const int32_t> table, int32_t kv_head,
                int32_t first, int32_t n_ctx, const AttentionParams& params, DotOrder order, Scratch& s, float* out) {
  static const bool avx512 = cpu_features().avx512;
  if (avx512 && kv.head_dim % 64 == 0 && !g_portable_only.load(std::memory_order_relaxed)) {
    attend_one_avx512(q_in, kv, table, kv_head, first, n_ctx, params, order, s, out);
    return;
  }
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
    s.scores[j] = score(gemm ? ggml_dot_f16_gemm(q, k, hd) : ggml_dot_f16_vec(q, k, hd), params, inv_cap);
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

void set_attention_portable_only(bool portable) { g_portable_only = portable; }

void paged_attention(const StepPlan& plan, const float* q, const PagedKvLayer& kv, int32_t n_heads,
                     const AttentionParams& params, float* out) {
  const int32_t T = plan.num_tokens();
  const int32_t group = n_heads / kv.n_kv_heads;
  const int32_t row = n_heads * kv.head_dim;
  // token -> sequence, so the parallel loop can be flat over (token, head).
  std::vector<int32_t> seq_of(T);
  for (int32_t b = 0; b < plan.num_seqs(); ++b) {
    for (int32_t t = plan.cu_seqlens[b]; t < plan.cu_seqlens[b + 1]; ++t) seq_of[t] = b;
  }
  const int64_t work = static_cast<int64_t>(T) * n_heads;
#pragma omp parallel if (work > 8)
  {
    Scratch scratch;
#pragma omp for schedule(dynamic, 4)
    for (int64_t w = 0; w < work; ++w) {
      const int32_t t = static_cast<int32_t>(w / n_heads), h = static_cast<int32_t>(w % n_heads);
      const int32_t b = seq_of[t];
      const DotOrder order = prefill_order(plan, b, t) ? DotOrder::Gemm : DotOrder::Vec;
      // Causal: token at position p sees keys 0..p of its own sequence (p - window + 1 .. p with a window).
      const int32_t n_ctx = plan.positions[t] + 1;
      const int32_t first = params.window > 0 ? std::max(0, n_ctx - params.window) : 0;
      attend_one(q + t * row + h * kv.head_dim, kv, plan.block_table(b), h / group, first, n_ctx, params, order,
                 scratch, out + t * row + h * kv.head_dim);
    }
  }
}

}  // namespace pagoda::engine::cpu
