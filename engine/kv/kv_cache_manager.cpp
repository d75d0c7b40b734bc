// The logical KV-cache manager: sequences mapped onto a BlockPool (see kv_cache_manager.h and
// block_pool.h). This file owns the per-sequence state (block table, committed tokens, the prefix key
// through each committed full block) and the verbs' all-or-nothing rules; refcounts, the free list,
// the evictable LRU and the prefix-cache map live in BlockPool.
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
};

}  // namespace

struct KvCacheManager::Impl {
  explicit Impl(const KvCacheOptions& o)
      : prefix_caching(o.enable_prefix_caching),
        // block_size <= 0 would divide by zero everywhere; one token per block is the harmless floor.
        pool(std::max(o.num_blocks, 0), std::max(o.block_size, 1)) {}

  int32_t bs() const { return pool.block_size(); }
  Sequence* find(uint64_t seq) {
    auto it = seqs.find(seq);
    return it == seqs.end() ? nullptr : &it->second;
  }

  bool prefix_caching;
  BlockPool pool;
  std::unordered_map<uint64_t, Sequence> seqs;
  std::vector<std::pair<int32_t, int32_t>> pending_copies;
  int64_t prefix_queries = 0;
  int64_t prefix_hits = 0;
};

KvCacheManager::KvCacheManager(const KvCacheOptions& options) : impl_(new Impl(options)) {}
KvCacheManager::~KvCacheManager() { delete impl_; }

int32_t KvCacheManager::start_sequence(uint64_t seq, std::span<const int32_t> prompt) {
  free(seq);  // a reused id starts over rather than leaking the old table
  Sequence& s = impl_->seqs[seq];
  if (!impl_->prefix_caching || prompt.empty()) return 0;
  const int32_t bs = impl_->bs();
  // Full blocks that may hit: all of them except one that would cover the whole prompt, since the last
  // prompt token must still be computed for its logits. Counted as queries even past the first miss,
  // so hits / queries is the fraction of cacheable prompt blocks that were reused.
  const int32_t eligible = (static_cast<int32_t>(prompt.size()) - 1) / bs;
  impl_->prefix_queries += eligible;
  PrefixKey parent;
  for (int32_t i = 0; i < eligible; ++i) {
    PrefixKey key;
    const int32_t b = impl_->pool.find(parent, prompt.subspan(static_cast<size_t>(i) * bs, bs), &key);
    if (b < 0) break;  // the chain is broken: no later block can be the same prefix
    impl_->pool.ref(b);
    s.blocks.push_back(b);
    s.prefix.push_back(key);
    parent = key;
  }
  const int32_t hits = static_cast<int32_t>(s.blocks.size());
  impl_->prefix_hits += hits;
  s.tokens.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(hits) * bs);
  return hits * bs;
}

int32_t KvCacheManager::peek_cached_prefix(std::span<const int32_t> prompt) const {
  if (!impl_->prefix_caching || prompt.empty()) return 0;
  const int32_t bs = impl_->bs();
  const int32_t eligible = (static_cast<int32_t>(prompt.size()) - 1) / bs;
  PrefixKey parent;
  int32_t hits = 0;
  for (; hits < eligible; ++hits) {
    PrefixKey key;
    if (impl_->pool.find(parent, prompt.subspan(static_cast<size_t>(hits) * bs, bs), &key) < 0) break;
    parent = key;
  }
  return hits * bs;
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
  if (!impl_->prefix_caching) return;
  const int32_t bs = impl_->bs();
  const int32_t full_tokens = static_cast<int32_t>(s->tokens.size()) / bs;
  const int32_t full = std::min(full_tokens, static_cast<int32_t>(s->blocks.size()));
  PrefixKey parent = s->prefix.empty() ? PrefixKey{} : s->prefix.back();
  const std::span<const int32_t> committed(s->tokens);
  for (int32_t i = static_cast<int32_t>(s->prefix.size()); i < full; ++i) {
    parent = impl_->pool.insert(s->blocks[i], parent, committed.subspan(static_cast<size_t>(i) * bs, bs));
    s->prefix.push_back(parent);
  }
}

void KvCacheManager::fork(uint64_t parent, uint64_t child) {
  if (parent == child) return;
  const Sequence* p = impl_->find(parent);
  if (p == nullptr) return;
  Sequence copy = *p;  // before touching the map: inserting the child may rehash and move the parent
  free(child);
  for (int32_t b : copy.blocks) impl_->pool.ref(b);
  impl_->seqs[child] = std::move(copy);
}

void KvCacheManager::free(uint64_t seq) {
  auto it = impl_->seqs.find(seq);
  if (it == impl_->seqs.end()) return;
  // Last block first, so the evictable list loses a prefix's tail before its head: a cached block whose
  // parent was evicted can never hit again, and shorter prefixes are the ones most often shared.
  const std::vector<int32_t>& blocks = it->second.blocks;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) impl_->pool.unref(*b);
  impl_->seqs.erase(it);
}

std::vector<std::pair<int32_t, int32_t>> KvCacheManager::take_pending_copies() {
  std::vector<std::pair<int32_t, int32_t>> out;
  out.swap(impl_->pending_copies);
  return out;
}

std::span<const int32_t> KvCacheManager::block_table(uint64_t seq) const {
  const Sequence* s = impl_->find(seq);
  return s == nullptr ? std::span<const int32_t>() : std::span<const int32_t>(s->blocks);
}

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
  return st;
}

Status KvCacheManager::check_consistency() const {
  const BlockPool& pool = impl_->pool;
  const int32_t n = pool.num_blocks();
  std::vector<int32_t> refs(static_cast<size_t>(n), 0);
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
  }
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
