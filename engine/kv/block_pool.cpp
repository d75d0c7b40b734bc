// Block pool with refcounts, free list and LRU prefix cache: see block_pool.h.
#include "engine/kv/block_pool.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace pagoda::engine {

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size, BlockHasher hasher)
    : block_size_(block_size), hasher_(hasher) {
  num_blocks = std::max(num_blocks, 0);
  blocks_.resize(static_cast<size_t>(num_blocks));
  tokens_.resize(static_cast<size_t>(num_blocks) * static_cast<size_t>(std::max(block_size, 0)));
  free_.reserve(static_cast<size_t>(num_blocks));
  // Reversed so the stack hands out 0, 1, 2, ... first: deterministic, readable block tables in tests.
  for (int32_t b = num_blocks - 1; b >= 0; --b) {
    free_.push_back(b);
    blocks_[b].on_free_list = true;
  }
}

int32_t BlockPool::allocate() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
    blocks_[b].on_free_list = false;
  } else {
    assert(lru_head_ >= 0 && "allocate() on an exhausted pool");
    b = lru_head_;
    lru_remove(b);
    drop_entry(b);
  }
  blocks_[b].refcount = 1;
  ++num_used_;
  return b;
}

void BlockPool::ref(int32_t block) {
  Block& blk = blocks_[block];
  if (blk.refcount == 0) {
    // Only cached blocks are referenced from refcount 0 (prefix hits); free ones go through allocate().
    assert(blk.prefix_id != 0 && !blk.on_free_list);
    lru_remove(block);
    ++num_used_;
  }
  ++blk.refcount;
}

void BlockPool::unref(int32_t block) {
  Block& blk = blocks_[block];
  assert(blk.refcount > 0);
  if (--blk.refcount > 0) return;
  --num_used_;
  if (blk.prefix_id != 0) {
    lru_push_back(block);
  } else {
    free_.push_back(block);
    blk.on_free_list = true;
  }
}

std::span<const int32_t> BlockPool::stored_tokens(int32_t block) const {
  return {tokens_.data() + static_cast<size_t>(block) * static_cast<size_t>(block_size_),
          static_cast<size_t>(block_size_)};
}

bool BlockPool::matches(int32_t block, const PrefixKey& parent, std::span<const int32_t> tokens) const {
  const Block& blk = blocks_[block];
  if (blk.prefix_id == 0 || blk.parent_id != parent.id) return false;
  std::span<const int32_t> stored = stored_tokens(block);
  return tokens.size() == stored.size() && std::equal(tokens.begin(), tokens.end(), stored.begin());
}

int32_t BlockPool::find(const PrefixKey& parent, std::span<const int32_t> tokens, PrefixKey* key) const {
  if (static_cast<int32_t>(tokens.size()) != block_size_) return -1;  // only full blocks are cached
  const uint64_t h = hasher_(parent.hash, tokens);
  auto it = cache_.find(h);
  if (it == cache_.end() || !matches(it->second, parent, tokens)) return -1;
  *key = PrefixKey{h, blocks_[it->second].prefix_id};
  return it->second;
}

PrefixKey BlockPool::insert(int32_t block, const PrefixKey& parent, std::span<const int32_t> tokens) {
  assert(static_cast<int32_t>(tokens.size()) == block_size_ && blocks_[block].refcount > 0);
  const uint64_t h = hasher_(parent.hash, tokens);
  Block& blk = blocks_[block];
  if (blk.prefix_id != 0) {
    if (blk.hash == h && matches(block, parent, tokens)) return PrefixKey{h, blk.prefix_id};
    uncache(block);  // it claimed other contents; the caller says they changed
  }
  if (auto it = cache_.find(h); it != cache_.end()) {
    const int32_t owner = it->second;
    // Same prefix already cached elsewhere: reuse its identity so the chain continues through it.
    if (matches(owner, parent, tokens)) return PrefixKey{h, blocks_[owner].prefix_id};
    // A collision with an entry in use: the block stays uncached, and its prefix gets an identity no
    // entry carries, so its descendants are never matched through the other prefix.
    if (blocks_[owner].refcount > 0) return PrefixKey{h, next_prefix_id_++};
    // An unused entry of another prefix gives way to the one just computed: a collision, or a prefix
    // whose parent identity is gone (the window pool keys its entries by the main pool's prefix ids,
    // which a prefix evicted there and computed again renews), which could never be found again.
    uncache(owner);
  }
  cache_.emplace(h, block);
  blk.hash = h;
  blk.prefix_id = next_prefix_id_++;
  blk.parent_id = parent.id;
  std::copy(tokens.begin(), tokens.end(),
            tokens_.begin() + static_cast<std::ptrdiff_t>(block) * block_size_);
  return PrefixKey{h, blk.prefix_id};
}

void BlockPool::drop_entry(int32_t block) {
  Block& blk = blocks_[block];
  cache_.erase(blk.hash);  // the entry is this block's: insert() never maps a hash to two blocks
  blk.prefix_id = 0;
  blk.parent_id = 0;
  blk.hash = 0;
}

void BlockPool::uncache(int32_t block) {
  Block& blk = blocks_[block];
  if (blk.prefix_id == 0) return;
  drop_entry(block);
  if (blk.refcount == 0) {
    // An evictable block losing its entry is free now.
    lru_remove(block);
    free_.push_back(block);
    blk.on_free_list = true;
  }
}

void BlockPool::lru_push_back(int32_t block) {
  Block& blk = blocks_[block];
  blk.prev = lru_tail_;
  blk.next = -1;
  if (lru_tail_ >= 0) blocks_[lru_tail_].next = block; else lru_head_ = block;
  lru_tail_ = block;
  ++num_cached_;
}

void BlockPool::lru_remove(int32_t block) {
  Block& blk = blocks_[block];
  if (blk.prev >= 0) blocks_[blk.prev].next = blk.next; else lru_head_ = blk.next;
  if (blk.next >= 0) blocks_[blk.next].prev = blk.prev; else lru_tail_ = blk.prev;
  blk.prev = blk.next = -1;
  --num_cached_;
}

Status BlockPool::check() const {
  const int32_t n = num_blocks();
  auto where = [](int32_t b) { return "block " + std::to_string(b) + ": "; };
  std::vector<char> seen(static_cast<size_t>(n), 0);  // 1 free list, 2 evictable list
  for (int32_t b : free_) {
    if (b < 0 || b >= n) return Status::error("free list holds out-of-range block " + std::to_string(b));
    if (seen[b]) return Status::error(where(b) + "twice on the free list");
    seen[b] = 1;
    const Block& blk = blocks_[b];
    if (blk.refcount != 0) {
      return Status::error(where(b) + "on the free list with refcount " + std::to_string(blk.refcount));
    }
    if (blk.prefix_id != 0) return Status::error(where(b) + "on the free list with a cache entry");
    if (!blk.on_free_list) return Status::error(where(b) + "on the free list but not flagged so");
  }
  int32_t lru_len = 0;
  for (int32_t b = lru_head_, prev = -1; b >= 0; prev = b, b = blocks_[b].next) {
    if (b >= n) return Status::error("evictable list holds out-of-range block " + std::to_string(b));
    if (seen[b]) {
      return Status::error(where(b) + (seen[b] == 1 ? "both free and evictable" : "twice on the evictable list"));
    }
    seen[b] = 2;
    const Block& blk = blocks_[b];
    if (blk.prev != prev) return Status::error(where(b) + "evictable list back link broken");
    if (blk.refcount != 0) return Status::error(where(b) + "evictable with refcount " + std::to_string(blk.refcount));
    if (blk.prefix_id == 0) return Status::error(where(b) + "evictable without a cache entry");
    if (++lru_len > n) return Status::error("evictable list has a cycle");
  }
  if (lru_len > 0 && blocks_[lru_tail_].next != -1) return Status::error("evictable list tail has a successor");
  if (lru_len != num_cached_) {
    return Status::error("evictable list holds " + std::to_string(lru_len) + " blocks, counter says " +
                         std::to_string(num_cached_));
  }
  int32_t used = 0, hashed = 0;
  for (int32_t b = 0; b < n; ++b) {
    const Block& blk = blocks_[b];
    if (blk.refcount < 0) return Status::error(where(b) + "negative refcount");
    if (blk.refcount > 0) {
      ++used;
      if (seen[b]) {
        return Status::error(where(b) + "referenced but on the " + (seen[b] == 1 ? "free" : "evictable") + " list");
      }
    } else if (!seen[b]) {
      return Status::error(where(b) + "unreferenced but on neither the free nor the evictable list");
    }
    if (blk.on_free_list != (seen[b] == 1)) return Status::error(where(b) + "free-list flag disagrees with the list");
    if (blk.prefix_id != 0) {
      ++hashed;
      auto it = cache_.find(blk.hash);
      if (it == cache_.end() || it->second != b) {
        return Status::error(where(b) + "cached but the map does not point to it");
      }
    }
  }
  if (used != num_used_) {
    return Status::error(std::to_string(used) + " referenced blocks, counter says " + std::to_string(num_used_));
  }
  if (num_free() + num_used_ + num_cached_ != n) {
    return Status::error("free " + std::to_string(num_free()) + " + used " + std::to_string(num_used_) + " + cached " +
                         std::to_string(num_cached_) + " != " + std::to_string(n) + " blocks");
  }
  for (const auto& [h, b] : cache_) {
    if (b < 0 || b >= n) return Status::error("cache map points to out-of-range block " + std::to_string(b));
    if (blocks_[b].prefix_id == 0 || blocks_[b].hash != h) {
      return Status::error("cache map entry for " + where(b) + "does not match the block's stored hash");
    }
  }
  if (static_cast<int32_t>(cache_.size()) != hashed) {
    return Status::error("cache map has " + std::to_string(cache_.size()) + " entries for " + std::to_string(hashed) +
                         " cached blocks");
  }
  return Status();
}

}  // namespace pagoda::engine
