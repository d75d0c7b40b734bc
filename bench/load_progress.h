#pragma once
// Live counters a load driver bumps while it runs; a progress printer on another thread reads them.
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pagoda::bench {

struct LoadProgress {
  std::atomic<size_t> sent{0};       // requests written to the server
  std::atomic<size_t> finished{0};   // requests ended, ok or not (including those never sent)
  std::atomic<size_t> failed{0};     // of finished, those that failed
  std::atomic<int64_t> tokens{0};    // output tokens (streamed chunks) received so far
};

}  // namespace pagoda::bench
