// Element-wise and row kernels of the CUDA forward pass (kernels.h). Memory-bound: each reads its
// inputs once; rows are handled by one block with a block-wide reduction where a row needs one.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/kernels.h"

namespace pagoda::engine::cuda {

namespace {

__device__ inline float bf16_bits_to_float(uint16_t b) { return __uint_as_float(static_cast<uint32_t>(b) << 16); }
__device__ inline uint16_t float_to_bf16_bits(float f) {
  const __nv_bfloat16 h = __float2bfloat16_rn(f);
  return *reinterpret_cast<const uint16_t*>(&h);
}
__device__ inline uint16_t float_to_f16_bits(float f) {
  const __half h = __float2half_rn(f);
  return *reinterpret_cast<const uint16_t*>(&h);
}

int blocks_for(int64_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

__global__ void embed_kernel(const uint16_t* table, const int32_t* ids, int32_t d, float* x) {
  const int32_t t = blockIdx.x;
  const uint16_t* src = table + static_cast<int64_t>(ids[t]) * d;
  float* dst = x + static_cast<int64_t>(t) * d;
  for (int32_t i = threadIdx.x; i < d; i += blockDim.x) dst[i] = bf16_bits_to_float(src[i]);
}

constexpr int kRowThreads = 256;

// Sum over the block; every thread gets the total.
__device__ float block_sum(float v) {
  __shared__ float warp_sums[kRowThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kRowThreads / 32; ++w) total += warp_sums[w];
  __syncthreads();  // warp_sums may be reused by the caller's next reduction
  return total;
}

__global__ void add_rms_norm_kernel(float* x, const float* y, const float* w, const int32_t* rows, int32_t d, float eps,
                                    uint16_t* out_bf16, float* out_f32) {
  const int32_t r = blockIdx.x;
  const int64_t src = rows ? rows[r] : r;
  float* xr = x + src * d;
  const float* yr = y ? y + src * d : nullptr;
  float sq = 0.0f;
  for (int32_t i = threadIdx.x; i < d; i += blockDim.x) {
    float v = xr[i];
    if (yr) {
      v += yr[i];
      xr[i] = v;
    }
    sq += v * v;
  }
  const float scale = rsqrtf(block_sum(sq) / static_cast<float>(d) + eps);
  for (int32_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float o = xr[i] * scale * w[i];
    if (out_bf16) out_bf16[static_cast<int64_t>(r) * d + i] = float_to_bf16_bits(o);
    if (out_f32) out_f32[static_cast<int64_t>(r) * d + i] = o;
  }
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += y[i];
}

// One thread per (token, head, rotated pair).
__global__ void rope_kernel(float* x, int64_t row_stride, const int32_t* positions, int32_t T, int32_t n_heads,
                            RopeParams p) {
  const int32_t half = p.rope_dim / 2;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(T) * n_heads * half) return;
  const int32_t pair = static_cast<int32_t>(i % half);
  const int32_t head = static_cast<int32_t>((i / half) % n_heads);
  const int32_t t = static_cast<int32_t>(i / (static_cast<int64_t>(half) * n_heads));
  float theta = static_cast<float>(positions[t]) * powf(p.theta_scale, static_cast<float>(pair));
  if (p.freq_factors) theta /= p.freq_factors[pair];
  float sn, cs;
  sincosf(theta, &sn, &cs);
  float* v = x + static_cast<int64_t>(t) * row_stride + static_cast<int64_t>(head) * p.head_dim;
  const int32_t a = p.neox ? pair : 2 * pair, b = p.neox ? pair + half : 2 * pair + 1;
  const float x0 = v[a], x1 = v[b];
  v[a] = x0 * cs - x1 * sn;
  v[b] = x0 * sn + x1 * cs;
}

// One block per token; threads over (K|V, head, dim).
__global__ void write_kv_kernel(const float* k, const float* v, int64_t row_stride, const int32_t* slot_mapping,
                                uint16_t* kv, int32_t block_size, int32_t n_kv_heads, int32_t head_dim) {
  const int32_t t = blockIdx.x;
  const int32_t slot = slot_mapping[t];
  const int32_t block = slot / block_size, off = slot % block_size;
  const int64_t head_stride = static_cast<int64_t>(block_size) * head_dim;
  uint16_t* base = kv + static_cast<int64_t>(block) * 2 * n_kv_heads * head_stride;
  const int32_t row = n_kv_heads * head_dim;
  for (int32_t i = threadIdx.x; i < 2 * row; i += blockDim.x) {
    const bool is_v = i >= row;
    const int32_t j = is_v ? i - row : i, h = j / head_dim, e = j % head_dim;
    const float val = (is_v ? v : k)[static_cast<int64_t>(t) * row_stride + j];
    base[(static_cast<int64_t>(is_v ? n_kv_heads + h : h)) * head_stride + static_cast<int64_t>(off) * head_dim + e] =
        float_to_f16_bits(val);
  }
}

__global__ void silu_mul_kernel(const float* gu, int32_t T, int32_t ff, uint16_t* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(T) * ff) return;
  const int64_t t = i / ff, j = i % ff;
  const float g = gu[t * 2 * ff + j], u = gu[t * 2 * ff + ff + j];
  out[i] = float_to_bf16_bits(g / (1.0f + expf(-g)) * u);
}

__global__ void f32_to_bf16_kernel(const float* x, int64_t n, uint16_t* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = float_to_bf16_bits(x[i]);
}

// grid (pairs, layers): 16-byte copies of one block of one layer.
__global__ void copy_blocks_kernel(uint16_t* pool, int64_t layer_stride, int64_t block_elems, const int32_t* src_dst) {
  const int32_t p = blockIdx.x, l = blockIdx.y;
  const uint16_t* src = pool + l * layer_stride + src_dst[2 * p] * block_elems;
  uint16_t* dst = pool + l * layer_stride + src_dst[2 * p + 1] * block_elems;
  if (block_elems % 8 == 0) {
    const int4* s4 = reinterpret_cast<const int4*>(src);
    int4* d4 = reinterpret_cast<int4*>(dst);
    for (int64_t i = threadIdx.x; i < block_elems / 8; i += blockDim.x) d4[i] = s4[i];
  } else {
    for (int64_t i = threadIdx.x; i < block_elems; i += blockDim.x) dst[i] = src[i];
  }
}

}  // namespace

cudaError_t embed_tokens(const uint16_t* table, const int32_t* ids, int32_t T, int32_t d, float* x, cudaStream_t s) {
  if (T <= 0) return cudaSuccess;
  embed_kernel<<<T, 256, 0, s>>>(table, ids, d, x);
  return cudaGetLastError();
}

cudaError_t add_rms_norm(float* x, const float* y, const float* w, const int32_t* rows, int32_t n_rows, int32_t d,
                         float eps, uint16_t* out_bf16, float* out_f32, cudaStream_t s) {
  if (n_rows <= 0) return cudaSuccess;
  add_rms_norm_kernel<<<n_rows, kRowThreads, 0, s>>>(x, y, w, rows, d, eps, out_bf16, out_f32);
  return cudaGetLastError();
}

cudaError_t add_inplace(float* x, const float* y, int64_t n, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  add_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, y, n);
  return cudaGetLastError();
}

cudaError_t rope(float* x, int64_t row_stride, const int32_t* positions, int32_t T, int32_t n_heads, const RopeParams& p,
                 cudaStream_t s) {
  const int64_t n = static_cast<int64_t>(T) * n_heads * (p.rope_dim / 2);
  if (n <= 0) return cudaSuccess;
  rope_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, row_stride, positions, T, n_heads, p);
  return cudaGetLastError();
}

cudaError_t write_kv(const float* k, const float* v, int64_t row_stride, const int32_t* slot_mapping, int32_t T,
                     uint16_t* kv_layer, int32_t block_size, int32_t n_kv_heads, int32_t head_dim, cudaStream_t s) {
  if (T <= 0) return cudaSuccess;
  write_kv_kernel<<<T, 256, 0, s>>>(k, v, row_stride, slot_mapping, kv_layer, block_size, n_kv_heads, head_dim);
  return cudaGetLastError();
}

cudaError_t silu_mul(const float* gate_up, int32_t T, int32_t ff, uint16_t* out, cudaStream_t s) {
  const int64_t n = static_cast<int64_t>(T) * ff;
  if (n <= 0) return cudaSuccess;
  silu_mul_kernel<<<blocks_for(n, 256), 256, 0, s>>>(gate_up, T, ff, out);
  return cudaGetLastError();
}

cudaError_t f32_to_bf16(const float* x, int64_t n, uint16_t* out, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  f32_to_bf16_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, n, out);
  return cudaGetLastError();
}

cudaError_t copy_kv_blocks(uint16_t* pool, int64_t layer_stride, int32_t n_layers, int64_t block_elems,
                           const int32_t* src_dst, int32_t n_pairs, cudaStream_t s) {
  if (n_pairs <= 0 || n_layers <= 0) return cudaSuccess;
  copy_blocks_kernel<<<dim3(n_pairs, n_layers), 256, 0, s>>>(pool, layer_stride, block_elems, src_dst);
  return cudaGetLastError();
}

}  // namespace pagoda::engine::cuda
