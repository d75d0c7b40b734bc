#pragma once
// The Backend interface (DESIGN.md): a backend owns the physical weights and KV memory and runs a
// StepPlan's forward pass. CPU (oneDNN) and CUDA implement it; the same test suites run on both.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/cpu/cpu_options.h"
#include "engine/model/model_weights.h"
#include "engine/status.h"
#include "engine/step_plan.h"

namespace pagoda::engine {

// What a loaded backend is, for the start-up log, the model-info endpoints and benchmark reports.
struct BackendInfo {
  std::string kernels;              // one line on the kernels in use (ISA, GEMV/GEMM implementations)
  int64_t decode_weight_bytes = 0;  // weight bytes one small-batch (decode) step reads: what bounds it
};

// Where a backend's step time went, by kind of operation, summed over the steps since the last take
// (CpuBackendOptions::profile_ops): for benchmarks, e.g. the share of a mixture-of-experts layer spent
// routing tokens to experts rather than in the experts. Kinds in the backend's own order.
struct OpProfile {
  int64_t steps = 0;
  std::vector<std::pair<std::string, double>> seconds;  // (kind, wall seconds)
};

// How a KV pool stores keys and values. One kind today; a quantized KV cache is another entry here,
// and a backend refuses the ones it does not implement.
enum class KvDtype { F16 };
const char* kv_dtype_name(KvDtype dtype);
int32_t kv_dtype_bytes(KvDtype dtype);

struct KvCacheShape {
  int32_t num_blocks = 0;
  int32_t block_size = 16;  // tokens per block
  KvDtype dtype = KvDtype::F16;
  // > 0: the sliding-window layers (Backend::kv_window) keep their K/V in a pool of their own, of this
  // many blocks, addressed by the plan's window tables (KvCacheManager's window pool); 0: every layer
  // in the main pool.
  int32_t num_window_blocks = 0;
};
// What every backend's allocate_kv accepts: blocks >= 1, block size 1..1024, a dtype in `supported`.
Status check_kv_shape(const KvCacheShape& shape, std::span<const KvDtype> supported);

// Which backend runs the model. Auto: cuda when this build has it and a GPU is visible, else cpu.
enum class BackendKind { Auto, Cpu, Cuda };

// What the caller decides for any backend; what one backend alone reads sits in its own struct
// (engine/cpu/cpu_options.h), which the others ignore.
struct BackendOptions {
  BackendKind kind = BackendKind::Cpu;  // the daemon and the CLI default to Auto
  int32_t device = 0;                   // cuda: which GPU
  // The largest step the caller will run (the scheduler's token budget and sequence count): a backend
  // that preallocates step memory (cuda) sets it aside before the KV pool takes the rest.
  int32_t max_step_tokens = 2048;
  int32_t max_step_logits = 256;
  // cuda: steps of at most this many tokens (decode) replay CUDA graphs; 0 = none (--cuda-graph-max-tokens).
  int32_t cuda_graph_max_tokens = 64;
  // cuda: decode steps (<= 8 rows) through a bandwidth-bound kernel instead of cuBLASLt: faster, but
  // a sequence's logits then depend in the last bits on its batch (--cuda-decode-kernel gemv).
  bool cuda_decode_gemv = false;
  CpuBackendOptions cpu;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Status load(std::shared_ptr<const ModelWeights> weights) = 0;
  virtual Status allocate_kv(const KvCacheShape& shape) = 0;
  virtual KvCacheShape kv_shape() const = 0;
  // Bytes of KV memory one block of the main pool takes (its layers, K and V).
  virtual int64_t kv_bytes_per_block() const = 0;
  // The window pool (KvCacheShape::num_window_blocks): the sliding window of the layers that can keep
  // their K/V there (0: the model has none, or this backend keeps every layer in the main pool), and
  // the bytes one of its blocks takes (0 without a window pool).
  virtual int32_t kv_window() const { return 0; }
  virtual int64_t kv_bytes_per_window_block() const { return 0; }
  // Memory a KV pool could take now (after the weights): what --kv-memory-fraction is a fraction
  // of. Host memory available for cpu, free device memory less the step scratch for cuda.
  virtual int64_t kv_memory_available() const = 0;
  // Runs the plan; writes logits for plan.logits_indices, row-major [logits_indices.size()][vocab].
  virtual Status execute(const StepPlan& plan, std::span<float> logits) = 0;
  // Copies whole KV blocks (copy-on-write for forked sequences): pairs of (src, dst), applied in order
  // (a pair may read a block an earlier pair wrote).
  virtual Status copy_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) = 0;
  // The same in the window pool.
  virtual Status copy_window_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) {
    return src_dst.empty() ? Status{} : Status::error("copy_window_blocks: this backend has no window pool");
  }
  // Valid after load().
  virtual BackendInfo info() const = 0;
  // The profile since the last call, then zeroed; empty where the backend does not profile. Not
  // concurrent with execute().
  virtual OpProfile take_op_profile() { return {}; }
};

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& options);

// The backend options.kind names (Auto resolved as above); errors say why the kind is unavailable
// (a build without CUDA, no usable GPU, a --device that does not exist).
Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options);
// Auto -> Cpu or Cuda, with the reason in one line for the start-up log.
BackendKind resolve_backend_kind(BackendKind requested, std::string* why = nullptr);
const char* backend_kind_name(BackendKind kind);
bool cuda_backend_built();

}  // namespace pagoda::engine
