#pragma once
// The CUDA backend: the engine's Backend on one NVIDIA GPU. Weights in bf16 (dequantized at load),
// GEMMs through cuBLASLt, a paged fp16 KV pool in device memory, the StepPlan's ragged batch run as
// it comes (no padding). Same contract as the CPU backend (engine/backend.h); its numbers agree
// with the CPU backend's within bf16 rounding, not bit for bit.
#include <cstdint>
#include <memory>
#include <string>

#include "engine/backend.h"

namespace pagoda::engine::cuda {

struct CudaBackendOptions {
  int32_t device = 0;
  // The largest step (BackendOptions::max_step_tokens / max_step_logits): its scratch is allocated
  // with the KV pool and kept out of the pool's share of memory.
  int32_t max_step_tokens = 2048;
  int32_t max_step_logits = 256;
};

struct CudaDeviceInfo {
  int32_t index = 0;
  std::string name;
  int32_t major = 0, minor = 0;  // compute capability
  int32_t sm_count = 0;
  int64_t total_bytes = 0, free_bytes = 0;
  std::string describe() const;  // "NVIDIA H200 (device 0, sm_90, 132 SMs, 139.8 GiB, 139.3 GiB free)"
};

// The visible devices, or an error saying why there are none (no driver, no device, a driver too
// old for this build): what a test prints when it skips.
Result<int32_t> cuda_device_count();
Result<CudaDeviceInfo> cuda_device_info(int32_t device);

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options);

}  // namespace pagoda::engine::cuda
