#include "engine/model/architecture.h"

namespace pagoda::engine {

namespace {

// Each family as llama.cpp builds its graph (src/models/<name>.cpp there). Mistral's sliding window is
// not applied: its GGUFs of 7B v0.2 and later set none. Qwen2's is off in every released config
// (use_sliding_window: false), and llama.cpp does not apply it either.
constexpr Architecture kArchitectures[] = {
    {"llama", {.rope = RopeStyle::Interleaved}},
    {"mistral", {.rope = RopeStyle::Interleaved}},
    {"qwen2", {.rope = RopeStyle::HalfSplit}, /*qkv_bias=*/true},
    {"qwen3", {.rope = RopeStyle::HalfSplit, .qk_norm = true}},
    {"qwen3moe", {.rope = RopeStyle::HalfSplit, .qk_norm = true, .moe = true}},
    // Phi-3/3.5 (and Phi-4-mini): its sliding window is off in llama.cpp (src/models/phi3.cpp), and so here.
    {"phi3", {.rope = RopeStyle::HalfSplit, .scale_q_before_attention = true}, /*qkv_bias=*/false,
     /*fused_qkv=*/true, /*fused_gate_up=*/true},
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
