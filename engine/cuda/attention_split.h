#pragma once
// How attention splits each query row's context (flash-decoding): split s of a row covers keys
// [s * split_len, (s + 1) * split_len); partial softmax results are combined afterwards. Chosen on
// the host (launch_plan.h), read by the kernels (attention.h); no includes, so nvcc sees plain C++17.
#include <cstdint>

namespace pagoda::engine::cuda {

struct AttentionSplit {
  int32_t num_splits = 1;
  int32_t split_len = 0;  // keys per split, a multiple of the KV block size
};

}  // namespace pagoda::engine::cuda
