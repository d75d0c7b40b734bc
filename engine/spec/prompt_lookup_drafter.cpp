#include "engine/spec/prompt_lookup_drafter.h"

#include <algorithm>
#include <cstdlib>

namespace pagoda::engine {

int64_t find_occurrence(std::span<const int32_t> text, std::span<const int32_t> tail, int64_t near) {
  const int64_t n = static_cast<int64_t>(tail.size());
  const int64_t size = static_cast<int64_t>(text.size());
  if (n == 0 || size <= n) return -1;
  int64_t best = -1, best_dist = 0;
  for (int64_t start = size - n - 1; start >= 0; --start) {  // later starts first: they win ties
    const int64_t dist = std::llabs(start + n - near);
    if (best >= 0 && dist >= best_dist && start + n < near) break;  // only further away from here on
    if (text[start] != tail[0] || !std::equal(tail.begin(), tail.end(), text.begin() + start)) continue;
    if (best < 0 || dist < best_dist) {
      best = start;
      best_dist = dist;
    }
  }
  return best;
}

namespace {
void take(std::span<const int32_t> text, int64_t from, int32_t max_tokens, std::vector<int32_t>& out) {
  const int64_t end = std::min<int64_t>(static_cast<int64_t>(text.size()), from + max_tokens);
  out.insert(out.end(), text.begin() + from, text.begin() + end);
}
}  // namespace

void PromptLookupDrafter::propose(const DraftQuery& q, std::vector<int32_t>& out) {
  if (q.max_tokens <= 0 || q.tokens.empty()) return;
  const std::span<const int32_t> output = q.tokens.subspan(static_cast<size_t>(q.prompt_len));
  const std::span<const int32_t> pred = q.prediction;
  if (!pred.empty() && output.size() < pred.size() && std::equal(output.begin(), output.end(), pred.begin())) {
    take(pred, static_cast<int64_t>(output.size()), q.max_tokens, out);  // on track
    return;
  }
  const int32_t longest = std::min<int32_t>(max_, static_cast<int32_t>(q.tokens.size()) - 1);
  for (int32_t n = longest; n >= min_; --n) {
    const std::span<const int32_t> tail = q.tokens.last(static_cast<size_t>(n));
    if (const int64_t at = find_occurrence(pred, tail, static_cast<int64_t>(output.size())); at >= 0) {
      take(pred, at + n, q.max_tokens, out);
      return;
    }
    if (const int64_t at = find_occurrence(q.tokens, tail, static_cast<int64_t>(q.tokens.size())); at >= 0) {
      take(q.tokens, at + n, q.max_tokens, out);
      return;
    }
  }
}

}  // namespace pagoda::engine
