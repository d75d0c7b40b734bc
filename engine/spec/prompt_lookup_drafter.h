#pragma once
// Prompt lookup (n-gram) drafting. The last n tokens of the sequence, n from ngram_max down to
// ngram_min, are searched for earlier in the sequence (prompt and output) and what followed the match
// is proposed: copy and edit tasks (rewrite a passage, change code, extract fields) repeat long runs
// of their input, which this drafts for free. With a predicted output (OpenAI `prediction`), the
// prediction comes first: while the output is a prefix of it, its next tokens; after a divergence, the
// occurrence of the last n tokens nearest to where the output has got to, so the drafts re-synchronise
// as soon as the output again ends with n tokens of the prediction (Aggressive Decoding's idea).
// Stateless.
#include <cstdint>
#include <span>
#include <vector>

#include "engine/spec/drafter.h"

namespace pagoda::engine {

class PromptLookupDrafter final : public Drafter {
 public:
  PromptLookupDrafter(int32_t ngram_min, int32_t ngram_max) : min_(ngram_min), max_(ngram_max) {}
  const char* name() const override { return "ngram"; }
  void propose(const DraftQuery& q, std::vector<int32_t>& out) override;

 private:
  int32_t min_, max_;
};

// Where `tail` occurs in `text` followed by at least one more token (so never as text's own suffix):
// the start of the occurrence whose end is nearest to `near` (ties: the later one); -1 when none.
// near = text.size() asks for the latest occurrence.
int64_t find_occurrence(std::span<const int32_t> text, std::span<const int32_t> tail, int64_t near);

}  // namespace pagoda::engine
