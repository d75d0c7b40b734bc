#pragma once
// The CUDA backend's host-side planning, in plain C++ so every machine tests it (no GPU, no nvcc):
// how a StepPlan travels to the device (one packed int32 upload), how attention splits long contexts
// across thread blocks (flash-decoding), and how much device memory the KV pool takes.
#include <cstdint>
#include <vector>

#include "engine/cuda/attention_split.h"
#include "engine/model/model_config.h"
#include "engine/status.h"
#include "engine/step_plan.h"

namespace pagoda::engine::cuda {

// A StepPlan's integer arrays in one buffer, so a step costs one host-to-device copy. Offsets are in
// int32 elements from the start of `data`.
struct PackedStep {
  std::vector<int32_t> data;
  int64_t token_ids = 0, positions = 0, slot_mapping = 0;
  int64_t token_seq = 0;     // [T]: the sequence (index into the plan's sequences) of each token
  int64_t block_tables = 0;  // [B][max_blocks_per_seq]
  int64_t logits_indices = 0;
  int32_t num_tokens = 0, num_seqs = 0, num_logits = 0, max_blocks_per_seq = 0;
  int32_t max_context = 0;  // the longest context any token attends to (its position + 1)
};
PackedStep pack_step(const StepPlan& plan);

// Splits a context only when the rows alone (query tokens x heads) would leave the GPU's
// multiprocessors idle, and never into pieces shorter than kMinSplitKeys keys.
inline constexpr int32_t kMinSplitKeys = 64;
inline constexpr int32_t kMaxSplits = 64;
AttentionSplit choose_attention_split(int32_t max_context, int64_t rows, int32_t sm_count, int32_t block_size);

// Device bytes of a step's scratch buffers (activations, q|k|v, gate|up, logits, ...) for `tokens`
// tokens of which `logit_rows` want logits, with attention unsplit (splits only happen for steps of
// few rows, whose partial results are far smaller).
int64_t step_scratch_bytes(const ModelConfig& c, int64_t tokens, int64_t logit_rows);

// Device memory a KV pool may take: the free memory after the weights, less the scratch of the
// largest step (step_scratch_bytes) and a margin for the cuBLASLt workspace and the CUDA context's
// own growth (kStepReserveBytes or kStepReserveFraction of the card, the larger).
// --kv-memory-fraction applies to the rest.
inline constexpr int64_t kStepReserveBytes = int64_t(1) << 30;
inline constexpr double kStepReserveFraction = 0.04;
int64_t kv_memory_available_on_device(int64_t free_bytes, int64_t total_bytes, int64_t step_scratch);

}  // namespace pagoda::engine::cuda
