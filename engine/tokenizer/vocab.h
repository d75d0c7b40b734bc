#pragma once
// The vocabulary as llama.cpp's llama_vocab sees it: token text -> id, per-token attributes (from
// tokenizer.ggml.token_type, adjusted by llama.cpp's name-based rules), the special-token list used to
// split text before tokenization, and the end-of-generation set. Internal to engine/tokenizer.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace pagoda::engine::tok {

// llama_token_attr bits.
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrNormalized = 1u << 6,
  kAttrLstrip = 1u << 7,
  kAttrRstrip = 1u << 8,  // a special token that swallows the whitespace after it (Phi-3's)
};

struct Vocab {
  std::vector<std::string> texts;  // empty tokens become "[EMPTY_<id>]" as in llama.cpp
  std::vector<uint32_t> attrs;
  std::unordered_map<std::string, int32_t> ids;  // a later duplicate wins, as in llama.cpp
  std::vector<int32_t> special_tokens;           // control / user-defined / unknown, longest first
  std::vector<int32_t> eog_ids;                  // sorted

  int32_t find(const std::string& text) const {
    auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  }
  bool has_attr(int32_t id, uint32_t a) const { return (attrs[static_cast<size_t>(id)] & a) != 0; }
};

Vocab build_vocab(const TokenizerSpec& spec);

// The piece of a BYTE-type token "<0xXX>": the byte strtol reads from characters 3-4, as llama.cpp's
// token_to_byte (so "<0x" gives a 0 byte, as there). Empty when the text has fewer than 3 characters
// (a malformed vocabulary, where llama.cpp's substr(3, 2) throws).
std::string byte_token_piece(const std::string& text);

// A piece of the input: either a special token or a byte range of raw text.
struct Fragment {
  int32_t token = -1;  // -1: raw text [offset, offset + length)
  size_t offset = 0;
  size_t length = 0;
};

// llama.cpp's tokenizer_st_partition: every special token (longest first) is cut out of the remaining
// raw text. Control and unknown tokens only when parse_special; user-defined tokens always. Whitespace
// after a token with kAttrRstrip goes with it. (llama.cpp's kAttrLstrip is set only for BERT-style
// families' <mask>, which Pagoda does not load.)
std::vector<Fragment> partition_special(const Vocab& vocab, std::string_view text, bool parse_special);

}  // namespace pagoda::engine::tok
