// BlockPool: refcount states, the evictable LRU, and prefix-cache verification under forced hash
// collisions (the hasher is injected here; the manager always uses the real one).
#include "engine/kv/block_pool.h"

#include <gtest/gtest.h>

#include <vector>

namespace pagoda::engine {
namespace {

// Every block collides with every other.
uint64_t constant_hasher(uint64_t, std::span<const int32_t>) { return 42; }

// Ignores the parent: equal blocks after different prefixes collide.
uint64_t tokens_only_hasher(uint64_t, std::span<const int32_t> tokens) {
  return chain_block_hash(kRootBlockHash, tokens);
}

#define EXPECT_POOL_OK(pool)                      \
  do {                                            \
    const Status st_ = (pool).check();            \
    EXPECT_TRUE(st_.ok()) << st_.message();       \
  } while (0)

TEST(KvCacheBlockPool, StatesPartitionThePool) {
  BlockPool pool(4, 2);
  EXPECT_EQ(pool.num_available(), 4);
  const int32_t a = pool.allocate(), b = pool.allocate();
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  const std::vector<int32_t> t = {7, 8};
  pool.insert(a, PrefixKey{}, t);
  EXPECT_EQ(pool.num_used(), 2);
  pool.unref(a);  // cached: evictable
  pool.unref(b);  // uncached: free
  EXPECT_EQ(pool.num_cached(), 1);
  EXPECT_EQ(pool.num_free(), 3);
  EXPECT_EQ(pool.num_available(), 4);
  EXPECT_POOL_OK(pool);

  PrefixKey key;
  EXPECT_EQ(pool.find(PrefixKey{}, t, &key), a);
  pool.ref(a);  // a prefix hit revives it
  EXPECT_EQ(pool.num_cached(), 0);
  EXPECT_EQ(pool.num_used(), 1);
  EXPECT_POOL_OK(pool);
  pool.uncache(a);
  pool.unref(a);
  EXPECT_EQ(pool.num_free(), 4);
  EXPECT_POOL_OK(pool);
}

TEST(KvCacheBlockPool, EvictsLeastRecentlyFreedFirst) {
  BlockPool pool(3, 1);
  for (int32_t i = 0; i < 3; ++i) {
    const int32_t b = pool.allocate();
    const std::vector<int32_t> t = {100 + i};
    pool.insert(b, PrefixKey{}, t);
  }
  pool.unref(1);
  pool.unref(0);
  pool.unref(2);
  EXPECT_EQ(pool.num_cached(), 3);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.allocate(), 2);
  EXPECT_EQ(pool.num_cached(), 0);
  PrefixKey key;
  const std::vector<int32_t> t = {101};
  EXPECT_EQ(pool.find(PrefixKey{}, t, &key), -1);  // evicted entries are gone from the map
  EXPECT_POOL_OK(pool);
}

TEST(KvCacheBlockPool, CollidingHashesNeverAlias) {
  BlockPool pool(4, 2, constant_hasher);
  const std::vector<int32_t> x = {1, 2}, y = {3, 4};
  const int32_t a = pool.allocate(), b = pool.allocate();
  const PrefixKey ka = pool.insert(a, PrefixKey{}, x);
  const PrefixKey kb = pool.insert(b, ka, y);  // same hash as a's entry: stays uncached
  EXPECT_TRUE(pool.is_cached(a));
  EXPECT_FALSE(pool.is_cached(b));
  EXPECT_NE(kb.id, ka.id);
  PrefixKey key;
  EXPECT_EQ(pool.find(PrefixKey{}, x, &key), a);
  EXPECT_EQ(pool.find(PrefixKey{}, y, &key), -1);  // same hash, other tokens
  EXPECT_EQ(pool.find(ka, y, &key), -1);
  EXPECT_EQ(pool.find(ka, x, &key), -1);           // same hash and tokens, other parent
  EXPECT_POOL_OK(pool);
}

// An unused entry of another prefix under the same hash gives way to the block just computed (it could
// be a prefix whose parent's identity is gone, never to be found again); one in use does not.
TEST(KvCacheBlockPool, UnusedCollidingEntryGivesWay) {
  BlockPool pool(4, 2, constant_hasher);
  const std::vector<int32_t> x = {1, 2}, y = {3, 4};
  const int32_t a = pool.allocate(), b = pool.allocate();
  pool.insert(a, PrefixKey{}, x);
  pool.unref(a);  // cached, unused
  const PrefixKey kb = pool.insert(b, PrefixKey{}, y);
  EXPECT_TRUE(pool.is_cached(b));
  EXPECT_FALSE(pool.is_cached(a));
  EXPECT_EQ(pool.num_free(), 3);  // a went back to the free list with its entry
  PrefixKey key;
  EXPECT_EQ(pool.find(PrefixKey{}, y, &key), b);
  EXPECT_EQ(key.id, kb.id);
  EXPECT_EQ(pool.find(PrefixKey{}, x, &key), -1);
  EXPECT_POOL_OK(pool);
}

TEST(KvCacheBlockPool, EqualBlocksAfterDifferentPrefixesNeverAlias) {
  BlockPool pool(4, 2, tokens_only_hasher);
  const std::vector<int32_t> p = {1, 2}, q = {5, 6}, tail = {3, 4};
  const int32_t p0 = pool.allocate(), p1 = pool.allocate(), q0 = pool.allocate(), q1 = pool.allocate();
  const PrefixKey kp0 = pool.insert(p0, PrefixKey{}, p);
  const PrefixKey kp1 = pool.insert(p1, kp0, tail);
  const PrefixKey kq0 = pool.insert(q0, PrefixKey{}, q);
  PrefixKey key;
  EXPECT_EQ(pool.find(kp0, tail, &key), p1);
  EXPECT_EQ(key.id, kp1.id);
  // Same hash (the hasher ignores the parent) and same tokens, but q's block 1 is another prefix.
  EXPECT_EQ(pool.find(kq0, tail, &key), -1);
  const PrefixKey kq1 = pool.insert(q1, kq0, tail);
  EXPECT_FALSE(pool.is_cached(q1));
  EXPECT_NE(kq1.id, kp1.id);
  EXPECT_POOL_OK(pool);
}

TEST(KvCacheBlockPool, DuplicatePrefixKeepsTheExistingEntry) {
  BlockPool pool(2, 2);
  const std::vector<int32_t> t = {9, 9};
  const int32_t a = pool.allocate(), b = pool.allocate();
  const PrefixKey ka = pool.insert(a, PrefixKey{}, t);
  const PrefixKey kb = pool.insert(b, PrefixKey{}, t);
  EXPECT_EQ(ka.id, kb.id);  // the chain continues through the existing entry
  EXPECT_TRUE(pool.is_cached(a));
  EXPECT_FALSE(pool.is_cached(b));
  pool.unref(a);
  pool.unref(b);
  EXPECT_EQ(pool.num_cached(), 1);
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_POOL_OK(pool);
}

TEST(KvCacheBlockPool, DifferentTokensHashDifferently) {
  // Not a proof, a smoke test of the mix: neighbouring ids, swapped order and the parent all matter.
  const std::vector<int32_t> a = {1, 2, 3}, b = {1, 2, 4}, c = {2, 1, 3};
  EXPECT_NE(chain_block_hash(kRootBlockHash, a), chain_block_hash(kRootBlockHash, b));
  EXPECT_NE(chain_block_hash(kRootBlockHash, a), chain_block_hash(kRootBlockHash, c));
  EXPECT_NE(chain_block_hash(kRootBlockHash, a), chain_block_hash(kRootBlockHash + 1, a));
}

}  // namespace
}  // namespace pagoda::engine
