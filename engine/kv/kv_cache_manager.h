#pragma once
// The logical KV-cache manager (DESIGN.md "KV cache"): which fixed-size blocks of the backend's pool
// hold each sequence's keys and values. Backend-independent: the backend owns the memory, this class
// owns the bookkeeping. The scheduler talks to it through a few verbs (vLLM v1's kv_cache_manager
// shape): start a sequence (reusing cached prefix blocks), allocate slots for the next tokens, commit
// computed tokens (full blocks become prefix-cache entries), truncate (roll back), fork (n > 1,
// copy-on-write), free.
//
// Blocks: a pool with refcounts. A full block whose tokens are committed is keyed by a hash chained over
// (parent block's hash, its token ids); when its last reference goes it stays findable in the prefix
// cache until the pool needs it (least recently freed evicted first). A hit is verified against the
// stored token ids, so hash collisions cannot alias two prefixes.
//
// Sliding-window layers (gemma2/3) may keep their K/V in a second pool, the window pool (vLLM's
// SlidingWindowManager): a sequence then has a second table, its window table, of the same length,
// whose blocks only cover the keys its next tokens can still see. A token at position p reads keys
// p - window + 1 .. p, so once tokens up to c are committed every window block wholly before
// c + 1 - window is released (-1 in the table; a cached one waits in the window pool's prefix cache).
// A prefix hit then needs the window blocks of the hit's last `window` tokens cached too.
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/status.h"

namespace pagoda::engine {

struct KvCacheOptions {
  int32_t num_blocks = 0;
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
  // > 0: the sliding window (tokens) of the layers whose K/V live in the window pool, of
  // num_window_blocks blocks of block_size. 0: no window pool (every layer in the main one).
  int32_t window = 0;
  int32_t num_window_blocks = 0;
};

struct KvCacheStats {
  int32_t num_blocks = 0;
  int32_t used_blocks = 0;    // referenced by at least one sequence
  int32_t cached_blocks = 0;  // unreferenced but holding a prefix-cache entry (evictable)
  int64_t prefix_queries = 0; // full prompt blocks eligible for a hit (all but one covering the whole prompt)
  int64_t prefix_hits = 0;    // of which reused from the cache (the leading run of hits)
  // The window pool's, where there is one (0 otherwise).
  int32_t num_window_blocks = 0;
  int32_t used_window_blocks = 0;
  int32_t cached_window_blocks = 0;
};

class KvCacheManager {
 public:
  explicit KvCacheManager(const KvCacheOptions& options);
  ~KvCacheManager();
  KvCacheManager(const KvCacheManager&) = delete;
  KvCacheManager& operator=(const KvCacheManager&) = delete;

  // Registers a new sequence and attaches the longest cached prefix of `prompt` made of full blocks,
  // leaving at least one prompt token to compute (its logits are needed). Returns the number of prompt
  // tokens those blocks already hold (a multiple of block_size; 0 without prefix caching); they count
  // as committed. A sequence id already in use is freed first.
  int32_t start_sequence(uint64_t seq, std::span<const int32_t> prompt);

  // The number of prompt tokens start_sequence would find cached now, without attaching anything or
  // counting a query: the scheduler sizes waiting prompts with it before deciding whom to admit.
  int32_t peek_cached_prefix(std::span<const int32_t> prompt) const;

  // Grows the sequence's block table to cover `num_tokens` tokens in total, and makes the blocks that
  // the tokens after its committed ones land in writable: a shared block is copied (copy-on-write,
  // reported by take_pending_copies), a full block of ours alone leaves the prefix cache (its contents
  // are about to change). False, with nothing changed, when the pool cannot supply the blocks.
  bool allocate_slots(uint64_t seq, int32_t num_tokens);

  // With a window pool the same holds for the window table, from the first block the new tokens'
  // windows reach back to; all-or-nothing over both pools.
  //
  // Rolls the sequence back to its first `num_tokens` tokens (rejected speculative tokens, an undone
  // step): later positions stop counting as committed and their blocks leave its prefix chain. The
  // blocks stay with the sequence; the next allocate_slots rewrites from `num_tokens` (copying or
  // uncaching as above). Nothing changes when no more than `num_tokens` are committed. With a window
  // pool, keys released from the window table are gone, so the window of position `num_tokens` must
  // not reach back into released blocks (a rollback of speculative tokens never does: they were not
  // committed); check_consistency reports a deeper one.
  void truncate(uint64_t seq, int32_t num_tokens);

  // The sequence's KV now holds `tokens` (all its token ids, in order) for positions [0, tokens.size()).
  // Blocks that became full are added to the prefix cache (both pools' blocks). Window blocks now wholly
  // out of reach of the next token's window are released. Incremental: positions committed before are
  // taken as unchanged, only the new tail is read (fewer tokens than before is a truncate).
  void commit_tokens(uint64_t seq, std::span<const int32_t> tokens);

  // n > 1: `child` starts with the parent's blocks, shared (refcount + 1), and its committed tokens.
  void fork(uint64_t parent, uint64_t child);

  // Releases the sequence's blocks (refcount - 1). Unknown ids are ignored.
  void free(uint64_t seq);

  // Block copies (src, dst) the backend must perform before the next step (copy-on-write), in the
  // main pool and in the window pool.
  std::vector<std::pair<int32_t, int32_t>> take_pending_copies();
  std::vector<std::pair<int32_t, int32_t>> take_pending_window_copies();

  std::span<const int32_t> block_table(uint64_t seq) const;
  // The window pool's table (-1 where released or never needed); empty without a window pool.
  std::span<const int32_t> window_block_table(uint64_t seq) const;
  // The window pool's window, 0 when there is none.
  int32_t window() const;
  bool has_sequence(uint64_t seq) const;
  int32_t block_size() const;
  // Blocks an allocation could use now: free ones plus evictable cached ones (main pool).
  int32_t num_available_blocks() const;
  KvCacheStats stats() const;

  // Test/debug: every invariant (refcount == number of table references, free + used + cached ==
  // num_blocks, cache map <-> block hashes). An error names the first broken one.
  Status check_consistency() const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace pagoda::engine
