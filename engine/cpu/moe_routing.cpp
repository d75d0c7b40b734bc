#include "engine/cpu/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/cpu/ggml_numerics.h"

namespace pagoda::engine::cpu {

void moe_route(const float* logits, int n_experts, int k, int32_t* experts, float* weights) {
  // ggml_compute_forward_soft_max_f32 without a mask: max, exp(x - max) summed in double (16 lanes at a
  // time through ggml's expf and _mm512_reduce_add_ps, the tail through libm's expf), then one float
  // scale by 1 / sum.
  float max = -INFINITY;
  for (int e = 0; e < n_experts; ++e) max = std::max(max, logits[e]);
  // NaN logits (a broken model) would break the sort's ordering: they sort last, deterministically.
  auto key = [](float v) { return std::isnan(v) ? -INFINITY : v; };
  float p[kMaxExperts];
  double sum = 0.0;
  int e = 0;
  for (; e + kLanes <= n_experts; e += kLanes) {
    float shifted[kLanes];
    for (int l = 0; l < kLanes; ++l) shifted[l] = logits[e + l] - max;
    ggml_exp16(shifted, p + e);
    sum += static_cast<double>(ggml_reduce16(p + e));
  }
  for (; e < n_experts; ++e) {
    p[e] = std::exp(logits[e] - max);
    sum += static_cast<double>(p[e]);
  }
  const float scale = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n_experts; ++i) p[i] *= scale;

  // ggml_argsort (descending, std::sort on the ids: ties fall as libstdc++'s sort leaves them), first k.
  int32_t ids[kMaxExperts];
  std::iota(ids, ids + n_experts, 0);
  std::sort(ids, ids + n_experts, [&](int32_t a, int32_t b) { return key(p[a]) > key(p[b]); });

  // Normalized weights: ggml_sum_rows (double), ggml_clamp(6.103515625e-5, inf), ggml_div.
  double wsum = 0.0;
  for (int i = 0; i < k; ++i) wsum += static_cast<double>(p[ids[i]]);
  const float denom = std::max(static_cast<float>(wsum), 6.103515625e-5f);
  for (int i = 0; i < k; ++i) {
    experts[i] = ids[i];
    weights[i] = p[ids[i]] / denom;
  }
}

}  // namespace pagoda::engine::cpu
