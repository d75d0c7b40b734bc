// Paged attention (attention.h): one warp per (query token, head, split), online softmax in fp32
// over fp16 K/V, exp2 with the scale folded into q. Lane i holds head dims [i*EPL, (i+1)*EPL).
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "engine/cuda/attention.h"

namespace pagoda::engine::cuda {

namespace {

constexpr int kWarps = 4;   // warps (query rows) per block
constexpr int kUnroll = 4;  // keys per loop iteration
constexpr float kLog2e = 1.4426950408889634f;

__device__ inline float warp_sum(float v) {  // (the combine kernel's)
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <int EPL>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(PagedAttentionArgs a, int32_t split_len,
                                                                 int32_t num_splits, float* ws) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= static_cast<int64_t>(a.num_tokens) * a.n_heads) return;
  const int32_t t = static_cast<int32_t>(row / a.n_heads), h = static_cast<int32_t>(row % a.n_heads);
  const int32_t split = blockIdx.y;
  const int32_t ctx = a.positions[t] + 1;
  // The row's own split length (attention_split.h) unless the launch fixes one (tests) or has one split.
  const int32_t len = num_splits == 1 ? ctx : split_len > 0 ? split_len : split_len_for_context(ctx, a.block_size);
  const int32_t begin = split * len, end = min(ctx, begin + len);
  const int32_t kv_head = h / (a.n_heads / a.n_kv_heads);
  const int32_t hd = a.head_dim;

  float q[EPL], acc[EPL];
  const float* qr = a.q + static_cast<int64_t>(t) * a.q_stride + static_cast<int64_t>(h) * hd;
#pragma unroll
  for (int e = 0; e < EPL; ++e) {
    const int i = lane * EPL + e;
    q[e] = i < hd ? qr[i] * a.scale * kLog2e : 0.0f;
    acc[e] = 0.0f;
  }
  const int64_t head_stride = static_cast<int64_t>(a.block_size) * hd;
  const int64_t block_stride = 2LL * a.n_kv_heads * head_stride;
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.token_seq[t]) * a.max_blocks_per_seq;
  const __half* kv = reinterpret_cast<const __half*>(a.kv);

  // kUnroll keys per iteration: their K and V loads are all issued before the first is used and their
  // warp reductions interleave, so the loop is not one global-memory latency per key.
  float m = -INFINITY, l = 0.0f;
  for (int32_t j0 = begin; j0 < end; j0 += kUnroll) {
    const int32_t n = min(kUnroll, end - j0);
    float kf[kUnroll][EPL], vf[kUnroll][EPL];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int32_t j = j0 + min(u, n - 1);  // past the end: reload the last key, weighted 0 below
      const int64_t base = table[j / a.block_size] * block_stride + static_cast<int64_t>(j % a.block_size) * hd;
      const __half* k = kv + base + kv_head * head_stride + lane * EPL;
      const __half* v = kv + base + (a.n_kv_heads + kv_head) * head_stride + lane * EPL;
#pragma unroll
      for (int e = 0; e < EPL; ++e) {
        const bool in = lane * EPL + e < hd;
        kf[u][e] = in ? __half2float(k[e]) : 0.0f;
        vf[u][e] = in ? __half2float(v[e]) : 0.0f;
      }
    }
    float s[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      s[u] = 0.0f;
#pragma unroll
      for (int e = 0; e < EPL; ++e) s[u] += q[e] * kf[u][e];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) s[u] += __shfl_xor_sync(0xffffffffu, s[u], o);
    }
    float m_new = m;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (u < n) m_new = fmaxf(m_new, s[u]);
    }
    const float corr = exp2f(m - m_new);
    float p[kUnroll];
    l *= corr;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      p[u] = u < n ? exp2f(s[u] - m_new) : 0.0f;
      l += p[u];
    }
#pragma unroll
    for (int e = 0; e < EPL; ++e) {
      float x = acc[e] * corr;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) x += p[u] * vf[u][e];
      acc[e] = x;
    }
    m = m_new;
  }

  if (num_splits == 1) {
    float* o = a.out + static_cast<int64_t>(t) * a.n_heads * hd + static_cast<int64_t>(h) * hd;
    const float inv = 1.0f / l;
#pragma unroll
    for (int e = 0; e < EPL; ++e) {
      if (lane * EPL + e < hd) o[lane * EPL + e] = acc[e] * inv;
    }
    return;
  }
  // Partial result of this split: [m, l, acc[hd]] (m = -inf, l = 0 when the split holds no key).
  float* w = ws + (row * num_splits + split) * (hd + 2);
  if (lane == 0) {
    w[0] = m;
    w[1] = l;
  }
#pragma unroll
  for (int e = 0; e < EPL; ++e) {
    if (lane * EPL + e < hd) w[2 + lane * EPL + e] = acc[e];
  }
}

// One warp per row: out = sum_s acc_s 2^(m_s - M) / sum_s l_s 2^(m_s - M).
__global__ void combine_kernel(const float* ws, int32_t rows, int32_t num_splits, int32_t hd, float* out) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const float* w = ws + row * num_splits * (hd + 2);
  float mx = -INFINITY;
  for (int32_t s = lane; s < num_splits; s += 32) mx = fmaxf(mx, w[s * (hd + 2)]);
  mx = warp_max(mx);
  float l = 0.0f;
  for (int32_t s = lane; s < num_splits; s += 32) {
    const float* p = w + s * (hd + 2);
    if (p[1] != 0.0f) l += p[1] * exp2f(p[0] - mx);  // empty splits hold l = 0; NaN passes
  }
  l = warp_sum(l);
  const float inv = 1.0f / l;
  for (int32_t i = lane; i < hd; i += 32) {
    float o = 0.0f;
    for (int32_t s = 0; s < num_splits; ++s) {
      const float* p = w + s * (hd + 2);
      if (p[1] != 0.0f) o += p[2 + i] * exp2f(p[0] - mx);
    }
    out[row * hd + i] = o * inv;
  }
}

template <int EPL>
void launch(const PagedAttentionArgs& a, const AttentionSplit& split, float* ws, cudaStream_t s) {
  const int64_t rows = static_cast<int64_t>(a.num_tokens) * a.n_heads;
  const dim3 grid(static_cast<unsigned>((rows + kWarps - 1) / kWarps), static_cast<unsigned>(split.num_splits));
  attention_kernel<EPL><<<grid, kWarps * 32, 0, s>>>(a, split.split_len, split.num_splits, ws);
}

cudaError_t launch_one(const PagedAttentionArgs& a, const AttentionSplit& sp, float* workspace, cudaStream_t s) {
  switch ((a.head_dim + 31) / 32) {
    case 1: launch<1>(a, sp, workspace, s); break;
    case 2: launch<2>(a, sp, workspace, s); break;
    case 3: launch<3>(a, sp, workspace, s); break;
    case 4: launch<4>(a, sp, workspace, s); break;
    case 5: launch<5>(a, sp, workspace, s); break;
    case 6: launch<6>(a, sp, workspace, s); break;
    case 7: launch<7>(a, sp, workspace, s); break;
    default: launch<8>(a, sp, workspace, s); break;
  }
  if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  if (sp.num_splits == 1) return cudaSuccess;
  const int32_t rows = a.num_tokens * a.n_heads;
  combine_kernel<<<(rows + kWarps - 1) / kWarps, kWarps * 32, 0, s>>>(workspace, rows, sp.num_splits, a.head_dim, a.out);
  return cudaGetLastError();
}

}  // namespace

size_t attention_workspace_floats(int32_t num_tokens, int32_t n_heads, int32_t head_dim, const AttentionSplit& split) {
  if (split.num_splits <= 1) return 0;
  const int32_t tokens = split.tokens_per_launch > 0 ? std::min(num_tokens, split.tokens_per_launch) : num_tokens;
  return static_cast<size_t>(tokens) * n_heads * split.num_splits * (head_dim + 2);
}

cudaError_t paged_attention(const PagedAttentionArgs& a, const AttentionSplit& split, float* workspace,
                            cudaStream_t s) {
  if (a.num_tokens <= 0) return cudaSuccess;
  if (a.head_dim <= 0 || a.head_dim > kMaxHeadDim || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0 ||
      split.num_splits < 1 || split.split_len < 0 || split.tokens_per_launch < 0 ||
      (split.num_splits > 1 && workspace == nullptr)) {
    return cudaErrorInvalidValue;
  }
  const int32_t chunk = split.num_splits > 1 && split.tokens_per_launch > 0 ? split.tokens_per_launch : a.num_tokens;
  for (int32_t t0 = 0; t0 < a.num_tokens; t0 += chunk) {
    // Tokens [t0, t0 + n): every per-token array moves by t0 (the block tables are per sequence).
    PagedAttentionArgs part = a;
    part.num_tokens = std::min(chunk, a.num_tokens - t0);
    part.q = a.q + static_cast<int64_t>(t0) * a.q_stride;
    part.out = a.out + static_cast<int64_t>(t0) * a.n_heads * a.head_dim;
    part.positions = a.positions + t0;
    part.token_seq = a.token_seq + t0;
    if (cudaError_t err = launch_one(part, split, workspace, s); err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace pagoda::engine::cuda
