#pragma once
// The pre-tokenizer of byte-level BPE: splits text into words with the regex set llama.cpp
// (src/llama-vocab.cpp, llm_tokenizer_bpe) selects by tokenizer.ggml.pre, run with PCRE2 (UTF + UCP).
// Whitespace means llama.cpp's set (which includes U+0085), not PCRE2's \s. Internal to engine/tokenizer.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"

namespace pagoda::engine::tok {

class PreTokenizer {
 public:
  // Error (listing the known names) when `pre` is not one llama.cpp's regex sets cover here.
  static Result<std::unique_ptr<PreTokenizer>> create(std::string_view pre);
  static std::vector<std::string> known_names();
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Words of `text` in order. Invalid UTF-8 bytes become U+FFFD first (as llama.cpp); each word is the
  // UTF-8 of its code points, mapped through the GPT-2 byte alphabet when byte_encode() is true.
  std::vector<std::string> split(std::string_view text) const;

  bool ignore_merges() const { return ignore_merges_; }
  bool byte_encode() const { return byte_encode_; }

 private:
  PreTokenizer() = default;
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> regexes_;
  bool ignore_merges_ = false;
  bool byte_encode_ = true;
};

}  // namespace pagoda::engine::tok
