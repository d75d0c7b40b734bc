// The CUDA kernels against CPU references: the CPU backend's own kernels where they compute the
// same function (rmsnorm, KV layout), double-precision loops where the CPU backend deliberately
// rounds as ggml does. Inputs are random, outputs poisoned before each launch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/cpu/paged_attention.h"
#include "engine/cpu/vec_kernels.h"
#include "engine/cuda/attention.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/gemv.h"
#include "engine/cuda/kernels.h"
#include "engine/cuda/launch_plan.h"
#include "engine/cuda/step_graphs.h"
#include "engine/quant/dequant.h"
#include "tests/cuda/cuda_test_util.h"

namespace pagoda::engine::cuda {
namespace {

using test::poisoned;
using test::random_floats;
using test::rel_l2;
using test::to_device;
using test::to_host;

std::vector<uint16_t> to_bf16(const std::vector<float>& x) {
  std::vector<uint16_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = fp32_to_bf16(x[i]);
  return out;
}

TEST(CudaKernels, AddRmsNormMatchesTheCpuKernelAndWritesTheSumBack) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  const int T = 5, d = 576;
  const auto x = random_floats(T * d, 1, -3, 3), y = random_floats(T * d, 2), w = random_floats(d, 3, 0.5f, 1.5f);
  auto dx = to_device(x);
  auto dy = to_device(y);
  auto dw = to_device(w);
  auto out32 = poisoned<float>(T * d);
  auto out16 = poisoned<uint16_t>(T * d);
  ASSERT_EQ(add_rms_norm(dx.get(), dy.get(), dw.get(), nullptr, T, d, 1e-5f, out16.get(), out32.get(), nullptr),
            cudaSuccess);
  const auto gx = to_host(dx, T * d), g32 = to_host(out32, T * d);
  const auto g16 = to_host(out16, T * d);
  std::vector<float> sum(T * d), ref(T * d);
  for (int i = 0; i < T * d; ++i) sum[i] = x[i] + y[i];
  for (int t = 0; t < T; ++t) cpu::rms_norm(&sum[t * d], w.data(), &ref[t * d], d, 1e-5f);
  EXPECT_EQ(gx, sum) << "x += y is written back exactly";
  EXPECT_LT(rel_l2(g32, ref), 1e-6);
  for (int i = 0; i < T * d; ++i) {
    ASSERT_LE(std::fabs(bf16_to_fp32(g16[i]) - ref[i]), std::fabs(ref[i]) * (1.0f / 128) + 1e-6f) << i;
  }

  // Gathered rows (the LM head's input): output row r is source row rows[r], without the add.
  const std::vector<int32_t> rows = {4, 0, 4};
  auto drows = to_device(rows);
  auto gathered = poisoned<float>(rows.size() * d);
  ASSERT_EQ(add_rms_norm(dx.get(), nullptr, dw.get(), drows.get(), 3, d, 1e-5f, nullptr, gathered.get(), nullptr),
            cudaSuccess);
  const auto gg = to_host(gathered, rows.size() * d);
  for (size_t r = 0; r < rows.size(); ++r) {
    std::vector<float> got(gg.begin() + r * d, gg.begin() + (r + 1) * d), want(ref.begin() + rows[r] * d,
                                                                                 ref.begin() + (rows[r] + 1) * d);
    EXPECT_LT(rel_l2(got, want), 1e-6) << "row " << r;
  }
}

// theta_i = pos * base^(-2i/rope_dim) / freq_factor_i, in double.
void rope_reference(std::vector<double>& v, int pos, int head_dim, double base, const std::vector<float>& ff, bool neox) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    double theta = pos * std::pow(base, -2.0 * i / head_dim);
    if (!ff.empty()) theta /= ff[i];
    const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    const double x0 = v[a], x1 = v[b];
    v[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
    v[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
  }
}

TEST(CudaKernels, RopeMatchesADoubleReferenceInBothPairLayouts) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  for (const int hd : {64, 128}) {
    for (const bool neox : {false, true}) {
      const int T = 6, heads = 3, stride = heads * hd + 10;  // rows wider than the heads: only heads turn
      const std::vector<int32_t> pos = {0, 1, 17, 511, 4095, 8191};
      const auto x = random_floats(T * stride, 7 + hd);
      const std::vector<float> ff = neox ? std::vector<float>{} : random_floats(hd / 2, 9, 1.0f, 8.0f);
      auto dx = to_device(x);
      auto dpos = to_device(pos);
      DeviceBuffer<float> dff;
      if (!ff.empty()) dff = to_device(ff);
      RopeParams p;
      p.head_dim = p.rope_dim = hd;
      p.theta_scale = std::pow(500000.0f, -2.0f / hd);
      p.freq_factors = ff.empty() ? nullptr : dff.get();
      p.neox = neox;
      ASSERT_EQ(rope(dx.get(), stride, dpos.get(), T, heads, p, nullptr), cudaSuccess);
      const auto got = to_host(dx, x.size());
      for (int t = 0; t < T; ++t) {
        for (int h = 0; h < heads; ++h) {
          std::vector<double> ref(x.begin() + t * stride + h * hd, x.begin() + t * stride + (h + 1) * hd);
          rope_reference(ref, pos[t], hd, 500000.0, ff, neox);
          for (int i = 0; i < hd; ++i) {
            // float theta at positions up to 8191 carries ~1e-3 rad of rounding, as the CPU backend's does.
            ASSERT_NEAR(got[t * stride + h * hd + i], ref[i], 3e-3) << "hd " << hd << " neox " << neox << " t " << t;
          }
        }
        for (int i = heads * hd; i < stride; ++i) ASSERT_EQ(got[t * stride + i], x[t * stride + i]) << "untouched tail";
      }
    }
  }
}

TEST(CudaKernels, SiluMulAndBf16ConversionMatchDoubleReferences) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  const int T = 3, ff = 1536;
  const auto gu = random_floats(T * 2 * ff, 11, -6, 6);
  auto dgu = to_device(gu);
  auto out = poisoned<uint16_t>(T * ff);
  ASSERT_EQ(silu_mul(dgu.get(), T, ff, out.get(), nullptr), cudaSuccess);
  const auto got = to_host(out, T * ff);
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < ff; ++j) {
      const double g = gu[t * 2 * ff + j], u = gu[t * 2 * ff + ff + j];
      const double ref = g / (1.0 + std::exp(-g)) * u;
      ASSERT_NEAR(bf16_to_fp32(got[t * ff + j]), ref, std::fabs(ref) / 128 + 1e-6) << t << "," << j;
    }
  }
  auto conv = poisoned<uint16_t>(gu.size());
  ASSERT_EQ(f32_to_bf16(dgu.get(), static_cast<int64_t>(gu.size()), conv.get(), nullptr), cudaSuccess);
  EXPECT_EQ(to_host(conv, gu.size()), to_bf16(gu)) << "round to nearest even, as the CPU's fp32_to_bf16";
}

TEST(CudaKernels, GemmMatchesADoubleReference) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  for (bool few_row_kernel : {false, true}) {
  auto g = Gemm::create(few_row_kernel);
  ASSERT_TRUE(g.ok()) << g.message();
  // With the few-row kernel on, M <= 8 with K % 8 == 0 runs it (gemv.h), the rest cuBLASLt; K = 100 and 1000 are not
  // whole 16-byte chunks, N = 1001 leaves a partly used block.
  for (const auto& [M, N, K] :
       {std::tuple{1, 384, 576}, std::tuple{7, 1000, 256}, std::tuple{8, 1001, 1536}, std::tuple{3, 257, 4096},
        std::tuple{2, 64, 100}, std::tuple{9, 384, 576}, std::tuple{1, 50, 1000}, std::tuple{64, 1536, 576}}) {
    const auto xb = to_bf16(random_floats(M * K, 21 + M)), wb = to_bf16(random_floats(N * K, 22 + N));
    auto dx = to_device(xb);
    auto dw = to_device(wb);
    auto dy = poisoned<float>(M * N);
    ASSERT_TRUE(g.value()->run(dx.get(), dw.get(), dy.get(), M, N, K, nullptr).ok());
    const auto got = to_host(dy, M * N);
    std::vector<double> ref(M * N);
    for (int m = 0; m < M; ++m) {
      for (int n = 0; n < N; ++n) {
        double s = 0.0;
        for (int k = 0; k < K; ++k) s += double(bf16_to_fp32(xb[m * K + k])) * bf16_to_fp32(wb[n * K + k]);
        ref[m * N + n] = s;
      }
    }
    EXPECT_LT(rel_l2(got, ref), 1e-5) << "M=" << M << " N=" << N << " K=" << K << " few-row kernel " << few_row_kernel;
  }
  }
}

// The few-row kernel sums each output in an order that does not depend on M: a row's result is the
// same bits whether it runs alone or with seven others (decode's batch invariance).
TEST(CudaKernels, GemvRowsDoNotDependOnHowManyRowsShareTheLaunch) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  const int N = 777, K = 2048;
  const auto xb = to_bf16(random_floats(kGemvMaxRows * K, 41)), wb = to_bf16(random_floats(N * K, 42));
  auto dx = to_device(xb);
  auto dw = to_device(wb);
  auto all = poisoned<float>(kGemvMaxRows * N);
  ASSERT_EQ(gemv_bf16(dx.get(), dw.get(), all.get(), kGemvMaxRows, N, K, nullptr), cudaSuccess);
  const auto together = to_host(all, kGemvMaxRows * N);
  for (int M = 1; M <= kGemvMaxRows; ++M) {
    for (int start = 0; start + M <= kGemvMaxRows; start += M) {
      auto part = poisoned<float>(M * N);
      ASSERT_EQ(gemv_bf16(dx.get() + start * K, dw.get(), part.get(), M, N, K, nullptr), cudaSuccess);
      const auto got = to_host(part, M * N);
      ASSERT_EQ(0, std::memcmp(got.data(), together.data() + start * N, M * N * sizeof(float)))
          << "rows " << start << ".." << start + M - 1 << " launched as M=" << M;
    }
  }
  EXPECT_FALSE(gemv_applies(dx.get(), dw.get(), kGemvMaxRows + 1, K));
  EXPECT_FALSE(gemv_applies(dx.get(), dw.get(), 1, K - 4));
  EXPECT_FALSE(gemv_applies(dx.get() + 1, dw.get(), 1, K));  // 2-byte aligned
  EXPECT_EQ(gemv_bf16(dx.get(), dw.get(), all.get(), 0, N, K, nullptr), cudaErrorInvalidValue);
}

// StepGraphs: a shape runs eagerly the first time, is captured the second and replayed after; the
// replays compute what the eager launches computed, on the inputs of the moment; a capture the stream
// refuses turns graphs off and the step still runs.
TEST(CudaKernels, StepGraphsCaptureASecondShapeReplayItAndFallBackWhenCaptureFails) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  const int n = 1000;
  DeviceBuffer<float> in;
  ASSERT_TRUE(in.allocate(n, "in").ok());
  auto out = poisoned<uint16_t>(n);
  StepGraphs graphs(2);
  const auto step = [&] { return cuda_status(f32_to_bf16(in.get(), n, out.get(), s), "f32_to_bf16"); };
  for (int i = 0; i < 5; ++i) {
    const auto x = random_floats(n, 60 + i);  // new inputs every step, as a step's integers are
    ASSERT_EQ(cudaMemcpyAsync(in.get(), x.data(), n * 4, cudaMemcpyHostToDevice, s), cudaSuccess);
    const Status st = graphs.run(StepShape{1, 1, 1, 1, 1}, s, step);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    EXPECT_EQ(to_host(out, n), to_bf16(x)) << "step " << i;
    EXPECT_EQ(graphs.captures(), i >= 1 ? 1 : 0) << "step " << i;
    EXPECT_EQ(graphs.replays(), std::max(0, i)) << "step " << i;
  }
  // Capacity 2: a third captured shape evicts the least recently used.
  for (int shape = 2; shape <= 3; ++shape) {
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(graphs.run(StepShape{shape, 1, 1, 1, 1}, s, step).ok());
  }
  EXPECT_EQ(graphs.size(), 2u);
  EXPECT_EQ(graphs.captures(), 3);
  graphs.clear();
  EXPECT_EQ(graphs.size(), 0u);
  // Synchronizing a capturing stream is refused: graphs go off, the step runs eagerly and succeeds.
  int eager_runs = 0;
  const auto syncing = [&]() -> Status {
    if (Status st = step(); !st.ok()) return st;
    if (cudaError_t err = cudaStreamSynchronize(s); err != cudaSuccess) return cuda_status(err, "sync");
    ++eager_runs;
    return {};
  };
  const StepShape odd{9, 1, 1, 1, 1};
  ASSERT_TRUE(graphs.run(odd, s, syncing).ok());
  const Status st = graphs.run(odd, s, syncing);
  EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_FALSE(graphs.enabled());
  EXPECT_EQ(eager_runs, 2);
  EXPECT_TRUE(graphs.run(odd, s, syncing).ok());
  EXPECT_EQ(eager_runs, 3);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  cudaStreamDestroy(s);
}

// A ragged step over a paged pool: a long decode, a prefill chunk after cached context, a short
// fresh prompt. Blocks are scattered and shuffled, so wrong indexing cannot pass.
struct AttnCase {
  int32_t n_heads = 8, n_kv_heads = 2, head_dim = 64, block_size = 16, num_blocks = 160;
  StepPlan plan;
  std::vector<float> q, k, v;  // [T][...]: this step's rows; earlier context is written by a first step
  StepPlan history;            // writes the cached context of each sequence
  std::vector<float> hk, hv;
};

AttnCase make_attn_case(int head_dim) {
  AttnCase c;
  c.head_dim = head_dim;
  std::vector<int32_t> free_blocks(c.num_blocks);
  for (int i = 0; i < c.num_blocks; ++i) free_blocks[i] = i;
  std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(5));
  size_t next = 0;
  StepPlanBuilder now(c.block_size), before(c.block_size);
  // (cached tokens, new tokens) per sequence.
  const std::vector<std::pair<int, int>> seqs = {{1200, 1}, {40, 23}, {0, 9}, {15, 1}};
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto [cached, fresh] = seqs[s];
    const int total = cached + fresh;
    std::vector<int32_t> table;
    for (int b = 0; b < (total + c.block_size - 1) / c.block_size; ++b) table.push_back(free_blocks[next++]);
    if (cached > 0) before.add_sequence(s, std::vector<int32_t>(cached, 1), 0, table);
    now.add_sequence(s, std::vector<int32_t>(fresh, 1), cached, table);
  }
  c.history = before.build();
  c.plan = now.build();
  const int kvd = c.n_kv_heads * head_dim;
  c.q = random_floats(c.plan.num_tokens() * c.n_heads * head_dim, 31, -2, 2);
  c.k = random_floats(c.plan.num_tokens() * kvd, 32, -2, 2);
  c.v = random_floats(c.plan.num_tokens() * kvd, 33);
  c.hk = random_floats(c.history.num_tokens() * kvd, 34, -2, 2);
  c.hv = random_floats(c.history.num_tokens() * kvd, 35);
  return c;
}

TEST(CudaKernels, WriteKvStoresTheCpuLayoutAndAttentionMatchesADoubleReference) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  for (const int hd : {64, 128, 16, 80, 96}) {  // 80 and 96: lanes with partly idle elements
    AttnCase c = make_attn_case(hd);
    const int kvd = c.n_kv_heads * hd, qd = c.n_heads * hd;
    const int64_t pool_elems = int64_t(c.num_blocks) * 2 * kvd * c.block_size;
    // CPU: the same two steps' KV writes.
    std::vector<cpu::KvScalar> cpu_pool(pool_elems, cpu::KvScalar(0));
    const cpu::PagedKvLayer layer{cpu_pool.data(), c.block_size, c.n_kv_heads, hd};
    cpu::write_kv(c.history, c.hk.data(), c.hv.data(), layer);
    cpu::write_kv(c.plan, c.k.data(), c.v.data(), layer);

    auto pool = to_device(std::vector<uint16_t>(pool_elems, 0));
    for (const StepPlan* step : {&c.history, &c.plan}) {
      const auto& ks = step == &c.plan ? c.k : c.hk;
      const auto& vs = step == &c.plan ? c.v : c.hv;
      auto dk = to_device(ks);
      auto dv = to_device(vs);
      auto slots = to_device(step->slot_mapping);
      ASSERT_EQ(write_kv(dk.get(), dv.get(), kvd, slots.get(), step->num_tokens(), pool.get(), c.block_size,
                         c.n_kv_heads, hd, nullptr),
                cudaSuccess);
    }
    const auto gpu_pool = to_host(pool, pool_elems);
    ASSERT_EQ(std::memcmp(gpu_pool.data(), cpu_pool.data(), pool_elems * 2), 0) << "KV pool bytes differ, hd " << hd;

    // Double reference from the fp16 pool.
    const int T = c.plan.num_tokens(), group = c.n_heads / c.n_kv_heads;
    std::vector<double> ref(T * qd, 0.0);
    for (int b = 0; b < c.plan.num_seqs(); ++b) {
      const auto table = c.plan.block_table(b);
      for (int t = c.plan.cu_seqlens[b]; t < c.plan.cu_seqlens[b + 1]; ++t) {
        const int ctx = c.plan.positions[t] + 1;
        for (int h = 0; h < c.n_heads; ++h) {
          std::vector<double> s(ctx);
          double mx = -1e300;
          for (int j = 0; j < ctx; ++j) {
            const cpu::KvScalar* kr = layer.key(table[j / c.block_size], h / group) + (j % c.block_size) * hd;
            double dot = 0.0;
            for (int i = 0; i < hd; ++i) dot += double(c.q[t * qd + h * hd + i]) * double(kr[i]);
            s[j] = dot / std::sqrt(double(hd));
            mx = std::max(mx, s[j]);
          }
          double sum = 0.0;
          for (double& e : s) sum += (e = std::exp(e - mx));
          for (int j = 0; j < ctx; ++j) {
            const cpu::KvScalar* vr = layer.value(table[j / c.block_size], h / group) + (j % c.block_size) * hd;
            for (int i = 0; i < hd; ++i) ref[t * qd + h * hd + i] += s[j] / sum * double(vr[i]);
          }
        }
      }
    }
    const PackedStep p = pack_step(c.plan);
    auto ints = to_device(p.data);
    auto dq = to_device(c.q);
    // Unsplit, the split the planner picks, the same per-row splits in a launch with room for the most
    // splits any row can have, then in launches of 5 tokens, and a forced 32-key split. The per-row
    // launches must agree bit for bit: a row's attention does not depend on its step.
    const AttentionSplit planned = choose_attention_split(p.max_context, T, c.n_heads, hd, c.block_size);
    ASSERT_GT(planned.num_splits, 1);
    std::vector<std::vector<float>> per_row;
    for (const AttentionSplit split : {AttentionSplit{1, 0}, planned, AttentionSplit{kMaxRowSplits, 0},
                                       AttentionSplit{kMaxRowSplits, 0, 5}, AttentionSplit{(p.max_context + 31) / 32, 32}}) {
      auto out = poisoned<float>(T * qd);
      DeviceBuffer<float> ws;
      ASSERT_TRUE(ws.allocate(std::max<size_t>(1, attention_workspace_floats(T, c.n_heads, hd, split)), "ws").ok());
      PagedAttentionArgs a;
      a.q = dq.get();
      a.q_stride = qd;
      a.out = out.get();
      a.kv = pool.get();
      a.positions = ints.get() + p.positions;
      a.token_seq = ints.get() + p.token_seq;
      a.block_tables = ints.get() + p.block_tables;
      a.max_blocks_per_seq = p.max_blocks_per_seq;
      a.num_tokens = T;
      a.n_heads = c.n_heads;
      a.n_kv_heads = c.n_kv_heads;
      a.head_dim = hd;
      a.block_size = c.block_size;
      a.scale = 1.0f / std::sqrt(float(hd));
      ASSERT_EQ(paged_attention(a, split, ws.get(), nullptr), cudaSuccess);
      const auto got = to_host(out, T * qd);
      EXPECT_LT(rel_l2(got, ref), 2e-5) << "hd " << hd << ", " << split.num_splits << " splits of " << split.split_len;
      if (split.num_splits > 1 && split.split_len == 0) per_row.push_back(got);
    }
    ASSERT_EQ(per_row.size(), 3u);
    for (size_t i = 1; i < per_row.size(); ++i) {
      EXPECT_EQ(0, std::memcmp(per_row[0].data(), per_row[i].data(), per_row[0].size() * sizeof(float))) << "hd " << hd;
    }

    // The CPU backend's attention on the same pool: ggml rounds q and p to fp16, so ~1e-3 apart.
    std::vector<float> cpu_out(T * qd);
    cpu::paged_attention(c.plan, c.q.data(), layer, c.n_heads, cpu::AttentionParams{.scale = 1.0f / std::sqrt(float(hd))},
                         cpu_out.data());
    EXPECT_LT(rel_l2(cpu_out, ref), 5e-3) << "the CPU reference itself, hd " << hd;
  }
}

TEST(CudaKernels, CopyKvBlocksCopiesEveryLayer) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  const int layers = 3, blocks = 10;
  const std::vector<int32_t> pairs = {2, 7, 5, 0, 9, 3};
  auto dp = to_device(pairs);
  for (const int64_t block_elems : {int64_t(2 * 2 * 16 * 64), int64_t(2 * 1 * 3 * 5)}) {  // 16-byte and odd sizes
    std::vector<uint16_t> host(layers * blocks * block_elems);
    std::mt19937 rng(3);
    for (auto& x : host) x = static_cast<uint16_t>(rng());
    auto pool = to_device(host);
    ASSERT_EQ(copy_kv_blocks(pool.get(), blocks * block_elems, layers, block_elems, dp.get(), 3, nullptr), cudaSuccess);
    auto want = host;
    for (int l = 0; l < layers; ++l) {
      for (size_t p = 0; p < pairs.size(); p += 2) {
        std::copy_n(&host[(l * blocks + pairs[p]) * block_elems], block_elems,
                    &want[(l * blocks + pairs[p + 1]) * block_elems]);
      }
    }
    EXPECT_EQ(to_host(pool, host.size()), want) << "block of " << block_elems << " elements";
  }
}

TEST(CudaKernels, BadArgumentsAndHugeAllocationsAreErrorsNotCrashes) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  PagedAttentionArgs a;
  a.num_tokens = 1;
  a.head_dim = 300;
  a.n_heads = a.n_kv_heads = 1;
  EXPECT_EQ(paged_attention(a, AttentionSplit{}, nullptr, nullptr), cudaErrorInvalidValue);
  DeviceBuffer<float> huge;
  Status s = huge.allocate(size_t(1) << 45, "an absurd buffer");  // 128 TiB
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::ResourceExhausted);
  EXPECT_NE(s.message().find("cudaMalloc"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("an absurd buffer"), std::string::npos) << s.message();
  // The failure is not sticky: the device still works.
  DeviceBuffer<float> small;
  EXPECT_TRUE(small.allocate(1024, "a small buffer").ok());
}

}  // namespace
}  // namespace pagoda::engine::cuda
