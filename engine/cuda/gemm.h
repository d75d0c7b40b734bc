#pragma once
// Linear layers through cuBLASLt: y[M][N] (f32) = x[M][K] (bf16) . w[N][K]^T (bf16), fp32 accumulate.
// One handle and one workspace for the backend's life; the layouts and the algorithm cuBLASLt's
// heuristic picks are cached per (M, N, K) (at most kMaxPlans), so a steady decode loop asks it nothing.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "engine/cuda/device_buffer.h"
#include "engine/status.h"

namespace pagoda::engine::cuda {

class Gemm {
 public:
  static Result<std::unique_ptr<Gemm>> create(size_t workspace_bytes = 32u << 20);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  Status run(const uint16_t* x, const uint16_t* w, float* y, int32_t M, int32_t N, int32_t K, cudaStream_t s);

 private:
  Gemm() = default;
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  static constexpr size_t kMaxPlans = 1024;
  Result<const Plan*> plan_for(int32_t M, int32_t N, int32_t K);
  Status make_plan(int32_t M, int32_t N, int32_t K, Plan& p);  // on error p holds what was made
  static void destroy(Plan& p);

  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer<uint8_t> workspace_;
  std::map<std::tuple<int32_t, int32_t, int32_t>, Plan> plans_;
};

}  // namespace pagoda::engine::cuda
