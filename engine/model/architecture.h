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

// One decoder layer: RMSNorm -> attention (Q, K, V projections, RoPE on Q and K, grouped-query heads,
// O projection) -> residual add -> RMSNorm -> SwiGLU feed-forward -> residual add. The fields are the
// ways families differ that Pagoda implements; each backend implements every value of every field.
struct LayerOps {
  RopeStyle rope = RopeStyle::Interleaved;
};

struct Architecture {
  const char* name;  // as in general.architecture; also the prefix of its metadata keys
  LayerOps ops;
};

// The registered family called `name`, or nullptr.
const Architecture* find_architecture(std::string_view name);
// "llama, mistral": for errors that list what is supported.
std::string architecture_names();

}  // namespace pagoda::engine
