#include "scheduler/prefill_packer.h"

#include <algorithm>
#include <numeric>

namespace pagoda::scheduler {

namespace {

int64_t total(const std::vector<Placement>& p) {
  return std::accumulate(p.begin(), p.end(), int64_t{0}, [](int64_t s, const Placement& x) { return s + x.tokens; });
}

bool older(const PackCandidate& a, const PackCandidate& b) {
  return a.arrival != b.arrival ? a.arrival < b.arrival : a.id < b.id;
}

// Whole prompts that fit, in the given order (skipping those that do not: first fit), or stopping at
// the first that does not (head-of-line) when stop_at_misfit.
std::vector<Placement> fill(const std::vector<PackCandidate>& order, int32_t budget, int32_t slots,
                            bool stop_at_misfit) {
  std::vector<Placement> out;
  for (const PackCandidate& c : order) {
    if (static_cast<int32_t>(out.size()) >= slots) break;
    if (c.tokens <= budget) {
      out.push_back({c.id, c.tokens});
      budget -= c.tokens;
    } else if (stop_at_misfit) {
      break;
    }
  }
  return out;
}

}  // namespace

std::vector<Placement> pack_fcfs(std::vector<PackCandidate> cands, const PackLimits& limits) {
  std::sort(cands.begin(), cands.end(), older);
  return fill(cands, limits.token_budget, limits.seq_slots, /*stop_at_misfit=*/true);
}

std::vector<Placement> pack_prefills(std::vector<PackCandidate> cands, const PackLimits& limits) {
  std::vector<Placement> out;
  int32_t budget = limits.token_budget, slots = limits.seq_slots;
  std::erase_if(cands, [](const PackCandidate& c) { return c.tokens <= 0; });

  // 1. Starving prompts first, oldest first; chunked when they do not fit whole.
  std::sort(cands.begin(), cands.end(), older);
  std::vector<PackCandidate> rest;
  for (const PackCandidate& c : cands) {
    if (c.waited_steps < limits.starvation_steps || budget <= 0 || slots <= 0) {
      rest.push_back(c);
      continue;
    }
    const int32_t take = std::min(c.tokens, budget);
    if (take < c.tokens && !limits.chunked_prefill) {
      rest.push_back(c);  // cannot run partially; it keeps its age and goes first once the budget allows
      continue;
    }
    out.push_back({c.id, take});
    budget -= take;
    --slots;
  }
  if (budget <= 0 || slots <= 0 || rest.empty()) return out;

  // 2. First-fit-decreasing, or arrival order when that packs more tokens.
  std::vector<PackCandidate> ffd = rest;
  std::stable_sort(ffd.begin(), ffd.end(), [](const PackCandidate& a, const PackCandidate& b) {
    return a.tokens != b.tokens ? a.tokens > b.tokens : older(a, b);
  });
  std::vector<Placement> packed = fill(ffd, budget, slots, false);
  std::vector<Placement> in_order = fill(rest, budget, slots, false);  // rest is already oldest-first
  if (total(in_order) > total(packed)) packed = std::move(in_order);
  for (const Placement& p : packed) {
    out.push_back(p);
    budget -= p.tokens;
    --slots;
  }

  // 3. Chunked prefill: the remaining budget goes to the oldest prompt left out.
  if (limits.chunked_prefill && budget > 0 && slots > 0) {
    for (const PackCandidate& c : rest) {
      const bool placed = std::any_of(out.begin(), out.end(), [&](const Placement& p) { return p.id == c.id; });
      if (!placed) {
        out.push_back({c.id, std::min(budget, c.tokens)});
        break;
      }
    }
  }
  return out;
}

}  // namespace pagoda::scheduler
