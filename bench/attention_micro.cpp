// pagoda_attention_bench: the CPU backend's paged attention alone, for a decode step of S sequences at
// one context length (SmolLM2's shape by default: 9 query heads over 3 KV heads of 64). Every layer's KV
// lives in its own slice of one pool, in shuffled blocks, and the layers run in turn, so K and V come
// from memory as in a real step; reports microseconds per layer and the KV bytes read per second.
// Not a test: timings vary with the machine and its load.
//   build/bench/pagoda_attention_bench [streams context [heads kv_heads head_dim [layers]]]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "engine/cpu/paged_attention.h"
#include "engine/step_plan.h"

using namespace pagoda::engine;

int main(int argc, char** argv) {
  auto arg = [&](int i, int def) { return argc > i ? std::atoi(argv[i]) : def; };
  const int32_t streams = arg(1, 64), ctx = arg(2, 192), n_heads = arg(3, 9), n_kv = arg(4, 3), hd = arg(5, 64);
  const int32_t layers = arg(6, 30), bs = 16;
  const int32_t blocks_per_seq = (ctx + bs - 1) / bs, num_blocks = streams * blocks_per_seq;
  const int64_t layer_elems = static_cast<int64_t>(num_blocks) * 2 * n_kv * bs * hd;
  std::printf("attention: %d streams at context %d, %d heads over %d KV heads of %d, %d layers, %d threads\n",
              streams, ctx, n_heads, n_kv, hd, layers, omp_get_max_threads());

  std::mt19937 rng(7);
  std::vector<cpu::KvScalar> pool(static_cast<size_t>(layer_elems * layers));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& x : pool) x = static_cast<cpu::KvScalar>(dist(rng));
  std::vector<int32_t> blocks(num_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);

  StepPlanBuilder builder(bs);
  for (int32_t s = 0; s < streams; ++s) {
    const std::vector<int32_t> table(blocks.begin() + s * blocks_per_seq, blocks.begin() + (s + 1) * blocks_per_seq);
    const int32_t token = 1;
    builder.add_sequence(s, std::span(&token, 1), ctx - 1, table);
  }
  const StepPlan plan = builder.build();
  std::vector<float> q(static_cast<size_t>(streams) * n_heads * hd), out(q.size());
  for (float& x : q) x = dist(rng);
  const cpu::AttentionParams params{.scale = 0.125f};

  auto step = [&] {
    for (int32_t l = 0; l < layers; ++l) {
      const cpu::PagedKvLayer kv{pool.data() + l * layer_elems, bs, n_kv, hd};
      cpu::paged_attention(plan, q.data(), kv, n_heads, params, out.data());
    }
  };
  step();
  const int iters = 20;
  std::vector<double> us;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / layers);
  }
  std::sort(us.begin(), us.end());
  const double kv_bytes = static_cast<double>(streams) * ctx * 2 * n_kv * hd * sizeof(cpu::KvScalar);
  std::printf("per layer: %.1f us median (%.1f-%.1f); KV read %.1f GB/s\n", us[iters / 2], us.front(), us.back(),
              kv_bytes / us[iters / 2] / 1e3);
  return 0;
}
