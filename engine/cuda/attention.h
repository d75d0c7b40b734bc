#pragma once
// Paged attention on the GPU: every query token attends causally to its own sequence's keys at
// positions 0..pos, read from the paged fp16 KV pool through its block table. One kernel serves
// decode rows, prefill chunks (whose earlier context is already in the pool) and prefix-cache hits.
// Long contexts are split across warps (flash-decoding): each split keeps a partial softmax
// (max, sum, weighted V) and a second kernel combines them.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "engine/cuda/attention_split.h"

namespace pagoda::engine::cuda {

struct PagedAttentionArgs {
  const float* q = nullptr;  // token t's query heads start at q + t * q_stride
  int64_t q_stride = 0;
  float* out = nullptr;      // [T][n_heads * head_dim]
  const uint16_t* kv = nullptr;  // one layer's pool, fp16, [blocks][2][kv_heads][block_size][head_dim]
  const int32_t* positions = nullptr;     // [T]
  const int32_t* token_seq = nullptr;     // [T] -> sequence b
  const int32_t* block_tables = nullptr;  // [B][max_blocks_per_seq]
  int32_t max_blocks_per_seq = 0;
  int32_t num_tokens = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, block_size = 0;
  float scale = 1.0f;
};

inline constexpr int32_t kMaxHeadDim = 256;

// Floats of scratch the split needs (0 when it does not split).
size_t attention_workspace_floats(int32_t num_tokens, int32_t n_heads, int32_t head_dim, const AttentionSplit& split);

// head_dim <= kMaxHeadDim; n_heads a multiple of n_kv_heads. workspace: attention_workspace_floats.
cudaError_t paged_attention(const PagedAttentionArgs& a, const AttentionSplit& split, float* workspace,
                            cudaStream_t s);

}  // namespace pagoda::engine::cuda
