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
// block_table_width (>= the plan's max_blocks_per_seq; 0 = that) pads each table with -1.
PackedStep pack_step(const StepPlan& plan, int32_t block_table_width = 0);

// The backend pads block tables to a power-of-two width and sizes the attention launch for the longest
// context rounded up to a power of two (at least kMinSplitKeys): a decode step's shape then changes
// when a context doubles, not at every new block, and its CUDA graph (step_graphs.h) is reused.
int32_t padded_block_table_width(int32_t width);
int32_t context_bucket(int32_t max_context);

// The splits of a step of num_tokens query tokens whose longest context is max_context: room for the
// longest row's splits (attention_split.h), or none when max_context fits one split; and as many tokens
// per launch as keep the partial results within kMaxAttentionWorkspaceBytes (a prefill of thousands
// of tokens over a long context runs as several launches).
inline constexpr int64_t kMaxAttentionWorkspaceBytes = int64_t(256) << 20;
AttentionSplit choose_attention_split(int32_t max_context, int32_t num_tokens, int32_t n_heads, int32_t head_dim,
                                      int32_t block_size);

// Device bytes of a step's scratch buffers (activations, q|k|v, gate|up, logits, ...) for `tokens`
// tokens of which `logit_rows` want logits, and the attention splits' partial results (at most
// kMaxAttentionWorkspaceBytes).
int64_t step_scratch_bytes(const ModelConfig& c, int64_t tokens, int64_t logit_rows);
// The attention workspace (floats) no step of at most `tokens` tokens exceeds.
int64_t max_attention_workspace_floats(const ModelConfig& c, int64_t tokens);

// Device memory a KV pool may take: the free memory after the weights, less the scratch of the
// largest step (step_scratch_bytes) and a margin for the cuBLASLt workspace and the CUDA context's
// own growth (kStepReserveBytes or kStepReserveFraction of the card, the larger).
// --kv-memory-fraction applies to the rest.
inline constexpr int64_t kStepReserveBytes = int64_t(1) << 30;
inline constexpr double kStepReserveFraction = 0.04;
int64_t kv_memory_available_on_device(int64_t free_bytes, int64_t total_bytes, int64_t step_scratch);

}  // namespace pagoda::engine::cuda
