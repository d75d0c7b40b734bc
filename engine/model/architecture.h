#pragma once
// The model families Pagoda runs, as data: the `general.architecture` names a GGUF may carry, and how
// that family's decoder layer computes, in terms the backends implement. Backends switch on these
// features, never on a family's name, so a new family is an entry in architecture.cpp plus whatever
// new op it brings (a bias, a norm, routed experts), not an edit of every backend's forward pass.
#include <string>
#include <string_view>

namespace pagoda::engine {

// Which dimensions of a head RoPE turns together.
enum class RopeStyle {
  Interleaved,  // pairs (2i, 2i + 1): llama.cpp's "normal" mode (llama, mistral)
  HalfSplit,    // pairs (i, i + d/2): llama.cpp's "neox" mode (qwen2, phi3, gpt-neox, ...)
};

// One decoder layer: RMSNorm -> attention (Q, K, V projections plus their biases where the file has
// them, optional per-head RMSNorm of Q and K, RoPE on Q and K, grouped-query heads, O projection) ->
// residual add -> RMSNorm -> SwiGLU feed-forward (dense, or routed experts) -> residual add. The fields are the ways families
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
};

// The registered family called `name`, or nullptr.
const Architecture* find_architecture(std::string_view name);
// "llama, mistral, qwen2, qwen3, qwen3moe": for errors that list what is supported.
std::string architecture_names();

}  // namespace pagoda::engine
