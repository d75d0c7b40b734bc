// Chained block hash: see block_hash.h.
#include "engine/kv/block_hash.h"

namespace pagoda::engine {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t chain_block_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = splitmix64(parent);
  // The token count is absorbed too, so a block is never confused with a shorter one whose state
  // happens to match (all cached blocks are full today; this keeps the function safe if that changes).
  h = splitmix64(h ^ static_cast<uint64_t>(tokens.size()));
  for (int32_t t : tokens) h = splitmix64(h ^ static_cast<uint64_t>(static_cast<uint32_t>(t)));
  return h;
}

}  // namespace pagoda::engine
