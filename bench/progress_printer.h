#pragma once
// A one-line progress bar on stderr while a load run is in flight, redrawn from a LoadProgress.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "bench/load_progress.h"

namespace pagoda::bench {

class ProgressPrinter {
 public:
  // Redraws "label [#####.....] done/total, failed, tokens, seconds" about 4 times a second until
  // destroyed, then prints the final state and a newline. Does nothing when `enabled` is false.
  ProgressPrinter(const LoadProgress& progress, size_t total, std::string label, bool enabled);
  ~ProgressPrinter();
  ProgressPrinter(const ProgressPrinter&) = delete;
  ProgressPrinter& operator=(const ProgressPrinter&) = delete;

 private:
  void draw() const;

  const LoadProgress& progress_;
  const size_t total_;
  const std::string label_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace pagoda::bench
