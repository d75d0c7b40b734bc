#pragma once
// This machine's DRAM read bandwidth, measured as BENCH.md describes: a summing loop over a buffer
// much larger than the caches, on the same threads the engine uses.
#include <cstdint>

namespace pagoda::bench {

// Bytes per second, best of `repeats` passes over `bytes` (default 512 MiB).
double measure_read_bandwidth(int64_t bytes = int64_t{512} << 20, int repeats = 5);

}  // namespace pagoda::bench
