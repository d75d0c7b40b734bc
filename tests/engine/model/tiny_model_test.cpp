// The tiny random Llama (engine/model/random_model.h): it loads (weights, tokenizer, CPU backend),
// broken variants give errors naming what is wrong, and the CPU forward pass matches a naive
// double-precision reference forward (tests/reference_forward.h) from the dequantized weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "engine/gguf/gguf_writer.h"
#include "engine/loaded_model.h"
#include "engine/model/model_weights.h"
#include "engine/model/random_model.h"
#include "engine/sampling/sampler.h"
#include "engine/single_sequence.h"
#include "tests/reference_forward.h"

namespace pagoda::engine {
namespace {

RandomModelSpec tiny(GgmlType type = GgmlType::Q8_0, bool tied = false) {
  RandomModelSpec s = *random_model_preset("tiny");
  s.weight_type = type;
  s.tied_embeddings = tied;
  return s;
}

// Builds the tiny model, lets `edit` break it, and indexes the weights from the bytes.
struct Parsed {
  std::vector<uint8_t> bytes;  // must outlive the weights
  Result<std::shared_ptr<ModelWeights>> weights = Status::error("not loaded");
};

std::unique_ptr<Parsed> parse_edited(const std::function<void(GgufWriter&)>& edit) {
  auto p = std::make_unique<Parsed>();
  auto w = random_llama_writer(tiny());
  EXPECT_TRUE(w.ok()) << w.message();
  if (!w.ok()) return p;
  edit(w.value());
  auto bytes = w.value().to_bytes();
  EXPECT_TRUE(bytes.ok()) << bytes.message();
  if (!bytes.ok()) return p;
  p->bytes = std::move(bytes.value());
  auto f = GgufFile::parse(p->bytes, "tiny.gguf");
  EXPECT_TRUE(f.ok()) << f.message();
  if (!f.ok()) return p;
  p->weights = model_weights_from_gguf(std::move(f.value()));
  return p;
}

void expect_error(const std::unique_ptr<Parsed>& p, std::initializer_list<const char*> parts) {
  ASSERT_FALSE(p->weights.ok());
  for (const char* part : parts) {
    EXPECT_NE(p->weights.message().find(part), std::string::npos) << "'" << part << "' not in: " << p->weights.message();
  }
}

TEST(TinyModelWeights, TheUneditedModelIndexes) {
  auto p = parse_edited([](GgufWriter&) {});
  ASSERT_TRUE(p->weights.ok()) << p->weights.message();
  const ModelConfig& c = p->weights.value()->config;
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.ffn_dim, 128);
  EXPECT_EQ(c.vocab_size, 320);
  EXPECT_EQ(c.context_length, 256);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(random_model_param_count(tiny()), 2 * 320 * 64 + 64 + 2 * (2 * 64 + 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128));
}

TEST(TinyModelWeights, UnsupportedArchitectureIsNamed) {
  auto p = parse_edited([](GgufWriter& w) { w.set_string("general.architecture", "gpt2"); });
  expect_error(p, {"tiny.gguf", "unsupported architecture", "gpt2"});
}

TEST(TinyModelWeights, MissingTensorIsNamed) {
  auto p = parse_edited([](GgufWriter& w) { ASSERT_TRUE(w.remove_tensor("blk.1.ffn_up.weight")); });
  expect_error(p, {"tiny.gguf", "missing tensor", "blk.1.ffn_up.weight"});
}

TEST(TinyModelWeights, WrongDimsNameTensorDimsAndExpected) {
  auto p = parse_edited([](GgufWriter& w) {
    ASSERT_TRUE(w.remove_tensor("blk.0.attn_k.weight"));
    // {64, 64} where GQA with 2 kv heads of 16 wants {64, 32}.
    ASSERT_TRUE(w.add_tensor("blk.0.attn_k.weight", GgmlType::Q8_0, {64, 64}, std::vector<uint8_t>(64 * 2 * 34)).ok());
  });
  expect_error(p, {"blk.0.attn_k.weight", "{64, 64}", "expected {64, 32}"});
}

TEST(TinyModelWeights, HeadCountNotAMultipleOfKvHeads) {
  auto p = parse_edited([](GgufWriter& w) { w.set_u32("llama.attention.head_count_kv", 3); });
  expect_error(p, {"head_count 4", "head_count_kv 3"});
}

// ---- the naive reference forward (double precision, from dequantized weights) ----

using reference::reference_logits;


std::string tiny_path(const RandomModelSpec& s) {
  return ::testing::TempDir() + "/pagoda_" + s.name + "_" + ggml_type_name(static_cast<uint32_t>(s.weight_type)) +
         (s.tied_embeddings ? "_tied" : "") + ".gguf";
}

LoadedModel load_tiny(const RandomModelSpec& s) {
  const std::string path = tiny_path(s);
  Status w = write_random_llama(s, path);
  EXPECT_TRUE(w.ok()) << w.message();
  LoadOptions lo;
  lo.kv_tokens = 256;
  auto m = load_model(path, lo);
  EXPECT_TRUE(m.ok()) << m.message();
  std::filesystem::remove(path);  // the mapping stays valid
  if (!m.ok()) return LoadedModel{};
  return std::move(m.value());
}

const std::vector<int32_t> kPrompt = {318, 104, 101, 108, 108, 111, 32, 300, 5, 77, 250, 319};

void check_forward(const RandomModelSpec& spec) {
  LoadedModel m = load_tiny(spec);
  ASSERT_NE(m.backend, nullptr);
  const ModelConfig& c = m.config();
  ASSERT_EQ(c.head_dim, random_model_head_dim(spec));
  ASSERT_EQ(c.tied_embeddings, spec.tied_embeddings);
  const int32_t vocab = c.vocab_size;
  const std::vector<std::vector<double>> ref = reference_logits(*m.weights, kPrompt);

  SingleSequence seq(*m.backend, vocab, 64);
  auto got = seq.run(kPrompt, /*all_logits=*/true);
  ASSERT_TRUE(got.ok()) << got.message();
  ASSERT_EQ(got.value().size(), kPrompt.size() * vocab);
  const std::vector<float> one_shot_last(got.value().end() - vocab, got.value().end());
  int checked_top1 = 0;
  for (size_t p = 0; p < kPrompt.size(); ++p) {
    const std::span<const float> row = got.value().subspan(p * vocab, vocab);
    double max_ref = 0.0, max_diff = 0.0;
    for (int32_t i = 0; i < vocab; ++i) {
      max_ref = std::max(max_ref, std::fabs(ref[p][i]));
      max_diff = std::max(max_diff, std::fabs(ref[p][i] - row[i]));
    }
    std::vector<int32_t> order(vocab);
    for (int32_t i = 0; i < vocab; ++i) order[i] = i;
    std::partial_sort(order.begin(), order.begin() + 2, order.end(),
                      [&](int32_t a, int32_t b) { return ref[p][a] > ref[p][b]; });
    const double margin = ref[p][order[0]] - ref[p][order[1]];
    const int32_t top = argmax(row);
    std::printf("  %s pos %2zu: max|ref| %.3f max|diff| %.4f ref top %d (margin %.3f) engine top %d\n",
                ggml_type_name(static_cast<uint32_t>(spec.weight_type)), p, max_ref, max_diff, order[0], margin, top);
    EXPECT_LE(max_diff, 0.05 * max_ref + 1e-3) << "position " << p;
    if (margin > 0.1) {
      ++checked_top1;
      EXPECT_EQ(top, order[0]) << "position " << p << " (reference margin " << margin << ")";
    }
  }
  EXPECT_GT(checked_top1, 0) << "no position had a clear reference top-1";

  // The same prompt in two chunks (7 + 5 tokens) gives the same last logits.
  seq.reset();
  const std::span<const int32_t> prompt(kPrompt);
  ASSERT_TRUE(seq.run(prompt.first(7)).ok());
  auto last = seq.run(prompt.subspan(7));
  ASSERT_TRUE(last.ok()) << last.message();
  ASSERT_EQ(last.value().size(), static_cast<size_t>(vocab));
  double scale = 0.0, diff = 0.0;
  for (int32_t i = 0; i < vocab; ++i) {
    scale = std::max(scale, static_cast<double>(std::fabs(one_shot_last[i])));
    diff = std::max(diff, static_cast<double>(std::fabs(one_shot_last[i] - last.value()[i])));
  }
  EXPECT_LE(diff, 1e-4 * std::max(1.0, scale)) << "chunked prefill differs from one-shot";
}

TEST(TinyModelForward, Q8_0UntiedMatchesTheReference) { check_forward(tiny(GgmlType::Q8_0, /*tied=*/false)); }

TEST(TinyModelForward, Q4_1TiedMatchesTheReference) { check_forward(tiny(GgmlType::Q4_1, /*tied=*/true)); }

// qwen2: Q/K/V biases (large, std 0.5), half-split RoPE, tied embeddings.
TEST(TinyModelForward, Qwen2WithAttentionBiasesMatchesTheReference) {
  check_forward(*random_model_preset("qwen2-tiny"));
}

// qwen3: per-head Q/K RMSNorm before RoPE, heads of 32 with d_model 64 (q_dim 128 != d_model).
TEST(TinyModelForward, Qwen3WithQkNormAndWideHeadsMatchesTheReference) {
  check_forward(*random_model_preset("qwen3-tiny"));
}

// A mixture-of-experts preset in F32 (with int8 rounding a near-tie between the second and third expert
// can route differently from the f64 reference, a jump no tolerance covers; the golden test checks the
// quantized types against llama.cpp) matches the reference, and its routing spreads: every expert gets
// tokens (2 layers x 64 tokens x 2 choices over 8 experts).
void check_moe_forward(const char* preset) {
  RandomModelSpec spec = *random_model_preset(preset);
  spec.weight_type = GgmlType::F32;
  check_forward(spec);
  LoadedModel m = load_tiny(spec);
  ASSERT_NE(m.weights, nullptr);
  EXPECT_TRUE(m.config().ops.moe);
  std::vector<int32_t> tokens;
  for (int32_t i = 0; i < 64; ++i) tokens.push_back((i * 37 + 11) % 318);
  std::vector<int> hits;
  reference_logits(*m.weights, tokens, &hits);
  ASSERT_EQ(hits.size(), 8u);
  for (size_t e = 0; e < hits.size(); ++e) EXPECT_GT(hits[e], 0) << "expert " << e << " never chosen";
}

// qwen3moe: qwen3's attention, then eight routed experts of which each token takes two.
TEST(TinyModelForward, Qwen3MoeMatchesTheReference) { check_moe_forward("qwen3moe-tiny"); }

// Mixtral (llama with experts): interleaved RoPE, no Q/K norms, experts feed_forward_length wide.
TEST(TinyModelForward, MixtralMatchesTheReference) { check_moe_forward("mixtral-tiny"); }

// profile_ops: every step's time lands in the kinds of operation the model has (a MoE model's routing,
// dispatch and experts, no dense FFN; a dense model the reverse), a take zeroes the profile, and the
// logits are those of a backend that does not profile (which reports nothing).
TEST(TinyModelForward, OpProfileTimesTheModelsOwnKindsOfOperation) {
  for (const char* preset : {"qwen3moe-tiny", "qwen2-tiny"}) {
    SCOPED_TRACE(preset);
    LoadedModel m = load_tiny(*random_model_preset(preset));
    ASSERT_NE(m.weights, nullptr);
    const bool moe = m.config().ops.moe;
    CpuBackendOptions profiled;
    profiled.profile_ops = true;
    auto backend = make_cpu_backend(profiled);
    ASSERT_TRUE(backend->load(m.weights).ok());
    ASSERT_TRUE(backend->allocate_kv({8, 16}).ok());
    const int32_t vocab = m.config().vocab_size;
    SingleSequence seq(*backend, vocab, 64);
    auto got = seq.run(kPrompt, /*all_logits=*/true);
    ASSERT_TRUE(got.ok()) << got.message();
    const std::vector<float> profiled_logits(got.value().begin(), got.value().end());
    ASSERT_TRUE(seq.run(std::vector<int32_t>{7}).ok());  // a decode step

    const OpProfile p = backend->take_op_profile();
    EXPECT_EQ(p.steps, 2);
    std::map<std::string, double> secs(p.seconds.begin(), p.seconds.end());
    ASSERT_EQ(secs.size(), p.seconds.size()) << "a kind named twice";
    for (const char* kind : {"embed", "norms", "attn_matmuls", "attention", "lm_head"}) {
      EXPECT_GT(secs[kind], 0.0) << kind;
    }
    for (const char* kind : {"moe_routing", "moe_dispatch", "moe_experts"}) {
      if (moe) {
        EXPECT_GT(secs[kind], 0.0) << kind;
      } else {
        EXPECT_EQ(secs[kind], 0.0) << kind;
      }
    }
    EXPECT_EQ(secs["ffn"] > 0.0, !moe);
    const OpProfile again = backend->take_op_profile();
    EXPECT_EQ(again.steps, 0);
    for (const auto& [kind, s] : again.seconds) EXPECT_EQ(s, 0.0) << kind;

    SingleSequence plain(*m.backend, vocab, 64);
    auto want = plain.run(kPrompt, /*all_logits=*/true);
    ASSERT_TRUE(want.ok()) << want.message();
    ASSERT_EQ(want.value().size(), profiled_logits.size());
    EXPECT_EQ(std::memcmp(want.value().data(), profiled_logits.data(), profiled_logits.size() * sizeof(float)), 0);
    EXPECT_TRUE(m.backend->take_op_profile().seconds.empty());
  }
}

// The llama-layout tiny model run with RopeStyle::HalfSplit set matches the reference forward computing
// that layout, and differs from the interleaved run (the flag is used).
TEST(TinyModelForward, HalfSplitRopeMatchesTheReference) {
  auto p = parse_edited([](GgufWriter&) {});
  ASSERT_TRUE(p->weights.ok()) << p->weights.message();
  std::shared_ptr<ModelWeights> w = p->weights.value();
  const std::vector<std::vector<double>> interleaved = reference_logits(*w, kPrompt);
  w->config.ops.rope = RopeStyle::HalfSplit;
  const std::vector<std::vector<double>> ref = reference_logits(*w, kPrompt);
  auto backend = make_cpu_backend({});
  ASSERT_TRUE(backend->load(w).ok());
  ASSERT_TRUE(backend->allocate_kv({8, 16}).ok());
  const int32_t vocab = w->config.vocab_size;
  SingleSequence seq(*backend, vocab, 64);
  auto got = seq.run(kPrompt, /*all_logits=*/true);
  ASSERT_TRUE(got.ok()) << got.message();
  double max_moved = 0.0;
  for (size_t pos = 0; pos < kPrompt.size(); ++pos) {
    double max_ref = 0.0, max_diff = 0.0;
    for (int32_t i = 0; i < vocab; ++i) {
      const double g = got.value()[pos * vocab + i];
      max_ref = std::max(max_ref, std::fabs(ref[pos][i]));
      max_diff = std::max(max_diff, std::fabs(ref[pos][i] - g));
      max_moved = std::max(max_moved, std::fabs(interleaved[pos][i] - ref[pos][i]));
    }
    EXPECT_LE(max_diff, 0.05 * max_ref + 1e-3) << "position " << pos;
  }
  EXPECT_GT(max_moved, 0.05) << "the two layouts gave the same logits: the test could not tell them apart";
}

// The window pool's memory: gemma3-tiny's windowed layers move out of the main pool's block bytes into
// the window pool's, and copies stay inside their own pool. A model without windowed layers has no
// window pool to give.
TEST(TinyModelKvCapacity, WindowedLayersMoveToTheWindowPool) {
  LoadedModel gemma = load_tiny(*random_model_preset("gemma3-tiny"));
  ASSERT_NE(gemma.backend, nullptr);
  Backend& b = *gemma.backend;
  ASSERT_GT(b.kv_window(), 0);
  const int64_t all_layers = b.kv_bytes_per_block();
  EXPECT_EQ(b.kv_bytes_per_window_block(), 0);
  ASSERT_TRUE(b.allocate_kv({8, 16, KvDtype::F16, 3}).ok());
  int32_t windowed = 0;
  for (int l = 0; l < gemma.config().n_layers; ++l) windowed += gemma.config().is_swa(l);
  ASSERT_GT(windowed, 0);
  EXPECT_EQ(b.kv_bytes_per_window_block(), all_layers / gemma.config().n_layers * windowed);
  EXPECT_EQ(b.kv_bytes_per_block() + b.kv_bytes_per_window_block(), all_layers);
  const std::pair<int32_t, int32_t> in_window[] = {{0, 2}}, past_window[] = {{0, 3}}, in_main[] = {{0, 7}};
  EXPECT_TRUE(b.copy_window_blocks(in_window).ok());
  EXPECT_FALSE(b.copy_window_blocks(past_window).ok());
  EXPECT_TRUE(b.copy_blocks(in_main).ok());

  LoadedModel llama = load_tiny(tiny());
  ASSERT_NE(llama.backend, nullptr);
  EXPECT_EQ(llama.backend->kv_window(), 0);
  const Status refused = llama.backend->allocate_kv({8, 16, KvDtype::F16, 3});
  EXPECT_NE(refused.message().find("no sliding-window layers"), std::string::npos) << refused.message();
}

TEST(TinyModelLoad, TokenizerLoadsAndRoundTripsBytes) {
  LoadedModel m = load_tiny(tiny());
  ASSERT_NE(m.tokenizer, nullptr);
  const Tokenizer& tok = *m.tokenizer;
  EXPECT_EQ(tok.vocab_size(), 320);
  EXPECT_EQ(tok.encode("hello", false, false), (std::vector<int32_t>{104, 101, 108, 108, 111}));
  const std::string text = "h\xC3\xA9llo \xE4\xB8\x96!";
  const std::vector<int32_t> ids = tok.encode(text, false, false);
  EXPECT_EQ(ids.size(), text.size());  // one token per byte: no merges
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.find_token("<|im_start|>"), 318);
  EXPECT_EQ(tok.find_token("<|im_end|>"), 319);
  EXPECT_TRUE(tok.is_control(319));
  EXPECT_EQ(tok.encode("<|im_end|>", false, true), (std::vector<int32_t>{319}));
  EXPECT_TRUE(tok.is_end_of_generation(319));
}

TEST(TinyModelLoad, EveryWeightTypeLoads) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::F16, GgmlType::F32}) {
    LoadedModel m = load_tiny(tiny(t));
    ASSERT_NE(m.backend, nullptr);
    SingleSequence seq(*m.backend, m.config().vocab_size, 16);
    auto logits = seq.run(std::vector<int32_t>{1, 2, 3});
    ASSERT_TRUE(logits.ok()) << logits.message();
    for (float v : logits.value()) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(TinyModelSpec, BadSpecsAreRejected) {
  RandomModelSpec s = tiny();
  s.weight_type = GgmlType::Q5_0;
  EXPECT_FALSE(validate_random_model_spec(s).ok());
  s = tiny();
  s.n_kv_heads = 3;
  EXPECT_FALSE(validate_random_model_spec(s).ok());
  s = tiny();
  s.vocab_size = 100;
  EXPECT_FALSE(validate_random_model_spec(s).ok());
  EXPECT_FALSE(random_model_preset("gpt-5").has_value());
  for (const std::string& n : random_model_preset_names()) {
    auto p = random_model_preset(n);
    ASSERT_TRUE(p.has_value()) << n;
    EXPECT_TRUE(validate_random_model_spec(*p).ok()) << n;
  }
  // Real shapes: the parameter counts of the models they imitate.
  EXPECT_NEAR(static_cast<double>(random_model_param_count(*random_model_preset("smollm2-135m"))), 134.5e6, 1e6);
  EXPECT_NEAR(static_cast<double>(random_model_param_count(*random_model_preset("llama3-8b"))), 8.03e9, 0.01e9);
  EXPECT_NEAR(static_cast<double>(random_model_param_count(*random_model_preset("llama2-7b"))), 6.74e9, 0.01e9);
  EXPECT_NEAR(static_cast<double>(random_model_param_count(*random_model_preset("qwen3-30b-a3b"))), 30.53e9, 0.05e9);
}

}  // namespace
}  // namespace pagoda::engine

namespace pagoda::engine {
namespace {

TEST(TinyModelKvCapacity, BytesFractionOrTokens) {
  LoadOptions o;
  o.kv_tokens = 100;
  o.block_size = 16;
  EXPECT_EQ(kv_blocks_for(o, 1000, 0).value(), 7);  // ceil(100 / 16)
  o.kv_memory_bytes = 10'000;
  EXPECT_EQ(kv_blocks_for(o, 1000, 0).value(), 10);  // bytes win over tokens
  o.kv_memory_bytes = 500;
  EXPECT_FALSE(kv_blocks_for(o, 1000, 0).ok());  // not even one block
  o.kv_memory_bytes = 0;
  o.kv_memory_fraction = 0.99;
  auto too_much = kv_blocks_for(o, 1000, 0);
  ASSERT_FALSE(too_much.ok());
  EXPECT_NE(too_much.message().find("0.95"), std::string::npos) << too_much.message();
  o.kv_memory_fraction = 0.01;
  EXPECT_EQ(kv_blocks_for(o, 1 << 20, int64_t(1) << 34).value(), 163);  // 1% of 16 GiB in 1 MiB blocks
  EXPECT_FALSE(kv_blocks_for(o, 1 << 20, 0).ok());                   // no memory available: an error
}

// The window pool (sliding-window layers): what window_pool_seqs sequences' windows and one step hold,
// never more blocks than the main pool; the memory options pay for it first.
TEST(TinyModelKvCapacity, WindowPoolSizedForItsSequences) {
  LoadOptions o;
  o.kv_tokens = 4096;
  o.block_size = 16;
  o.backend.max_step_tokens = 64;
  auto none = kv_pools_for(o, 1000, 500, 40, 0);  // no window_pool_seqs: every layer in the main pool
  EXPECT_EQ(none.value().num_blocks, 256);
  EXPECT_EQ(none.value().num_window_blocks, 0);
  o.window_pool_seqs = 8;
  // 8 x (ceil(39 / 16) + 2) + 64 / 16 = 44 window blocks beside the 256 the tokens ask for.
  auto tokens = kv_pools_for(o, 1000, 500, 40, 0);
  EXPECT_EQ(tokens.value().num_blocks, 256);
  EXPECT_EQ(tokens.value().num_window_blocks, 44);
  EXPECT_EQ(kv_pools_for(o, 1000, 0, 40, 0).value().num_window_blocks, 0);   // no windowed layer
  EXPECT_EQ(kv_pools_for(o, 1000, 500, 0, 0).value().num_window_blocks, 0);  // no window
  // Bytes: the window pool first (44 x 500), the rest in main blocks of 1000.
  o.kv_memory_bytes = 1'000'000;
  auto bytes = kv_pools_for(o, 1000, 500, 40, 0);
  EXPECT_EQ(bytes.value().num_window_blocks, 44);
  EXPECT_EQ(bytes.value().num_blocks, (1'000'000 - 44 * 500) / 1000);
  // A budget too small for both: the window pool no larger than the main one.
  o.kv_memory_bytes = 30'000;
  auto small = kv_pools_for(o, 1000, 500, 40, 0);
  EXPECT_EQ(small.value().num_window_blocks, 20);
  EXPECT_EQ(small.value().num_blocks, 20);
  o.kv_memory_bytes = 1000;
  EXPECT_FALSE(kv_pools_for(o, 1000, 500, 40, 0).ok());  // not one block of each
  // Every layer windowed: the main pool holds no bytes, only the block tables' bookkeeping; both get
  // what the memory holds.
  o.kv_memory_bytes = 100'000;
  auto all_windowed = kv_pools_for(o, 0, 500, 40, 0);
  EXPECT_EQ(all_windowed.value().num_blocks, 200);
  EXPECT_EQ(all_windowed.value().num_window_blocks, 200);
}

}  // namespace
}  // namespace pagoda::engine
