// Fill-in-the-middle: the FIM markers found in real code-model vocabularies (llama.cpp's vocabulary-only
// GGUFs of StarCoder and DeepSeek-Coder, which name them differently and carry no fim_*_token_id keys), and
// the prefix-suffix-middle prompt llama.cpp's server builds from them.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/loaded_model.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/test_env.h"

namespace pagoda::engine {
namespace {

std::unique_ptr<Tokenizer> vocab(const std::string& name) {
  const std::string path = std::string(PAGODA_LLAMA_MODELS_DIR) + "/ggml-vocab-" + name + ".gguf";
  if (!std::filesystem::exists(path)) return nullptr;
  auto tok = load_tokenizer(path);
  EXPECT_TRUE(tok.ok()) << tok.message();
  return tok.ok() ? std::move(tok.value()) : nullptr;
}

struct Case {
  const char* vocab;
  const char* pre;
  const char* suf;
  const char* mid;
};

TEST(FillInTheMiddle, MarkersOfRealCodeVocabularies) {
  for (const Case& c : {Case{"starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"},
                        Case{"deepseek-coder", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"}}) {
    SCOPED_TRACE(c.vocab);
    auto tok = vocab(c.vocab);
    ASSERT_NE(tok, nullptr) << "ggml-vocab-" << c.vocab << ".gguf not unpacked in " << PAGODA_LLAMA_MODELS_DIR;
    ASSERT_TRUE(tok->has_fill_in_the_middle());
    const int32_t pre = tok->find_token(c.pre), suf = tok->find_token(c.suf), mid = tok->find_token(c.mid);
    ASSERT_GE(pre, 0);
    EXPECT_EQ(tok->spec().fim_pre_id, pre);
    EXPECT_EQ(tok->spec().fim_suf_id, suf);
    EXPECT_EQ(tok->spec().fim_mid_id, mid);

    const std::vector<int32_t> prefix = tok->encode("def add(a, b):\n    ", false, false);
    const std::string suffix = "\n\nprint(add(1, 2))\n";
    auto fim = tok->encode_fill_in_the_middle(prefix, suffix);
    ASSERT_TRUE(fim.ok()) << fim.message();
    std::vector<int32_t> expected;
    if (tok->spec().add_bos) expected.push_back(tok->bos_id());
    expected.push_back(pre);
    expected.insert(expected.end(), prefix.begin(), prefix.end());
    expected.push_back(suf);
    const std::vector<int32_t> s = tok->encode(suffix, false, false);
    expected.insert(expected.end(), s.begin(), s.end());
    expected.push_back(mid);
    EXPECT_EQ(fim.value(), expected);
  }
}

TEST(FillInTheMiddle, ModelsWithoutMarkersRefuse) {
  auto qwen = vocab("qwen2");  // Qwen1.5's vocabulary: no FIM tokens (Qwen2.5-Coder's has them)
  ASSERT_NE(qwen, nullptr);
  EXPECT_FALSE(qwen->has_fill_in_the_middle());
  auto r = qwen->encode_fill_in_the_middle(std::vector<int32_t>{1, 2}, "x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("fill-in-the-middle"), std::string::npos) << r.message();

  PAGODA_REQUIRE_MODEL_OR_SKIP();
  auto smol = load_tokenizer(test::model_path());
  ASSERT_TRUE(smol.ok()) << smol.message();
  EXPECT_FALSE(smol.value()->has_fill_in_the_middle());
}

}  // namespace
}  // namespace pagoda::engine
