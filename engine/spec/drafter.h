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
  // One step's proposals for several sequences at once (out[i] for qs[i], appended to): a drafter
  // that runs a model batches them (one forward per drafted position for all); the others loop.
  virtual void propose_batch(std::span<const DraftQuery> qs, std::vector<std::vector<int32_t>>& out) {
    out.resize(qs.size());
    for (size_t i = 0; i < qs.size(); ++i) propose(qs[i], out[i]);
  }
  // Whether the scheduler should collect a step's queries and call propose_batch once (a model:
  // whatever it is asked costs forwards, so a query is only made for drafts the step has room for),
  // rather than propose per sequence (host lookups, which often find nothing and cost little).
  virtual bool batches() const { return false; }
  // The sequence finished or was dropped: a drafter with per-sequence state forgets it. `tokens` are its
  // final tokens (prompt, then output) when it ended normally (a stop or its length), else empty; a
  // drafter that learns from finished outputs keeps only those.
  virtual void release(uint64_t /*seq_id*/, std::span<const int32_t> /*tokens*/, int32_t /*prompt_len*/) {}
};

// Lends a drafter that outlives the engine loops it drafts for (one loaded draft model for several
// runs: benchmarks, tests); forwards everything.
class BorrowedDrafter final : public Drafter {
 public:
  explicit BorrowedDrafter(Drafter& d) : d_(d) {}
  const char* name() const override { return d_.name(); }
  void propose(const DraftQuery& q, std::vector<int32_t>& out) override { d_.propose(q, out); }
  void propose_batch(std::span<const DraftQuery> qs, std::vector<std::vector<int32_t>>& out) override {
    d_.propose_batch(qs, out);
  }
  bool batches() const override { return d_.batches(); }
  void release(uint64_t seq_id, std::span<const int32_t> tokens, int32_t prompt_len) override {
    d_.release(seq_id, tokens, prompt_len);
  }

 private:
  Drafter& d_;
};

// Off: no drafts (a request's prediction is still drafted from). Ngram: prompt lookup, every proposed
// draft verified (up to num_tokens). Suffix: prompt lookup plus a shared cache of recent outputs
// (engine/spec/suffix_drafter.h), every proposal verified; opt-in, since a client that asks for drafts
// learns from its draft counts whether other requests' outputs continued its text. Draft: a second,
// smaller model (engine/spec/draft_model_drafter.h), every proposal verified. Auto: prompt lookup, with
// each step's draft lengths chosen from the measured step cost and live acceptance
// (scheduler/draft_policy.h), 0 where drafts do not pay.
enum class SpeculativeMode { Off, Ngram, Suffix, Draft, Auto };
const char* speculative_mode_name(SpeculativeMode mode);

struct SpeculativeConfig {
  SpeculativeMode mode = SpeculativeMode::Off;
  int32_t num_tokens = 5;  // drafted tokens per sequence and step, at most
  int32_t ngram_min = 2;   // prompt lookup: the shortest suffix worth matching
  int32_t ngram_max = 4;   // and the longest tried first
  int64_t suffix_cache_tokens = 1 << 18;  // suffix: tokens of finished outputs the shared cache keeps
};
Status check_speculative_config(const SpeculativeConfig& c);

// The drafter a configuration names; nullptr for Off and Draft (a draft model is loaded by whoever
// loads models: engine/spec/draft_model_drafter.h).
std::unique_ptr<Drafter> make_drafter(const SpeculativeConfig& c);

}  // namespace pagoda::engine
