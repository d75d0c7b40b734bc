// Varlen paged attention against a naive float reference on a ragged batch whose sequences live in
// scattered, non-contiguous blocks; plain, and with gemma's soft-capped scores and a sliding window.
#include "engine/cpu/paged_attention.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

namespace pagoda::engine::cpu {
namespace {

// softcap / window: AttentionParams' (the scale is always 1/sqrt(hd)).
struct Seq {
  int32_t cached, fresh;
};
// Three sequences: a fresh prefill of 9, a decode step at context 13, a chunk of 5 after 6 cached.
const std::vector<Seq> kShortBatch = {{0, 9}, {12, 1}, {6, 5}};
// Contexts past several 16-key softmax chunks and 64-key lanes: a prefill of 40, a decode at context 71,
// a chunk of 20 after 30 cached.
const std::vector<Seq> kLongBatch = {{0, 40}, {70, 1}, {30, 20}};
// Decode steps only (ggml_vec_dot_f16's order), many of them: a dot product's last bit rarely survives
// the fp16 rounding of the softmax weights, so it takes many scores to see one.
const std::vector<Seq> kDecodeBatch = {{70, 1}, {100, 1}, {33, 1}, {126, 1}, {64, 1}, {5, 1}, {90, 1}, {47, 1}};
// One decode: fewer head groups than threads, so each group is split across threads.
const std::vector<Seq> kOneDecode = {{90, 1}};

void check_ragged_batch(int32_t hd, float softcap = 0.0f, int32_t window = 0,
                        const std::vector<Seq>& seqs = kShortBatch, int32_t n_heads = 6, int32_t n_kv = 2) {
  const int32_t bs = 4, num_blocks = 256;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  std::vector<KvScalar> pool(static_cast<size_t>(num_blocks) * 2 * n_kv * bs * hd);
  PagedKvLayer kv{pool.data(), bs, n_kv, hd};

  std::vector<int32_t> blocks(num_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);  // scattered block tables

  // Full K/V history per sequence (reference), written into the pool for the cached part.
  std::vector<std::vector<float>> K(seqs.size()), V(seqs.size());
  StepPlanBuilder builder(bs);
  std::vector<std::vector<int32_t>> tables(seqs.size());
  size_t next_block = 0;
  std::vector<float> k_new, v_new;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int32_t total = seqs[s].cached + seqs[s].fresh;
    for (int32_t i = 0; i < (total + bs - 1) / bs; ++i) tables[s].push_back(blocks[next_block++]);
    K[s].resize(total * n_kv * hd);
    V[s].resize(total * n_kv * hd);
    // Values representable in fp16, so the cache holds them exactly.
    for (float& x : K[s]) x = static_cast<float>(static_cast<KvScalar>(dist(rng)));
    for (float& x : V[s]) x = static_cast<float>(static_cast<KvScalar>(dist(rng)));
    for (int32_t p = 0; p < total; ++p) {
      for (int32_t h = 0; h < n_kv; ++h) {
        const int32_t blk = tables[s][p / bs], off = p % bs;
        if (p < seqs[s].cached) {
          std::copy_n(&K[s][(p * n_kv + h) * hd], hd, kv.key(blk, h) + off * hd);
          std::copy_n(&V[s][(p * n_kv + h) * hd], hd, kv.value(blk, h) + off * hd);
        }
      }
      if (p >= seqs[s].cached) {
        k_new.insert(k_new.end(), &K[s][p * n_kv * hd], &K[s][(p + 1) * n_kv * hd]);
        v_new.insert(v_new.end(), &V[s][p * n_kv * hd], &V[s][(p + 1) * n_kv * hd]);
      }
    }
    std::vector<int32_t> toks(seqs[s].fresh, 1);
    builder.add_sequence(s, toks, seqs[s].cached, tables[s]);
  }
  StepPlan plan = builder.build();
  ASSERT_TRUE(plan.validate(num_blocks, bs, 2).ok()) << plan.validate(num_blocks, bs, 2).message();
  const int32_t T = plan.num_tokens();
  std::vector<float> q(T * n_heads * hd), out(T * n_heads * hd);
  for (float& x : q) x = dist(rng);

  write_kv(plan, k_new.data(), v_new.data(), kv);
  const float scale = 1.0f / std::sqrt(float(hd));
  const AttentionParams params{.scale = scale, .softcap = softcap, .window = window};
  paged_attention(plan, q.data(), kv, n_heads, params, out.data());

  for (int32_t b = 0; b < plan.num_seqs(); ++b) {
    for (int32_t t = plan.cu_seqlens[b]; t < plan.cu_seqlens[b + 1]; ++t) {
      const int32_t pos = plan.positions[t];
      for (int32_t h = 0; h < n_heads; ++h) {
        const int32_t g = h / (n_heads / n_kv);
        const int32_t first = window > 0 ? std::max(0, pos + 1 - window) : 0;  // keys outside the window: none
        std::vector<double> w(pos + 1, -1e300);
        double mx = -1e30, sum = 0;
        for (int32_t j = first; j <= pos; ++j) {
          double s = 0;
          for (int32_t i = 0; i < hd; ++i) s += double(q[(t * n_heads + h) * hd + i]) * K[b][(j * n_kv + g) * hd + i];
          if (softcap > 0) s = std::tanh(s / softcap) * softcap;
          w[j] = s * scale;
          mx = std::max(mx, w[j]);
        }
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int32_t i = 0; i < hd; ++i) {
          double ref = 0;
          for (int32_t j = first; j <= pos; ++j) ref += w[j] / sum * V[b][(j * n_kv + g) * hd + i];
          // q and the softmax weights are rounded to fp16 (as ggml): ~1e-3 relative.
          ASSERT_NEAR(out[(t * n_heads + h) * hd + i], ref, 3e-3) << "seq " << b << " token " << t << " head " << h;
        }
      }
    }
  }
  // The portable loops and every grouped kernel this CPU has give the same bits (the default run above
  // is the widest of them). The guard puts the default back however this returns.
  struct KernelGuard {
    ~KernelGuard() { set_attention_kernel(AttentionKernel::Auto); }
  } guard;
  std::vector<float> portable(out.size());
  set_attention_kernel(AttentionKernel::Portable);
  paged_attention(plan, q.data(), kv, n_heads, params, portable.data());
  int compared = 0;
  for (AttentionKernel kernel : {AttentionKernel::Avx512, AttentionKernel::Avx2}) {
    if (!attention_kernel_available(kernel)) continue;
    std::vector<float> grouped(out.size());
    set_attention_kernel(kernel);
    paged_attention(plan, q.data(), kv, n_heads, params, grouped.data());
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_EQ(grouped[i], portable[i]) << "kernel " << static_cast<int>(kernel) << " index " << i;
    }
    ++compared;
  }
  if (compared == 0) std::printf("note: no AVX2 or AVX-512 here, no grouped kernel is compared\n");
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], portable[i]) << "index " << i;
}

TEST(PagedAttention, RaggedBatchMatchesNaiveCausalAttention) { check_ragged_batch(16); }
TEST(PagedAttention, HeadDim64KernelMatchesReferenceAndPortableBits) { check_ragged_batch(64); }
TEST(PagedAttention, HeadDim128KernelMatchesReferenceAndPortableBits) { check_ragged_batch(128); }
// Sliding windows of 5 and 12 keys (the decode at context 13 and the 9-token prefill reach past them; 12
// straddles a 16-key softmax chunk) and scores capped at 4 (raw dots ~ sqrt(hd), so tanh bends).
TEST(PagedAttention, SoftCappedScoresAndSlidingWindowMatchTheReference) {
  for (int32_t hd : {16, 64}) {
    for (int32_t window : {5, 12}) {
      SCOPED_TRACE(testing::Message() << "head_dim " << hd << " window " << window);
      check_ragged_batch(hd, 4.0f, window);
    }
  }
  check_ragged_batch(64, 0.0f, 3);
}
// Query heads per KV head from 1 (multi-head) to 7 (qwen2-0.5B's 14 over 2), at head sizes whose grouped
// kernel keeps 4, 2 or 1 heads' PV accumulators in registers at a time (64, 128, 192): every split of a
// group into register passes gives the portable loops' bits.
TEST(PagedAttention, EveryGroupSizeAndHeadSizeMatchesTheReferenceAndPortableBits) {
  for (int32_t hd : {64, 128, 192}) {
    for (auto [n_heads, n_kv] : {std::pair{4, 4}, std::pair{6, 3}, std::pair{14, 2}, std::pair{8, 1}}) {
      SCOPED_TRACE(testing::Message() << "head_dim " << hd << " heads " << n_heads << " kv heads " << n_kv);
      check_ragged_batch(hd, 0.0f, 0, kLongBatch, n_heads, n_kv);
      check_ragged_batch(hd, 0.0f, 0, kDecodeBatch, n_heads, n_kv);
      // With 8 threads a single decode has fewer head groups than threads, so its groups are split. An
      // explicit OMP_NUM_THREADS is kept (scripts/sanitize.sh sets 1 under TSan, which cannot see
      // libgomp's barriers).
      const int threads = omp_get_max_threads();
      if (std::getenv("OMP_NUM_THREADS") == nullptr) omp_set_num_threads(8);
      check_ragged_batch(hd, 0.0f, 0, kOneDecode, n_heads, n_kv);
      omp_set_num_threads(threads);
    }
  }
}
// The same over long contexts at gemma's head size 256 and at 64 (the AVX-512 kernel where this CPU has
// it): windows that start mid-block and mid-chunk, and one wider than every context.
TEST(PagedAttention, LongContextsWithWindowsMatchTheReferenceAndPortableBits) {
  for (int32_t hd : {64, 256}) {
    for (int32_t window : {5, 37, 100}) {
      SCOPED_TRACE(testing::Message() << "head_dim " << hd << " window " << window);
      check_ragged_batch(hd, window == 37 ? 4.0f : 0.0f, window, kLongBatch);
    }
  }
}

}  // namespace
}  // namespace pagoda::engine::cpu
