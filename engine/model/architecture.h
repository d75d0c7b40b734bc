#pragma once
// The model families Pagoda runs, as data: the `general.architecture` names a GGUF may carry, and how
// that family's decoder layer computes, in terms the backends implement. Backends switch on these
// features, never on a family's name, so a new family is an entry in architecture.cpp plus whatever
// new op it brings (a bias, a norm, routed experts), not an edit of every backend's forward pass.
#include <string>
#include <string_view>

namespace pagoda::engine {

// The gated feed-forward's activation: silu(gate) * up (SwiGLU), or gelu(gate) * up (GeGLU, with the
// tanh approximation of GELU looked up in an fp16 table as ggml does).
enum class FfnActivation { Silu, GeluTanh };

// Which dimensions of a head RoPE turns together.
enum class RopeStyle {
  Interleaved,  // pairs (2i, 2i + 1): llama.cpp's "normal" mode (llama, mistral)
  HalfSplit,    // pairs (i, i + d/2): llama.cpp's "neox" mode (qwen2, phi3, gpt-neox, ...)
};

// One decoder layer: RMSNorm -> attention (Q, K, V projections plus their biases where the file has
// them, optional per-head RMSNorm of Q and K, RoPE on Q and K, grouped-query heads, O projection) ->
// residual add -> RMSNorm -> gated feed-forward (dense, or routed experts) -> residual add. The fields are the ways families
// differ that Pagoda implements; a backend either implements a value or refuses the model at load
// with a message naming it (Backend::load).
struct LayerOps {
  RopeStyle rope = RopeStyle::Interleaved;
  // RMSNorm over each head of Q and of K (attn_q_norm / attn_k_norm, [head_dim]) before RoPE: qwen3.
  bool qk_norm = false;
  // A routed mixture of experts instead of the dense SwiGLU FFN (qwen3moe): a router (ffn_gate_inp)
  // gives each token a softmax over the experts, the top k run (ffn_{gate,up,down}_exps, SwiGLU each)
  // and their outputs are summed weighted by the k probabilities renormalized to sum to one.
  bool moe = false;
  // Q multiplied by 1/sqrt(head_dim) after RoPE as a step of its own (rounded to f32), and attention then
  // unscaled: phi3's graph, whose logits differ in the last bits from scaling inside the softmax.
  bool scale_q_before_attention = false;
  FfnActivation ffn_activation = FfnActivation::Silu;
  // RMSNorm of the attention output and of the FFN output before each is added to the residual
  // (gemma2/3: post_attention_norm, post_ffw_norm).
  bool post_norms = false;
  // Token embeddings multiplied by sqrt(d_model) before the first layer (gemma).
  bool scale_embeddings = false;
};

struct Architecture {
  const char* name;  // as in general.architecture; also the prefix of its metadata keys
  LayerOps ops;
  // Whether the family's converted files carry attn_{q,k,v}.bias (qwen2). The loader takes the
  // biases wherever a file has them, as llama.cpp does; this only tells `pagoda make-model` to write them.
  bool qkv_bias = false;
  // How the family's files store the projections (phi3): Q, K and V as one attn_qkv matrix, and the FFN's
  // gate and up as one ffn_up of 2 x feed_forward_length rows (gate first). The loader takes attn_qkv
  // from any file that has it; ffn_up is read as fused for these families only, as llama.cpp does.
  bool fused_qkv = false;
  bool fused_gate_up = false;
  // LongRoPE frequency factors (rope_factors_long/short.weight) are read for the family (phi3), as llama.cpp.
  bool longrope = false;
  // Dense, or routed experts (LayerOps::moe) where the file's expert_count > 0, each expert as wide as
  // feed_forward_length: llama, whose files with experts are Mixtral's (llama.cpp's llama graph).
  bool moe_by_expert_count = false;
  // Sliding-window attention by default: layer l attends only to the last `sliding_window` positions
  // when l % swa_pattern < swa_pattern - 1 (gemma2: every other layer, from layer 0; gemma3: five of six).
  // A file's attention.sliding_window / sliding_window_pattern override these; 0 = no window unless the
  // file sets one (gemma3 uses a window only where its file sets attention.sliding_window).
  int32_t swa_pattern = 0;
  int32_t default_sliding_window = 0;
  // RoPE base of the windowed layers when the file has no rope.freq_base_swa: 0 = the model's own base.
  float default_rope_theta_swa = 0.0f;
  // Whether the windowed layers' RoPE takes the model's linear scale (gemma2) or none (gemma3).
  bool swa_inherits_rope_scale = false;
  // tanh soft-capping (cap * tanh(x / cap)) of the attention scores and of the final logits, by default;
  // the file's attn_logit_softcapping / final_logit_softcapping override. 0 = none.
  float default_attn_softcap = 0.0f;
  float default_final_softcap = 0.0f;
  bool attn_softcap = false;   // whether the family caps attention scores at all (gemma2)
  bool logit_softcap = false;  // whether it caps the logits at all (gemma2, gemma3 where its file says)
  // Q's pre-attention scale is 1/sqrt(d_model / heads) instead of 1/sqrt(head_dim) for models of this
  // many layers (Gemma 2 27B: 46, Gemma 3 27B: 62, as llama.cpp decides by model size); 0 = never.
  int32_t n_layers_scaling_q_by_d_model = 0;
};

// The registered family called `name`, or nullptr.
const Architecture* find_architecture(std::string_view name);
// "llama, mistral, qwen2, qwen3, qwen3moe": for errors that list what is supported.
std::string architecture_names();

}  // namespace pagoda::engine
