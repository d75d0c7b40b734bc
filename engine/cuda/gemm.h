#pragma once
// Linear layers: y[M][N] (f32) = x[M][K] (bf16) . w[N][K]^T (bf16), fp32 accumulate, through cuBLASLt;
// with `few_row_kernel`, a few rows (decode, M <= kGemvMaxRows) go to the bandwidth-bound kernel of
// gemv.h instead. On an H200 cuBLASLt gave each output the same bits whatever M was, for every shape
// the suites run (32 sequences decoded together give the tokens each gives alone; speculative
// verification gives the plain output): an observation the GPU check keeps testing, not a documented
// guarantee. The few-row kernel's order differs from cuBLASLt's, so with it on a sequence's logits
// change in the last bits when its step grows past kGemvMaxRows rows. cuBLASLt: one handle
// and one workspace for the backend's life; the layouts and the algorithm cuBLASLt's heuristic picks
// are cached per (M, N, K) (at most kMaxPlans), so a steady loop asks it nothing. Every launch can be
// captured into a CUDA graph (step_graphs.h).
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
  static Result<std::unique_ptr<Gemm>> create(bool few_row_kernel = false, size_t workspace_bytes = 32u << 20);
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

  bool few_row_kernel_ = false;
  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer<uint8_t> workspace_;
  std::map<std::tuple<int32_t, int32_t, int32_t>, Plan> plans_;
};

}  // namespace pagoda::engine::cuda
