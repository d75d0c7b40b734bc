#include "engine/spec/suffix_drafter.h"

#include <algorithm>

#include "engine/spec/prompt_lookup_drafter.h"

namespace pagoda::engine {

namespace {

// N-gram hashes are polynomial over mixed token values, so indexing a document rolls them in O(1) a
// position (the index is built and torn down once per document, the lookups hash one short tail).
constexpr uint64_t kBase = 0x9E3779B97F4A7C15ull;

uint64_t mix(int32_t token) {  // splitmix64's finaliser: nearby token ids land far apart
  uint64_t x = static_cast<uint64_t>(static_cast<uint32_t>(token)) + 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t ngram_hash(std::span<const int32_t> ngram) {
  uint64_t h = 0;
  for (const int32_t t : ngram) h = h * kBase + mix(t);
  return h;
}

uint64_t power(uint64_t base, int32_t exp) {
  uint64_t r = 1;
  for (int32_t i = 0; i < exp; ++i) r *= base;
  return r;
}

// Hash of text[pos..pos+n) from that of text[pos-1..pos-1+n); top = kBase^(n-1).
uint64_t roll(uint64_t h, std::span<const int32_t> text, size_t pos, size_t n, uint64_t top) {
  return (h - mix(text[pos - 1]) * top) * kBase + mix(text[pos + n - 1]);
}

}  // namespace

SuffixDrafter::SuffixDrafter(int32_t ngram_min, int32_t ngram_max, int64_t cache_tokens)
    : min_(std::max(ngram_min, 1)), max_(std::max(ngram_max, min_)), cap_(std::max<int64_t>(cache_tokens, 0)) {
  heads_.resize(static_cast<size_t>(max_ - min_ + 1));
}

bool SuffixDrafter::find_cached(std::span<const int32_t> tail, Ref& at) const {
  const int32_t k = static_cast<int32_t>(tail.size()) - min_;
  const auto& heads = heads_[static_cast<size_t>(k)];
  const auto it = heads.find(ngram_hash(tail));
  if (it == heads.end()) return false;
  // Newest first, and every indexed occurrence is followed by a token: the first real match is the one.
  for (Ref r = it->second; r.slot != kNone; r = link(r, k).next) {
    const std::vector<int32_t>& text = docs_[r.slot].tokens;
    if (std::equal(tail.begin(), tail.end(), text.begin() + r.pos)) {
      at = r;
      return true;
    }
  }
  return false;  // only hash collisions
}

void SuffixDrafter::propose(const DraftQuery& q, std::vector<int32_t>& out) {
  if (q.max_tokens <= 0 || q.tokens.empty()) return;
  const int32_t longest = static_cast<int32_t>(std::min<int64_t>(max_, static_cast<int64_t>(q.tokens.size()) - 1));
  int32_t cache_n = 0;
  Ref at;
  for (int32_t n = longest; n >= min_; --n) {
    if (find_cached(q.tokens.last(static_cast<size_t>(n)), at)) {
      cache_n = n;
      break;
    }
  }
  // The request's own tokens and prediction, matched with cache_n tokens or more: they win an equal n
  // and anything longer (and a prediction on track wins outright). PromptLookupDrafter is stateless and
  // two ints, so one made for this floor costs nothing and keeps a single copy of its rules.
  const size_t before = out.size();
  PromptLookupDrafter(std::max(min_, cache_n), max_).propose(q, out);
  if (out.size() > before || cache_n == 0) return;

  const Document& d = docs_[at.slot];
  const int64_t from = at.pos + cache_n;
  const int64_t end = std::min<int64_t>(static_cast<int64_t>(d.tokens.size()), from + q.max_tokens);
  out.insert(out.end(), d.tokens.begin() + from, d.tokens.begin() + end);
  lru_.splice(lru_.begin(), lru_, d.lru);  // a document that drafts is kept longer
}

void SuffixDrafter::release(uint64_t /*seq_id*/, std::span<const int32_t> tokens, int32_t prompt_len) {
  const size_t start = static_cast<size_t>(std::clamp<int64_t>(prompt_len, 0, static_cast<int64_t>(tokens.size())));
  std::span<const int32_t> output = tokens.subspan(start);
  // Longer than the whole cache: its end is what the next request in the same flow is likeliest to repeat.
  if (static_cast<int64_t>(output.size()) > cap_) output = output.last(static_cast<size_t>(cap_));
  if (static_cast<int64_t>(output.size()) < static_cast<int64_t>(min_) + 1) return;
  add_document(output);
}

void SuffixDrafter::add_document(std::span<const int32_t> tokens) {
  const int64_t len = static_cast<int64_t>(tokens.size());
  while (!lru_.empty() && cached_tokens_ + len > cap_) evict_lru();
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(docs_.size());
    docs_.emplace_back();
  }
  Document& d = docs_[slot];
  d.tokens.assign(tokens.begin(), tokens.end());
  d.links.resize(heads_.size());
  for (int32_t k = 0; k < static_cast<int32_t>(heads_.size()); ++k) {
    const size_t n = static_cast<size_t>(min_ + k);
    std::vector<Link>& links = d.links[static_cast<size_t>(k)];
    links.clear();
    if (tokens.size() <= n) continue;
    links.resize(tokens.size() - n);  // the n-grams followed by a token
    auto& heads = heads_[static_cast<size_t>(k)];
    const uint64_t top = power(kBase, static_cast<int32_t>(n) - 1);
    uint64_t h = ngram_hash(tokens.first(n));
    // Ascending positions, each pushed at the front of its list: the latest position ends up first.
    for (size_t pos = 0; pos < links.size(); ++pos) {
      if (pos > 0) h = roll(h, tokens, pos, n, top);
      const Ref self{slot, static_cast<int32_t>(pos)};
      const auto [it, fresh] = heads.try_emplace(h, self);
      links[pos] = Link{Ref{}, fresh ? Ref{} : it->second};
      if (!fresh) {
        link(it->second, k).prev = self;
        it->second = self;
      }
    }
  }
  d.lru = lru_.insert(lru_.begin(), slot);
  cached_tokens_ += len;
}

void SuffixDrafter::evict_lru() {
  const uint32_t slot = lru_.back();
  lru_.pop_back();
  Document& d = docs_[slot];
  const std::span<const int32_t> tokens = d.tokens;
  for (int32_t k = 0; k < static_cast<int32_t>(heads_.size()); ++k) {
    const size_t n = static_cast<size_t>(min_ + k);
    const std::vector<Link>& links = d.links[static_cast<size_t>(k)];
    if (links.empty()) continue;
    auto& heads = heads_[static_cast<size_t>(k)];
    const uint64_t top = power(kBase, static_cast<int32_t>(n) - 1);
    uint64_t h = ngram_hash(tokens.first(n));
    for (size_t pos = 0; pos < links.size(); ++pos) {
      if (pos > 0) h = roll(h, tokens, pos, n, top);
      const Link l = links[pos];
      if (l.prev.slot != kNone) {
        link(l.prev, k).next = l.next;
      } else if (l.next.slot != kNone) {
        heads.find(h)->second = l.next;  // it was the newest: the next one heads the list now
      } else {
        heads.erase(h);  // the last occurrence of this n-gram
      }
      if (l.next.slot != kNone) link(l.next, k).prev = l.prev;
    }
  }
  cached_tokens_ -= static_cast<int64_t>(d.tokens.size());
  d.tokens = {};  // give the memory back: slots are reused, but at another length
  d.links = {};
  free_slots_.push_back(slot);
}

}  // namespace pagoda::engine
