#pragma once
// The padded-prefill ablation of the mixed-prefill workload: what a runtime without ragged batching
// computes. It wraps a backend: before each step, every prefill chunk of the plan (a sequence that
// runs two tokens or more) gets a throw-away companion sequence of pad tokens, so the step does the
// work of a batch whose prompts are all padded to its longest chunk. The pads want no logits, so
// every real output is the packed run's; they write their KV into the last `pad_blocks` blocks of
// the pool, which the scheduler must be told not to use (EngineLoopConfig::num_kv_blocks).
// Benchmark only: the scheduler knows nothing of it.
#include <cstdint>
#include <span>

#include "bench/forwarding_backend.h"
#include "engine/step_plan.h"

namespace pagoda::bench {

class PaddedPrefillBackend final : public ForwardingBackend {
 public:
  // The pads' blocks are [first_pad_block, kv_shape().num_blocks) of `inner`'s pool.
  PaddedPrefillBackend(engine::Backend& inner, int32_t first_pad_block);
  Status execute(const engine::StepPlan& plan, std::span<float> logits) override;

  int64_t pad_tokens = 0;          // pads run, over all steps
  int64_t skipped_pad_tokens = 0;  // pads that did not fit the reserved blocks, or had no window pool blocks (not run)

 private:
  int32_t first_pad_block_;
  engine::StepPlan padded_;  // reused across steps
};

// Appends a sequence of `num_tokens` pad tokens (id 0) at positions 0.. whose KV goes to `blocks`, wanting
// no logits (the block table is widened when `blocks` is longer than the plan's).
void append_pad_sequence(engine::StepPlan& plan, uint64_t seq_id, int32_t num_tokens, std::span<const int32_t> blocks,
                         int32_t block_size);

}  // namespace pagoda::bench
