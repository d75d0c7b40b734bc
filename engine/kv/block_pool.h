#pragma once
// The physical side of the KV-cache bookkeeping (DESIGN.md "KV cache"): a fixed pool of blocks with
// refcounts, a free list, and the prefix cache (chained hash -> block) whose unreferenced entries wait
// in a least-recently-freed list until the pool needs them. Knows nothing about sequences; the
// KvCacheManager maps sequences onto it.
//
// Every block is in exactly one state:
//   free    refcount 0, no cache entry, on the free list;
//   used    refcount > 0 (may or may not hold a cache entry);
//   cached  refcount 0, holds a cache entry, on the evictable list (oldest first).
// Every operation is O(1) or O(tokens of one block); only check() walks the pool.
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/kv/block_hash.h"
#include "engine/status.h"

namespace pagoda::engine {

// Names a prefix (all tokens up to and including one full block). `hash` is the chained hash used as
// the map key; `id` is the prefix's identity: unique per cache entry ever made and never reused, so
// verifying a hit against its parent's id (not its parent's hash) cannot alias two prefixes even when
// their hashes collide at some earlier level.
struct PrefixKey {
  uint64_t hash = kRootBlockHash;
  uint64_t id = 0;  // 0: the empty prefix (parent of a first block)
};

class BlockPool {
 public:
  BlockPool(int32_t num_blocks, int32_t block_size, BlockHasher hasher = chain_block_hash);

  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t block_size() const { return block_size_; }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t num_cached() const { return num_cached_; }
  int32_t num_used() const { return num_used_; }
  // Blocks allocate() can return now: free ones first, then evictable cached ones.
  int32_t num_available() const { return num_free() + num_cached_; }

  // Takes a block with refcount 1: from the free list, else evicts the least recently freed cached
  // block (dropping its cache entry). Precondition: num_available() > 0.
  int32_t allocate();
  // One more reference. A cached block leaves the evictable list (a prefix hit revives it).
  void ref(int32_t block);
  // One reference less. At zero a block with a cache entry becomes evictable (newest end of the
  // list), any other goes back to the free list.
  void unref(int32_t block);
  int32_t refcount(int32_t block) const { return blocks_[block].refcount; }
  bool is_cached(int32_t block) const { return blocks_[block].prefix_id != 0; }

  // The cached block holding exactly `tokens` right after the prefix `parent`, or -1. On a hit
  // `*key` names the prefix through that block. The map key only finds a candidate: the stored
  // parent id and token ids must match too.
  int32_t find(const PrefixKey& parent, std::span<const int32_t> tokens, PrefixKey* key) const;

  // `block` (referenced, now full) holds `tokens` right after `parent`. Makes it a cache entry unless
  // an equal prefix is already cached in another block (that one stays; no duplicates in the map) or
  // a different prefix in use owns the hash (a collision: the block stays uncached; an unused one
  // loses its entry instead). Returns the key of the prefix through this block, for the next block's
  // `parent`.
  PrefixKey insert(int32_t block, const PrefixKey& parent, std::span<const int32_t> tokens);

  // Drops the block's cache entry (its contents are about to be overwritten). No-op if it has none.
  void uncache(int32_t block);

  // The pool's own invariants (states partition the pool, list/map/counters agree). Does not know
  // the references, so refcounts are checked by the caller.
  Status check() const;

 private:
  struct Block {
    int32_t refcount = 0;
    uint64_t hash = 0;         // chained hash, valid when prefix_id != 0
    uint64_t prefix_id = 0;    // non-zero: holds a cache entry (see PrefixKey)
    uint64_t parent_id = 0;    // PrefixKey::id of the parent prefix, for hit verification
    int32_t prev = -1;         // evictable list links (intrusive: no allocation on free)
    int32_t next = -1;
    bool on_free_list = false; // for check() and to catch double frees
  };

  std::span<const int32_t> stored_tokens(int32_t block) const;
  bool matches(int32_t block, const PrefixKey& parent, std::span<const int32_t> tokens) const;
  void drop_entry(int32_t block);  // forgets the cache entry; list membership is the caller's job
  void lru_push_back(int32_t block);
  void lru_remove(int32_t block);

  int32_t block_size_;
  BlockHasher hasher_;
  std::vector<Block> blocks_;
  std::vector<int32_t> tokens_;     // [num_blocks][block_size]: token ids of cached blocks, for verifying hits
  std::vector<int32_t> free_;       // stack; LIFO reuse keeps recently touched memory warm
  int32_t lru_head_ = -1;           // least recently freed cached block (evicted first)
  int32_t lru_tail_ = -1;
  int32_t num_cached_ = 0;
  int32_t num_used_ = 0;
  uint64_t next_prefix_id_ = 1;
  std::unordered_map<uint64_t, int32_t> cache_;  // chained hash -> block
};

}  // namespace pagoda::engine
