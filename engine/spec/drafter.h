#pragma once
// Drafters for speculative decoding (DESIGN.md "Speculative decoding"): each proposes the tokens it
// expects to follow a sequence, from host-side state. The scheduler asks for a proposal when it places
// a decode, runs the proposed tokens through the target model in the same ragged step, and the model
// runner keeps the longest prefix the target would have produced itself (engine/model_runner.h), so a
// bad proposal costs compute, never correctness.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/status.h"

namespace pagoda::engine {

// What a drafter sees of one sequence.
struct DraftQuery {
  uint64_t seq_id = 0;
  std::span<const int32_t> tokens;      // prompt, then committed output (the last one not yet in the KV)
  int32_t prompt_len = 0;
  std::span<const int32_t> prediction;  // the request's predicted output (OpenAI `prediction`), or empty
  int32_t max_tokens = 0;               // propose at most this many
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  virtual const char* name() const = 0;
  // Appends up to q.max_tokens proposed tokens to `out` (nothing: no guess worth verifying).
  virtual void propose(const DraftQuery& q, std::vector<int32_t>& out) = 0;
  // The sequence finished or was dropped: a stateful drafter forgets it.
  virtual void release(uint64_t /*seq_id*/) {}
};

// Off: no drafts (a request's prediction is still drafted from). Ngram: prompt lookup, every proposed
// draft verified (up to num_tokens). Auto: prompt lookup, with each step's draft lengths chosen from
// the measured step cost and live acceptance (scheduler/draft_policy.h), 0 where drafts do not pay.
enum class SpeculativeMode { Off, Ngram, Auto };
const char* speculative_mode_name(SpeculativeMode mode);

struct SpeculativeConfig {
  SpeculativeMode mode = SpeculativeMode::Off;
  int32_t num_tokens = 5;  // drafted tokens per sequence and step, at most
  int32_t ngram_min = 2;   // prompt lookup: the shortest suffix worth matching
  int32_t ngram_max = 4;   // and the longest tried first
};
Status check_speculative_config(const SpeculativeConfig& c);

// The drafter a configuration names; nullptr for Off.
std::unique_ptr<Drafter> make_drafter(const SpeculativeConfig& c);

}  // namespace pagoda::engine
