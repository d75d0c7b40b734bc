#pragma once
// `pagoda bench speculative`: the copy/edit workload of speculative decoding (issue 11), in process at
// batch 1. Chat requests that rewrite a passage with small changes, edit code, or extract fields run one
// at a time, greedy: speculation off; prompt lookup with every draft verified (ngram); prompt lookup
// with cost-chosen draft lengths (auto); and speculation off but the request sending its source text as
// OpenAI's `prediction` (what a client gets from a server with default settings); suffix drafting (prompt
// lookup plus the outputs of earlier requests); and, given a draft model, draft-model drafting (with the
// target itself as the draft it measures the machinery's cost at 100% acceptance). Decode speed is
// completion tokens / (last token - first token); the modes' outputs are identical (speculation is
// lossless), so they do the same work. Modes rotate within each repeat.
#include <cstdint>
#include <string>
#include <vector>

#include "bench/summary_stats.h"
#include "engine/loaded_model.h"

namespace pagoda::bench {

struct SpeculativeOptions {
  int32_t max_tokens = 160;
  int32_t repeats = 3;
  int32_t num_tokens = 5;  // drafted tokens per step at most
  std::string draft_model;  // a GGUF: adds the `draft` mode
};

struct SpeculativeModeResult {
  std::string mode;              // off | ngram | auto | prediction | suffix | draft
  Summary decode_tok_s;          // per repeat: all tasks' completion tokens / their decode time
  Summary speedup;               // per repeat: decode_tok_s / off's
  int64_t completion_tokens = 0; // per repeat (the same in every repeat and mode)
  int64_t verifications = 0, draft_tokens = 0, accepted_tokens = 0;  // over all repeats
  Summary estimated_speedup;     // per repeat: the engine's own estimate (EngineLoopStats), drafting steps only
  double mean_accepted_length() const;  // tokens committed per verification: 1 + kept drafts
};

struct SpeculativeResult {
  std::vector<SpeculativeModeResult> modes;
  int32_t tasks = 0;
  bool outputs_identical = true;  // every mode produced the off run's tokens
  std::string backend;
  std::string to_text() const;
  std::string to_json(const SpeculativeOptions& o, const std::string& model_path) const;
};

int32_t speculative_kv_tokens(const SpeculativeOptions& o);
Result<SpeculativeResult> run_speculative(engine::LoadedModel& model, const SpeculativeOptions& options);

}  // namespace pagoda::bench
