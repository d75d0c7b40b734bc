// The tokenizer against llama.cpp: token ids for every string of tests/data/tokenizer_golden.json
// (made by tools/golden/make_tokenizer_golden.py from llama.cpp's own tokenizer) must be identical, on
// the real model (SmolLM2, byte-level BPE, pre "smollm") and on a tiny SentencePiece-style vocabulary.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/gguf/gguf_file.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/test_env.h"

namespace pagoda::engine {
namespace {

using nlohmann::json;

const json& golden() {
  static const json j = [] {
    std::ifstream f(test::data_path("tokenizer_golden.json"));
    EXPECT_TRUE(f.good()) << "cannot open " << test::data_path("tokenizer_golden.json");
    return json::parse(f);
  }();
  return j;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string show(const std::vector<int32_t>& ids) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < ids.size(); ++i) os << (i ? ", " : "") << ids[i];
  os << "]";
  return os.str();
}

std::string printable(const std::string& s) {
  std::ostringstream os;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      os << c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      os << buf;
    }
  }
  return os.str();
}

// The SmolLM2 tokenizer, built once from the model's metadata.
const Tokenizer* smollm() {
  static std::unique_ptr<Tokenizer> tok = []() -> std::unique_ptr<Tokenizer> {
    auto file = GgufFile::open(test::model_path());
    if (!file.ok()) {
      ADD_FAILURE() << file.message();
      return nullptr;
    }
    auto spec = tokenizer_spec_from_gguf(*file.value());
    if (!spec.ok()) {
      ADD_FAILURE() << spec.message();
      return nullptr;
    }
    auto t = Tokenizer::create(std::move(spec).value());
    if (!t.ok()) {
      ADD_FAILURE() << t.message();
      return nullptr;
    }
    return std::move(t).value();
  }();
  return tok.get();
}

// Compares one id list per case; reports the first difference with both lists.
void expect_cases(const Tokenizer& tok, const json& cases, const char* field, bool add_special, bool parse_special,
                  size_t min_cases) {
  size_t compared = 0, identical = 0;
  std::string first_diff;
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    if (!c.contains(field)) continue;
    const std::string text = from_hex(c["hex"].get<std::string>());
    const auto want = c[field].get<std::vector<int32_t>>();
    const auto got = tok.encode(text, add_special, parse_special);
    ++compared;
    if (got == want) {
      ++identical;
    } else if (first_diff.empty()) {
      first_diff = "case " + std::to_string(i) + " \"" + printable(text) + "\"\n  llama.cpp: " + show(want) +
                   "\n  pagoda:    " + show(got);
    }
  }
  EXPECT_GE(compared, min_cases) << field;
  EXPECT_EQ(identical, compared) << field << ": " << identical << "/" << compared
                                 << " identical; first difference: " << first_diff;
}

TEST(TokenizerGolden, CorpusIsLargeEnough) {
  EXPECT_GE(golden()["cases"].size(), 220u);
  EXPECT_FALSE(golden()["llama_cpp_commit"].get<std::string>().empty());
}

TEST(TokenizerGolden, SpecFromGguf) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* tok = smollm();
  ASSERT_NE(tok, nullptr);
  const json& g = golden();
  EXPECT_EQ(tok->spec().model, g["tokenizer_model"].get<std::string>());
  EXPECT_EQ(tok->spec().pre, g["tokenizer_pre"].get<std::string>());
  EXPECT_EQ(tok->vocab_size(), g["n_vocab"].get<int32_t>());
  EXPECT_EQ(tok->bos_id(), g["bos_id"].get<int32_t>());
  EXPECT_EQ(tok->eos_id(), g["eos_id"].get<int32_t>());
  EXPECT_FALSE(tok->spec().add_bos);
  EXPECT_FALSE(tok->spec().merges.empty());
  EXPECT_NE(tok->spec().chat_template.find("<|im_start|>"), std::string::npos);
}

TEST(TokenizerGolden, IdsIdenticalToLlamaCpp) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* tok = smollm();
  ASSERT_NE(tok, nullptr);
  expect_cases(*tok, golden()["cases"], "ids", false, false, 220);
}

TEST(TokenizerGolden, IdsWithParseSpecialIdenticalToLlamaCpp) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* tok = smollm();
  ASSERT_NE(tok, nullptr);
  expect_cases(*tok, golden()["cases"], "ids_special", false, true, 50);
}

TEST(TokenizerGolden, IdsWithAddSpecialIdenticalToLlamaCpp) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* tok = smollm();
  ASSERT_NE(tok, nullptr);
  expect_cases(*tok, golden()["cases"], "ids_add_special", true, false, 10);
}

TEST(TokenizerGolden, EndOfGenerationAndAttributes) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* tok = smollm();
  ASSERT_NE(tok, nullptr);
  const auto eog = golden()["eog_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(tok->end_of_generation_ids(), eog);
  for (int32_t id : eog) EXPECT_TRUE(tok->is_end_of_generation(id)) << id;
  EXPECT_TRUE(tok->is_end_of_generation(tok->find_token("<|im_end|>")));
  EXPECT_FALSE(tok->is_end_of_generation(tok->find_token("<|im_start|>")));
  EXPECT_FALSE(tok->is_end_of_generation(tok->find_token("Hello")));
  const json& attrs = golden()["non_normal_attrs"];
  for (int32_t id = 0; id < tok->vocab_size(); ++id) {
    const std::string key = std::to_string(id);
    const uint32_t want = attrs.contains(key) ? attrs[key].get<uint32_t>() : 4u;
    ASSERT_EQ(tok->token_attr(id), want) << "token " << id;
  }
}

TEST(TokenizerGolden, PiecesIdenticalToLlamaCpp) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* tok = smollm();
  ASSERT_NE(tok, nullptr);
  for (const json& p : golden()["pieces"]) {
    const int32_t id = p["id"].get<int32_t>();
    EXPECT_EQ(tok->token_to_piece(id, false), from_hex(p["hex"].get<std::string>())) << "token " << id;
    EXPECT_EQ(tok->token_to_piece(id, true), from_hex(p["hex_special"].get<std::string>())) << "token " << id;
  }
}

bool valid_utf8(const std::string& s) {
  // Strict check (RFC 3629): what Python's bytes.decode('utf-8') accepts.
  size_t i = 0;
  const auto at = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  while (i < s.size()) {
    const uint8_t b = at(i);
    size_t n = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80) n = 1;
    else if (b >= 0xC2 && b <= 0xDF) n = 2;
    else if (b >= 0xE0 && b <= 0xEF) { n = 3; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { n = 4; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    else return false;
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const uint8_t c = at(i + k);
      if (k == 1 ? (c < lo || c > hi) : (c & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

TEST(TokenizerGolden, DecodeRoundTripsValidUtf8) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* tok = smollm();
  ASSERT_NE(tok, nullptr);
  // A byte whose GPT-2 character is not in the vocabulary cannot be encoded: llama.cpp drops it (SmolLM2
  // has no token for 0x1D, for one), and so do we. Texts with such bytes cannot round-trip.
  std::vector<bool> byte_missing(256);
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    const auto ids = tok->encode(one, false, false);
    byte_missing[b] = valid_utf8(one) && tok->decode(ids) != one;
  }
  EXPECT_LE(std::count(byte_missing.begin(), byte_missing.end(), true), 8);  // SmolLM2: 0x04 0x06 0x13 0x14 0x16 0x1D
  size_t checked = 0;
  for (const json& c : golden()["cases"]) {
    const std::string text = from_hex(c["hex"].get<std::string>());
    if (!valid_utf8(text)) continue;
    if (std::any_of(text.begin(), text.end(), [&](char ch) { return byte_missing[static_cast<uint8_t>(ch)]; })) continue;
    ++checked;
    EXPECT_EQ(tok->decode(tok->encode(text, false, false)), text) << printable(text);
    // With special tokens parsed, special=true decoding gives the text back too.
    EXPECT_EQ(tok->decode(tok->encode(text, false, true), true), text) << printable(text);
  }
  EXPECT_GE(checked, 200u);
}

TEST(TokenizerGolden, ControlTokensDecodeOnlyWhenSpecial) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* tok = smollm();
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->encode("<|im_start|>user\nHi<|im_end|>", false, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), tok->find_token("<|im_start|>"));
  EXPECT_EQ(tok->decode(ids, false), "user\nHi");
  EXPECT_EQ(tok->decode(ids, true), "<|im_start|>user\nHi<|im_end|>");
}

TEST(TokenizerGolden, IncrementalDetokenizerHoldsBackPartialCodePoints) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* tok = smollm();
  ASSERT_NE(tok, nullptr);
  const std::string text = "Hi 😀 你好 👨‍👩‍👧‍👦 𠀀 done";
  const auto ids = tok->encode(text, false, false);
  // At least one token must end inside a code point for this test to mean anything.
  bool split_inside = false;
  for (int32_t id : ids) split_inside |= !valid_utf8(tok->token_to_piece(id, false));
  ASSERT_TRUE(split_inside);
  IncrementalDetokenizer detok(*tok);
  std::string streamed;
  size_t empty_pushes = 0;
  for (int32_t id : ids) {
    const std::string chunk = detok.push(id);
    EXPECT_TRUE(valid_utf8(chunk)) << printable(chunk);
    empty_pushes += chunk.empty();
    streamed += chunk;
  }
  streamed += detok.flush();
  EXPECT_EQ(streamed, text);
  EXPECT_GT(empty_pushes, 0u);
}

// The other pre-tokenizer regex sets, with the model's vocabulary and merges under another
// tokenizer.ggml.pre (llama.cpp ran on a vocab-only copy of the model with that pre).
TEST(TokenizerGolden, OtherPreTokenizersIdenticalToLlamaCpp) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Tokenizer* base = smollm();
  ASSERT_NE(base, nullptr);
  const json& pres = golden()["other_pre"];
  EXPECT_GE(pres.size(), 8u);
  for (const auto& [pre, cases] : pres.items()) {
    SCOPED_TRACE("pre " + pre);
    TokenizerSpec spec = base->spec();
    spec.pre = pre;
    auto tok = Tokenizer::create(std::move(spec));
    ASSERT_TRUE(tok.ok()) << tok.message();
    expect_cases(*tok.value(), cases, "ids", false, false, 80);
  }
}

TEST(TokenizerGoldenSpm, IdsIdenticalToLlamaCpp) {
  const json& g = golden()["spm"];
  TokenizerSpec spec;
  spec.model = "llama";
  spec.tokens = g["tokens"].get<std::vector<std::string>>();
  spec.scores = g["scores"].get<std::vector<float>>();
  spec.token_types = g["token_types"].get<std::vector<int32_t>>();
  spec.bos_id = g["bos_id"].get<int32_t>();
  spec.eos_id = g["eos_id"].get<int32_t>();
  spec.unk_id = g["unk_id"].get<int32_t>();
  spec.add_bos = g["add_bos"].get<bool>();
  spec.add_space_prefix = g["add_space_prefix"].get<bool>();
  auto tok = Tokenizer::create(spec);
  ASSERT_TRUE(tok.ok()) << tok.message();
  expect_cases(*tok.value(), g["cases"], "ids_add_special", true, false, 20);
  expect_cases(*tok.value(), g["cases"], "ids_special", false, true, 20);
}

}  // namespace
}  // namespace pagoda::engine
