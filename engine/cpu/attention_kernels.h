#pragma once
// What paged_attention.cpp's dispatch shares with the grouped kernels built for one instruction set
// each (attention_group_avx2.cpp): the summation order of a step, the per-thread scratch, and the
// kernels' signature. Internal to the CPU backend.
#include <xmmintrin.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/cpu/paged_attention.h"

namespace pagoda::engine::cpu {

// ggml computes one attention head of a step as two matmuls, whose summation order depends on how
// many query rows the step has: one row goes through ggml_vec_dot_f16, more through tinyBLAS.
// We pick the same order per sequence, so a sequence's numbers never depend on its batch-mates.
enum class DotOrder { Vec, Gemm };

// The score of one key as ggml's graph makes it: the dot product, capped (tanh) where the model caps,
// then scaled. inv_cap: 1 / params.softcap.
inline float score_of(float dot, const AttentionParams& p, float inv_cap) {
  if (p.softcap > 0.0f) dot = std::tanh(dot * inv_cap) * p.softcap;
  return dot * p.scale;
}

struct AttentionScratch {
  std::vector<float> scores;  // [heads][context, padded to 16]
  std::vector<float> acc;     // PV accumulators per head: [heads][lanes][head_dim], lanes 64 (Vec) or 16 (Gemm)
  std::vector<float> keys;    // a grouped kernel's chunk of 16 K rows, converted to f32 once: [16][head_dim]
  std::vector<float> q;       // its query heads, rounded to fp16: [heads][head_dim]
  std::vector<const KvScalar*> krows, vrows;  // a grouped kernel's K and V row of each position
};

// Where each attended key's K and V rows live (s.krows, s.vrows for positions [first, n_ctx)): one
// block-table lookup per block, not a division per row and pass.
void gather_kv_rows(const PagedKvLayer& kv, std::span<const int32_t> table, int32_t kv_head, int32_t first,
                    int32_t n_ctx, AttentionScratch& s);

// Asks for a K or V row of `bytes` ahead of its use: into L1 (T0) or L2 (T1). Paged blocks are not
// contiguous, so the hardware prefetchers stall at each block boundary.
enum class PrefetchTo { L1, L2 };
inline void prefetch_row(const KvScalar* row, size_t bytes, PrefetchTo to) {
  const char* c = reinterpret_cast<const char*>(row);
  for (size_t off = 0; off < bytes; off += 64) {
    if (to == PrefetchTo::L1) {
      _mm_prefetch(c + off, _MM_HINT_T0);
    } else {
      _mm_prefetch(c + off, _MM_HINT_T1);
    }
  }
}

// The n_q query heads that share KV head `kv_head` (consecutive rows of head_dim in q_in and out), over
// keys [first, n_ctx) of the sequence whose block table is `table`; keys before `first` (outside a
// sliding window) are masked. Every grouped kernel gives the bits of the portable loops (attend_one),
// which are ggml's AVX-512 build's. AVX2 + FMA + F16C; head_dim 64, 128, 192 or 256.
void attend_group_avx2(const float* q_in, int32_t n_q, const PagedKvLayer& kv, std::span<const int32_t> table,
                       int32_t kv_head, int32_t first, int32_t n_ctx, const AttentionParams& params, DotOrder order,
                       AttentionScratch& s, float* out);

}  // namespace pagoda::engine::cpu
