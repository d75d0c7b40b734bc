#include "engine/cuda/step_graphs.h"

#include <spdlog/spdlog.h>

#include "engine/cuda/cuda_status.h"

namespace pagoda::engine::cuda {

namespace {
constexpr size_t kMaxSeenShapes = 4096;  // past this, the one-time shapes are forgotten
}

void StepGraphs::clear() {
  for (auto& [shape, e] : graphs_) cudaGraphExecDestroy(e.exec);
  graphs_.clear();
  seen_once_.clear();
}

Result<cudaGraphExec_t> StepGraphs::capture(cudaStream_t s, const std::function<Status()>& enqueue) {
  // Thread-local: another thread's CUDA calls (none today) cannot invalidate this capture.
  PAGODA_CUDA_TRY(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  const Status launched = enqueue();
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(s, &graph);  // always: the stream must leave capture mode
  if (!launched.ok() || ended != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    return launched.ok() ? cuda_status(ended, "cudaStreamEndCapture") : launched;
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (made != cudaSuccess) {
    (void)cudaGetLastError();
    return cuda_status(made, "cudaGraphInstantiate");
  }
  return exec;
}

Status StepGraphs::run(const StepShape& shape, cudaStream_t s, const std::function<Status()>& enqueue) {
  if (!enabled()) return enqueue();
  ++clock_;
  if (auto it = graphs_.find(shape); it != graphs_.end()) {
    it->second.last_used = clock_;
    ++replays_;
    PAGODA_CUDA_TRY(cudaGraphLaunch(it->second.exec, s));
    return {};
  }
  if (seen_once_.find(shape) == seen_once_.end()) {
    if (seen_once_.size() >= kMaxSeenShapes) seen_once_.clear();
    seen_once_.insert(shape);
    return enqueue();
  }
  auto exec = capture(s, enqueue);
  if (!exec.ok()) {
    disabled_why_ = exec.message();
    spdlog::warn("cuda: capturing a step into a CUDA graph failed, steps run without graphs from now on: {}",
                 disabled_why_);
    return enqueue();  // nothing ran during the capture: the step runs now, eagerly
  }
  seen_once_.erase(shape);
  if (graphs_.size() >= capacity_) {
    auto oldest = graphs_.begin();
    for (auto it = graphs_.begin(); it != graphs_.end(); ++it) {
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    }
    cudaGraphExecDestroy(oldest->second.exec);
    graphs_.erase(oldest);
  }
  graphs_.emplace(shape, Entry{exec.value(), clock_});
  ++captures_;
  ++replays_;
  PAGODA_CUDA_TRY(cudaGraphLaunch(exec.value(), s));
  return {};
}

}  // namespace pagoda::engine::cuda
