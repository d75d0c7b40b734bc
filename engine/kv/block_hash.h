#pragma once
// The prefix-cache key of a full KV block (DESIGN.md "KV cache"): a 64-bit hash chained over the
// parent block's key and this block's token ids, so one key names the whole prefix up to the block.
// It only finds candidates: BlockPool verifies a hit, so a collision costs a miss, never an alias.
#include <cstdint>
#include <span>

namespace pagoda::engine {

// Parent key of a sequence's first block. Any fixed value works; a non-zero one keeps an all-zero
// block from hashing to a value that looks "unset" when debugging.
inline constexpr uint64_t kRootBlockHash = 0x6a09e667f3bcc908ULL;

// Signature of the chained hash, so tests can inject a degenerate one to force collisions.
using BlockHasher = uint64_t (*)(uint64_t parent, std::span<const int32_t> tokens);

// splitmix64 finalizer steps absorbed once per token: each step is a bijection of the 64-bit state,
// so two blocks with the same parent and different tokens differ at the first differing token and
// only collide by chance after it (about 2^-64).
uint64_t chain_block_hash(uint64_t parent, std::span<const int32_t> tokens);

}  // namespace pagoda::engine
