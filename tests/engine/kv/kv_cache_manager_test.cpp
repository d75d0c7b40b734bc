// KvCacheManager: allocation and growth, all-or-nothing failure, prefix-cache reuse and eviction order,
// fork with copy-on-write, prefix caching switched off, and the sliding-window layers' pool.
#include "engine/kv/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace pagoda::engine {
namespace {

#define EXPECT_CONSISTENT(kv)                        \
  do {                                               \
    const Status st_ = (kv).check_consistency();     \
    EXPECT_TRUE(st_.ok()) << st_.message();          \
  } while (0)

using Table = std::vector<int32_t>;
Table table(const KvCacheManager& kv, uint64_t seq) {
  auto t = kv.block_table(seq);
  return Table(t.begin(), t.end());
}
Table window_table(const KvCacheManager& kv, uint64_t seq) {
  auto t = kv.window_block_table(seq);
  return Table(t.begin(), t.end());
}

std::vector<int32_t> iota(int32_t n, int32_t first) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

// Prefill the whole prompt in one step, the way the scheduler does without chunking.
void prefill(KvCacheManager& kv, uint64_t seq, const std::vector<int32_t>& prompt) {
  kv.start_sequence(seq, prompt);  // a cached prefix counts as committed: allocation writes after it
  ASSERT_TRUE(kv.allocate_slots(seq, static_cast<int32_t>(prompt.size())));
  kv.commit_tokens(seq, prompt);
}

TEST(KvCacheManager, GrowsAcrossBlockBoundaries) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4});
  EXPECT_EQ(kv.block_size(), 4);
  EXPECT_EQ(kv.start_sequence(1, iota(6, 0)), 0);  // nothing cached yet
  EXPECT_TRUE(kv.has_sequence(1));
  EXPECT_TRUE(kv.block_table(1).empty());
  ASSERT_TRUE(kv.allocate_slots(1, 6));
  EXPECT_EQ(table(kv, 1), (Table{0, 1}));
  ASSERT_TRUE(kv.allocate_slots(1, 8));  // still inside block 1
  EXPECT_EQ(table(kv, 1), (Table{0, 1}));
  ASSERT_TRUE(kv.allocate_slots(1, 9));  // crosses into a third block
  EXPECT_EQ(table(kv, 1), (Table{0, 1, 2}));
  ASSERT_TRUE(kv.allocate_slots(1, 17));  // several at once
  EXPECT_EQ(kv.block_table(1).size(), 5u);
  EXPECT_EQ(kv.num_available_blocks(), 3);
  EXPECT_EQ(kv.stats().used_blocks, 5);
  EXPECT_TRUE(kv.take_pending_copies().empty());
  EXPECT_CONSISTENT(kv);
  kv.free(1);
  EXPECT_FALSE(kv.has_sequence(1));
  EXPECT_EQ(kv.num_available_blocks(), 8);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, OutOfBlocksReturnsFalseAndChangesNothing) {
  KvCacheManager kv({.num_blocks = 4, .block_size = 4});
  kv.start_sequence(1, iota(12, 0));
  ASSERT_TRUE(kv.allocate_slots(1, 12));
  kv.start_sequence(2, iota(8, 100));
  EXPECT_FALSE(kv.allocate_slots(2, 8));  // needs 2, 1 left
  EXPECT_TRUE(kv.block_table(2).empty());
  EXPECT_EQ(kv.num_available_blocks(), 1);
  EXPECT_EQ(kv.stats().used_blocks, 3);
  EXPECT_CONSISTENT(kv);
  EXPECT_TRUE(kv.allocate_slots(2, 4));  // what fits still works
  EXPECT_FALSE(kv.allocate_slots(99, 1));  // unknown sequence
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, CopyOnWriteIsAllOrNothingToo) {
  KvCacheManager kv({.num_blocks = 3, .block_size = 4});
  prefill(kv, 1, iota(6, 0));  // blocks 0, 1 (1 is partial)
  kv.fork(1, 2);
  kv.start_sequence(3, iota(1, 50));
  ASSERT_TRUE(kv.allocate_slots(3, 1));  // takes the last block
  // The child writes into the shared partial block: needs a copy, and the pool is empty.
  EXPECT_FALSE(kv.allocate_slots(2, 7));
  EXPECT_EQ(table(kv, 2), table(kv, 1));
  EXPECT_TRUE(kv.take_pending_copies().empty());
  EXPECT_EQ(kv.stats().used_blocks, 3);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, SamePromptSharesBlocks) {
  KvCacheManager kv({.num_blocks = 16, .block_size = 4});
  const std::vector<int32_t> prompt = iota(13, 0);  // 3 full blocks + 1 token
  prefill(kv, 1, prompt);
  const Table t1 = table(kv, 1);
  ASSERT_EQ(t1.size(), 4u);

  EXPECT_EQ(kv.start_sequence(2, prompt), 12);
  EXPECT_EQ(table(kv, 2), (Table{t1[0], t1[1], t1[2]}));
  ASSERT_TRUE(kv.allocate_slots(2, 13));
  const Table t2 = table(kv, 2);
  ASSERT_EQ(t2.size(), 4u);
  EXPECT_NE(t2[3], t1[3]);  // the partial last block is computed again, privately
  EXPECT_TRUE(kv.take_pending_copies().empty());
  EXPECT_EQ(kv.stats().prefix_queries, 6);
  EXPECT_EQ(kv.stats().prefix_hits, 3);
  EXPECT_EQ(kv.stats().used_blocks, 5);
  EXPECT_CONSISTENT(kv);

  // A different second block: only the first one is reused.
  std::vector<int32_t> other = prompt;
  other[5] = 999;
  EXPECT_EQ(kv.start_sequence(3, other), 4);
  EXPECT_EQ(table(kv, 3), (Table{t1[0]}));

  // The prompt is exactly the three cached blocks: the last one is left to compute (logits).
  EXPECT_EQ(kv.start_sequence(4, iota(12, 0)), 8);
  EXPECT_EQ(table(kv, 4), (Table{t1[0], t1[1]}));
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, FreedPrefixStaysCachedUntilReused) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4});
  const std::vector<int32_t> prompt = iota(10, 0);  // 2 full blocks + 2 tokens
  prefill(kv, 1, prompt);
  const Table t1 = table(kv, 1);
  kv.free(1);
  EXPECT_EQ(kv.stats().cached_blocks, 2);  // the partial block went back to the free list
  EXPECT_EQ(kv.stats().used_blocks, 0);
  EXPECT_EQ(kv.num_available_blocks(), 8);
  EXPECT_CONSISTENT(kv);

  EXPECT_EQ(kv.start_sequence(2, prompt), 8);
  EXPECT_EQ(table(kv, 2), (Table{t1[0], t1[1]}));
  EXPECT_EQ(kv.stats().cached_blocks, 0);  // revived: no longer evictable
  EXPECT_EQ(kv.stats().used_blocks, 2);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, EvictsLeastRecentlyFreedCachedBlocksFirst) {
  KvCacheManager kv({.num_blocks = 6, .block_size = 4});
  const std::vector<int32_t> a = iota(8, 0), b = iota(8, 100);
  prefill(kv, 1, a);  // blocks 0, 1
  prefill(kv, 2, b);  // blocks 2, 3
  kv.free(1);
  kv.free(2);
  EXPECT_EQ(kv.stats().cached_blocks, 4);
  kv.start_sequence(3, iota(12, 500));
  ASSERT_TRUE(kv.allocate_slots(3, 12));
  // Free blocks first (4, 5), then the oldest cached one: a's tail, freed before a's head.
  EXPECT_EQ(table(kv, 3), (Table{4, 5, 1}));
  EXPECT_EQ(kv.stats().cached_blocks, 3);
  EXPECT_CONSISTENT(kv);

  std::vector<int32_t> a_longer = a, b_longer = b;
  a_longer.push_back(7);
  b_longer.push_back(7);
  EXPECT_EQ(kv.start_sequence(4, a_longer), 4);  // a's second block was evicted
  EXPECT_EQ(kv.start_sequence(5, b_longer), 8);  // b is intact
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, DifferentTokensNeverHit) {
  constexpr int32_t kBlock = 4, kBlocks = 5;
  KvCacheManager kv({.num_blocks = 64, .block_size = kBlock});
  const std::vector<int32_t> base = iota(kBlock * kBlocks + 1, 1);
  prefill(kv, 1, base);
  uint64_t next = 2;
  // Change one token anywhere: exactly the blocks before it are reused, never the one holding it.
  for (int32_t pos = 0; pos < kBlock * kBlocks; ++pos) {
    for (int32_t delta : {1, -1, 1 << 20}) {
      std::vector<int32_t> p = base;
      p[pos] += delta;
      const uint64_t seq = next++;
      EXPECT_EQ(kv.start_sequence(seq, p), pos / kBlock * kBlock) << "pos " << pos << " delta " << delta;
      kv.free(seq);
    }
  }
  // Same tokens at a different offset (shifted by one) share no block.
  std::vector<int32_t> shifted(base.begin() + 1, base.end());
  shifted.push_back(0);
  EXPECT_EQ(kv.start_sequence(next++, shifted), 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, DuplicatePrefixComputedTwiceIsCachedOnce) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4});
  const std::vector<int32_t> prompt = iota(9, 0);
  // Both start before either commits, so neither hits; both compute the same blocks.
  EXPECT_EQ(kv.start_sequence(1, prompt), 0);
  EXPECT_EQ(kv.start_sequence(2, prompt), 0);
  ASSERT_TRUE(kv.allocate_slots(1, 9));
  ASSERT_TRUE(kv.allocate_slots(2, 9));
  kv.commit_tokens(1, prompt);
  kv.commit_tokens(2, prompt);
  const Table t1 = table(kv, 1);
  kv.free(2);
  kv.free(1);
  EXPECT_EQ(kv.stats().cached_blocks, 2);  // only sequence 1's copies became entries
  EXPECT_CONSISTENT(kv);
  EXPECT_EQ(kv.start_sequence(3, prompt), 8);
  EXPECT_EQ(table(kv, 3), (Table{t1[0], t1[1]}));
}

TEST(KvCacheManager, ForkSharesAndCopiesOnWrite) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4});
  prefill(kv, 1, iota(6, 0));  // block 0 full, block 1 holds 2 tokens
  kv.fork(1, 2);
  const Table parent = table(kv, 1);
  EXPECT_EQ(table(kv, 2), parent);
  EXPECT_EQ(kv.stats().used_blocks, 2);  // shared, not duplicated
  EXPECT_CONSISTENT(kv);

  // The child writes token 6 into the shared partial block: it gets a private copy.
  ASSERT_TRUE(kv.allocate_slots(2, 7));
  const Table child = table(kv, 2);
  EXPECT_EQ(child[0], parent[0]);  // the full block stays shared
  EXPECT_NE(child[1], parent[1]);
  EXPECT_EQ(kv.take_pending_copies(), (std::vector<std::pair<int32_t, int32_t>>{{parent[1], child[1]}}));
  EXPECT_TRUE(kv.take_pending_copies().empty());  // taken once
  EXPECT_CONSISTENT(kv);

  // The parent is now the only holder of its partial block: it writes in place.
  ASSERT_TRUE(kv.allocate_slots(1, 7));
  EXPECT_EQ(table(kv, 1), parent);
  EXPECT_TRUE(kv.take_pending_copies().empty());

  // Growing into a fresh block never copies.
  ASSERT_TRUE(kv.allocate_slots(2, 9));
  EXPECT_TRUE(kv.take_pending_copies().empty());
  EXPECT_CONSISTENT(kv);
  kv.free(1);
  kv.free(2);
  EXPECT_EQ(kv.stats().used_blocks, 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, ParentWritingFirstCopiesAndChildKeepsTheOriginal) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4});
  prefill(kv, 1, iota(5, 0));
  kv.fork(1, 2);
  kv.fork(1, 3);  // three holders of the partial block
  const Table orig = table(kv, 1);
  ASSERT_TRUE(kv.allocate_slots(1, 6));
  EXPECT_NE(table(kv, 1)[1], orig[1]);
  ASSERT_TRUE(kv.allocate_slots(2, 6));  // still shared with 3: copies too
  EXPECT_NE(table(kv, 2)[1], orig[1]);
  ASSERT_TRUE(kv.allocate_slots(3, 6));  // last holder: in place
  EXPECT_EQ(table(kv, 3), orig);
  EXPECT_EQ(kv.take_pending_copies().size(), 2u);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, ForkedChildCommitsIntoTheCache) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4});
  std::vector<int32_t> tokens = iota(6, 0);
  prefill(kv, 1, tokens);
  kv.fork(1, 2);
  tokens.push_back(60);
  tokens.push_back(61);
  ASSERT_TRUE(kv.allocate_slots(2, 8));
  kv.commit_tokens(2, tokens);  // the child's copy of block 1 is now full and becomes an entry
  kv.free(1);
  kv.free(2);
  tokens.push_back(62);
  EXPECT_EQ(kv.start_sequence(3, tokens), 8);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, RewritingACommittedBlockDropsItsEntry) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4});
  prefill(kv, 1, iota(8, 0));
  // Recompute from position 4 (e.g. a rolled-back draft): block 1 will hold other contents.
  kv.truncate(1, 4);
  ASSERT_TRUE(kv.allocate_slots(1, 8));
  // Until the new contents are committed, nobody may reuse the old ones: the write is under way.
  EXPECT_EQ(kv.start_sequence(9, iota(9, 0)), 4);
  kv.free(9);
  std::vector<int32_t> rewritten = iota(8, 0);
  rewritten[6] = 77;
  kv.commit_tokens(1, rewritten);
  kv.free(1);
  EXPECT_EQ(kv.start_sequence(2, iota(9, 0)), 4);  // the old block 1 is no longer cached
  rewritten.push_back(1);
  EXPECT_EQ(kv.start_sequence(3, rewritten), 8);
  EXPECT_CONSISTENT(kv);
}

// Speculation's rollback: drafted tokens 9..11 were committed, then rejected from 9 on.
TEST(KvCacheManager, TruncateRollsBackSharedAndOwnBlocks) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4});
  std::vector<int32_t> tokens = iota(12, 0);
  prefill(kv, 1, tokens);  // blocks 0, 1, 2 full and cached
  kv.fork(1, 2);           // all three shared with the child
  kv.truncate(2, 9);       // the child keeps 9 tokens: block 2 (positions 8..11) is to be rewritten
  const Table before = table(kv, 2);
  kv.truncate(2, 20);  // more than it holds: nothing changes
  EXPECT_EQ(table(kv, 2), before);
  EXPECT_TRUE(kv.take_pending_copies().empty()) << "truncate itself copies nothing";
  ASSERT_TRUE(kv.allocate_slots(2, 12));
  const Table parent = table(kv, 1), child = table(kv, 2);
  EXPECT_EQ(child[1], parent[1]);  // untouched blocks stay shared
  EXPECT_NE(child[2], parent[2]);  // the shared block being rewritten is copied, not overwritten
  EXPECT_EQ(kv.take_pending_copies(), (std::vector<std::pair<int32_t, int32_t>>{{parent[2], child[2]}}));
  std::vector<int32_t> other = iota(12, 0);
  other[10] = 99;
  kv.commit_tokens(2, other);
  EXPECT_CONSISTENT(kv);
  kv.free(1);
  kv.free(2);
  EXPECT_EQ(kv.start_sequence(3, iota(13, 0)), 12) << "the parent's blocks are still cached";
  other.push_back(1);
  EXPECT_EQ(kv.start_sequence(4, other), 12) << "and so are the child's rewritten ones";
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, DisabledPrefixCachingNeverHits) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4, .enable_prefix_caching = false});
  const std::vector<int32_t> prompt = iota(9, 0);
  prefill(kv, 1, prompt);
  EXPECT_EQ(kv.start_sequence(2, prompt), 0);
  kv.free(1);
  EXPECT_EQ(kv.stats().cached_blocks, 0);
  EXPECT_EQ(kv.num_available_blocks(), 8);
  EXPECT_EQ(kv.start_sequence(3, prompt), 0);
  EXPECT_EQ(kv.stats().prefix_queries, 0);
  EXPECT_EQ(kv.stats().prefix_hits, 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManager, UnknownAndReusedIdsAreHarmless) {
  KvCacheManager kv({.num_blocks = 4, .block_size = 4});
  kv.free(42);
  kv.fork(42, 43);
  EXPECT_FALSE(kv.has_sequence(43));
  kv.commit_tokens(42, iota(3, 0));
  EXPECT_TRUE(kv.block_table(42).empty());
  prefill(kv, 1, iota(5, 0));
  prefill(kv, 2, iota(3, 0));
  kv.fork(1, 2);  // replaces 2, releasing its old block
  EXPECT_EQ(table(kv, 2), table(kv, 1));
  EXPECT_EQ(kv.stats().used_blocks, 2);
  kv.start_sequence(1, iota(2, 0));  // restarting an id releases its old table
  EXPECT_TRUE(kv.block_table(1).empty());
  EXPECT_CONSISTENT(kv);
}

// Window pool: a token at position p reads keys p - 5 .. p (window 6), so with 4-token blocks a sequence
// that committed c tokens keeps window blocks (c - 5) / 4 .. (c - 1) / 4 (2 at most), while its main
// table keeps them all.
TEST(KvCacheManagerWindow, ReleasesBlocksBehindTheWindow) {
  KvCacheManager kv({.num_blocks = 16, .block_size = 4, .window = 6, .num_window_blocks = 4});
  EXPECT_EQ(kv.window(), 6);
  std::vector<int32_t> tokens;
  kv.start_sequence(1, {});
  for (int32_t c = 1; c <= 40; ++c) {  // one decode token per step
    ASSERT_TRUE(kv.allocate_slots(1, c)) << c;
    tokens.push_back(100 + c);
    kv.commit_tokens(1, tokens);
    const Table w = window_table(kv, 1);
    ASSERT_EQ(w.size(), table(kv, 1).size());
    for (int32_t i = 0; i < static_cast<int32_t>(w.size()); ++i) {
      const bool held = i >= std::max(0, c + 1 - 6) / 4;  // the next token's window starts there
      EXPECT_EQ(w[i] >= 0, held) << "after " << c << " tokens, window block " << i;
    }
    EXPECT_LE(kv.stats().used_window_blocks, 2);  // between steps: (c - 5) / 4 .. (c - 1) / 4
    EXPECT_CONSISTENT(kv);
  }
  EXPECT_EQ(table(kv, 1).size(), 10u);
  EXPECT_EQ(kv.stats().num_window_blocks, 4);
  kv.free(1);
  EXPECT_EQ(kv.stats().used_window_blocks, 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManagerWindow, AllocationIsAllOrNothingAcrossBothPools) {
  KvCacheManager kv({.num_blocks = 16, .block_size = 4, .window = 6, .num_window_blocks = 3});
  kv.start_sequence(1, {});
  // 16 tokens at once need 4 window blocks: the window pool has 3, so nothing is taken from either.
  EXPECT_FALSE(kv.allocate_slots(1, 16));
  EXPECT_TRUE(kv.block_table(1).empty());
  EXPECT_EQ(kv.num_available_blocks(), 16);
  EXPECT_EQ(kv.stats().used_window_blocks, 0);
  ASSERT_TRUE(kv.allocate_slots(1, 12));
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManagerWindow, PrefixHitNeedsTheLastWindowCached) {
  KvCacheManager kv({.num_blocks = 32, .block_size = 4, .window = 6, .num_window_blocks = 8});
  const std::vector<int32_t> prompt = iota(21, 0);
  prefill(kv, 1, prompt);  // window blocks 0..3 leave with the commit, cached; 4 and 5 stay
  EXPECT_EQ(window_table(kv, 1), (Table{-1, -1, -1, -1, window_table(kv, 1)[4], window_table(kv, 1)[5]}));
  kv.free(1);
  EXPECT_EQ(kv.stats().cached_window_blocks, 5);  // the five full ones
  // 20 tokens hit: the next token (position 20) reads keys 15..20, so window blocks 3 and 4 must be cached.
  EXPECT_EQ(kv.peek_cached_prefix(prompt), 20);
  EXPECT_EQ(kv.start_sequence(2, prompt), 20);
  const Table w = window_table(kv, 2);
  ASSERT_EQ(w.size(), 5u);
  EXPECT_EQ(w[0], -1);
  EXPECT_EQ(w[2], -1);
  EXPECT_GE(w[3], 0);
  EXPECT_GE(w[4], 0);
  EXPECT_CONSISTENT(kv);
  kv.free(2);

  // A sequence still prefilling (nothing committed, so nothing released) takes every window block: the
  // free ones, then the cached ones, oldest first. The main pool still holds the whole prompt, but
  // without its last window nothing can be reused.
  kv.start_sequence(3, {});
  for (int32_t c = 4; kv.stats().cached_window_blocks > 0; c += 4) {
    ASSERT_TRUE(kv.allocate_slots(3, c)) << c;
    ASSERT_LT(c, 200);
  }
  kv.free(3);
  EXPECT_EQ(kv.peek_cached_prefix(prompt), 0);
  EXPECT_EQ(kv.start_sequence(4, prompt), 0);
  EXPECT_GT(kv.stats().cached_blocks, 4);  // the main pool's entries are still there
  EXPECT_CONSISTENT(kv);
}

// Window entries are keyed by the main pool's prefix ids. When the main pool evicts a prefix and it is
// computed again, its ids are new: the window pool's old entries for it must give way, or the prefix
// could never hit past its first window again.
TEST(KvCacheManagerWindow, PrefixComputedAgainIsCachedAgain) {
  KvCacheManager kv({.num_blocks = 7, .block_size = 4, .window = 8, .num_window_blocks = 64});
  const std::vector<int32_t> prompt = iota(21, 0), other = iota(28, 500);
  prefill(kv, 1, prompt);
  kv.free(1);
  EXPECT_EQ(kv.start_sequence(2, prompt), 20);
  kv.free(2);
  prefill(kv, 3, other);  // evicts every main block of the prompt
  kv.free(3);
  EXPECT_EQ(kv.peek_cached_prefix(prompt), 0);
  prefill(kv, 4, prompt);  // computed again: new main ids
  kv.free(4);
  EXPECT_EQ(kv.start_sequence(5, prompt), 20);
  EXPECT_CONSISTENT(kv);
}

TEST(KvCacheManagerWindow, ForkCopiesTheSharedWindowBlockOnWrite) {
  KvCacheManager kv({.num_blocks = 8, .block_size = 4, .window = 6, .num_window_blocks = 6});
  prefill(kv, 1, iota(6, 0));  // block 1 partial, in both pools
  kv.fork(1, 2);
  const Table parent = window_table(kv, 1);
  EXPECT_EQ(window_table(kv, 2), parent);
  ASSERT_TRUE(kv.allocate_slots(2, 7));
  const Table child = window_table(kv, 2);
  EXPECT_EQ(child[0], parent[0]);
  EXPECT_NE(child[1], parent[1]);
  EXPECT_EQ(kv.take_pending_window_copies(), (std::vector<std::pair<int32_t, int32_t>>{{parent[1], child[1]}}));
  EXPECT_EQ(kv.take_pending_copies().size(), 1u);  // the main pool's copy of the same block
  EXPECT_CONSISTENT(kv);
  kv.free(1);
  kv.free(2);
  EXPECT_EQ(kv.stats().used_window_blocks, 0);
  EXPECT_CONSISTENT(kv);
}

}  // namespace
}  // namespace pagoda::engine
