// Every registered family against llama.cpp (golden data: tools/golden/make_arch_golden.py), on the small
// random-weight models `pagoda make-model` writes for it: the test writes the same file again (its hash
// is in the golden data), then
//  - teacher forcing: top-1 of every position, each sequence in one step (the batched matmul path);
//  - greedy: the continuation of each prompt, one decode step per token (the GEMV path).
// The CPU backend rounds as ggml does (its int8 lanes, its repacked Q4_0, its F16/F32 dot products), so
// every token must be llama.cpp's, near-ties included (those within kNearTie are counted apart: a
// difference there would point at a last-bit rounding, elsewhere at a wrong op).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/loaded_model.h"
#include "engine/model/random_model.h"
#include "engine/sampling/sampler.h"
#include "engine/single_sequence.h"
#include "tests/test_env.h"

namespace pagoda::engine {
namespace {

constexpr double kNearTie = 1e-3;

std::string fnv1a64(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t h = 0xCBF29CE484222325ull;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof(buf));
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<uint8_t>(buf[i]);
      h *= 0x100000001B3ull;
    }
  }
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
  return out;
}

GgmlType weight_type(const std::string& name) {
  static const std::map<std::string, GgmlType> kTypes = {
      {"q4_0", GgmlType::Q4_0}, {"q4_1", GgmlType::Q4_1}, {"q8_0", GgmlType::Q8_0}, {"f16", GgmlType::F16},
      {"f32", GgmlType::F32}};
  return kTypes.at(name);
}

nlohmann::json golden() {
  std::ifstream in(test::data_path("arch_golden.json"));
  EXPECT_TRUE(in.good()) << "missing tests/data/arch_golden.json";
  return nlohmann::json::parse(in);
}

// The golden file's model, written again and loaded on the CPU backend.
LoadedModel load_golden_model(const nlohmann::json& m) {
  auto spec = random_model_preset(m.at("preset").get<std::string>());
  EXPECT_TRUE(spec.has_value()) << m.at("preset");
  if (!spec) return {};
  if (m.contains("vocab")) {  // a real vocabulary from llama.cpp's models/ (phi3 needs its special tokens)
    const std::string vocab = std::string(PAGODA_LLAMA_MODELS_DIR) + "/" + m.at("vocab").get<std::string>();
    Status v = use_vocabulary(*spec, vocab);
    EXPECT_TRUE(v.ok()) << v.message() << " (cmake/llama_jinja.cmake unpacks it)";
    if (!v.ok()) return {};
  }
  spec->weight_type = weight_type(m.at("type"));
  spec->seed = m.at("seed");
  const std::string path = ::testing::TempDir() + "/pagoda_golden_" + spec->name + "_" + m.at("type").get<std::string>() + ".gguf";
  Status w = write_random_llama(*spec, path);
  EXPECT_TRUE(w.ok()) << w.message();
  EXPECT_EQ(fnv1a64(path), m.at("fnv1a64").get<std::string>())
      << "make-model no longer writes the file the golden data was made from: regenerate it";
  LoadOptions lo;
  lo.kv_tokens = 1024;
  auto loaded = load_model(path, lo);
  std::filesystem::remove(path);  // the mapping stays valid
  EXPECT_TRUE(loaded.ok()) << loaded.message();
  if (!loaded.ok()) return {};
  return std::move(loaded.value());
}

TEST(ArchitectureGolden, EveryFamilyMatchesLlamaCpp) {
  const nlohmann::json doc = golden();
  std::map<std::string, int> families;
  for (const auto& m : doc.at("models")) {
    const std::string label = m.at("preset").get<std::string>() + " " + m.at("type").get<std::string>();
    SCOPED_TRACE(label);
    LoadedModel model = load_golden_model(m);
    ASSERT_NE(model.backend, nullptr);
    EXPECT_EQ(model.config().architecture, m.at("architecture").get<std::string>());
    // A llama file with experts is Mixtral's family.
    const bool mixtral = model.config().architecture == "llama" && model.config().ops.moe;
    ++families[mixtral ? std::string("llama+experts") : model.config().architecture];
    const int32_t vocab = model.config().vocab_size;
    int positions = 0, differ = 0, differ_near_tie = 0, greedy_same = 0, cases = 0, same_bits = 0;
    for (const auto& c : m.at("cases")) {
      const auto tokens = c.at("tokens").get<std::vector<int32_t>>();
      const auto top1 = c.at("top1").get<std::vector<int32_t>>();
      const auto margin = c.at("margin").get<std::vector<double>>();
      const auto logit = c.at("logit").get<std::vector<std::string>>();
      const auto greedy = c.at("greedy").get<std::vector<int32_t>>();
      const int32_t n_prompt = c.at("n_prompt");
      ++cases;

      SingleSequence all(*model.backend, vocab, static_cast<int32_t>(tokens.size()));
      auto logits = all.run(tokens, /*all_logits=*/true);
      ASSERT_TRUE(logits.ok()) << logits.message();
      for (size_t i = 0; i < tokens.size(); ++i) {
        ++positions;
        const int32_t top = argmax(logits.value().subspan(i * vocab, vocab));
        uint32_t bits;
        std::memcpy(&bits, &logits.value()[i * vocab + top1[i]], 4);
        char hex[9];
        std::snprintf(hex, sizeof(hex), "%08x", bits);
        same_bits += logit[i] == hex;
        if (top == top1[i]) continue;
        ++differ;
        if (margin[i] < kNearTie) ++differ_near_tie;
        std::printf("  %s %s position %zu: pagoda %d, llama.cpp %d (llama.cpp margin %.5f)\n", label.c_str(),
                    c.at("name").get<std::string>().c_str(), i, top, top1[i], margin[i]);
      }

      SingleSequence one(*model.backend, vocab, n_prompt + static_cast<int32_t>(greedy.size()));
      auto step = one.run(std::span(tokens).first(n_prompt));
      ASSERT_TRUE(step.ok()) << step.message();
      std::vector<int32_t> out;
      while (true) {
        out.push_back(argmax(step.value()));
        if (out.size() == greedy.size()) break;
        step = one.run(std::span(&out.back(), 1));
        ASSERT_TRUE(step.ok()) << step.message();
      }
      if (out == greedy) {
        ++greedy_same;
      } else {
        std::printf("  %s %s: greedy differs from token %zu on\n", label.c_str(), c.at("name").get<std::string>().c_str(),
                    static_cast<size_t>(std::mismatch(out.begin(), out.end(), greedy.begin()).first - out.begin()));
      }
    }
    if (model.config().sliding_window > 0) {
      // The window is exercised: the same model with a window wider than the sequence gives the same
      // logits before the window's end and different ones after it.
      const auto& c = m.at("cases").back();
      const auto tokens = c.at("tokens").get<std::vector<int32_t>>();
      const int32_t window = model.config().sliding_window;
      ASSERT_GT(static_cast<int32_t>(tokens.size()), window + 16) << "the longest case does not pass the window";
      SingleSequence windowed(*model.backend, vocab, static_cast<int32_t>(tokens.size()));
      auto with = windowed.run(tokens, /*all_logits=*/true);
      ASSERT_TRUE(with.ok());
      const std::vector<float> with_window(with.value().begin(), with.value().end());
      model.weights->config.sliding_window = 1 << 20;
      SingleSequence unwindowed(*model.backend, vocab, static_cast<int32_t>(tokens.size()));
      auto without = unwindowed.run(tokens, /*all_logits=*/true);
      model.weights->config.sliding_window = window;
      ASSERT_TRUE(without.ok());
      const size_t inside = static_cast<size_t>(window) * vocab;
      EXPECT_TRUE(std::equal(with_window.begin(), with_window.begin() + inside, without.value().begin()));
      EXPECT_FALSE(std::equal(with_window.begin() + inside, with_window.end(), without.value().begin() + inside));
    }
    std::printf("%-16s teacher-forced top-1 differs at %d of %d positions (%d of them near-ties), its logit has "
                "llama.cpp's bits at %d; greedy identical %d / %d\n",
                label.c_str(), differ, positions, differ_near_tie, same_bits, greedy_same, cases);
    EXPECT_EQ(differ - differ_near_tie, 0) << "top-1 differs where llama.cpp's lead is clear";
    EXPECT_EQ(differ_near_tie, 0) << "top-1 differs at near-ties: a rounding is not ggml's";
    EXPECT_EQ(greedy_same, cases) << "a greedy continuation differs";
    EXPECT_EQ(same_bits, positions) << "a logit differs from llama.cpp's in its last bits";
  }
  for (const char* family : {"llama", "llama+experts", "qwen2", "qwen3", "qwen3moe", "phi3", "gemma2", "gemma3"}) {
    EXPECT_GE(families[family], 1) << family << " has no golden model";
  }
}

}  // namespace
}  // namespace pagoda::engine
