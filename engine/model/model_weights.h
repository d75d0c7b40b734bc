#pragma once
// The weights of a Llama-family model as views into the mapped GGUF file: every tensor the forward
// pass needs, found by its GGUF name and checked against the config's shapes. Backends turn these
// views into whatever layout their kernels want (bf16, repacked quant blocks, device memory).
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
  const GgufTensorInfo* ffn_norm = nullptr;   // [d_model] f32
  const GgufTensorInfo* w_gate = nullptr;     // [d_model -> ffn]
  const GgufTensorInfo* w_up = nullptr;       // [d_model -> ffn]
  const GgufTensorInfo* w_down = nullptr;     // [ffn -> d_model]
};

struct ModelWeights {
  ModelConfig config;
  std::unique_ptr<GgufFile> file;  // owns the mapping every view points into
  const GgufTensorInfo* token_embd = nullptr;   // [vocab][d_model]
  const GgufTensorInfo* output_norm = nullptr;  // [d_model]
  const GgufTensorInfo* output = nullptr;       // [vocab][d_model]; == token_embd when tied
  std::vector<LayerWeights> layers;
  std::vector<float> rope_freq_factors;  // per rotated pair (head_dim/2); empty = none (all 1)
};

// Opens, validates and indexes a GGUF model. Errors name the file and the tensor or key at fault.
Result<std::shared_ptr<ModelWeights>> load_model_weights(const std::string& path);
// Same, over an already-parsed file (tests build small GGUF files in memory).
Result<std::shared_ptr<ModelWeights>> model_weights_from_gguf(std::unique_ptr<GgufFile> file);

// Reads a small f32/f16/bf16/quantized tensor fully into f32 (norm weights, one embedding row ...).
Result<std::vector<float>> tensor_to_f32(const GgufTensorInfo& t);
// Dequantizes row `row` of a 2-D tensor (dims {cols, rows}) into dst[cols].
Status tensor_row_to_f32(const GgufTensorInfo& t, int64_t row, float* dst);

}  // namespace pagoda::engine
