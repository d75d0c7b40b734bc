#include "engine/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/cpu/vec_kernels.h"

namespace pagoda::engine::cpu {

void write_kv(const StepPlan& plan, const float* k, const float* v, const PagedKvLayer& kv) {
  const int32_t T = plan.num_tokens();
  const int32_t row = kv.n_kv_heads * kv.head_dim;
  for (int32_t t = 0; t < T; ++t) {
    const int32_t block = plan.slot_mapping[t] / kv.block_size, off = plan.slot_mapping[t] % kv.block_size;
    for (int32_t h = 0; h < kv.n_kv_heads; ++h) {
      std::memcpy(kv.key(block, h) + off * kv.head_dim, k + t * row + h * kv.head_dim, kv.head_dim * sizeof(float));
      std::memcpy(kv.value(block, h) + off * kv.head_dim, v + t * row + h * kv.head_dim, kv.head_dim * sizeof(float));
    }
  }
}

namespace {

// One query row against one sequence's keys 0..n_ctx-1 (two passes: scores, then softmax-weighted V).
void attend_one(const float* q, const PagedKvLayer& kv, std::span<const int32_t> table, int32_t kv_head,
                int32_t n_ctx, float scale, std::vector<float>& scores, float* out) {
  const int32_t bs = kv.block_size, hd = kv.head_dim;
  scores.resize(n_ctx);
  float max_score = -std::numeric_limits<float>::infinity();
  for (int32_t j0 = 0; j0 < n_ctx; j0 += bs) {
    const float* kb = kv.key(table[j0 / bs], kv_head);
    const int32_t n = std::min(bs, n_ctx - j0);
    for (int32_t j = 0; j < n; ++j) {
      const float s = dot_f32(q, kb + j * hd, hd) * scale;
      scores[j0 + j] = s;
      max_score = std::max(max_score, s);
    }
  }
  float sum = 0.0f;
  for (int32_t j = 0; j < n_ctx; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  const float inv = 1.0f / sum;
  std::fill(out, out + hd, 0.0f);
  for (int32_t j0 = 0; j0 < n_ctx; j0 += bs) {
    const float* vb = kv.value(table[j0 / bs], kv_head);
    const int32_t n = std::min(bs, n_ctx - j0);
    for (int32_t j = 0; j < n; ++j) axpy_f32(scores[j0 + j] * inv, vb + j * hd, out, hd);
  }
}

}  // namespace

void paged_attention(const StepPlan& plan, const float* q, const PagedKvLayer& kv, int32_t n_heads, float scale,
                     float* out) {
  const int32_t T = plan.num_tokens();
  const int32_t group = n_heads / kv.n_kv_heads;
  const int32_t row = n_heads * kv.head_dim;
  // token -> sequence, so the parallel loop can be flat over (token, head).
  std::vector<int32_t> seq_of(T);
  for (int32_t b = 0; b < plan.num_seqs(); ++b) {
    for (int32_t t = plan.cu_seqlens[b]; t < plan.cu_seqlens[b + 1]; ++t) seq_of[t] = b;
  }
  const int64_t work = static_cast<int64_t>(T) * n_heads;
#pragma omp parallel
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 4)
    for (int64_t w = 0; w < work; ++w) {
      const int32_t t = static_cast<int32_t>(w / n_heads), h = static_cast<int32_t>(w % n_heads);
      const int32_t b = seq_of[t];
      // Causal: token at position p sees keys 0..p of its own sequence.
      const int32_t n_ctx = plan.positions[t] + 1;
      attend_one(q + t * row + h * kv.head_dim, kv, plan.block_table(b), h / group, n_ctx, scale, scores,
                 out + t * row + h * kv.head_dim);
    }
  }
}

}  // namespace pagoda::engine::cpu
