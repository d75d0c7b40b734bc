#pragma once
// The CUDA backend: the engine's Backend on one NVIDIA GPU. Weights in bf16 (dequantized at load),
// linear layers through cuBLASLt (or, opted in, a bandwidth-bound kernel for decode's few rows: gemm.h),
// small steps replayed as CUDA graphs (step_graphs.h), a paged fp16 KV pool in device memory, the
// StepPlan's ragged batch run as it comes (no padded tokens; block tables padded to a power of two). Same contract as the CPU backend (engine/backend.h); its numbers agree
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
  // Steps of at most this many tokens run as CUDA graphs (step_graphs.h); 0 = every step eagerly.
  int32_t graph_max_tokens = 64;
  // Steps of at most kGemvMaxRows rows through the few-row kernel instead of cuBLASLt (gemm.h): faster
  // decode, but a sequence's logits then depend in the last bits on how many rows share its step.
  bool decode_gemv = false;
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

// How a CUDA backend's steps ran: graphs captured and replayed (step_graphs.h); all zero for a
// backend that is not the CUDA one.
struct CudaGraphStats {
  int64_t captures = 0, replays = 0;
  int64_t cached = 0;    // graphs kept now
  bool enabled = false;  // false once a capture failed (steps run eagerly)
};
// Reads the backend's counters unlocked: call it from the thread that runs its steps (or between steps).
CudaGraphStats cuda_graph_stats(const Backend& backend);

}  // namespace pagoda::engine::cuda
