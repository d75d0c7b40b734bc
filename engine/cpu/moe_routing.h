#pragma once
// The router of a mixture-of-experts layer as llama.cpp computes it (build_moe_ffn with softmax gating
// and normalized weights, qwen3moe): ggml_soft_max over the router logits, ggml_argsort_top_k (a
// descending std::sort of the expert ids, first k), the k probabilities summed in double (ggml_sum_rows),
// clamped below at 2^-14 and divided out.
#include <cstdint>

namespace pagoda::engine::cpu {

// One token: `logits[n_experts]` -> the k chosen experts, most probable first, and their weights.
// n_experts <= kMaxExperts.
inline constexpr int kMaxExperts = 1024;
void moe_route(const float* logits, int n_experts, int k, int32_t* experts, float* weights);

}  // namespace pagoda::engine::cpu
