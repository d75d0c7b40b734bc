#pragma once
// How attention splits each query row's context (flash-decoding): split s of a row covers keys
// [s * len, (s + 1) * len); partial softmax results are combined afterwards. Chosen on the host
// (launch_plan.h), read by the kernels (attention.h); no includes, so nvcc sees plain C++17.
//
// A row's split length depends on its own context only (split_len_for_context), never on the step
// it shares: a sequence's attention is then the same arithmetic whether it decodes alone, next to 31
// others, or verifies four draft tokens at once (speculative decoding keeps greedy output exact only
// if it is). The step only decides how many splits the launch has room for (the longest row's), and
// how many tokens go in one launch.
#include <cstdint>

#if defined(__CUDACC__)
#define PAGODA_HOST_DEVICE __host__ __device__
#else
#define PAGODA_HOST_DEVICE
#endif

namespace pagoda::engine::cuda {

inline constexpr int32_t kMinSplitKeys = 64;   // no split is shorter
inline constexpr int32_t kMaxRowSplits = 32;   // no row has more splits

// The least power of two >= x (x itself past 2^30).
inline PAGODA_HOST_DEVICE int32_t next_power_of_two(int32_t x) {
  int32_t p = 1;
  while (p < x && p < (int32_t(1) << 30)) p <<= 1;
  return p > x ? p : x;
}

// kMinSplitKeys, or the context rounded up to a power of two over kMaxRowSplits, in whole KV blocks.
inline PAGODA_HOST_DEVICE int32_t split_len_for_context(int32_t ctx, int32_t block_size) {
  const int32_t pow2 = next_power_of_two(ctx);
  int32_t len = pow2 / kMaxRowSplits > kMinSplitKeys ? pow2 / kMaxRowSplits : kMinSplitKeys;
  const int32_t bs = block_size > 0 ? block_size : 1;
  return (len + bs - 1) / bs * bs;
}

struct AttentionSplit {
  int32_t num_splits = 1;  // the launch's splits per row; a row's splits past its context are empty
  int32_t split_len = 0;   // keys per split; 0 = each row's split_len_for_context (what the backend runs)
  // Query tokens per launch (0 = all): a big step runs as several launches over consecutive tokens,
  // reusing one bounded workspace for the partial results; rows are independent, so nothing else changes.
  int32_t tokens_per_launch = 0;
};

}  // namespace pagoda::engine::cuda
