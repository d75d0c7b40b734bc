#pragma once
// The CUDA backend's element-wise and row kernels, as plain launch functions over device pointers
// (bf16 and fp16 values travel as their 16-bit patterns). Each returns the launch's cudaError_t.
// Layouts are the CPU backend's: a token's activations are one row; the KV pool of a layer is
// [blocks][2 (K, V)][kv_heads][block_size][head_dim] in fp16 (engine/cpu/paged_attention.h).
#include <cuda_runtime_api.h>

#include <cstdint>

namespace pagoda::engine::cuda {

// x[t] = embedding[ids[t]] (bf16 table [vocab][d]) as f32, for t < T.
cudaError_t embed_tokens(const uint16_t* table, const int32_t* ids, int32_t T, int32_t d, float* x, cudaStream_t s);

// For each output row r, from source row i = rows[r] (or r when rows is null): when y is set,
// x[i] += y[i] first (the residual add, written back); then out[r] = rmsnorm(x[i]) * w, as bf16
// (out_bf16) and/or f32 (out_f32), either may be null. With y set, rows must not repeat (a repeated
// row would get the residual twice).
cudaError_t add_rms_norm(float* x, const float* y, const float* w, const int32_t* rows, int32_t n_rows, int32_t d,
                         float eps, uint16_t* out_bf16, float* out_f32, cudaStream_t s);

// x[i] += y[i].
cudaError_t add_inplace(float* x, const float* y, int64_t n, cudaStream_t s);

struct RopeParams {
  int32_t head_dim = 0;
  int32_t rope_dim = 0;         // leading dims of each head that turn (== head_dim today)
  float theta_scale = 1.0f;     // base^(-2 / rope_dim): pair i turns by pos * theta_scale^i
  const float* freq_factors = nullptr;  // device, [rope_dim / 2] or null: theta_i / freq_factors[i]
  bool neox = false;            // pairs (i, i + rope_dim/2) instead of (2i, 2i + 1): RopeStyle::HalfSplit
};
// Rotates the first n_heads heads of each row (row t starts at x + t * row_stride) by positions[t].
cudaError_t rope(float* x, int64_t row_stride, const int32_t* positions, int32_t T, int32_t n_heads,
                 const RopeParams& p, cudaStream_t s);

// Stores token t's K and V rows (k + t*row_stride, v + t*row_stride; kv_heads*head_dim each) as fp16
// at slot_mapping[t] of one layer's paged pool.
cudaError_t write_kv(const float* k, const float* v, int64_t row_stride, const int32_t* slot_mapping, int32_t T,
                     uint16_t* kv_layer, int32_t block_size, int32_t n_kv_heads, int32_t head_dim, cudaStream_t s);

// out[t] = bf16(silu(gu[t][0:ff]) * gu[t][ff:2ff]) for T rows of gate|up.
cudaError_t silu_mul(const float* gate_up, int32_t T, int32_t ff, uint16_t* out, cudaStream_t s);

// out[i] = bf16(x[i]), round to nearest even.
cudaError_t f32_to_bf16(const float* x, int64_t n, uint16_t* out, cudaStream_t s);

// Copies whole KV blocks: for each pair p, block dst[p] = block src[p] in every layer
// (layer l's pool starts at pool + l * layer_stride elements, a block is block_elems elements).
cudaError_t copy_kv_blocks(uint16_t* pool, int64_t layer_stride, int32_t n_layers, int64_t block_elems,
                           const int32_t* src_dst, int32_t n_pairs, cudaStream_t s);

}  // namespace pagoda::engine::cuda
