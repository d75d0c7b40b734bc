#include "engine/cpu/huge_page_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <new>

namespace pagoda::engine::cpu {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// `bytes` (a multiple of 2 MiB) of fresh anonymous memory at a 2 MiB boundary, asked to be huge pages.
char* map_huge(size_t bytes) {
  // Map 2 MiB more than needed and trim both ends to the boundary: mmap only promises 4 KiB alignment.
  void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw), aligned = round_up(start, kHugePage);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = aligned + bytes, raw_end = start + bytes + kHugePage;
  if (raw_end > end) munmap(reinterpret_cast<void*>(end), raw_end - end);
  // Best effort: without transparent huge pages (or with them off) this fails and the pages stay small.
  (void)madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<char*>(aligned);
}

}  // namespace

std::shared_ptr<HugePageArena> HugePageArena::create(size_t chunk_bytes) {
  return std::shared_ptr<HugePageArena>(new HugePageArena(round_up(chunk_bytes, kHugePage)));
}

HugePageArena::~HugePageArena() {
  for (const Chunk& c : chunks_) munmap(c.base, c.size);
  for (auto [p, align] : heap_blocks_) ::operator delete(p, std::align_val_t(align));
}

void* HugePageArena::allocate(size_t bytes, size_t align) {
  std::lock_guard<std::mutex> lock(mu_);
  if constexpr (kArenaIsHeap) {
    void* p = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(align));
    try {
      heap_blocks_.emplace_back(p, align);
    } catch (...) {
      ::operator delete(p, std::align_val_t(align));
      throw;
    }
    return p;
  }
  if (!chunks_.empty()) {
    Chunk& c = chunks_.back();
    const size_t at = round_up(c.used, align);
    if (at + bytes <= c.size) {
      c.used = at + bytes;
      return c.base + at;
    }
  }
  // A new chunk (the rest of the last one stays unused: untouched, it costs no memory).
  const size_t size = round_up(std::max(bytes, chunk_bytes_), kHugePage);
  char* base = map_huge(size);
  try {
    chunks_.push_back(Chunk{base, size, bytes});
  } catch (...) {
    munmap(base, size);
    throw;
  }
  return base;
}

size_t HugePageArena::mapped_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t total = 0;
  for (const Chunk& c : chunks_) total += c.size;
  return total;
}

}  // namespace pagoda::engine::cpu
