// Suffix drafting (engine/spec/suffix_drafter.h): finished outputs drafted for later requests, the
// rule between a request's own tokens and the cache, the LRU bound on the cache, and the indexed lookup
// against a brute-force scan of the retained outputs.
#include "engine/spec/suffix_drafter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "engine/spec/prompt_lookup_drafter.h"

namespace pagoda::engine {
namespace {

using V = std::vector<int32_t>;

DraftQuery query(const V& tokens, int32_t prompt_len, int32_t max_tokens, const V& prediction = {}) {
  return {1, tokens, prompt_len, prediction, max_tokens};
}

V propose(SuffixDrafter& d, const V& tokens, int32_t max_tokens, const V& prediction = {}) {
  V out;
  d.propose(query(tokens, static_cast<int32_t>(tokens.size()), max_tokens, prediction), out);
  return out;
}

// Releases `output` after a two-token prompt that never occurs in the queries.
void finish(SuffixDrafter& d, const V& output) {
  V tokens = {900, 901};
  tokens.insert(tokens.end(), output.begin(), output.end());
  d.release(7, tokens, 2);
}

TEST(SuffixDrafter, DraftsAFinishedOutputForALaterRequest) {
  SuffixDrafter d(2, 3, 1000);
  EXPECT_STREQ(d.name(), "suffix");
  finish(d, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(d.num_documents(), 1);
  EXPECT_EQ(d.cached_tokens(), 6);                          // the output only, not the prompt
  EXPECT_EQ(propose(d, {50, 51, 2, 3}, 2), (V{4, 5}));      // capped by max_tokens
  EXPECT_EQ(propose(d, {50, 51, 2, 3}, 10), (V{4, 5, 6}));  // and by the document's end
  EXPECT_EQ(propose(d, {50, 4, 5}, 10), (V{6}));
  EXPECT_TRUE(propose(d, {50, 5, 6}, 10).empty());      // the document's end: nothing follows
  EXPECT_TRUE(propose(d, {50, 900, 901}, 10).empty());  // the prompt is not kept
  EXPECT_TRUE(propose(d, {50, 901, 1}, 10).empty());
  V out = {77};  // appended to
  d.propose(query({50, 51, 2, 3}, 4, 1), out);
  EXPECT_EQ(out, (V{77, 4}));
}

TEST(SuffixDrafter, LongestMatchWinsAndOwnTokensWinATie) {
  SuffixDrafter d(2, 3, 1000);
  finish(d, {7, 1, 2, 3, 4, 5});
  // n = 2 both in the request (2 3 -> 9) and in the cache (2 3 -> 4): the request's own tokens.
  EXPECT_EQ(propose(d, {2, 3, 9, 8, 2, 3}, 3), (V{9, 8, 2}));
  // 1 2 3 only in the cache (n = 3) against 2 3 in the request (n = 2): the cache.
  EXPECT_EQ(propose(d, {2, 3, 8, 1, 2, 3}, 3), (V{4, 5}));
  // An own match longer than the cache's wins too: 8 2 3 -> 6 in the request, only 2 3 in the cache.
  EXPECT_EQ(propose(d, {8, 2, 3, 6, 8, 2, 3}, 2), (V{6, 8}));
  // A request on track of its prediction drafts the prediction, whatever the cache holds.
  const V prediction = {1, 2, 3, 60, 61};
  V out;
  d.propose(query({70, 1, 2, 3}, 1, 2, prediction), out);  // the cache has 1 2 3 -> 4 (n = 3)
  EXPECT_EQ(out, (V{60, 61}));
}

TEST(SuffixDrafter, EvictsTheLeastRecentlyUsedOutputsFirst) {
  SuffixDrafter d(2, 2, 10);  // queries start with 99: n <= tokens.size() - 1, as in prompt lookup
  finish(d, {10, 11, 12, 13});
  finish(d, {20, 21, 22, 23});
  EXPECT_EQ(d.cached_tokens(), 8);
  finish(d, {30, 31, 32, 33});  // 12 > 10: the oldest goes
  EXPECT_EQ(d.num_documents(), 2);
  EXPECT_EQ(d.cached_tokens(), 8);
  EXPECT_TRUE(propose(d, {99, 10, 11}, 4).empty());
  EXPECT_EQ(propose(d, {99, 30, 31}, 4), (V{32, 33}));
  EXPECT_EQ(propose(d, {99, 20, 21}, 4), (V{22, 23}));  // drafts: now the most recently used
  finish(d, {40, 41, 42, 43});                          // the unused 30.. goes before the older but used 20..
  EXPECT_TRUE(propose(d, {99, 30, 31}, 4).empty());
  EXPECT_EQ(propose(d, {99, 20, 21}, 4), (V{22, 23}));
  EXPECT_EQ(propose(d, {99, 40, 41}, 4), (V{42, 43}));
  // Longer than the whole cache: only its last 10 tokens are kept, and everything else goes.
  finish(d, {50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62});
  EXPECT_EQ(d.num_documents(), 1);
  EXPECT_EQ(d.cached_tokens(), 10);
  EXPECT_TRUE(propose(d, {99, 51, 52}, 4).empty());
  EXPECT_EQ(propose(d, {99, 53, 54}, 4), (V{55, 56, 57, 58}));
  for (int32_t i = 0; i < 20; ++i) {
    finish(d, {i, i + 100, i + 200, i % 3});
    EXPECT_LE(d.cached_tokens(), 10);
  }
}

TEST(SuffixDrafter, SkipsShortOutputsAndZeroBudgets) {
  SuffixDrafter d(2, 3, 100);
  finish(d, {1, 2});  // no bigram is followed by anything
  EXPECT_EQ(d.num_documents(), 0);
  EXPECT_EQ(d.cached_tokens(), 0);
  finish(d, {1, 2, 3});
  EXPECT_EQ(d.num_documents(), 1);
  EXPECT_EQ(propose(d, {9, 1, 2}, 4), (V{3}));
  EXPECT_TRUE(propose(d, {9, 1, 2}, 0).empty());
  EXPECT_TRUE(propose(d, {2}, 4).empty());  // shorter than any n-gram worth matching
  d.release(8, V{1, 2, 3, 4}, 9);           // a prompt_len past the end: no output
  EXPECT_EQ(d.num_documents(), 1);
  SuffixDrafter off(2, 3, 0);  // no cache: plain prompt lookup
  finish(off, {1, 2, 3});
  EXPECT_EQ(off.num_documents(), 0);
  EXPECT_EQ(propose(off, {1, 2, 5, 1, 2}, 4), (V{5, 1, 2}));
}

// The rule, by brute force: the retained outputs in the order they were added, each with the time it
// was last used; for n from the longest down, the request's own tokens, then the newest output with an
// occurrence followed by a token.
struct Reference {
  struct Doc {
    V tokens;
    uint64_t used;
  };
  int32_t min, max;
  int64_t cap;
  std::vector<Doc> docs;
  uint64_t clock = 0;

  int64_t total() const {
    int64_t t = 0;
    for (const Doc& doc : docs) t += static_cast<int64_t>(doc.tokens.size());
    return t;
  }
  void add(V output) {
    if (static_cast<int64_t>(output.size()) > cap) output.erase(output.begin(), output.end() - cap);
    if (static_cast<int64_t>(output.size()) < min + 1) return;
    while (!docs.empty() && total() + static_cast<int64_t>(output.size()) > cap) {
      docs.erase(
          std::min_element(docs.begin(), docs.end(), [](const Doc& a, const Doc& b) { return a.used < b.used; }));
    }
    docs.push_back({std::move(output), ++clock});
  }
  V propose(const V& tokens, int32_t max_tokens) {
    if (max_tokens <= 0 || tokens.empty()) return {};
    const int32_t longest = std::min<int32_t>(max, static_cast<int32_t>(tokens.size()) - 1);
    for (int32_t n = longest; n >= min; --n) {
      const std::span<const int32_t> tail = std::span<const int32_t>(tokens).last(static_cast<size_t>(n));
      if (const int64_t at = find_occurrence(tokens, tail, static_cast<int64_t>(tokens.size())); at >= 0) {
        return V(tokens.begin() + at + n, tokens.begin() + std::min<int64_t>(tokens.size(), at + n + max_tokens));
      }
      for (auto doc = docs.rbegin(); doc != docs.rend(); ++doc) {
        const V& text = doc->tokens;
        if (const int64_t at = find_occurrence(text, tail, static_cast<int64_t>(text.size())); at >= 0) {
          doc->used = ++clock;
          return V(text.begin() + at + n, text.begin() + std::min<int64_t>(text.size(), at + n + max_tokens));
        }
      }
    }
    return {};
  }
};

TEST(SuffixDrafter, MatchesABruteForceScanOfTheRetainedOutputs) {
  struct Config {
    int32_t min, max;
    int64_t cap;
    int32_t alphabet;
  };
  for (const Config c : {Config{1, 3, 24, 4}, Config{2, 4, 60, 5}, Config{2, 2, 200, 6}, Config{3, 6, 120, 3}}) {
    SCOPED_TRACE(testing::Message() << "ngram " << c.min << ".." << c.max << " cap " << c.cap);
    std::mt19937 rng(1234 + static_cast<uint32_t>(c.min * 10 + c.max));
    auto uniform = [&](int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(rng); };
    auto random_tokens = [&](int32_t len) {
      V v(static_cast<size_t>(len));
      for (int32_t& t : v) t = uniform(0, c.alphabet - 1);
      return v;
    };
    SuffixDrafter d(c.min, c.max, c.cap);
    Reference ref{c.min, c.max, c.cap, {}};
    int32_t cache_hits = 0;
    for (int32_t op = 0; op < 600; ++op) {
      if (uniform(0, 9) < 3) {
        const V tokens = random_tokens(uniform(0, 30));
        const int32_t prompt_len = uniform(0, 5);
        d.release(static_cast<uint64_t>(op), tokens, prompt_len);
        ref.add(V(tokens.begin() + std::min<int32_t>(prompt_len, static_cast<int32_t>(tokens.size())), tokens.end()));
      } else {
        V tokens = random_tokens(uniform(0, 6));
        if (!ref.docs.empty() && uniform(0, 1) == 0) {  // end on a slice of a retained output: a likely hit
          const V& text = ref.docs[static_cast<size_t>(uniform(0, static_cast<int32_t>(ref.docs.size()) - 1))].tokens;
          const int32_t len = uniform(1, static_cast<int32_t>(text.size()));
          const int32_t from = uniform(0, static_cast<int32_t>(text.size()) - len);
          tokens.insert(tokens.end(), text.begin() + from, text.begin() + from + len);
        }
        const int32_t max_tokens = uniform(0, 6);
        V own;
        PromptLookupDrafter(c.min, c.max).propose(query(tokens, static_cast<int32_t>(tokens.size()), max_tokens), own);
        const V want = ref.propose(tokens, max_tokens);
        ASSERT_EQ(propose(d, tokens, max_tokens), want) << "op " << op;
        if (want != own) ++cache_hits;
      }
      ASSERT_EQ(d.cached_tokens(), ref.total()) << "op " << op;
      ASSERT_EQ(d.num_documents(), static_cast<int64_t>(ref.docs.size())) << "op " << op;
      ASSERT_LE(d.cached_tokens(), c.cap);
    }
    EXPECT_GT(cache_hits, 50);  // the check exercised the cache, not only prompt lookup
  }
}

}  // namespace
}  // namespace pagoda::engine
