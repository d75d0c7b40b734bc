// make_backend: the one place that knows which backends this build has (and what every backend
// checks alike). The CUDA backend exists
// only where PAGODA_CUDA was on at build time; asking for it elsewhere is a clear error.
#include <spdlog/fmt/fmt.h>

#include <algorithm>

#include "engine/backend.h"
#ifdef PAGODA_HAS_CUDA
#include "engine/cuda/cuda_backend.h"
#endif

namespace pagoda::engine {

Status check_kv_shape(const KvCacheShape& shape, std::span<const KvDtype> supported) {
  if (shape.num_blocks <= 0 || shape.block_size <= 0 || shape.block_size > 1024) {
    return Status::error(fmt::format("allocate_kv: {} blocks of {} tokens is not a valid pool (blocks >= 1, "
                                     "block size 1..1024)",
                                     shape.num_blocks, shape.block_size));
  }
  if (shape.num_window_blocks < 0) {
    return Status::error(
        fmt::format("allocate_kv: {} window blocks is not a valid window pool", shape.num_window_blocks));
  }
  if (std::find(supported.begin(), supported.end(), shape.dtype) == supported.end()) {
    return Status::error(fmt::format("allocate_kv: this backend has no {} KV cache", kv_dtype_name(shape.dtype)));
  }
  return {};
}

const char* kv_dtype_name(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::F16: return "f16";
  }
  return "?";
}

int32_t kv_dtype_bytes(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::F16: return 2;
  }
  return 0;
}

const char* backend_kind_name(BackendKind kind) {
  switch (kind) {
    case BackendKind::Auto: return "auto";
    case BackendKind::Cpu: return "cpu";
    case BackendKind::Cuda: return "cuda";
  }
  return "?";
}

bool cuda_backend_built() {
#ifdef PAGODA_HAS_CUDA
  return true;
#else
  return false;
#endif
}

BackendKind resolve_backend_kind(BackendKind requested, std::string* why) {
  if (requested != BackendKind::Auto) {
    if (why) *why = "requested";
    return requested;
  }
#ifdef PAGODA_HAS_CUDA
  auto n = cuda::cuda_device_count();
  if (n.ok()) {
    if (why) *why = fmt::format("auto: {} CUDA device(s) visible", n.value());
    return BackendKind::Cuda;
  }
  if (why) *why = fmt::format("auto: {}", n.message());
#else
  if (why) *why = "auto: this build has no CUDA backend";
#endif
  return BackendKind::Cpu;
}

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options) {
  switch (resolve_backend_kind(options.kind)) {
    case BackendKind::Cuda: {
#ifdef PAGODA_HAS_CUDA
      auto n = cuda::cuda_device_count();
      if (!n.ok()) return Status::error(StatusCode::Unavailable, "--backend cuda: " + n.message());
      if (options.device < 0 || options.device >= n.value()) {
        return Status::error(fmt::format("--device {} does not exist: {} CUDA device(s) visible", options.device,
                                         n.value()));
      }
      cuda::CudaBackendOptions o;
      o.device = options.device;
      o.max_step_tokens = options.max_step_tokens;
      o.max_step_logits = options.max_step_logits;
      o.graph_max_tokens = options.cuda_graph_max_tokens;
      o.decode_gemv = options.cuda_decode_gemv;
      return cuda::make_cuda_backend(o);
#else
      return Status::error(StatusCode::Unavailable,
                           "--backend cuda: this build has no CUDA backend (built without nvcc, or with "
                           "-DPAGODA_CUDA=OFF)");
#endif
    }
    case BackendKind::Cpu:
    case BackendKind::Auto:
      break;
  }
  return make_cpu_backend(options.cpu);
}

}  // namespace pagoda::engine
