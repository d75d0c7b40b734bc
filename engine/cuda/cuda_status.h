#pragma once
// CUDA and cuBLASLt errors as Status: the failed call, its error name and message. A CUDA error
// never aborts the daemon; it fails the step (or the load) with a message an operator can act on.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <string>

#include "engine/status.h"

namespace pagoda::engine::cuda {

inline Status cuda_status(cudaError_t err, const char* call) {
  if (err == cudaSuccess) return {};
  return Status::error(StatusCode::Internal, std::string("CUDA: ") + call + " failed: " + cudaGetErrorName(err) +
                                                 " (" + cudaGetErrorString(err) + ")");
}

inline Status cublas_status(cublasStatus_t st, const char* call) {
  if (st == CUBLAS_STATUS_SUCCESS) return {};
  return Status::error(StatusCode::Internal, std::string("cuBLASLt: ") + call + " failed: " + cublasLtGetStatusName(st) +
                                                 " (" + cublasLtGetStatusString(st) + ")");
}

}  // namespace pagoda::engine::cuda

// Returns the Status of a failed CUDA runtime call from the enclosing function.
#define PAGODA_CUDA_TRY(call)                                                        \
  do {                                                                               \
    if (::pagoda::Status s_ = ::pagoda::engine::cuda::cuda_status((call), #call); !s_.ok()) return s_; \
  } while (0)
#define PAGODA_CUBLAS_TRY(call)                                                          \
  do {                                                                                   \
    if (::pagoda::Status s_ = ::pagoda::engine::cuda::cublas_status((call), #call); !s_.ok()) return s_; \
  } while (0)
