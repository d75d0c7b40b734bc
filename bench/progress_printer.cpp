#include "bench/progress_printer.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstdio>

namespace pagoda::bench {

ProgressPrinter::ProgressPrinter(const LoadProgress& progress, size_t total, std::string label, bool enabled)
    : progress_(progress), total_(total), label_(std::move(label)), start_(std::chrono::steady_clock::now()) {
  if (!enabled) return;
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stop_; })) draw();
  });
}

ProgressPrinter::~ProgressPrinter() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  draw();
  std::fputc('\n', stderr);
}

void ProgressPrinter::draw() const {
  constexpr size_t kWidth = 30;
  const size_t done = progress_.finished.load();
  const size_t filled = total_ == 0 ? kWidth : std::min(kWidth, done * kWidth / total_);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string line = fmt::format("\r{} [{}{}] {}/{} done, {} sent, {} failed, {} tokens, {:.1f} s", label_,
                                       std::string(filled, '#'), std::string(kWidth - filled, '.'), done, total_,
                                       progress_.sent.load(), progress_.failed.load(), progress_.tokens.load(), secs);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace pagoda::bench
