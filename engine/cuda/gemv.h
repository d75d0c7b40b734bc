#pragma once
// Linear layers of a few rows (decode): y[M][N] (f32) = x[M][K] (bf16) . w[N][K]^T (bf16), fp32
// accumulation, for M <= kGemvMaxRows. Such a product is bound by reading w once: cuBLASLt's tensor-core
// tiles mostly idle on it, and a plain kernel that streams w in 16-byte loads, several in flight per
// thread, gets closer to the memory's bandwidth. One warp per output column n reads w's row n once
// and applies it to all M rows of x.
//
// Each y[m][n] is summed in the same order whatever M is (lane j takes 8-element chunks j, j + 32, ...
// in turn, then a fixed shuffle reduction): a sequence's decode result does not depend on how many
// other sequences share its step, as long as the step has at most kGemvMaxRows rows.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace pagoda::engine::cuda {

inline constexpr int32_t kGemvMaxRows = 8;

// The kernel's needs: 1 <= M <= kGemvMaxRows, K a multiple of 8 (whole 16-byte chunks per row), x and
// w 16-byte aligned (so is every row then). Gemm::run uses cuBLASLt for everything else.
bool gemv_applies(const uint16_t* x, const uint16_t* w, int32_t M, int32_t K);

// cudaErrorInvalidValue where gemv_applies is false or N < 1.
cudaError_t gemv_bf16(const uint16_t* x, const uint16_t* w, float* y, int32_t M, int32_t N, int32_t K, cudaStream_t s);

}  // namespace pagoda::engine::cuda
