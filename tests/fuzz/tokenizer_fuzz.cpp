// libFuzzer target: the tokenizer (engine/tokenizer) on arbitrary bytes and arbitrary token ids.
// Tokenizers: the real model's ($PAGODA_MODEL, byte-level BPE "gpt2" with the smollm pre-tokenizer), a
// small SentencePiece-style one built here (every byte has a <0xXX> token), and, for longer local runs,
// any GGUF vocabularies listed in $PAGODA_FUZZ_VOCABS (colon-separated).
// Properties:
//  - encode returns ids inside the vocabulary, whatever the bytes;
//  - decode(encode(s)) == s for valid UTF-8 s where the tokenizer is lossless (as
//    tests/engine/tokenizer/tokenizer_golden_test.cpp assumes: byte-level BPE for text without the bytes
//    its vocabulary lacks, with and without special-token parsing; the SPM one here for text without
//    U+2581, which it maps to a space);
//  - the incremental detokenizer streams exactly sanitize_utf8(decode(ids)) for any ids.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/unicode_utf8.h"

using namespace pagoda::engine;

namespace {

struct Entry {
  std::unique_ptr<Tokenizer> tok;
  bool lossless = false;               // round-trip checked
  std::vector<bool> missing_byte;      // bytes that cannot round-trip (no token for them)
  std::string name;
};

std::vector<Entry>& tokenizers() {
  static std::vector<Entry> t;
  return t;
}

[[noreturn]] void violated(const Entry& e, const char* what, std::string_view input) {
  std::fprintf(stderr, "tokenizer_fuzz [%s]: property violated: %s (input %zu bytes)\n", e.name.c_str(), what,
               input.size());
  std::abort();
}

bool valid_utf8(std::string_view s) { return tok::sanitize_utf8(s) == s; }

std::unique_ptr<Tokenizer> load(const std::string& path) {
  auto file = GgufFile::open(path);
  if (!file.ok()) {
    std::fprintf(stderr, "tokenizer_fuzz: %s\n", file.message().c_str());
    std::exit(1);
  }
  auto spec = tokenizer_spec_from_gguf(*file.value());
  if (!spec.ok()) {
    std::fprintf(stderr, "tokenizer_fuzz: %s\n", spec.message().c_str());
    std::exit(1);
  }
  auto tok = Tokenizer::create(std::move(spec).value());
  if (!tok.ok()) {
    std::fprintf(stderr, "tokenizer_fuzz: %s: %s\n", path.c_str(), tok.message().c_str());
    std::exit(1);
  }
  return std::move(tok).value();
}

std::unique_ptr<Tokenizer> make_spm() {
  TokenizerSpec s;
  s.model = "llama";
  const auto add = [&](std::string text, int32_t type, float score) {
    s.tokens.push_back(std::move(text));
    s.token_types.push_back(type);
    s.scores.push_back(score);
  };
  add("<unk>", 2, 0.0f);
  add("<s>", 3, 0.0f);
  add("</s>", 3, 0.0f);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    add(name, 6, 0.0f);
  }
  // No chain of merges may spell a control token's text ("<s" + ">" would give <s>, which llama.cpp's
  // SPM merge, and so ours, then emits as the control token, silent when decoded): not lossless.
  float score = -1.0f;
  for (const char* piece : {"\xE2\x96\x81", "\xE2\x96\x81t", "\xE2\x96\x81th", "\xE2\x96\x81the", "th", "he", "the", "e",
                            "t", "h", "a", "b", "ab", "\xE2\x96\x81" "a", "\xE2\x96\x81\xE2\x96\x81", "\xC3\xA9",
                            "\xE4\xBD\xA0", "\xE4\xBD\xA0\xE5\xA5\xBD", "<", ">", "s", "\n", "\n\n"}) {
    add(piece, 1, score);
    score -= 0.5f;
  }
  add("<|user|>", 4, 0.0f);
  add("", 1, -100.0f);  // an empty token text (becomes [EMPTY_<id>])
  s.unk_id = 0;
  s.bos_id = 1;
  s.eos_id = 2;
  s.add_bos = true;
  s.add_eos = true;
  s.add_space_prefix = false;
  auto tok = Tokenizer::create(std::move(s));
  if (!tok.ok()) {
    std::fprintf(stderr, "tokenizer_fuzz: SPM spec: %s\n", tok.message().c_str());
    std::exit(1);
  }
  return std::move(tok).value();
}

void add_entry(std::unique_ptr<Tokenizer> tok, std::string name, bool lossless) {
  Entry e;
  e.name = std::move(name);
  e.lossless = lossless;
  e.missing_byte.assign(256, false);
  for (int b = 0; b < 0x80; ++b) {  // multi-byte characters are checked as whole characters below
    const std::string one(1, static_cast<char>(b));
    e.missing_byte[b] = tok->decode(tok->encode(one, false, false)) != one;
  }
  e.tok = std::move(tok);
  tokenizers().push_back(std::move(e));
}

// Whether every character of s encodes alone and comes back (so s has no character the vocabulary lacks).
bool all_chars_known(const Entry& e, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::min(tok::utf8_len(s[i]), s.size() - i);
    if (n == 1) {
      if (e.missing_byte[static_cast<uint8_t>(s[i])]) return false;
    } else {
      const std::string ch(s.substr(i, n));
      if (e.tok->decode(e.tok->encode(ch, false, false)) != ch) return false;
    }
    i += n;
  }
  return true;
}

void check_incremental(const Entry& e, const std::vector<int32_t>& ids, bool special, std::string_view input) {
  IncrementalDetokenizer detok(*e.tok, special);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string chunk = detok.push(id);
    if (!valid_utf8(chunk)) violated(e, "the incremental detokenizer emitted invalid UTF-8", input);
    streamed += chunk;
  }
  streamed += detok.flush();
  if (streamed != tok::sanitize_utf8(e.tok->decode(ids, special)))
    violated(e, "incremental detokenization differs from sanitize_utf8(decode(ids))", input);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string model;
  if (const char* p = std::getenv("PAGODA_MODEL"); p && *p) {
    model = p;
  } else if (const char* home = std::getenv("HOME")) {
    model = std::string(home) + "/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  std::unique_ptr<Tokenizer> real = load(model);
  const bool byte_level = real->spec().model == "gpt2";
  add_entry(std::move(real), model, byte_level);
  add_entry(make_spm(), "spm (built in)", true);
  if (const char* extra = std::getenv("PAGODA_FUZZ_VOCABS")) {
    std::string list = extra;
    for (size_t pos = 0; pos <= list.size();) {
      const size_t colon = std::min(list.find(':', pos), list.size());
      const std::string path = list.substr(pos, colon - pos);
      if (!path.empty()) {
        auto t = load(path);
        add_entry(std::move(t), path, false);
      }
      pos = colon + 1;
    }
  }
  std::fprintf(stderr, "tokenizer_fuzz: %zu tokenizers\n", tokenizers().size());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  // The high nibble picks the tokenizer, the last byte extends it past 16 (an even multiple of 16, so
  // with the default two tokenizers the pick is the nibble's parity alone).
  const size_t pick = (flags >> 4) + 16u * data[size - 1];
  const Entry& e = tokenizers()[pick % tokenizers().size()];
  const Tokenizer& tok = *e.tok;
  const bool parse_special = flags & 1;
  const bool add_special = flags & 2;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  if (flags & 4) {
    // Arbitrary ids, mostly inside the vocabulary, some outside it.
    std::vector<int32_t> ids;
    const int64_t span = static_cast<int64_t>(tok.vocab_size()) + 8;
    for (size_t i = 0; i + 2 <= input.size(); i += 2) {
      const uint16_t v = static_cast<uint16_t>(static_cast<uint8_t>(input[i]) | static_cast<uint8_t>(input[i + 1]) << 8);
      const uint32_t raw = (flags & 8) ? v * 7919u : v;
      ids.push_back(static_cast<int32_t>(static_cast<int64_t>(raw % span) - 4));
    }
    (void)tok.decode(ids, parse_special);
    check_incremental(e, ids, parse_special, input);
    return 0;
  }

  const std::vector<int32_t> ids = tok.encode(input, add_special, parse_special);
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) violated(e, "encode returned an id outside the vocabulary", input);
  }
  if (input.empty() && !add_special && !ids.empty()) violated(e, "empty text gave tokens", input);
  const std::string decoded = tok.decode(ids, parse_special);
  check_incremental(e, ids, parse_special, input);

  if (!e.lossless || !valid_utf8(input)) return 0;
  if (input.find("\xE2\x96\x81") != std::string_view::npos && tok.spec().model == "llama") return 0;
  if (!all_chars_known(e, input)) return 0;
  const std::vector<int32_t> plain = add_special ? tok.encode(input, false, parse_special) : ids;
  if (tok.decode(plain, parse_special) != input) violated(e, "decode(encode(s)) != s for valid UTF-8", input);
  return 0;
}
