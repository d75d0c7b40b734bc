// The logical KV-cache manager: sequences mapped onto a BlockPool (see kv_cache_manager.h and
// block_pool.h). This file owns the per-sequence state (block table, committed tokens, the prefix key
// through each committed full block) and the verbs' all-or-nothing rules; refcounts, the free list,
// the evictable LRU and the prefix-cache map live in BlockPool. The window pool is a second BlockPool
// whose cache entries are keyed by the main pool's prefix chain (a window block i is cached under the
// main chain's key through block i - 1), so both pools name a prefix the same way.
#include "engine/kv/kv_cache_manager.h"

#include <algorithm>
#include <unordered_map>

#include "engine/kv/block_pool.h"

namespace pagoda::engine {

namespace {

struct Sequence {
  std::vector<int32_t> blocks;   // block table
  std::vector<int32_t> tokens;   // committed token ids: the KV holds them at positions [0, size)
  // prefix[i]: key of the prefix through full block i. Filled for committed full blocks only (with
  // prefix caching), whether or not block i itself is the cache entry (a duplicate of an already
  // cached prefix is not), so the chain continues to the next block either way.
  std::vector<PrefixKey> prefix;
  // With a window pool: the window table, as long as `blocks`; -1 where released (or never needed).
  // Entries below `released` are all -1.
  std::vector<int32_t> wblocks;
  int32_t released = 0;
};

// A prefix-cache hit: the main pool's blocks and keys through each, and the window pool's blocks
// (-1 before the hit's last window).
struct Hit {
  std::vector<int32_t> blocks;
  std::vector<PrefixKey> prefix;
  std::vector<int32_t> wblocks;
};

}  // namespace

struct KvCacheManager::Impl {
  explicit Impl(const KvCacheOptions& o)
      : prefix_caching(o.enable_prefix_caching),
        // block_size <= 0 would divide by zero everywhere; one token per block is the harmless floor.
        pool(std::max(o.num_blocks, 0), std::max(o.block_size, 1)),
        window(o.num_window_blocks > 0 ? std::max(o.window, 0) : 0),
        wpool(window > 0 ? o.num_window_blocks : 0, std::max(o.block_size, 1)) {}

  int32_t bs() const { return pool.block_size(); }
  // The first block a token at position `pos` reads through its window (the window pool only).
  int32_t window_start(int32_t pos) const { return std::max(0, pos + 1 - window) / bs(); }
  Hit longest_hit(std::span<const int32_t> prompt) const;
  void release_window_blocks(Sequence& s);
  Sequence* find(uint64_t seq) {
    auto it = seqs.find(seq);
    return it == seqs.end() ? nullptr : &it->second;
  }

  bool prefix_caching;
  BlockPool pool;
  int32_t window;   // 0: no window pool
  BlockPool wpool;  // the window pool (no blocks without one)
  std::unordered_map<uint64_t, Sequence> seqs;
  std::vector<std::pair<int32_t, int32_t>> pending_copies;
  std::vector<std::pair<int32_t, int32_t>> pending_window_copies;
  int64_t prefix_queries = 0;
  int64_t prefix_hits = 0;
};

KvCacheManager::KvCacheManager(const KvCacheOptions& options) : impl_(new Impl(options)) {}
KvCacheManager::~KvCacheManager() { delete impl_; }

// The main pool's leading run of cached blocks (all but one covering the whole prompt, whose last
// token must still be computed for its logits). With a window pool, cut back to the longest run whose
// last `window` tokens' window blocks are cached too: scanning down from the end (as vLLM's
// SlidingWindowManager.find_longest_cache_hit), blocks (i, run_end) are hits, and run_end is the
// answer once its window starts above i.
Hit KvCacheManager::Impl::longest_hit(std::span<const int32_t> prompt) const {
  Hit hit;
  const int32_t eligible = (static_cast<int32_t>(prompt.size()) - 1) / bs();
  auto tokens_of = [&](int32_t i) { return prompt.subspan(static_cast<size_t>(i) * bs(), static_cast<size_t>(bs())); };
  PrefixKey parent;
  for (int32_t i = 0; i < eligible; ++i) {
    PrefixKey key;
    const int32_t b = pool.find(parent, tokens_of(i), &key);
    if (b < 0) break;  // the chain is broken: no later block can be the same prefix
    hit.blocks.push_back(b);
    hit.prefix.push_back(key);
    parent = key;
  }
  if (window == 0) return hit;
  const int32_t h = static_cast<int32_t>(hit.blocks.size());
  std::vector<int32_t> found(static_cast<size_t>(h), -1);
  int32_t run_end = h;
  for (int32_t i = h - 1; window_start(run_end * bs()) <= i; --i) {
    PrefixKey unused;
    found[i] = wpool.find(i == 0 ? PrefixKey{} : hit.prefix[i - 1], tokens_of(i), &unused);
    if (found[i] < 0) run_end = i;
  }
  hit.blocks.resize(static_cast<size_t>(run_end));
  hit.prefix.resize(static_cast<size_t>(run_end));
  hit.wblocks.assign(static_cast<size_t>(run_end), -1);
  for (int32_t i = window_start(run_end * bs()); i < run_end; ++i) hit.wblocks[i] = found[i];
  return hit;
}

int32_t KvCacheManager::start_sequence(uint64_t seq, std::span<const int32_t> prompt) {
  free(seq);  // a reused id starts over rather than leaking the old table
  Sequence& s = impl_->seqs[seq];
  if (!impl_->prefix_caching || prompt.empty()) return 0;
  // Counted as queries even past the first miss, so hits / queries is the fraction of cacheable prompt
  // blocks that were reused.
  impl_->prefix_queries += (static_cast<int32_t>(prompt.size()) - 1) / impl_->bs();
  Hit hit = impl_->longest_hit(prompt);
  for (int32_t b : hit.blocks) impl_->pool.ref(b);
  for (int32_t b : hit.wblocks) {
    if (b >= 0) impl_->wpool.ref(b);
  }
  const int32_t hits = static_cast<int32_t>(hit.blocks.size());
  impl_->prefix_hits += hits;
  s.blocks = std::move(hit.blocks);
  s.prefix = std::move(hit.prefix);
  s.wblocks = std::move(hit.wblocks);
  s.released = impl_->window > 0 ? impl_->window_start(hits * impl_->bs()) : 0;
  s.tokens.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(hits) * impl_->bs());
  return hits * impl_->bs();
}

int32_t KvCacheManager::peek_cached_prefix(std::span<const int32_t> prompt) const {
  if (!impl_->prefix_caching || prompt.empty()) return 0;
  return static_cast<int32_t>(impl_->longest_hit(prompt).blocks.size()) * impl_->bs();
}

bool KvCacheManager::allocate_slots(uint64_t seq, int32_t num_tokens) {
  Sequence* s = impl_->find(seq);
  if (s == nullptr || num_tokens < 0) return false;
  BlockPool& pool = impl_->pool;
  const int32_t bs = impl_->bs();
  const int32_t have = static_cast<int32_t>(s->blocks.size());
  const int32_t need = (num_tokens + bs - 1) / bs;
  const int32_t committed = static_cast<int32_t>(s->tokens.size());
  const bool writes = committed < num_tokens;
  const int32_t write_begin = committed / bs;          // first block written
  const int32_t write_end = std::min(need, have);      // existing blocks written: [write_begin, write_end)

  // Count first, act after: all-or-nothing. A shared block costs one fresh block (its source keeps
  // another reference, so releasing ours frees nothing).
  int32_t wanted = std::max(need - have, 0);
  if (writes) {
    for (int32_t i = write_begin; i < write_end; ++i) wanted += pool.refcount(s->blocks[i]) > 1;
  }
  if (wanted > pool.num_available()) return false;
  // The window table: blocks from where the new tokens' windows start, fresh where missing.
  BlockPool& wpool = impl_->wpool;
  const bool windowed = impl_->window > 0;
  const int32_t wbegin = windowed ? std::max(impl_->window_start(committed), s->released) : 0;
  if (windowed) {
    int32_t wwanted = 0;
    for (int32_t i = wbegin; i < need; ++i) {
      const int32_t b = i < have ? s->wblocks[i] : -1;
      wwanted += b < 0 || (writes && i >= write_begin && wpool.refcount(b) > 1);
    }
    if (wwanted > wpool.num_available()) return false;
  }

  if (writes) {
    for (int32_t i = write_begin; i < write_end; ++i) {
      const int32_t src = s->blocks[i];
      if (pool.refcount(src) > 1) {
        // Copy-on-write: the other holders keep src (and its cache entry, if any) untouched.
        const int32_t dst = pool.allocate();
        impl_->pending_copies.emplace_back(src, dst);
        pool.unref(src);
        s->blocks[i] = dst;
      } else {
        pool.uncache(src);  // ours alone: write in place, but the cache must not promise old contents
      }
    }
  }
  for (int32_t i = have; i < need; ++i) s->blocks.push_back(pool.allocate());
  if (!windowed) return true;
  s->wblocks.resize(s->blocks.size(), -1);
  for (int32_t i = wbegin; i < need; ++i) {
    int32_t& b = s->wblocks[i];
    if (b < 0) {
      b = wpool.allocate();
    } else if (writes && i >= write_begin) {
      if (wpool.refcount(b) > 1) {
        const int32_t dst = wpool.allocate();
        impl_->pending_window_copies.emplace_back(b, dst);
        wpool.unref(b);
        b = dst;
      } else {
        wpool.uncache(b);
      }
    }
  }
  return true;
}

void KvCacheManager::truncate(uint64_t seq, int32_t num_tokens) {
  Sequence* s = impl_->find(seq);
  if (s == nullptr || num_tokens < 0 || static_cast<int32_t>(s->tokens.size()) <= num_tokens) return;
  s->tokens.resize(static_cast<size_t>(num_tokens));
  const size_t full = static_cast<size_t>(num_tokens / impl_->bs());
  if (s->prefix.size() > full) s->prefix.resize(full);
}

void KvCacheManager::commit_tokens(uint64_t seq, std::span<const int32_t> tokens) {
  Sequence* s = impl_->find(seq);
  if (s == nullptr) return;
  if (tokens.size() < s->tokens.size()) {  // a rollback: nothing new to cache
    truncate(seq, static_cast<int32_t>(tokens.size()));
    return;
  }
  // Incremental: positions already committed are taken as unchanged (the caller passes the whole
  // sequence each step; copying it again would make a long decode quadratic).
  s->tokens.insert(s->tokens.end(), tokens.begin() + static_cast<std::ptrdiff_t>(s->tokens.size()), tokens.end());
  if (!impl_->prefix_caching) return impl_->release_window_blocks(*s);
  const int32_t bs = impl_->bs();
  const int32_t full_tokens = static_cast<int32_t>(s->tokens.size()) / bs;
  const int32_t full = std::min(full_tokens, static_cast<int32_t>(s->blocks.size()));
  PrefixKey parent = s->prefix.empty() ? PrefixKey{} : s->prefix.back();
  const std::span<const int32_t> committed(s->tokens);
  for (int32_t i = static_cast<int32_t>(s->prefix.size()); i < full; ++i) {
    const auto block_tokens = committed.subspan(static_cast<size_t>(i) * bs, bs);
    // The window block under the main chain's key through block i - 1 (see longest_hit).
    if (impl_->window > 0 && s->wblocks[i] >= 0) impl_->wpool.insert(s->wblocks[i], parent, block_tokens);
    parent = impl_->pool.insert(s->blocks[i], parent, block_tokens);
    s->prefix.push_back(parent);
  }
  impl_->release_window_blocks(*s);
}

// Window blocks wholly before the next token's window (it runs at the first uncommitted position) are
// never read again: back to the window pool, cached ones to its evictable list.
void KvCacheManager::Impl::release_window_blocks(Sequence& s) {
  if (window == 0) return;
  const int32_t end =
      std::min(window_start(static_cast<int32_t>(s.tokens.size())), static_cast<int32_t>(s.wblocks.size()));
  for (; s.released < end; ++s.released) {
    if (s.wblocks[s.released] >= 0) wpool.unref(s.wblocks[s.released]);
    s.wblocks[s.released] = -1;
  }
}

void KvCacheManager::fork(uint64_t parent, uint64_t child) {
  if (parent == child) return;
  const Sequence* p = impl_->find(parent);
  if (p == nullptr) return;
  Sequence copy = *p;  // before touching the map: inserting the child may rehash and move the parent
  free(child);
  for (int32_t b : copy.blocks) impl_->pool.ref(b);
  for (int32_t b : copy.wblocks) {
    if (b >= 0) impl_->wpool.ref(b);
  }
  impl_->seqs[child] = std::move(copy);
}

void KvCacheManager::free(uint64_t seq) {
  auto it = impl_->seqs.find(seq);
  if (it == impl_->seqs.end()) return;
  // Last block first, so the evictable list loses a prefix's tail before its head: a cached block whose
  // parent was evicted can never hit again, and shorter prefixes are the ones most often shared.
  const std::vector<int32_t>& blocks = it->second.blocks;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) impl_->pool.unref(*b);
  const std::vector<int32_t>& wblocks = it->second.wblocks;
  for (auto b = wblocks.rbegin(); b != wblocks.rend(); ++b) {
    if (*b >= 0) impl_->wpool.unref(*b);
  }
  impl_->seqs.erase(it);
}

std::vector<std::pair<int32_t, int32_t>> KvCacheManager::take_pending_copies() {
  std::vector<std::pair<int32_t, int32_t>> out;
  out.swap(impl_->pending_copies);
  return out;
}

std::vector<std::pair<int32_t, int32_t>> KvCacheManager::take_pending_window_copies() {
  std::vector<std::pair<int32_t, int32_t>> out;
  out.swap(impl_->pending_window_copies);
  return out;
}

std::span<const int32_t> KvCacheManager::block_table(uint64_t seq) const {
  const Sequence* s = impl_->find(seq);
  return s == nullptr ? std::span<const int32_t>() : std::span<const int32_t>(s->blocks);
}

std::span<const int32_t> KvCacheManager::window_block_table(uint64_t seq) const {
  const Sequence* s = impl_->find(seq);
  return s == nullptr ? std::span<const int32_t>() : std::span<const int32_t>(s->wblocks);
}

int32_t KvCacheManager::window() const { return impl_->window; }

bool KvCacheManager::has_sequence(uint64_t seq) const { return impl_->seqs.count(seq) != 0; }

int32_t KvCacheManager::block_size() const { return impl_->bs(); }

int32_t KvCacheManager::num_available_blocks() const { return impl_->pool.num_available(); }

KvCacheStats KvCacheManager::stats() const {
  const BlockPool& pool = impl_->pool;
  KvCacheStats st;
  st.num_blocks = pool.num_blocks();
  st.used_blocks = pool.num_used();
  st.cached_blocks = pool.num_cached();
  st.prefix_queries = impl_->prefix_queries;
  st.prefix_hits = impl_->prefix_hits;
  if (impl_->window > 0) {
    st.num_window_blocks = impl_->wpool.num_blocks();
    st.used_window_blocks = impl_->wpool.num_used();
    st.cached_window_blocks = impl_->wpool.num_cached();
  }
  return st;
}

Status KvCacheManager::check_consistency() const {
  const BlockPool& pool = impl_->pool;
  const int32_t n = pool.num_blocks();
  std::vector<int32_t> refs(static_cast<size_t>(n), 0);
  std::vector<int32_t> wrefs(static_cast<size_t>(impl_->wpool.num_blocks()), 0);
  for (const auto& [id, s] : impl_->seqs) {
    const std::string who = "sequence " + std::to_string(id) + ": ";
    for (int32_t b : s.blocks) {
      if (b < 0 || b >= n) return Status::error(who + "table holds out-of-range block " + std::to_string(b));
      ++refs[b];
    }
    if (s.prefix.size() > s.blocks.size() || s.prefix.size() * impl_->bs() > s.tokens.size()) {
      return Status::error(who + std::to_string(s.prefix.size()) + " prefix keys for " +
                           std::to_string(s.blocks.size()) + " blocks and " + std::to_string(s.tokens.size()) +
                           " committed tokens");
    }
    if (!impl_->prefix_caching && !s.prefix.empty()) return Status::error(who + "prefix keys with prefix caching off");
    if (impl_->window == 0) {
      if (!s.wblocks.empty()) return Status::error(who + "a window table without a window pool");
      continue;
    }
    if (s.wblocks.size() != s.blocks.size()) {
      return Status::error(who + "window table of " + std::to_string(s.wblocks.size()) + " entries for " +
                           std::to_string(s.blocks.size()) + " blocks");
    }
    // Released below the committed tokens' window, held from there to the last committed token.
    const int32_t committed = static_cast<int32_t>(s.tokens.size());
    const int32_t start = impl_->window_start(committed);
    const int32_t held_end =
        std::min((committed + impl_->bs() - 1) / impl_->bs(), static_cast<int32_t>(s.wblocks.size()));
    for (int32_t i = 0; i < static_cast<int32_t>(s.wblocks.size()); ++i) {
      const int32_t b = s.wblocks[i];
      if (b >= impl_->wpool.num_blocks() || (b < 0 && b != -1)) {
        return Status::error(who + "window table holds out-of-range block " + std::to_string(b));
      }
      if (b >= 0) ++wrefs[b];
      if ((i < s.released && b >= 0) || (i >= start && i < held_end && b < 0)) {
        return Status::error(who + "window table entry " + std::to_string(i) + " is " + std::to_string(b) + " with " +
                             std::to_string(committed) + " committed tokens and a window of " +
                             std::to_string(impl_->window));
      }
    }
  }
  for (int32_t b = 0; b < impl_->wpool.num_blocks(); ++b) {
    if (wrefs[b] != impl_->wpool.refcount(b)) {
      return Status::error("window block " + std::to_string(b) + ": refcount " +
                           std::to_string(impl_->wpool.refcount(b)) + " but " + std::to_string(wrefs[b]) +
                           " table references");
    }
    if (!impl_->prefix_caching && impl_->wpool.is_cached(b)) {
      return Status::error("window block " + std::to_string(b) + ": cached with prefix caching off");
    }
  }
  if (Status st = impl_->wpool.check(); !st.ok()) return Status::error("window pool: " + st.message());
  for (int32_t b = 0; b < n; ++b) {
    if (refs[b] != pool.refcount(b)) {
      return Status::error("block " + std::to_string(b) + ": refcount " + std::to_string(pool.refcount(b)) + " but " +
                           std::to_string(refs[b]) + " table references");
    }
    if (!impl_->prefix_caching && pool.is_cached(b)) {
      return Status::error("block " + std::to_string(b) + ": cached with prefix caching off");
    }
  }
  return pool.check();
}

}  // namespace pagoda::engine
