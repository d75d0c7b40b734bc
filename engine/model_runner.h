#pragma once
// The engine side of a step (vLLM v1's model runner): runs the backend's forward pass on a StepPlan and
// turns the logits rows into a StepResult with each sequence's sampler. Samplers live here, keyed by
// sequence id, from open() to close(): their state (penalty counts, the seeded generator) outlives
// preemption, and the scheduler never touches logits. A GPU backend may later sample on the device
// behind the same execute().
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/sampling/sampling_params.h"
#include "engine/status.h"
#include "engine/step_plan.h"
#include "engine/step_result.h"

namespace pagoda::engine {

class Sampler;

class ModelRunner {
 public:
  ModelRunner(Backend& backend, int32_t vocab_size);
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  void open(const SequenceSampling& s);
  void close(uint64_t seq_id);
  int32_t num_open() const { return static_cast<int32_t>(samplers_.size()); }

  // Copy-on-write block copies, before the step that reads them: the main pool's, then the window
  // pool's.
  Status copy_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst,
                     std::span<const std::pair<int32_t, int32_t>> window_src_dst = {});
  // Forward pass, then one draw per plan sample (its sampler records the token). Errors are the
  // backend's (Internal) or a sample for a sequence that has no open sampler (Internal).
  Result<StepResult> execute(const StepPlan& plan);

 private:
  Backend& backend_;
  int32_t vocab_;
  std::vector<float> logits_;
  std::unordered_map<uint64_t, std::unique_ptr<Sampler>> samplers_;
};

}  // namespace pagoda::engine
