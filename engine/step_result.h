#pragma once
// StepResult: the data contract from the engine back to the scheduler (DESIGN.md). What one step
// produced per sampling sequence: the tokens it commits (one, or the accepted drafts plus one when it
// verified drafts) with their log-probabilities when asked for.
#include <cstdint>
#include <vector>

#include "engine/sampling/sampling_params.h"

namespace pagoda::engine {

struct SeqStepOutput {
  uint64_t seq_id = 0;
  std::vector<SampleResult> tokens;  // committed, in order (SampleResult::token is the id)
  int32_t drafted = 0;               // drafts verified this step
  int32_t accepted = 0;              // of which kept: tokens[0 .. accepted) are drafts, then one drawn token
};

struct StepResult {
  std::vector<SeqStepOutput> seqs;  // in StepPlan::sample_seq_ids order
  double forward_ms = 0.0;          // the backend's forward pass
  double sample_ms = 0.0;           // the samplers
};

}  // namespace pagoda::engine
