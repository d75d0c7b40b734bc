#pragma once
// The CPU backend's long-lived big buffers (the repacked weights, the KV pool) on 2 MiB pages.
//
// A decode step streams every weight once and, with many sequences, reads KV blocks scattered over the
// pool. On 4 KiB pages the TLB misses about once per page and the hardware prefetchers stop at every
// page edge; on 2 MiB pages neither happens. Transparent huge pages in "madvise" mode (Debian's
// default) are only given to memory that asks, so the arena maps 2 MiB-aligned chunks and asks
// (MADV_HUGEPAGE) before anything touches them. Where the kernel has no huge page to give, a chunk is
// ordinary pages and nothing else changes.
//
// Packing matters as much as the page size: SmolLM2's 120 matrices are 0.2-1.1 MiB each, too small for
// a 2 MiB page of their own, so they are placed one after another in shared chunks.
//
// Under AddressSanitizer (kArenaIsHeap) every allocation is a heap block of its own instead, so a read
// past a matrix or the KV pool is still caught there.
#include <cstddef>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

namespace pagoda::engine::cpu {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kArenaIsHeap = true;
#else
inline constexpr bool kArenaIsHeap = false;
#endif

class HugePageArena {
 public:
  // Chunks are at least `chunk_bytes` (a request larger than that gets a chunk of its own size).
  static std::shared_ptr<HugePageArena> create(size_t chunk_bytes = size_t{32} << 20);
  ~HugePageArena();
  HugePageArena(const HugePageArena&) = delete;
  HugePageArena& operator=(const HugePageArena&) = delete;

  // `bytes` at a multiple of `align` (<= 2 MiB); never returns null (throws std::bad_alloc). There is
  // no free: everything goes when the arena does.
  void* allocate(size_t bytes, size_t align);
  size_t mapped_bytes() const;

 private:
  explicit HugePageArena(size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}
  struct Chunk {
    char* base;
    size_t size, used;
  };
  mutable std::mutex mu_;
  std::vector<Chunk> chunks_;
  std::vector<std::pair<void*, size_t>> heap_blocks_;  // kArenaIsHeap: (block, alignment)
  size_t chunk_bytes_;
};

// Allocates from an arena (deallocate is then a no-op: the arena's last user frees it all), or from
// operator new without one. The arena travels with its buffer on move and swap, and each container keeps
// it alive; a copy of a container goes to the ordinary heap (copy_into puts one in an arena), so copies
// never pile up in an arena that cannot free them. Growing an arena-backed vector leaves its old buffer
// behind: fill them at their final size.
template <class T>
struct ArenaAllocator {
  using value_type = T;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_copy_assignment = std::false_type;
  using propagate_on_container_swap = std::true_type;

  std::shared_ptr<HugePageArena> arena;

  ArenaAllocator() = default;
  explicit ArenaAllocator(std::shared_ptr<HugePageArena> a) : arena(std::move(a)) {}
  // Copies only (no move members): a moved-from allocator must still equal its copy.
  ArenaAllocator(const ArenaAllocator&) = default;
  ArenaAllocator& operator=(const ArenaAllocator&) = default;
  template <class U>
  ArenaAllocator(const ArenaAllocator<U>& other) : arena(other.arena) {}  // NOLINT: rebinding converts

  ArenaAllocator select_on_container_copy_construction() const { return ArenaAllocator(); }

  T* allocate(size_t n) {
    if (!arena) return std::allocator<T>().allocate(n);
    return static_cast<T*>(arena->allocate(n * sizeof(T), alignof(T) < 64 ? 64 : alignof(T)));
  }
  void deallocate(T* p, size_t n) {
    if (!arena) std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const ArenaAllocator<U>& other) const {
    return arena == other.arena;
  }
};

template <class T>
using ArenaVector = std::vector<T, ArenaAllocator<T>>;

// A copy of v in the arena (or in ordinary memory when arena is null).
template <class T>
ArenaVector<T> copy_into(const ArenaVector<T>& v, const std::shared_ptr<HugePageArena>& arena) {
  return ArenaVector<T>(v.begin(), v.end(), ArenaAllocator<T>(arena));
}

}  // namespace pagoda::engine::cpu
