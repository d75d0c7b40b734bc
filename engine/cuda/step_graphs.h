#pragma once
// CUDA graphs for small steps. A decode step is a few hundred short kernel launches (about ten per
// layer) whose host cost and launch gaps outweigh the GPU's work on a small model. The kernels a step
// launches depend only on its shape (StepShape) and on device pointers that stay put between steps
// (the weights, the KV pool, the step scratch); the step's own integers (token ids, positions, slots,
// block tables) travel in a device buffer the caller writes before each run. So a shape's kernels are
// captured into a graph once and every later step of that shape is one graph launch.
//
// A shape is captured the second time it comes (a prefill chunk of a one-off length would not repay a
// capture), and at most `capacity` graphs are kept (least recently used go). A capture that fails
// (an operation the stream capture refuses, or any error of the step's launches, which the eager run
// then reports again) turns graphs off for good, with a warning naming it, and the step runs eagerly: graphs only ever change speed, never results or errors. Kernels replayed from a graph
// are the eager kernels with the same arguments: the numbers are identical.
#include <cuda_runtime_api.h>

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "engine/status.h"

namespace pagoda::engine::cuda {

// Everything that decides which kernels a step launches and with what arguments, beyond the pointers.
struct StepShape {
  int32_t tokens = 0, seqs = 0, block_table_width = 0, logits = 0;
  int32_t attention_splits = 0;  // AttentionSplit::num_splits (each row's split length is its own)
  auto operator<=>(const StepShape&) const = default;
};

class StepGraphs {
 public:
  explicit StepGraphs(size_t capacity = 64) : capacity_(capacity) {}
  ~StepGraphs() { clear(); }
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Has `enqueue` (which launches one step's kernels on s and nothing else: no allocation, no
  // synchronization) run on s: a replay of this shape's graph, a capture then a replay, or eagerly.
  Status run(const StepShape& shape, cudaStream_t s, const std::function<Status()>& enqueue);
  // Drops every graph: a pointer they hold (scratch, the KV pool) is about to change.
  void clear();

  bool enabled() const { return disabled_why_.empty(); }
  size_t size() const { return graphs_.size(); }
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }

 private:
  struct Entry {
    cudaGraphExec_t exec = nullptr;
    uint64_t last_used = 0;
  };
  Result<cudaGraphExec_t> capture(cudaStream_t s, const std::function<Status()>& enqueue);

  size_t capacity_;
  std::map<StepShape, Entry> graphs_;
  std::set<StepShape> seen_once_;  // shapes run eagerly once, not captured yet
  uint64_t clock_ = 0;
  int64_t captures_ = 0, replays_ = 0;
  std::string disabled_why_;
};

}  // namespace pagoda::engine::cuda
