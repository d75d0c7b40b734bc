#pragma once
// Hyper-parameters of a model, read from GGUF metadata (`<arch>.*` keys), and what its layers
// compute (the family's LayerOps, engine/model/architecture.h).
#include <cstdint>
#include <string>

#include "engine/model/architecture.h"
#include "engine/status.h"

namespace pagoda::engine {

class GgufFile;

struct RopeScaling {
  // llama3-style frequency scaling (rope_scaling.type == "llama3"); factor 1 means none.
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int32_t original_context = 8192;  // rope.scaling.original_context_length; else 8192 (llama3), the context
  bool llama3 = false;
  // LongRoPE (phi3 128k): cos and sin multiplied by rope.scaling.attn_factor; the per-pair frequency divisors
  // are rope_factors_long past original_context, else rope_factors_short (ModelWeights).
  float attn_factor = 1.0f;
};

struct ModelConfig {
  std::string architecture;  // general.architecture: "llama", "mistral"
  LayerOps ops;              // how the family's decoder layer computes
  std::string name;
  int32_t n_layers = 0;
  int32_t d_model = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t ffn_dim = 0;
  int32_t vocab_size = 0;
  int32_t context_length = 0;
  int32_t rope_dim = 0;  // dimensions rotated per head (== head_dim for llama)
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  RopeScaling rope_scaling;
  bool tied_embeddings = false;  // no output.weight: the token embedding doubles as the LM head
  // Routed experts (ops.moe): how many, how many run per token, and each one's hidden size.
  int32_t n_experts = 0;
  int32_t n_experts_used = 0;
  int32_t expert_ffn_dim = 0;

  int32_t q_dim() const { return n_heads * head_dim; }
  int32_t kv_dim() const { return n_kv_heads * head_dim; }
  std::string summary() const;
};

// Reads and validates the hyper-parameters; an unsupported architecture is an error naming it.
Result<ModelConfig> model_config_from_gguf(const GgufFile& file);

}  // namespace pagoda::engine
