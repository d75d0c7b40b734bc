// Prepacking properties on random inputs: never over the budget or the sequence slots, at least as
// full as arrival order (FCFS), and no prompt waits more than a bounded number of steps.
#include "scheduler/prefill_packer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>

namespace pagoda::scheduler {
namespace {

int64_t placed_tokens(const std::vector<Placement>& p) {
  return std::accumulate(p.begin(), p.end(), int64_t{0}, [](int64_t s, const Placement& x) { return s + x.tokens; });
}

std::vector<PackCandidate> random_candidates(std::mt19937& rng, int n, int max_tokens) {
  std::uniform_int_distribution<int> len(1, max_tokens), wait(0, 12);
  std::vector<PackCandidate> c(n);
  for (int i = 0; i < n; ++i) c[i] = {static_cast<uint64_t>(i), len(rng), static_cast<int64_t>(i), wait(rng)};
  std::shuffle(c.begin(), c.end(), rng);
  return c;
}

TEST(PrefillPacker, NeverExceedsBudgetOrSlotsAndPlacesEachPromptOnce) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 5000; ++trial) {
    const PackLimits limits{.token_budget = std::uniform_int_distribution<int>(1, 2048)(rng),
                            .seq_slots = std::uniform_int_distribution<int>(1, 32)(rng),
                            .chunked_prefill = trial % 2 == 0,
                            .starvation_steps = 8};
    auto cands = random_candidates(rng, std::uniform_int_distribution<int>(0, 40)(rng), 1024);
    auto out = pack_prefills(cands, limits);
    EXPECT_LE(placed_tokens(out), limits.token_budget);
    EXPECT_LE(static_cast<int>(out.size()), limits.seq_slots);
    std::map<uint64_t, int> seen;
    for (const Placement& p : out) {
      auto it = std::find_if(cands.begin(), cands.end(), [&](const PackCandidate& c) { return c.id == p.id; });
      ASSERT_NE(it, cands.end());
      EXPECT_GT(p.tokens, 0);
      EXPECT_LE(p.tokens, it->tokens);
      if (!limits.chunked_prefill) {
        EXPECT_EQ(p.tokens, it->tokens) << "no partial prompts without chunking";
      }
      EXPECT_EQ(++seen[p.id], 1);
    }
  }
}

TEST(PrefillPacker, PacksAtLeastAsManyTokensAsFcfs) {
  std::mt19937 rng(2);
  int strictly_better = 0;
  for (int trial = 0; trial < 5000; ++trial) {
    const PackLimits limits{.token_budget = std::uniform_int_distribution<int>(64, 2048)(rng),
                            .seq_slots = 64,
                            .chunked_prefill = trial % 2 == 0,
                            .starvation_steps = 1 << 20};  // isolate the packing from the age rule
    auto cands = random_candidates(rng, std::uniform_int_distribution<int>(1, 40)(rng), 1024);
    const int64_t packed = placed_tokens(pack_prefills(cands, limits));
    const int64_t fcfs = placed_tokens(pack_fcfs(cands, limits));
    EXPECT_GE(packed, fcfs);
    strictly_better += packed > fcfs;
  }
  EXPECT_GT(strictly_better, 500);  // head-of-line blocking costs FCFS often on mixed lengths
}

TEST(PrefillPacker, KnownCaseWhereFfdAloneLosesToArrivalOrder) {
  // Budget 10, prompts 5, 5, 6 in arrival order: FFD would place 6 alone; arrival order fills 10.
  const PackLimits limits{.token_budget = 10, .seq_slots = 8, .chunked_prefill = false, .starvation_steps = 99};
  auto out = pack_prefills({{1, 5, 0, 0}, {2, 5, 1, 0}, {3, 6, 2, 0}}, limits);
  EXPECT_EQ(placed_tokens(out), 10);
}

// Every step brings a 400- and a 112-token prompt, which fill the 512-token budget exactly; one
// 300-token prompt never fits the gaps, so largest-first packing alone would starve it forever. The
// age rule admits it after starvation_steps, and every prompt finishes within a small bound.
TEST(PrefillPacker, AdmitsEveryPromptWithinABoundedNumberOfSteps) {
  for (bool chunked : {true, false}) {
    const int starvation = 4, budget = 512, steps = 200;
    std::vector<PackCandidate> waiting;
    std::map<uint64_t, int> arrived;
    uint64_t next = 0;
    int max_wait = 0;
    auto arrive = [&](int len, int step) {
      arrived[next] = step;
      waiting.push_back({next, len, static_cast<int64_t>(next), 0});
      ++next;
    };
    arrive(300, 0);
    bool odd_done = false;
    for (int step = 0; step < steps; ++step) {
      arrive(400, step);
      arrive(112, step);
      const PackLimits limits{.token_budget = budget, .seq_slots = 16, .chunked_prefill = chunked, .starvation_steps = starvation};
      for (const Placement& p : pack_prefills(waiting, limits)) {
        auto it = std::find_if(waiting.begin(), waiting.end(), [&](const PackCandidate& c) { return c.id == p.id; });
        ASSERT_NE(it, waiting.end());
        it->tokens -= p.tokens;
        it->waited_steps = -1;  // ran this step (incremented back to 0 below)
        if (it->tokens == 0) {
          max_wait = std::max(max_wait, step - arrived[p.id]);
          odd_done = odd_done || p.id == 0;
          waiting.erase(it);
        }
      }
      for (PackCandidate& c : waiting) ++c.waited_steps;
    }
    EXPECT_TRUE(odd_done) << "the 300-token prompt starved (chunked=" << chunked << ")";
    EXPECT_LE(max_wait, starvation + 2) << "chunked=" << chunked;
    EXPECT_LE(waiting.size(), 3u) << "the queue must not grow: demand equals capacity";
  }
}

}  // namespace
}  // namespace pagoda::scheduler
