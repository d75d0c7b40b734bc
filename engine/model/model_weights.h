#pragma once
// The weights of a model (any registered family) as views into the mapped GGUF file: every tensor the forward
// pass needs, found by its GGUF name and checked against the config's shapes. Backends turn these
// views into whatever layout their kernels want (bf16, repacked quant blocks, device memory).
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "engine/model/model_config.h"
#include "engine/status.h"

namespace pagoda::engine {

struct LayerWeights {
  const GgufTensorInfo* attn_norm = nullptr;  // [d_model] f32
  const GgufTensorInfo* wq = nullptr;         // [d_model -> q_dim]   (ggml dims {d_model, q_dim})
  const GgufTensorInfo* wk = nullptr;         // [d_model -> kv_dim]
  const GgufTensorInfo* wv = nullptr;         // [d_model -> kv_dim]
  const GgufTensorInfo* wo = nullptr;         // [q_dim -> d_model]
  // Where the file fuses them (Architecture::fused_qkv / fused_gate_up): the one matrix, whose row ranges
  // wq/wk/wv and w_gate/w_up then view. A backend that multiplies the fused matrix as one decides its
  // kernel (repacking, tinyBLAS) on the whole of it, as ggml does. nullptr otherwise.
  const GgufTensorInfo* wqkv = nullptr;       // [d_model -> q_dim + 2 kv_dim]
  const GgufTensorInfo* w_gate_up = nullptr;  // [d_model -> 2 ffn], gate rows first
  // Added to the projections' outputs where the file has them (qwen2); nullptr = none. All three or none.
  const GgufTensorInfo* bq = nullptr;  // [q_dim] f32
  const GgufTensorInfo* bk = nullptr;  // [kv_dim]
  const GgufTensorInfo* bv = nullptr;  // [kv_dim]
  // Per-head RMSNorm weights of Q and K (LayerOps::qk_norm); nullptr otherwise.
  const GgufTensorInfo* q_norm = nullptr;  // [head_dim] f32
  const GgufTensorInfo* k_norm = nullptr;  // [head_dim] f32
  const GgufTensorInfo* ffn_norm = nullptr;   // [d_model] f32
  // Norms of the attention and FFN outputs (LayerOps::post_norms); nullptr otherwise.
  const GgufTensorInfo* attn_post_norm = nullptr;  // post_attention_norm [d_model]
  const GgufTensorInfo* ffn_post_norm = nullptr;   // post_ffw_norm [d_model]
  // Dense FFN (nullptr with ops.moe):
  const GgufTensorInfo* w_gate = nullptr;     // [d_model -> ffn]
  const GgufTensorInfo* w_up = nullptr;       // [d_model -> ffn]
  const GgufTensorInfo* w_down = nullptr;     // [ffn -> d_model]
  // Routed experts (ops.moe), expert e's matrix being slice e of the 3-D tensor:
  const GgufTensorInfo* router = nullptr;     // ffn_gate_inp [d_model -> n_experts]
  const GgufTensorInfo* exp_gate = nullptr;   // ffn_gate_exps {d_model, expert_ffn, n_experts}
  const GgufTensorInfo* exp_up = nullptr;     // ffn_up_exps   {d_model, expert_ffn, n_experts}
  const GgufTensorInfo* exp_down = nullptr;   // ffn_down_exps {expert_ffn, d_model, n_experts}
};

struct ModelWeights {
  ModelConfig config;
  std::unique_ptr<GgufFile> file;  // owns the mapping every view points into
  const GgufTensorInfo* token_embd = nullptr;   // [vocab][d_model]
  const GgufTensorInfo* output_norm = nullptr;  // [d_model]
  const GgufTensorInfo* output = nullptr;       // [vocab][d_model]; == token_embd when tied
  std::vector<LayerWeights> layers;
  std::vector<float> rope_freq_factors;  // per rotated pair (head_dim/2); empty = none (all 1)
  // LongRoPE's two sets (rope_factors_long/short.weight; empty where absent): select_rope_factors puts one
  // in rope_freq_factors.
  std::vector<float> rope_factors_long;
  std::vector<float> rope_factors_short;
  std::deque<GgufTensorInfo> row_views;  // what wq/wk/wv, w_gate/w_up point to in fused files (stable addresses)
};

// LongRoPE: the long factors when a sequence may run past rope_scaling.original_context, else the short
// ones, as llama.cpp chooses by its per-sequence context (a file's rope_freqs.weight overrides both).
// Loading selects for the model's whole context_length; load_model() again for the serving limit.
void select_rope_factors(ModelWeights& w, int64_t context_per_sequence);

// Opens, validates and indexes a GGUF model. Errors name the file and the tensor or key at fault.
Result<std::shared_ptr<ModelWeights>> load_model_weights(const std::string& path);
// Same, over an already-parsed file (tests build small GGUF files in memory).
Result<std::shared_ptr<ModelWeights>> model_weights_from_gguf(std::unique_ptr<GgufFile> file);

// Reads a small f32/f16/bf16/quantized tensor fully into f32 (norm weights, one embedding row ...).
Result<std::vector<float>> tensor_to_f32(const GgufTensorInfo& t);
// Slice `index` of a 3-D tensor {cols, rows, n} as a 2-D one {cols, rows} (one expert's matrix); its
// data points into the same mapping.
GgufTensorInfo tensor_slice(const GgufTensorInfo& t, int64_t index);
// Rows [first, first + count) of a tensor {cols, rows, ...} (all its dimensions after the first taken as
// rows) as a 2-D tensor of their own, into the same mapping.
GgufTensorInfo tensor_rows(const GgufTensorInfo& t, int64_t first, int64_t count);
// Dequantizes row `row` of a 2-D tensor (dims {cols, rows}) into dst[cols].
Status tensor_row_to_f32(const GgufTensorInfo& t, int64_t row, float* dst);

}  // namespace pagoda::engine
