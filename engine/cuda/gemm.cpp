#include "engine/cuda/gemm.h"

#include <spdlog/fmt/fmt.h>

#include "engine/cuda/cuda_status.h"
#include "engine/cuda/gemv.h"

namespace pagoda::engine::cuda {

Result<std::unique_ptr<Gemm>> Gemm::create(bool few_row_kernel, size_t workspace_bytes) {
  std::unique_ptr<Gemm> g(new Gemm());
  g->few_row_kernel_ = few_row_kernel;
  PAGODA_CUBLAS_TRY(cublasLtCreate(&g->handle_));
  if (Status s = g->workspace_.allocate(workspace_bytes, "the cuBLASLt workspace"); !s.ok()) return s;
  return g;
}

void Gemm::destroy(Plan& p) {
  if (p.a) cublasLtMatrixLayoutDestroy(p.a);
  if (p.b) cublasLtMatrixLayoutDestroy(p.b);
  if (p.c) cublasLtMatrixLayoutDestroy(p.c);
  if (p.op) cublasLtMatmulDescDestroy(p.op);
  p = Plan{};
}

Gemm::~Gemm() {
  for (auto& [shape, p] : plans_) destroy(p);
  if (handle_) cublasLtDestroy(handle_);
}

// Row-major y = x w^T is, in cuBLAS's column-major terms, y^T (N x M) = w (stored K x N, transposed)
// times x^T (stored K x M): A = w with op T, B = x, C = D = y with leading dimension N.
Status Gemm::make_plan(int32_t M, int32_t N, int32_t K, Plan& p) {
  PAGODA_CUBLAS_TRY(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans = CUBLAS_OP_T, none = CUBLAS_OP_N;
  PAGODA_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)));
  PAGODA_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none)));
  PAGODA_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, K, N, K));
  PAGODA_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, K, M, K));
  PAGODA_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, N, M, N));

  cublasLtMatmulPreference_t pref = nullptr;
  PAGODA_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = workspace_.bytes();
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (st == CUBLAS_STATUS_SUCCESS) {
    st = cublasLtMatmulAlgoGetHeuristic(handle_, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    return Status::error(StatusCode::Internal, fmt::format("cuBLASLt: no bf16 matmul algorithm for M={} N={} K={} ({})",
                                                           M, N, K, cublasLtGetStatusString(st)));
  }
  p.algo = result.algo;
  return {};
}

Result<const Gemm::Plan*> Gemm::plan_for(int32_t M, int32_t N, int32_t K) {
  const auto key = std::make_tuple(M, N, K);
  if (auto it = plans_.find(key); it != plans_.end()) return &it->second;
  // Steps of every token count would grow the cache without end: start over past kMaxPlans.
  if (plans_.size() >= kMaxPlans) {
    for (auto& [shape, old] : plans_) destroy(old);
    plans_.clear();
  }
  Plan p;
  if (Status s = make_plan(M, N, K, p); !s.ok()) {
    destroy(p);
    return s;
  }
  return &plans_.emplace(key, p).first->second;
}

Status Gemm::run(const uint16_t* x, const uint16_t* w, float* y, int32_t M, int32_t N, int32_t K, cudaStream_t s) {
  if (M <= 0) return {};
  if (few_row_kernel_ && gemv_applies(x, w, M, K)) {
    PAGODA_CUDA_TRY(gemv_bf16(x, w, y, M, N, K, s));
    return {};
  }
  auto plan = plan_for(M, N, K);
  if (!plan.ok()) return plan.status();
  const Plan& p = *plan.value();
  const float alpha = 1.0f, beta = 0.0f;
  PAGODA_CUBLAS_TRY(cublasLtMatmul(handle_, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo,
                                   workspace_.get(), workspace_.bytes(), s));
  return {};
}

}  // namespace pagoda::engine::cuda
