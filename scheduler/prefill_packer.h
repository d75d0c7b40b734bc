#pragma once
// Prepacking admission (DESIGN.md): after the running decodes, the prompts waiting for prefill (whole
// prompts or the rest of a chunked one) are packed into the step's remaining token budget.
//  1. Starving prompts (waited >= starvation_steps) go first, oldest first, as a chunk if need be:
//     so every prompt is admitted within a bounded number of steps.
//  2. The rest: first-fit-decreasing (largest first, older first among equals). A single step is a
//     single bin, where FFD can lose to arrival order (budget 10: FFD takes 6 of {5, 5, 6}), so the
//     arrival-order fill is computed too and the fuller of the two is kept.
//  3. With chunked prefill, budget still left goes to a chunk of the first prompt that did not fit.
// Pure function of its inputs: the scheduler supplies the candidates, tests check the properties.
#include <cstdint>
#include <vector>

namespace pagoda::scheduler {

struct PackCandidate {
  uint64_t id = 0;
  int32_t tokens = 0;       // prompt tokens still to compute
  int64_t arrival = 0;      // smaller = older (FCFS order, priority folded in by the caller)
  int32_t waited_steps = 0; // steps since it became runnable without being scheduled
};

struct PackLimits {
  int32_t token_budget = 0;  // tokens left in this step
  int32_t seq_slots = 0;     // sequences that may still join this step
  bool chunked_prefill = true;
  int32_t starvation_steps = 8;
};

struct Placement {
  uint64_t id = 0;
  int32_t tokens = 0;  // tokens of it to run this step (== its remaining tokens unless chunked)
};

std::vector<Placement> pack_prefills(std::vector<PackCandidate> candidates, const PackLimits& limits);

// Arrival-order fill without chunking, stopping at the first prompt that does not fit (head-of-line):
// the FCFS baseline the packing is measured against.
std::vector<Placement> pack_fcfs(std::vector<PackCandidate> candidates, const PackLimits& limits);

}  // namespace pagoda::scheduler
