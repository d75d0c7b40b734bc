#pragma once
// Options only the CPU backend reads (BackendOptions::cpu): its thread count and how it multiplies
// the many-row matmuls of prefill.
#include <cstdint>

namespace pagoda::engine {

// How matmuls of many rows (prefill) are computed. Decode always uses the int8 path.
enum class PrefillMatmul {
  Int8,        // the GGUF's own blocks with ggml's exact arithmetic: logits identical to llama.cpp's
  OnednnBf16,  // oneDNN bf16 matmul on dequantized weights: closer to exact math, not to llama.cpp
};

struct CpuBackendOptions {
  int32_t num_threads = 0;  // 0 = all cores
  PrefillMatmul prefill_matmul = PrefillMatmul::Int8;
  // With OnednnBf16: steps of at least this many tokens use it (smaller ones stay on int8).
  int32_t bf16_min_tokens = 16;
  // Time every step's operations by kind for take_op_profile() (benchmarks: `pagoda bench ...
  // --profile-ops`). A clock read per operation, and two per routed expert in a MoE layer; off, none.
  bool profile_ops = false;
};

}  // namespace pagoda::engine
