#include "scheduler/draft_policy.h"

#include <algorithm>
#include <cmath>
#include <queue>

namespace pagoda::scheduler {

std::vector<int32_t> choose_draft_lengths(const std::vector<DraftCandidate>& candidates, int32_t base_tokens,
                                          int32_t committed_base, const engine::StepCostModel& cost) {
  std::vector<int32_t> keep(candidates.size(), 0);
  if (!cost.ready()) return keep;
  // (gain of the candidate's next draft, candidate)
  std::priority_queue<std::pair<double, size_t>> next;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const double a = std::clamp(candidates[i].acceptance, 0.0, 1.0);
    if (candidates[i].proposed > 0 && a > 0) next.emplace(a, i);
  }
  int32_t tokens = base_tokens;
  double gain = committed_base;
  double ms = cost.estimate_ms(tokens);
  while (!next.empty()) {
    const auto [g, i] = next.top();
    next.pop();
    const double ms_more = cost.estimate_ms(tokens + 1);
    if (!((gain + g) * ms > gain * ms_more)) break;  // (gain + g) / ms_more <= gain / ms
    ++keep[i];
    ++tokens;
    gain += g;
    ms = ms_more;
    if (keep[i] < candidates[i].proposed) next.emplace(g * std::clamp(candidates[i].acceptance, 0.0, 1.0), i);
  }
  return keep;
}

}  // namespace pagoda::scheduler
