#pragma once
// Hyper-parameters of a model, read from GGUF metadata (`<arch>.*` keys), and what its layers
// compute (the family's LayerOps, engine/model/architecture.h).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

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
  // Q's scale: the softmax's (usually), or Q's own before attention (ops.scale_q_before_attention).
  float attention_scale = 0.0f;  // set at load: 1/sqrt(head_dim) unless the family says otherwise
  float q_scale() const {         // attention_scale, or 1/sqrt(head_dim) for a config built by hand
    return attention_scale > 0.0f ? attention_scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  }
  // tanh soft-capping, cap * tanh(x / cap), of the attention scores and of the logits; 0 = none.
  float attn_softcap = 0.0f;
  float final_softcap = 0.0f;
  // Sliding-window attention: layers with swa_layers[l] attend to positions pos - sliding_window + 1 ..
  // pos only, and use their own RoPE base and scale. Empty = no layer has a window.
  int32_t sliding_window = 0;
  std::vector<uint8_t> swa_layers;
  float rope_theta_swa = 10000.0f;
  // Linear RoPE scaling (rope.scaling.factor with type linear): positions times this; 1 = none.
  float rope_freq_scale = 1.0f;
  float rope_freq_scale_swa = 1.0f;
  bool is_swa(int layer) const { return !swa_layers.empty() && swa_layers[static_cast<size_t>(layer)] != 0; }

  int32_t q_dim() const { return n_heads * head_dim; }
  int32_t kv_dim() const { return n_kv_heads * head_dim; }
  std::string summary() const;
};

// Reads and validates the hyper-parameters; an unsupported architecture is an error naming it.
Result<ModelConfig> model_config_from_gguf(const GgufFile& file);

}  // namespace pagoda::engine
