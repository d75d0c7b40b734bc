// The arena behind the CPU backend's weights and KV pool: aligned, non-overlapping allocations packed
// into 2 MiB-aligned chunks, and containers that keep their arena (and their bytes) through moves.
#include "engine/cpu/huge_page_arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <utility>
#include <vector>

namespace pagoda::engine::cpu {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(HugePageArena, AllocationsAreAlignedDisjointAndPackedIntoChunks) {
  auto arena = HugePageArena::create(4 * kMiB);
  std::vector<std::pair<uintptr_t, size_t>> spans;
  for (size_t bytes : {size_t{100}, 3 * kMiB / 4, size_t{1}, kMiB, size_t{4096}}) {
    auto* p = static_cast<char*>(arena->allocate(bytes, 64));
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    std::memset(p, 0xab, bytes);  // writable, all of it
    spans.emplace_back(reinterpret_cast<uintptr_t>(p), bytes);
  }
  for (size_t i = 0; i < spans.size(); ++i) {
    for (size_t j = i + 1; j < spans.size(); ++j) {
      const bool disjoint = spans[i].first + spans[i].second <= spans[j].first ||
                            spans[j].first + spans[j].second <= spans[i].first;
      EXPECT_TRUE(disjoint) << i << " and " << j << " overlap";
    }
  }
  if (kArenaIsHeap) GTEST_SKIP() << "AddressSanitizer build: heap blocks, no chunks";
  // About 1.8 MiB in all: one 4 MiB chunk, and the first allocation sits at its 2 MiB-aligned start.
  EXPECT_EQ(arena->mapped_bytes(), 4 * kMiB);
  EXPECT_EQ(spans[0].first % (2 * kMiB), 0u);
}

TEST(HugePageArena, ARequestLargerThanAChunkGetsAChunkOfItsOwn) {
  auto arena = HugePageArena::create(2 * kMiB);
  if (kArenaIsHeap) GTEST_SKIP() << "AddressSanitizer build: heap blocks, no chunks";
  (void)arena->allocate(kMiB, 64);
  auto* big = static_cast<char*>(arena->allocate(5 * kMiB, 64));  // does not fit what is left: a 6 MiB chunk
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % (2 * kMiB), 0u);
  std::memset(big, 1, 5 * kMiB);
  EXPECT_EQ(arena->mapped_bytes(), 8 * kMiB);
}

TEST(ArenaVector, KeepsItsArenaAndValuesThroughMovesAndCopies) {
  auto arena = HugePageArena::create(2 * kMiB);
  ArenaVector<uint16_t> plain(1000);
  std::iota(plain.begin(), plain.end(), uint16_t{0});
  EXPECT_EQ(plain.get_allocator().arena, nullptr);  // no arena: ordinary memory

  ArenaVector<uint16_t> placed = copy_into(plain, arena);
  EXPECT_EQ(placed.get_allocator().arena, arena);
  EXPECT_EQ(placed, plain);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(placed.data()) % 64, 0u);

  // Move-assigning over a vector without an arena takes the arena along (the lm_head_ = ... pattern).
  ArenaVector<uint16_t> target(5, 7);
  const uint16_t* bytes = placed.data();
  target = std::move(placed);
  EXPECT_EQ(target.get_allocator().arena, arena);
  EXPECT_EQ(target.data(), bytes);  // the buffer itself, not a copy
  EXPECT_EQ(target, plain);

  // The arena outlives its creator's handle for as long as a vector uses it.
  std::weak_ptr<HugePageArena> weak = arena;
  arena.reset();
  EXPECT_FALSE(weak.expired());
  target = ArenaVector<uint16_t>();
  placed = ArenaVector<uint16_t>();  // a moved-from allocator still holds the arena (it must equal its copy)
  EXPECT_TRUE(weak.expired());
}

TEST(ArenaVector, CopiesGoToTheHeapNotIntoTheArena) {
  auto arena = HugePageArena::create(2 * kMiB);
  ArenaVector<float> placed(3000, 1.5f, ArenaAllocator<float>(arena));
  const size_t mapped = arena->mapped_bytes();

  const ArenaVector<float> copy(placed);  // copy construction: ordinary memory
  EXPECT_EQ(copy.get_allocator().arena, nullptr);
  EXPECT_EQ(copy, placed);

  ArenaVector<float> plain(10, 0.0f);
  plain = placed;  // copy assignment keeps the target's (heap) allocator
  EXPECT_EQ(plain.get_allocator().arena, nullptr);
  EXPECT_EQ(plain, placed);
  if (!kArenaIsHeap) {
    EXPECT_EQ(arena->mapped_bytes(), mapped);
  }

  ArenaVector<float> other(5, 2.0f);
  std::swap(other, placed);  // swap trades buffers and allocators
  EXPECT_EQ(other.get_allocator().arena, arena);
  EXPECT_EQ(placed.get_allocator().arena, nullptr);
  EXPECT_EQ(other, copy);
}

}  // namespace
}  // namespace pagoda::engine::cpu
