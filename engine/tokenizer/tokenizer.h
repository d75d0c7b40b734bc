#pragma once
// Tokenizer built from GGUF metadata (tokenizer.ggml.*), token-identical to llama.cpp's:
//  - model "gpt2": byte-level BPE; the pre-tokenizer regexes are chosen by tokenizer.ggml.pre
//    (smollm, llama3, gpt2, ...), run with PCRE2 in UTF-8 mode;
//  - model "llama": SentencePiece-style BPE over scores, with byte fallback (<0xXX> tokens).
// Special / control tokens are recognised in the text only when parse_special is true.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"

namespace pagoda::engine {

class GgufFile;
namespace tok {
struct Vocab;
}

// What the tokenizer needs from the file, as plain data (so tests can build one by hand).
struct TokenizerSpec {
  std::string model;  // "gpt2" | "llama" | "gemma4" (BPE over raw UTF-8, Gemma 4)
  std::string pre;    // tokenizer.ggml.pre ("default" when absent)
  std::vector<std::string> tokens;
  std::vector<float> scores;         // may be empty for gpt2
  std::vector<int32_t> token_types;  // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<std::string> merges;   // "a b" pairs, gpt2 only
  int32_t bos_id = -1, eos_id = -1, eot_id = -1, unk_id = -1, pad_id = -1;
  // Fill-in-the-middle (code models): the prefix / suffix / middle markers, -1 when the model has none.
  int32_t fim_pre_id = -1, fim_suf_id = -1, fim_mid_id = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false;
  // SPM-style BPE (Gemma 4): spaces become U+2581 before the pre-tokenizer, and back in pieces.
  bool escape_whitespaces = false;
  std::string chat_template;  // tokenizer.chat_template, may be empty
  // general.name: llama.cpp sets per-token attributes by it (Phi-3's special tokens strip the whitespace
  // after them), and so does build_vocab.
  std::string model_name;
};

Result<TokenizerSpec> tokenizer_spec_from_gguf(const GgufFile& file);

class Tokenizer {
 public:
  static Result<std::unique_ptr<Tokenizer>> create(TokenizerSpec spec);
  virtual ~Tokenizer() = default;

  // As llama_tokenize(text, add_special, parse_special): add_special adds BOS/EOS as the metadata says.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const = 0;
  // The raw bytes of one token as it appears in text (byte-level decoding applied; control tokens give
  // their text only when `special` is true, as llama_token_to_piece).
  virtual std::string token_to_piece(int32_t id, bool special) const = 0;
  std::string decode(std::span<const int32_t> ids, bool special = false) const;

  const TokenizerSpec& spec() const { return spec_; }
  int32_t vocab_size() const { return static_cast<int32_t>(spec_.tokens.size()); }
  int32_t bos_id() const { return spec_.bos_id; }
  int32_t eos_id() const { return spec_.eos_id; }
  // End-of-generation: EOS, EOT, or a control token such as <|im_end|> / <|eot_id|>.
  bool is_end_of_generation(int32_t id) const;
  const std::vector<int32_t>& end_of_generation_ids() const { return end_of_generation_ids_; }
  int32_t find_token(std::string_view text) const;  // -1 when absent
  // llama_token_attr bits of a token (1 unknown, 2 unused, 4 normal, 8 control, 16 user-defined, 32 byte),
  // after llama.cpp's name-based adjustments; 0 for an id out of range.
  uint32_t token_attr(int32_t id) const;
  bool is_control(int32_t id) const { return (token_attr(id) & 8u) != 0; }
  bool has_fill_in_the_middle() const { return spec_.fim_pre_id >= 0 && spec_.fim_suf_id >= 0 && spec_.fim_mid_id >= 0; }
  // A fill-in-the-middle prompt, as llama.cpp's server builds one (prefix-suffix-middle order):
  // [BOS] <FIM_PRE> prefix <FIM_SUF> suffix <FIM_MID>; the model writes the middle. An error when the model
  // has no FIM markers.
  Result<std::vector<int32_t>> encode_fill_in_the_middle(std::span<const int32_t> prefix, std::string_view suffix) const;

 protected:
  explicit Tokenizer(TokenizerSpec spec);
  TokenizerSpec spec_;
  std::vector<int32_t> end_of_generation_ids_;
  std::shared_ptr<const tok::Vocab> vocab_;
};

}  // namespace pagoda::engine
