// Tokenizer behaviour that needs no model: hand-built byte-level and SentencePiece vocabularies, the
// pre-tokenizer regex sets, UTF-8 handling and the incremental detokenizer.
#include <gtest/gtest.h>

#include "engine/tokenizer/pretokenizer.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/unicode_utf8.h"

namespace pagoda::engine {
namespace {

// Byte-level vocabulary: the 256 GPT-2 byte characters, a few merges, and two control tokens.
TokenizerSpec tiny_gpt2_spec(const std::string& pre = "smollm") {
  TokenizerSpec s;
  s.model = "gpt2";
  s.pre = pre;
  s.tokens = {"<|endoftext|>", "<|im_end|>"};
  for (int b = 0; b < 256; ++b) s.tokens.push_back(tok::byte_to_unicode(static_cast<uint8_t>(b)));
  const std::string G = tok::byte_to_unicode(' ');  // "Ġ"
  s.merges = {"h e", "l l", "he ll", "hell o", G + " w", "o r", G + "w or", "l d", G + "wor ld"};
  for (const std::string& m : std::vector<std::string>{"he", "ll", "hell", "hello", G + "w", "or", G + "wor", "ld",
                                                       G + "world"})
    s.tokens.push_back(m);
  s.token_types.assign(s.tokens.size(), 1);
  s.token_types[0] = 3;
  s.token_types[1] = 3;
  s.bos_id = s.eos_id = 0;
  return s;
}

std::unique_ptr<Tokenizer> make(TokenizerSpec spec) {
  auto t = Tokenizer::create(std::move(spec));
  EXPECT_TRUE(t.ok()) << t.message();
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(TokenizerBpe, MergesByRank) {
  auto tok = make(tiny_gpt2_spec());
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->encode("hello world", false, false);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], tok->find_token("hello"));
  EXPECT_EQ(ids[1], tok->find_token(tok::byte_to_unicode(' ') + "world"));
  EXPECT_EQ(tok->decode(ids), "hello world");
}

TEST(TokenizerBpe, SpecialTokensOnlyWithParseSpecial) {
  auto tok = make(tiny_gpt2_spec());
  ASSERT_NE(tok, nullptr);
  const auto plain = tok->encode("hello<|im_end|>", false, false);
  const auto special = tok->encode("hello<|im_end|>", false, true);
  ASSERT_EQ(special.size(), 2u);
  EXPECT_EQ(special[1], 1);
  EXPECT_GT(plain.size(), 2u);
  EXPECT_EQ(tok->decode(plain), "hello<|im_end|>");
  EXPECT_EQ(tok->decode(special), "hello");
  EXPECT_EQ(tok->decode(special, true), "hello<|im_end|>");
  EXPECT_TRUE(tok->is_end_of_generation(1));
  EXPECT_TRUE(tok->is_end_of_generation(0));
  EXPECT_FALSE(tok->is_end_of_generation(tok->find_token("hello")));
}

TEST(TokenizerBpe, AddSpecialUsesMetadataFlags) {
  TokenizerSpec spec = tiny_gpt2_spec();
  spec.add_bos = true;
  spec.add_eos = true;
  auto tok = make(spec);
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->encode("hello", true, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(ids.back(), 0);
  EXPECT_TRUE(tok->encode("", false, false).empty());
}

TEST(TokenizerBpe, InvalidBytesBecomeReplacementCharacter) {
  auto tok = make(tiny_gpt2_spec());
  ASSERT_NE(tok, nullptr);
  // llama.cpp turns each invalid byte into U+FFFD before byte-level encoding.
  EXPECT_EQ(tok->decode(tok->encode("a\xff", false, false)), "a\xEF\xBF\xBD");
}

TEST(TokenizerBpe, UnknownPreTokenizerListsKnownOnes) {
  auto t = Tokenizer::create(tiny_gpt2_spec("no-such-pre"));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.message().find("no-such-pre"), std::string::npos);
  EXPECT_NE(t.message().find("smollm"), std::string::npos);
  EXPECT_NE(t.message().find("llama-bpe"), std::string::npos);
}

TEST(TokenizerBpe, UnknownModelIsAnError) {
  TokenizerSpec spec = tiny_gpt2_spec();
  spec.model = "bert";
  auto t = Tokenizer::create(spec);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.message().find("bert"), std::string::npos);
}

// Words as the pre-tokenizer splits them, decoded back from the byte alphabet.
std::vector<std::string> words(const std::string& pre, const std::string& text) {
  auto p = tok::PreTokenizer::create(pre);
  EXPECT_TRUE(p.ok()) << p.message();
  std::vector<std::string> out;
  for (const std::string& w : p.value()->split(text)) {
    std::string raw;
    for (uint32_t cpt : tok::decode_utf8_lax(w)) {
      std::string u;
      tok::append_utf8(u, cpt);
      raw.push_back(static_cast<char>(tok::unicode_to_byte(u)));
    }
    out.push_back(raw);
  }
  return out;
}

using Words = std::vector<std::string>;

TEST(TokenizerPre, Gpt2Regex) {
  EXPECT_EQ(words("gpt-2", "I'm here  now 123"), (Words{"I", "'m", " here", " ", " now", " 123"}));
  EXPECT_EQ(words("gpt-2", "DON'T"), (Words{"DON", "'", "T"}));  // case-sensitive contractions
  EXPECT_EQ(words("gpt-2", "a\n\nb  "), (Words{"a", "\n", "\n", "b", "  "}));
  EXPECT_EQ(words("gpt-2", "x\xC2\x85y"), (Words{"x", "\xC2\x85", "y"}));  // U+0085 is whitespace
}

TEST(TokenizerPre, SmollmSplitsDigits) {
  EXPECT_EQ(words("smollm", "abc 2024!"), (Words{"abc", " ", "2", "0", "2", "4", "!"}));
  EXPECT_EQ(words("smollm", "x\xD9\xA1\xD9\xA2"), (Words{"x", "\xD9\xA1", "\xD9\xA2"}));  // Arabic-Indic digits
}

TEST(TokenizerPre, Llama3Regex) {
  EXPECT_EQ(words("llama-bpe", "DON'T 12345"), (Words{"DON", "'T", " ", "123", "45"}));
  EXPECT_EQ(words("llama-bpe", "a \n\n b"), (Words{"a", " \n\n", " b"}));
  EXPECT_EQ(words("llama-bpe", "...\n\nx"), (Words{"...\n\n", "x"}));
}

TEST(TokenizerPre, Qwen2SingleDigits) {
  EXPECT_EQ(words("qwen2", "x 123"), (Words{"x", " ", "1", "2", "3"}));
}

TEST(TokenizerPre, AllKnownSetsCompile) {
  for (const std::string& name : tok::PreTokenizer::known_names()) {
    auto p = tok::PreTokenizer::create(name);
    ASSERT_TRUE(p.ok()) << name << ": " << p.message();
    EXPECT_FALSE(p.value()->split("Hello, world! 123 你好 \n\t x").empty()) << name;
  }
}

TEST(TokenizerUtf8, LaxDecodingMatchesLlamaCpp) {
  EXPECT_EQ(tok::decode_utf8_lax("a\xff"), (std::vector<uint32_t>{'a', 0xFFFD}));
  EXPECT_EQ(tok::decode_utf8_lax("\xe2\x82"), (std::vector<uint32_t>{0xFFFD, 0xFFFD}));
  EXPECT_EQ(tok::decode_utf8_lax("\xc0\xaf"), (std::vector<uint32_t>{'/'}));  // overlong accepted
  EXPECT_EQ(tok::decode_utf8_lax("\xf0\x9f\x98\x80"), (std::vector<uint32_t>{0x1F600}));
}

TEST(TokenizerUtf8, IncompleteSuffix) {
  EXPECT_EQ(tok::incomplete_utf8_suffix("ab"), 0u);
  EXPECT_EQ(tok::incomplete_utf8_suffix("a\xf0\x9f"), 2u);
  EXPECT_EQ(tok::incomplete_utf8_suffix("a\xf0\x9f\x98"), 3u);
  EXPECT_EQ(tok::incomplete_utf8_suffix("a\xf0\x9f\x98\x80"), 0u);
  EXPECT_EQ(tok::incomplete_utf8_suffix("\xe4\xbd"), 2u);
  EXPECT_EQ(tok::incomplete_utf8_suffix("\xff"), 0u);
  EXPECT_EQ(tok::incomplete_utf8_suffix("\xe0\x80"), 0u);  // can never become valid
  EXPECT_EQ(tok::sanitize_utf8("a\xff" "b"), "a\xEF\xBF\xBD" "b");
}

TEST(TokenizerDetokenizer, EmojiAndCjkSplitAcrossByteTokens) {
  auto tok = make(tiny_gpt2_spec());
  ASSERT_NE(tok, nullptr);
  const std::string text = "hello 😀 你好 👨‍👩‍👧";
  const auto ids = tok->encode(text, false, false);  // no merges for these: one token per byte
  IncrementalDetokenizer detok(*tok);
  std::string streamed;
  std::vector<std::string> chunks;
  for (int32_t id : ids) {
    chunks.push_back(detok.push(id));
    EXPECT_EQ(tok::sanitize_utf8(chunks.back()), chunks.back());
    streamed += chunks.back();
  }
  streamed += detok.flush();
  EXPECT_EQ(streamed, text);
  // "😀" is 4 byte tokens: three pushes give nothing, the fourth gives the whole code point.
  size_t empties = 0;
  for (const auto& c : chunks) empties += c.empty();
  EXPECT_GE(empties, 3u + 2u * 2u);
}

TEST(TokenizerDetokenizer, FlushReplacesUnfinishedBytes) {
  auto tok = make(tiny_gpt2_spec());
  ASSERT_NE(tok, nullptr);
  IncrementalDetokenizer detok(*tok);
  const int32_t f0 = tok->find_token(tok::byte_to_unicode(0xF0));
  const int32_t x9f = tok->find_token(tok::byte_to_unicode(0x9F));
  EXPECT_EQ(detok.push(f0), "");
  EXPECT_EQ(detok.push(x9f), "");
  EXPECT_EQ(detok.flush(), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(detok.push(tok->find_token("hello")), "hello");
}

// SentencePiece-style vocabulary with byte fallback.
TokenizerSpec tiny_spm_spec() {
  TokenizerSpec s;
  s.model = "llama";
  s.tokens = {"<unk>", "<s>", "</s>"};
  s.token_types = {2, 3, 3};
  s.scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    s.tokens.push_back(buf);
    s.token_types.push_back(6);
    s.scores.push_back(0);
  }
  const std::vector<std::pair<std::string, float>> pieces = {
      {"\xE2\x96\x81", -1}, {"a", -2}, {"b", -2}, {"ab", -1.5f}, {"\xE2\x96\x81" "ab", -1.0f}, {"c", -3}};
  for (const auto& [p, sc] : pieces) {
    s.tokens.push_back(p);
    s.token_types.push_back(1);
    s.scores.push_back(sc);
  }
  s.bos_id = 1;
  s.eos_id = 2;
  s.unk_id = 0;
  s.add_bos = true;
  s.add_space_prefix = true;
  return s;
}

TEST(TokenizerSpm, ScoresSpacePrefixAndByteFallback) {
  auto tok = make(tiny_spm_spec());
  ASSERT_NE(tok, nullptr);
  const int32_t sp_ab = tok->find_token("\xE2\x96\x81" "ab");
  const int32_t c = tok->find_token("c");
  auto ids = tok->encode("ab c", true, false);
  // <s> ▁ab ▁ c
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], sp_ab);
  EXPECT_EQ(ids[2], tok->find_token("\xE2\x96\x81"));
  EXPECT_EQ(ids[3], c);
  EXPECT_EQ(tok->decode(ids), " ab c");
  // "é" has no piece: two byte tokens, decoded back to the bytes.
  ids = tok->encode("\xC3\xA9", false, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], tok->find_token("<0xC3>"));
  EXPECT_EQ(ids[2], tok->find_token("<0xA9>"));
  EXPECT_EQ(tok->decode(ids), " \xC3\xA9");
  EXPECT_EQ(tok->token_to_piece(1, false), "");
  EXPECT_EQ(tok->token_to_piece(1, true), "<s>");
  EXPECT_TRUE(tok->is_end_of_generation(2));
}

// Found by tests/fuzz/gguf_reader_fuzz: a BYTE-type token whose text is shorter than 3 characters made
// token_to_piece throw std::out_of_range (substr(3, 2)), ending the process that decoded it. Such a
// token now decodes to nothing, in both models; longer ones keep llama.cpp's token_to_byte result.
TEST(TokenizerVocab, ShortByteTokenGivesAnEmptyPiece) {
  for (TokenizerSpec spec : {tiny_gpt2_spec(), tiny_spm_spec()}) {
    const auto add_byte_token = [&](const std::string& text) {
      spec.tokens.push_back(text);
      spec.token_types.resize(spec.tokens.size() - 1, 1);
      spec.token_types.push_back(6);
      if (!spec.scores.empty()) spec.scores.resize(spec.tokens.size(), 0.0f);
      return static_cast<int32_t>(spec.tokens.size() - 1);
    };
    const int32_t one = add_byte_token("x");
    const int32_t two = add_byte_token("<0");
    const int32_t three = add_byte_token("<0x");  // strtol of nothing: a 0 byte, as llama.cpp
    const int32_t good = add_byte_token("<0x41>");
    const std::string model = spec.model;
    auto tok = make(std::move(spec));
    ASSERT_NE(tok, nullptr);
    for (bool special : {false, true}) {
      EXPECT_EQ(tok->token_to_piece(one, special), "") << model;
      EXPECT_EQ(tok->token_to_piece(two, special), "") << model;
      EXPECT_EQ(tok->token_to_piece(three, special), std::string(1, '\0')) << model;
      EXPECT_EQ(tok->token_to_piece(good, special), "A") << model;
    }
    const std::vector<int32_t> ids = {good, one, good, two};
    EXPECT_EQ(tok->decode(ids), "AA") << model;
    IncrementalDetokenizer detok(*tok);
    std::string streamed;
    for (int32_t id : ids) streamed += detok.push(id);
    EXPECT_EQ(streamed + detok.flush(), "AA") << model;
  }
}

}  // namespace
}  // namespace pagoda::engine
