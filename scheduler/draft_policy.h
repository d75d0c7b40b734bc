#pragma once
// How many of its proposed drafts each decoding sequence verifies this step (--speculative auto): the
// lengths that maximise the step's expected committed tokens per second. Draft j of a sequence whose
// drafts are kept with probability a each adds a^j expected tokens (it counts only if every draft before
// it was kept), and every drafted token makes the step longer by what the measured cost model says.
// Marginal gains are taken greedily, largest first, while they raise tokens per second; with a cheap
// extra row (a GPU, a small batch) drafts run, with a compute-bound batch or poor acceptance none do.
#include <cstdint>
#include <vector>

#include "engine/spec/step_cost_model.h"

namespace pagoda::scheduler {

struct DraftCandidate {
  int32_t proposed = 0;     // drafts the drafter found
  double acceptance = 0.5;  // estimated probability that each draft is kept
};

// base_tokens: the step's tokens without drafts; committed_base: tokens those commit for sure (one per
// decoding sequence). Returns the drafts to keep per candidate (0..proposed).
std::vector<int32_t> choose_draft_lengths(const std::vector<DraftCandidate>& candidates, int32_t base_tokens,
                                          int32_t committed_base, const engine::StepCostModel& cost);

}  // namespace pagoda::scheduler
