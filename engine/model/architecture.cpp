#include "engine/model/architecture.h"

namespace pagoda::engine {

namespace {

// Each family as llama.cpp builds its graph (src/models/<name>.cpp there). Mistral's sliding window is
// not applied: its GGUFs of 7B v0.2 and later set none. Qwen2's is off in every released config
// (use_sliding_window: false), and llama.cpp does not apply it either.
constexpr Architecture kArchitectures[] = {
    // llama with experts is Mixtral (convert_hf_to_gguf writes MixtralForCausalLM as llama).
    {.name = "llama", .ops = {.rope = RopeStyle::Interleaved}, .moe_by_expert_count = true},
    {.name = "mistral", .ops = {.rope = RopeStyle::Interleaved}},
    {.name = "qwen2", .ops = {.rope = RopeStyle::HalfSplit}, .qkv_bias = true},
    {.name = "qwen3", .ops = {.rope = RopeStyle::HalfSplit, .qk_norm = true}},
    {.name = "qwen3moe", .ops = {.rope = RopeStyle::HalfSplit, .qk_norm = true, .moe = true}},
    // Phi-3/3.5 and Phi-4 (14B): its sliding window is off in llama.cpp (src/models/phi3.cpp), and so here.
    // Phi-4-mini rotates 96 of 128 dimensions: partial RoPE, refused at load.
    {.name = "phi3", .ops = {.rope = RopeStyle::HalfSplit, .scale_q_before_attention = true}, .fused_qkv = true,
     .fused_gate_up = true, .longrope = true},
    // Gemma 2: GeGLU, post-norms, scaled embeddings, soft-capped attention scores (50) and logits (30),
    // a 4096-token window on every other layer (src/models/gemma2.cpp).
    {.name = "gemma2",
     .ops = {.rope = RopeStyle::HalfSplit, .scale_q_before_attention = true, .ffn_activation = FfnActivation::GeluTanh,
      .post_norms = true, .scale_embeddings = true},
     .swa_pattern = 2, .default_sliding_window = 4096, .swa_inherits_rope_scale = true, .default_attn_softcap = 50.0f,
     .default_final_softcap = 30.0f, .attn_softcap = true, .logit_softcap = true, .n_layers_scaling_q_by_d_model = 46},
    // Gemma 3 (text): Gemma 2's layer with per-head Q/K norms instead of soft-capping, five windowed
    // layers (RoPE base 10000) to one global one (src/models/gemma3.cpp).
    {.name = "gemma3",
     .ops = {.rope = RopeStyle::HalfSplit, .qk_norm = true, .scale_q_before_attention = true,
      .ffn_activation = FfnActivation::GeluTanh, .post_norms = true, .scale_embeddings = true},
     .swa_pattern = 6, .default_rope_theta_swa = 10000.0f, .logit_softcap = true, .n_layers_scaling_q_by_d_model = 62},
};

}  // namespace

const Architecture* find_architecture(std::string_view name) {
  for (const Architecture& a : kArchitectures) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

std::string architecture_names() {
  std::string names;
  for (const Architecture& a : kArchitectures) names += (names.empty() ? "" : ", ") + std::string(a.name);
  return names;
}

}  // namespace pagoda::engine
