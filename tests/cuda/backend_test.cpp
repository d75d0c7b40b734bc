// The backend suite, run on every backend this build has: the same plans through `cpu` and `cuda`
// must give the same behaviour (ragged batches equal sequences alone, chunked prefill equals one
// shot, forked blocks continue identically, bad plans are errors). Then the CUDA backend against the
// CPU backend on random-weight models of real shapes: teacher-forced logits and batch invariance of
// greedy decoding. Numbers go to stdout and, when PAGODA_GPU_REPORT names a file, as JSON lines.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "engine/cpu/cpu_features.h"
#include "engine/model/random_model.h"
#include "engine/single_sequence.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/reference_forward.h"

namespace pagoda::engine::cuda {
namespace {

int32_t argmax(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

double max_abs(std::span<const float> a) {
  double m = 0.0;
  for (float x : a) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

double max_abs_diff(std::span<const float> a, std::span<const float> b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// A random-weight model kept in memory (the bytes outlive the weights that point into them).
struct MemoryModel {
  std::vector<uint8_t> bytes;
  std::shared_ptr<ModelWeights> weights;
};

std::unique_ptr<MemoryModel> memory_model(const RandomModelSpec& spec) {
  auto m = std::make_unique<MemoryModel>();
  auto w = random_llama_writer(spec);
  EXPECT_TRUE(w.ok()) << w.message();
  if (!w.ok()) return nullptr;
  auto bytes = w.value().to_bytes();
  EXPECT_TRUE(bytes.ok()) << bytes.message();
  if (!bytes.ok()) return nullptr;
  m->bytes = std::move(bytes.value());
  auto f = GgufFile::parse(m->bytes, spec.name + ".gguf");
  EXPECT_TRUE(f.ok()) << f.message();
  if (!f.ok()) return nullptr;
  auto mw = model_weights_from_gguf(std::move(f.value()));
  EXPECT_TRUE(mw.ok()) << mw.message();
  if (!mw.ok()) return nullptr;
  m->weights = std::move(mw.value());
  return m;
}

std::unique_ptr<Backend> loaded_backend(const std::string& name, const MemoryModel& m, int32_t num_blocks) {
  std::unique_ptr<Backend> b = name == "cuda" ? make_cuda_backend({}) : make_cpu_backend({});
  Status s = b->load(m.weights);
  EXPECT_TRUE(s.ok()) << s.message();
  if (!s.ok()) return nullptr;
  s = b->allocate_kv({num_blocks, 16});
  EXPECT_TRUE(s.ok()) << s.message();
  return s.ok() ? std::move(b) : nullptr;
}

std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

class BackendSuite : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda") PAGODA_REQUIRE_GPU_OR_SKIP();
    model_ = memory_model(*random_model_preset("tiny"));
    ASSERT_NE(model_, nullptr);
    backend_ = loaded_backend(GetParam(), *model_, 64);
    ASSERT_NE(backend_, nullptr);
    vocab_ = model_->weights->config.vocab_size;
  }
  // Rows may differ by the backend's rounding of a different batch shape: 1e-3 of the logit scale.
  void expect_same_row(std::span<const float> got, std::span<const float> want, const std::string& what) {
    EXPECT_EQ(argmax(got), argmax(want)) << what;
    EXPECT_LE(max_abs_diff(got, want), 1e-3 * std::max(1.0, max_abs(want))) << what;
  }
  std::unique_ptr<MemoryModel> model_;
  std::unique_ptr<Backend> backend_;
  int32_t vocab_ = 0;
};

TEST_P(BackendSuite, KvBlockBytesCoverEveryLayerKAndV) {
  const ModelConfig& c = model_->weights->config;
  EXPECT_EQ(backend_->kv_bytes_per_block(), int64_t(2) * c.n_kv_heads * 16 * c.head_dim * 2 * c.n_layers);
  EXPECT_EQ(backend_->kv_shape().num_blocks, 64);
}

TEST_P(BackendSuite, RaggedBatchEqualsSequencesRunAlone) {
  const std::vector<int> lengths = {13, 1, 40, 7};
  std::vector<std::vector<float>> alone;
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < lengths.size(); ++i) {
    prompts.push_back(random_tokens(lengths[i], vocab_, 100 + i));
    SingleSequence seq(*backend_, vocab_, 48);
    auto r = seq.run(prompts.back());
    ASSERT_TRUE(r.ok()) << r.message();
    alone.emplace_back(r.value().begin(), r.value().end());
  }
  StepPlanBuilder builder(16);
  int32_t next = 10;  // after the blocks SingleSequence used
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int32_t> table;
    for (int b = 0; b < (lengths[i] + 15) / 16; ++b) table.push_back(next++);
    builder.add_sequence(i, prompts[i], 0, table);
  }
  const StepPlan plan = builder.build();
  std::vector<float> logits(plan.logits_indices.size() * vocab_);
  Status s = backend_->execute(plan, logits);
  ASSERT_TRUE(s.ok()) << s.message();
  for (size_t i = 0; i < prompts.size(); ++i) {
    expect_same_row(std::span<const float>(logits).subspan(i * vocab_, vocab_), alone[i], "sequence " + std::to_string(i));
  }
}

TEST_P(BackendSuite, ChunkedPrefillAndDecodeEqualOneShotTeacherForcing) {
  const auto tokens = random_tokens(30, vocab_, 7);
  SingleSequence one(*backend_, vocab_, 32);
  auto all = one.run(tokens, /*all_logits=*/true);
  ASSERT_TRUE(all.ok()) << all.message();
  const std::vector<float> ref(all.value().begin(), all.value().end());
  SingleSequence chunked(*backend_, vocab_, 32);
  const std::span<const int32_t> t(tokens);
  ASSERT_TRUE(chunked.run(t.first(17)).ok());  // crosses a block boundary
  for (size_t p = 17; p < tokens.size(); ++p) {
    auto r = chunked.run(t.subspan(p, 1));
    ASSERT_TRUE(r.ok()) << r.message();
    expect_same_row(r.value(), std::span<const float>(ref).subspan(p * vocab_, vocab_), "position " + std::to_string(p));
  }
}

TEST_P(BackendSuite, CopiedBlocksContinueAForkIdentically) {
  const auto tokens = random_tokens(20, vocab_, 9);
  StepPlanBuilder b1(16);
  b1.add_sequence(1, tokens, 0, std::vector<int32_t>{3, 4});
  const StepPlan prefill = b1.build();
  std::vector<float> logits(vocab_);
  ASSERT_TRUE(backend_->execute(prefill, logits).ok());
  const std::vector<std::pair<int32_t, int32_t>> pairs = {{3, 8}, {4, 9}};
  ASSERT_TRUE(backend_->copy_blocks(pairs).ok());
  std::vector<std::vector<float>> next;
  for (const std::vector<int32_t>& table : {std::vector<int32_t>{3, 4}, std::vector<int32_t>{8, 9}}) {
    StepPlanBuilder b(16);
    b.add_sequence(1, std::vector<int32_t>{5}, 20, table);
    const StepPlan step = b.build();
    ASSERT_TRUE(backend_->execute(step, logits).ok());
    next.push_back(logits);
  }
  EXPECT_EQ(next[0], next[1]) << "the fork reads the copied blocks";
  // Pairs apply in order: 3 -> 11, then 11 -> 12 copies what the first pair wrote (and 4 -> 13).
  const std::vector<std::pair<int32_t, int32_t>> chain = {{3, 11}, {11, 12}, {4, 13}};
  ASSERT_TRUE(backend_->copy_blocks(chain).ok());
  StepPlanBuilder b(16);
  b.add_sequence(1, std::vector<int32_t>{5}, 20, std::vector<int32_t>{12, 13});
  const StepPlan step = b.build();
  ASSERT_TRUE(backend_->execute(step, logits).ok());
  EXPECT_EQ(logits, next[0]) << "a chained copy reads what the earlier pair wrote";
  const std::vector<std::pair<int32_t, int32_t>> outside = {{3, 64}};
  Status s = backend_->copy_blocks(outside);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("outside the pool"), std::string::npos) << s.message();
}

// The engine loop runs steps on its own thread, not the one that loaded the model.
TEST_P(BackendSuite, StepsRunFromAnotherThread) {
  const auto tokens = random_tokens(9, vocab_, 4);
  SingleSequence here(*backend_, vocab_, 16);
  auto r = here.run(tokens);
  ASSERT_TRUE(r.ok()) << r.message();
  const std::vector<float> want(r.value().begin(), r.value().end());
  std::vector<float> got;
  Status status;
  std::thread([&] {
    SingleSequence there(*backend_, vocab_, 16);
    auto t = there.run(tokens);
    status = t.status();
    if (t.ok()) got.assign(t.value().begin(), t.value().end());
  }).join();
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(got, want);
}

TEST_P(BackendSuite, InvalidPlansAreErrorsAndTheBackendKeepsWorking) {
  StepPlanBuilder b(16);
  b.add_sequence(1, random_tokens(5, vocab_, 3), 0, std::vector<int32_t>{2});
  StepPlan plan = b.build();
  std::vector<float> logits(vocab_);
  StepPlan bad = plan;
  bad.slot_mapping[0] = 64 * 16 + 3;  // outside the pool
  EXPECT_FALSE(backend_->execute(bad, logits).ok());
  bad = plan;
  bad.token_ids[1] = vocab_;  // not a token
  EXPECT_FALSE(backend_->execute(bad, logits).ok());
  std::vector<float> small(vocab_ - 1);
  Status s = backend_->execute(plan, small);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("logits buffer"), std::string::npos) << s.message();
  s = backend_->execute(plan, logits);
  EXPECT_TRUE(s.ok()) << s.message();
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendSuite, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return info.param; });

// Decode steps replayed from CUDA graphs give the eager steps' logits bit for bit: three sequences
// decoded together for 60 steps (contexts 5..94, so the padded block tables widen from 1 to 8 blocks
// and the attention split is replanned as contexts pass 64), then one alone; graphs really ran.
TEST(CudaGraphs, ReplayedDecodeStepsEqualEagerStepsBitForBit) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  auto model = memory_model(*random_model_preset("tiny"));
  ASSERT_NE(model, nullptr);
  const int32_t vocab = model->weights->config.vocab_size;
  for (bool decode_gemv : {false, true}) {
  SCOPED_TRACE(decode_gemv ? "few-row kernel" : "cuBLASLt");
  auto make = [&](int32_t graph_max_tokens) -> std::unique_ptr<Backend> {
    CudaBackendOptions o;
    o.graph_max_tokens = graph_max_tokens;
    o.decode_gemv = decode_gemv;
    auto b = make_cuda_backend(o);
    EXPECT_TRUE(b->load(model->weights).ok());
    EXPECT_TRUE(b->allocate_kv({64, 16}).ok());
    return b;
  };
  auto graphed = make(64), eager = make(0);
  const std::vector<std::vector<int32_t>> prompts = {random_tokens(5, vocab, 71), random_tokens(14, vocab, 72),
                                                     random_tokens(30, vocab, 73)};
  auto table = [](size_t i) {
    std::vector<int32_t> t;
    for (int b = 0; b < 8; ++b) t.push_back(static_cast<int32_t>(i * 8 + b));
    return t;
  };
  std::vector<int32_t> last(prompts.size());
  std::vector<float> a, b;
  const auto step_both = [&](const StepPlan& plan, const std::string& what) {
    a.assign(plan.logits_indices.size() * vocab, 0.0f);
    b.assign(a.size(), 1.0f);
    Status sa = graphed->execute(plan, a), sb = eager->execute(plan, b);
    ASSERT_TRUE(sa.ok()) << sa.message();
    ASSERT_TRUE(sb.ok()) << sb.message();
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << what;
  };
  {
    StepPlanBuilder pb(16);
    for (size_t i = 0; i < prompts.size(); ++i) pb.add_sequence(i, prompts[i], 0, table(i));
    step_both(pb.build(), "prefill");
    for (size_t i = 0; i < prompts.size(); ++i) last[i] = argmax(std::span<const float>(a).subspan(i * vocab, vocab));
  }
  for (int s = 0; s < 60; ++s) {
    StepPlanBuilder db(16);
    const size_t n = s < 50 ? prompts.size() : 1;  // the last steps: one sequence alone, another shape
    for (size_t i = 0; i < n; ++i) {
      db.add_sequence(i, std::span<const int32_t>(&last[i], 1), static_cast<int32_t>(prompts[i].size()) + s, table(i));
    }
    step_both(db.build(), "decode step " + std::to_string(s));
    for (size_t i = 0; i < n; ++i) last[i] = argmax(std::span<const float>(a).subspan(i * vocab, vocab));
  }
  const CudaGraphStats g = cuda_graph_stats(*graphed), e = cuda_graph_stats(*eager);
  std::printf("graphs: %lld captured, %lld replays, %lld kept\n", static_cast<long long>(g.captures),
              static_cast<long long>(g.replays), static_cast<long long>(g.cached));
  EXPECT_TRUE(g.enabled);
  EXPECT_GE(g.captures, 2);
  EXPECT_GE(g.replays, 50) << "most decode steps replay a graph";
  EXPECT_EQ(e.captures + e.replays, 0);
  }
}

// ---- CUDA against CPU on real shapes ----

void report(const std::string& json) {
  std::printf("REPORT %s\n", json.c_str());
  if (const char* path = std::getenv("PAGODA_GPU_REPORT")) std::ofstream(path, std::ios::app) << json << "\n";
}

struct ParityCase {
  const char* preset;
  int n_layers;  // 0 = the preset's
  GgmlType type;
  int reference_positions;  // how many leading positions the fp64 reference forward checks (0 = none)
  RopeStyle rope = RopeStyle::Interleaved;  // HalfSplit: set on the loaded config (no family uses it yet)
};

// Error of `got` against `want` over positions [0, n): relative L2, max and mean abs difference,
// top-1 agreement.
struct Agreement {
  double rel_l2 = 0, max_abs = 0, mean_abs = 0, top1 = 0;
};
template <class Want>
Agreement agreement(const std::vector<float>& got, const std::vector<Want>& want, int32_t vocab, size_t n) {
  Agreement a;
  double num = 0, den = 0, sum = 0;
  int same = 0;
  for (size_t p = 0; p < n; ++p) {
    size_t best_g = 0, best_w = 0;
    for (int32_t i = 0; i < vocab; ++i) {
      const size_t k = p * vocab + i;
      const double g = got[k], w = want[k], d = std::fabs(g - w);
      num += d * d;
      den += w * w;
      sum += d;
      a.max_abs = std::max(a.max_abs, d);
      if (got[k] > got[p * vocab + best_g]) best_g = i;
      if (want[k] > want[p * vocab + best_w]) best_w = i;
    }
    same += best_g == best_w;
  }
  a.rel_l2 = std::sqrt(num / den);
  a.mean_abs = sum / (double(n) * vocab);
  a.top1 = double(same) / n;
  return a;
}

std::string json(const char* name, const Agreement& a) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "\"%s\":{\"rel_l2\":%.6f,\"max_abs_diff\":%.5f,\"mean_abs_diff\":%.6f,\"top1\":%.4f}",
                name, a.rel_l2, a.max_abs, a.mean_abs, a.top1);
  return buf;
}

// Teacher-forced logits of one 64-token random prompt through the CUDA backend, the CPU backend's
// int8 path, its oneDNN bf16 path where this CPU has AVX-512, and (on the first positions) the
// fp64 reference forward of tests/reference_forward.h.
void check_parity(const ParityCase& pc) {
  RandomModelSpec spec = *random_model_preset(pc.preset);
  if (pc.n_layers > 0) spec.n_layers = pc.n_layers;
  spec.weight_type = pc.type;
  auto model = memory_model(spec);
  ASSERT_NE(model, nullptr);
  model->weights->config.ops.rope = pc.rope;
  const int32_t vocab = model->weights->config.vocab_size;
  const auto tokens = random_tokens(64, vocab, 42);
  auto run = [&](std::unique_ptr<Backend> backend, const char* name) {
    EXPECT_TRUE(backend->load(model->weights).ok());
    EXPECT_TRUE(backend->allocate_kv({8, 16}).ok());
    SingleSequence seq(*backend, vocab, 64);
    auto r = seq.run(tokens, /*all_logits=*/true);
    EXPECT_TRUE(r.ok()) << name << ": " << r.message();
    return r.ok() ? std::vector<float>(r.value().begin(), r.value().end()) : std::vector<float>();
  };
  const std::vector<float> gpu = run(make_cuda_backend({}), "cuda");
  const std::vector<float> cpu = run(make_cpu_backend({}), "cpu int8");
  ASSERT_EQ(gpu.size(), tokens.size() * vocab);
  ASSERT_EQ(cpu.size(), gpu.size());
  const Agreement vs_cpu = agreement(gpu, cpu, vocab, tokens.size());
  std::string line = std::string("{\"check\":\"teacher_forced_parity\",\"model\":\"") + pc.preset +
                     (pc.rope == RopeStyle::HalfSplit ? " (half-split rope)" : "") +
                     "\",\"layers\":" + std::to_string(spec.n_layers) + ",\"weights\":\"" +
                     ggml_type_name(static_cast<uint32_t>(spec.weight_type)) + "\",\"positions\":64," +
                     json("cuda_vs_cpu_int8", vs_cpu);
  if (cpu::cpu_features().avx512) {
    CpuBackendOptions o;
    o.prefill_matmul = PrefillMatmul::OnednnBf16;
    const std::vector<float> bf16 = run(make_cpu_backend(o), "cpu bf16");
    if (bf16.size() == gpu.size()) {
      line += "," + json("cuda_vs_cpu_bf16", agreement(gpu, bf16, vocab, tokens.size()));
      line += "," + json("cpu_int8_vs_cpu_bf16", agreement(cpu, bf16, vocab, tokens.size()));
    }
  }
  const size_t n_ref = static_cast<size_t>(pc.reference_positions);
  Agreement gpu_ref, cpu_ref;
  if (n_ref > 0) {
    const auto ref = reference::reference_logits(*model->weights, std::vector<int32_t>(tokens.begin(), tokens.begin() + n_ref));
    std::vector<double> flat;
    for (const auto& row : ref) flat.insert(flat.end(), row.begin(), row.end());
    gpu_ref = agreement(gpu, flat, vocab, n_ref);
    cpu_ref = agreement(cpu, flat, vocab, n_ref);
    line += ",\"reference_positions\":" + std::to_string(n_ref) + "," + json("cuda_vs_fp64", gpu_ref) + "," +
            json("cpu_int8_vs_fp64", cpu_ref);
  }
  line += "}";
  report(line);
  // Against the CPU's int8 path (activations quantized to 8 bits per 32-block): the two differ by
  // both sides' rounding, each ~1e-2 of the logits after 30 layers.
  EXPECT_LT(vs_cpu.rel_l2, 5e-2) << line;
  EXPECT_GE(vs_cpu.top1, 0.9) << line;
  // Against exact arithmetic on the same weights: bf16 weights and activations, fp32 accumulation.
  if (n_ref > 0) {
    EXPECT_LT(gpu_ref.rel_l2, 3e-2) << line;
    EXPECT_GE(gpu_ref.top1, 0.9) << line;
  }
}

TEST(CudaParity, TinyQ8_0TeacherForcedLogitsAgreeWithCpu) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  check_parity({"tiny", 0, GgmlType::Q8_0, 64});
}

TEST(CudaParity, TinyHalfSplitRopeTeacherForcedLogitsAgreeWithCpu) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  check_parity({"tiny", 0, GgmlType::Q8_0, 64, RopeStyle::HalfSplit});
}

TEST(CudaParity, Smollm2ShapeTeacherForcedLogitsAgreeWithCpu) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  check_parity({"smollm2-135m", 0, GgmlType::Q8_0, 24});
}

TEST(CudaParity, Llama3_8bShapeTeacherForcedLogitsAgreeWithCpu) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  if (!std::getenv("PAGODA_GPU_BIG")) GTEST_SKIP() << "set PAGODA_GPU_BIG=1 for the llama3-8b shape (scripts/gpu_check.sh does)";
  check_parity({"llama3-8b", 2, GgmlType::Q4_0, 4});  // every matrix of the real shape, 2 of its 32 layers
}

// 32 sequences decoded greedily together against each decoded alone: the share whose 16 tokens are
// the same.
double greedy_batch_invariance(const MemoryModel& model, bool decode_gemv) {
  const int32_t vocab = model.weights->config.vocab_size;
  constexpr int kSeqs = 32, kSteps = 16, kBlocksPerSeq = 4;
  CudaBackendOptions o;
  o.decode_gemv = decode_gemv;
  auto backend = make_cuda_backend(o);
  if (Status s = backend->load(model.weights); !s.ok()) return ADD_FAILURE() << s.message(), -1.0;
  if (Status s = backend->allocate_kv({kSeqs * kBlocksPerSeq + 8, 16}); !s.ok()) return ADD_FAILURE() << s.message(), -1.0;
  std::vector<std::vector<int32_t>> prompts, alone(kSeqs), together(kSeqs);
  for (int i = 0; i < kSeqs; ++i) prompts.push_back(random_tokens(8 + (i * 7) % 33, vocab, 500 + i));
  for (int i = 0; i < kSeqs; ++i) {
    SingleSequence seq(*backend, vocab, 64);
    auto r = seq.run(prompts[i]);
    if (!r.ok()) return ADD_FAILURE() << r.message(), -1.0;
    for (int s = 0; s < kSteps; ++s) {
      alone[i].push_back(argmax(r.value()));
      r = seq.run(std::span<const int32_t>(&alone[i].back(), 1));
      if (!r.ok()) return ADD_FAILURE() << r.message(), -1.0;
    }
  }
  auto table = [](int i) {
    std::vector<int32_t> t;
    for (int b = 0; b < kBlocksPerSeq; ++b) t.push_back(8 + i * kBlocksPerSeq + b);
    return t;
  };
  std::vector<float> logits(kSeqs * vocab);
  for (int s = 0; s <= kSteps; ++s) {
    StepPlanBuilder b(16);
    for (int i = 0; i < kSeqs; ++i) {
      const int32_t len = static_cast<int32_t>(prompts[i].size());
      if (s == 0) b.add_sequence(i, prompts[i], 0, table(i));
      else b.add_sequence(i, std::span<const int32_t>(&together[i].back(), 1), len + s - 1, table(i));
    }
    const StepPlan plan = b.build();
    if (Status st = backend->execute(plan, logits); !st.ok()) return ADD_FAILURE() << st.message(), -1.0;
    if (s == kSteps) break;
    for (int i = 0; i < kSeqs; ++i) together[i].push_back(argmax(std::span<const float>(logits).subspan(i * vocab, vocab)));
  }
  int same = 0;
  for (int i = 0; i < kSeqs; ++i) same += alone[i] == together[i];
  return double(same) / kSeqs;
}

// By default (cuBLASLt for every linear layer) 32 sequences decoded greedily together equal each
// decoded alone (same token streams), for at least 95% of them: a near-tie in attention's split
// combine can still flip. With --cuda-decode-kernel gemv the alone runs use another kernel than the
// batch of 32 and their tokens drift apart: that rate is reported, not asserted (the option says so).
TEST(CudaParity, ThirtyTwoConcurrentGreedySequencesEqualTheirAloneOutputs) {
  PAGODA_REQUIRE_GPU_OR_SKIP();
  auto model = memory_model(*random_model_preset("smollm2-135m"));
  ASSERT_NE(model, nullptr);
  const double rate = greedy_batch_invariance(*model, false);
  const double gemv_rate = greedy_batch_invariance(*model, true);
  report("{\"check\":\"batch_invariance\",\"model\":\"smollm2-135m\",\"sequences\":32,\"greedy_tokens\":16,"
         "\"identical_rate\":" + std::to_string(rate) + ",\"identical_rate_decode_gemv\":" + std::to_string(gemv_rate) + "}");
  EXPECT_GE(rate, 0.95);
  EXPECT_GE(gemv_rate, 0.0);  // ran without an error
}

}  // namespace
}  // namespace pagoda::engine::cuda
