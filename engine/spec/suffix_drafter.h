#pragma once
// Suffix drafting: prompt lookup (engine/spec/prompt_lookup_drafter.h) plus a shared cache of recent
// finished outputs, SuffixDecoding's idea in a simple form. Agentic and templated traffic repeats runs of
// earlier *outputs* across requests (the same tool call, the same JSON skeleton, the same boilerplate),
// which a request's own prompt does not hold; the cache drafts them. A bad draft costs only the verified
// compute (engine/spec/drafter.h), so the cache keeps no statistics, only the documents and an index.
//
// The cache: each finished output (tokens[prompt_len..] of release) is one document; the documents hold
// at most cache_tokens tokens together, and the least recently used one (added, or the source of a
// proposal) is evicted first. An output longer than the cap keeps its last cache_tokens tokens. Every
// n-gram (n in [ngram_min, ngram_max]) that is followed by a token is indexed: per n, a hash of the
// n-gram -> an intrusive doubly linked list of its occurrences, newest document first and, inside a
// document, the latest position first. A lookup hashes the tail and walks that list to the first
// occurrence whose tokens really equal the tail (a hash collision costs a step of the walk, never a
// wrong proposal); eviction unlinks a document's occurrences in O(1) each, so it costs O(its length x
// the number of n sizes), and memory stays proportional to the cached tokens.
//
// Proposal rule, n from min(ngram_max, tokens.size() - 1) down to ngram_min: the longest n that matches
// anywhere wins; on an equal n the request's own prompt, output and prediction win over the cache (they
// are the most specific context), and a request on track of its prediction always drafts the prediction
// (PromptLookupDrafter's rule). A cache match proposes what followed its most recently added occurrence,
// up to q.max_tokens tokens and never past the end of its document.
//
// Not thread-safe: the scheduler calls propose and release from its one thread.
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/spec/drafter.h"

namespace pagoda::engine {

class SuffixDrafter final : public Drafter {
 public:
  // ngram_min is raised to 1 and ngram_max to ngram_min where they are below (check_speculative_config
  // rejects such values first); cache_tokens <= 0 keeps no outputs (plain prompt lookup).
  SuffixDrafter(int32_t ngram_min, int32_t ngram_max, int64_t cache_tokens);
  const char* name() const override { return "suffix"; }
  void propose(const DraftQuery& q, std::vector<int32_t>& out) override;
  // Adds the output tokens[prompt_len..] to the cache when it has at least ngram_min + 1 tokens (fewer
  // index no n-gram that is followed by something).
  void release(uint64_t seq_id, std::span<const int32_t> tokens, int32_t prompt_len) override;

  int64_t cached_tokens() const { return cached_tokens_; }  // <= cache_tokens, always
  int64_t num_documents() const { return static_cast<int64_t>(lru_.size()); }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;  // Ref::slot of a null link
  struct Ref {                                   // one indexed occurrence: docs_[slot].tokens[pos..pos+n)
    uint32_t slot = kNone;
    int32_t pos = 0;
  };
  struct Link {  // an occurrence's neighbours in its n-gram's list (prev: newer, next: older)
    Ref prev, next;
  };
  struct Document {
    std::vector<int32_t> tokens;
    std::vector<std::vector<Link>> links;  // [n - min_][pos], pos < tokens.size() - n
    std::list<uint32_t>::iterator lru;
  };

  Link& link(Ref r, int32_t k) { return docs_[r.slot].links[static_cast<size_t>(k)][static_cast<size_t>(r.pos)]; }
  const Link& link(Ref r, int32_t k) const {
    return docs_[r.slot].links[static_cast<size_t>(k)][static_cast<size_t>(r.pos)];
  }
  bool find_cached(std::span<const int32_t> tail, Ref& at) const;
  void add_document(std::span<const int32_t> tokens);
  void evict_lru();

  int32_t min_, max_;
  int64_t cap_;
  int64_t cached_tokens_ = 0;
  std::vector<Document> docs_;        // slots; an evicted document's slot is reused
  std::vector<uint32_t> free_slots_;  // evicted slots
  std::list<uint32_t> lru_;           // live slots, most recently used first
  // [n - min_]: n-gram hash -> its newest occurrence, the head of the list through Document::links.
  std::vector<std::unordered_map<uint64_t, Ref>> heads_;
};

}  // namespace pagoda::engine
