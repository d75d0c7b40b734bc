// The few-row linear layer (gemv.h): one warp per output column, w streamed in 16-byte loads.
#include <cstdint>

#include "engine/cuda/gemv.h"

namespace pagoda::engine::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kLoadsInFlight = 4;  // 16-byte chunks of w each lane issues before it uses the first

// A 32-bit word holds two bf16 values, element 2i in the low half: bf16 -> f32 is a shift.
__device__ inline float lo_bf16(uint32_t u) { return __uint_as_float(u << 16); }
__device__ inline float hi_bf16(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

// acc += the 8-element dot product of one chunk of w and one of x, elements in order.
__device__ inline float dot8(float acc, const uint4& w, const uint4& x) {
  acc = fmaf(lo_bf16(w.x), lo_bf16(x.x), acc);
  acc = fmaf(hi_bf16(w.x), hi_bf16(x.x), acc);
  acc = fmaf(lo_bf16(w.y), lo_bf16(x.y), acc);
  acc = fmaf(hi_bf16(w.y), hi_bf16(x.y), acc);
  acc = fmaf(lo_bf16(w.z), lo_bf16(x.z), acc);
  acc = fmaf(hi_bf16(w.z), hi_bf16(x.z), acc);
  acc = fmaf(lo_bf16(w.w), lo_bf16(x.w), acc);
  acc = fmaf(hi_bf16(w.w), hi_bf16(x.w), acc);
  return acc;
}

// x: [M][K8] chunks, w: [N][K8] chunks, y: [M][N].
template <int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) gemv_kernel(const uint4* __restrict__ x,
                                                                   const uint4* __restrict__ w, float* __restrict__ y,
                                                                   int32_t N, int32_t K8) {
  const int lane = threadIdx.x % 32;
  const int32_t n = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (n >= N) return;
  const uint4* wr = w + static_cast<int64_t>(n) * K8;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  for (int32_t c0 = lane; c0 < K8; c0 += 32 * kLoadsInFlight) {
    // Every load of w first (each is read once: streamed past the caches), then the arithmetic; x's
    // chunks are the same for every warp and come from the caches.
    uint4 wv[kLoadsInFlight];
#pragma unroll
    for (int u = 0; u < kLoadsInFlight; ++u) {
      const int32_t c = c0 + u * 32;
      wv[u] = c < K8 ? __ldcs(wr + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kLoadsInFlight; ++u) {
      const int32_t c = c0 + u * 32;
      if (c < K8) {
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m] = dot8(acc[m], wv[u], __ldg(x + static_cast<int64_t>(m) * K8 + c));
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float v = acc[m];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) y[static_cast<int64_t>(m) * N + n] = v;
  }
}

template <int M>
void launch(const uint16_t* x, const uint16_t* w, float* y, int32_t N, int32_t K, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((N + kWarpsPerBlock - 1) / kWarpsPerBlock);
  gemv_kernel<M><<<blocks, kWarpsPerBlock * 32, 0, s>>>(reinterpret_cast<const uint4*>(x),
                                                         reinterpret_cast<const uint4*>(w), y, N, K / 8);
}

}  // namespace

bool gemv_applies(const uint16_t* x, const uint16_t* w, int32_t M, int32_t K) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return M >= 1 && M <= kGemvMaxRows && K > 0 && K % 8 == 0 && aligned(x) && aligned(w);
}

cudaError_t gemv_bf16(const uint16_t* x, const uint16_t* w, float* y, int32_t M, int32_t N, int32_t K, cudaStream_t s) {
  if (!gemv_applies(x, w, M, K) || N < 1 || y == nullptr) return cudaErrorInvalidValue;
  static_assert(kGemvMaxRows == 8, "one instantiation per row count below");
  switch (M) {
    case 1: launch<1>(x, w, y, N, K, s); break;
    case 2: launch<2>(x, w, y, N, K, s); break;
    case 3: launch<3>(x, w, y, N, K, s); break;
    case 4: launch<4>(x, w, y, N, K, s); break;
    case 5: launch<5>(x, w, y, N, K, s); break;
    case 6: launch<6>(x, w, y, N, K, s); break;
    case 7: launch<7>(x, w, y, N, K, s); break;
    default: launch<8>(x, w, y, N, K, s); break;
  }
  return cudaGetLastError();
}

}  // namespace pagoda::engine::cuda
