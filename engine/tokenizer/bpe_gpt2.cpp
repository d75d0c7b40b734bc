// Byte-level BPE (tokenizer.ggml.model "gpt2"; also Gemma 4's "gemma4", BPE over raw UTF-8 with
// spaces escaped to U+2581 and <0xXX> byte tokens), token-identical to llama.cpp's llm_tokenizer_bpe_session:
// special tokens are cut out first, the rest is split into words by the pre-tokenizer, and each word is
// merged pairwise by merge rank (lowest rank first, leftmost first among equal ranks).
#include <cstdio>
#include <cstdlib>
#include <queue>
#include <unordered_map>

#include "engine/tokenizer/pretokenizer.h"
#include "engine/tokenizer/tokenizer_impl.h"
#include "engine/tokenizer/unicode_utf8.h"
#include "engine/tokenizer/vocab.h"

namespace pagoda::engine::tok {

namespace {

struct Symbol {
  int prev;
  int next;
  size_t begin;  // byte offset in the word
  size_t n;      // byte length (0 once merged into its left neighbour)
};

struct Bigram {
  int left;
  int right;
  int rank;
  std::string text;
};

struct BigramOrder {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
  }
};

class BpeGpt2Tokenizer final : public Tokenizer {
 public:
  BpeGpt2Tokenizer(TokenizerSpec spec, std::unique_ptr<PreTokenizer> pre)
      : Tokenizer(std::move(spec)), pre_(std::move(pre)) {
    ranks_.reserve(spec_.merges.size() * 2);
    for (size_t i = 0; i < spec_.merges.size(); ++i) {
      const std::string& m = spec_.merges[i];
      std::string first, second;
      const size_t pos = m.find(' ', 1);
      if (pos != std::string::npos) {
        first = m.substr(0, pos);
        second = m.substr(pos + 1);
      }
      ranks_.emplace(key(first, second), static_cast<int>(i));  // first occurrence wins
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    const Vocab& v = *vocab_;
    std::vector<int32_t> out;
    if (add_special && spec_.add_bos && spec_.bos_id >= 0) out.push_back(spec_.bos_id);
    for (const Fragment& f : partition_special(v, text, parse_special)) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      std::string_view raw = text.substr(f.offset, f.length);
      std::string escaped;
      if (spec_.escape_whitespaces) {  // llama_escape_whitespace: ' ' -> U+2581
        escaped.reserve(raw.size() * 3);
        for (char c : raw) c == ' ' ? escaped += "\xE2\x96\x81" : escaped += c;
        raw = escaped;
      }
      for (const std::string& word : pre_->split(raw)) merge_word(word, out);
    }
    if (add_special && spec_.add_eos && spec_.eos_id >= 0) out.push_back(spec_.eos_id);
    return out;
  }

  std::string token_to_piece(int32_t id, bool special) const override {
    const Vocab& v = *vocab_;
    if (id < 0 || static_cast<size_t>(id) >= v.texts.size()) return {};
    const uint32_t attr = v.attrs[static_cast<size_t>(id)];
    const std::string& text = v.texts[static_cast<size_t>(id)];
    if (!special && (attr & (kAttrUnknown | kAttrControl))) return {};
    if (attr & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return text;
    if (attr & kAttrNormal) {
      if (spec_.escape_whitespaces) return unescape_whitespace(text);
      return pre_->byte_encode() ? decode_byte_level(text) : text;
    }
    if (attr & kAttrByte) return byte_token_piece(text);
    return {};
  }

 private:
  static std::string key(const std::string& a, const std::string& b) {
    std::string k;
    k.reserve(a.size() + b.size() + 1);
    k += a;
    k += '\xff';  // never inside UTF-8 text
    k += b;
    return k;
  }

  int rank(std::string_view a, std::string_view b) const {
    const auto it = ranks_.find(key(std::string(a), std::string(b)));
    return it == ranks_.end() ? -1 : it->second;
  }

  // llama.cpp's llama_decode_text: each code point of the token is one byte of the GPT-2 alphabet.
  static std::string decode_byte_level(const std::string& text) {
    std::string out;
    for (uint32_t cpt : decode_utf8_lax(text)) {
      std::string utf8;
      append_utf8(utf8, cpt);
      const int b = unicode_to_byte(utf8);
      if (b >= 0) {
        out.push_back(static_cast<char>(b));
        continue;
      }
      out += "[UNK_BYTE_0x";
      for (char c : utf8) {
        char hex[3];
        std::snprintf(hex, sizeof(hex), "%02x", static_cast<unsigned>(static_cast<uint8_t>(c)));
        out += hex;
      }
      out += text + "]";
    }
    return out;
  }

  // llama_unescape_whitespace: U+2581 -> ' '.
  static std::string unescape_whitespace(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      if (text.compare(i, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        i += 2;
      } else {
        out += text[i];
      }
    }
    return out;
  }

  void merge_word(const std::string& word, std::vector<int32_t>& out) const {
    const Vocab& v = *vocab_;
    std::vector<Symbol> symbols;
    size_t offset = 0;
    // A whole word that is a token: with ignore_merges, or (Gemma 4) a run of newlines.
    const bool newlines = spec_.pre == "gemma4" && word.find_first_not_of('\n') == std::string::npos;
    if ((pre_->ignore_merges() || newlines) && v.find(word) >= 0) {
      symbols.push_back({-1, -1, 0, word.size()});
      offset = word.size();
    }
    int index = 0;
    while (offset < word.size()) {
      const size_t len = std::min(word.size() - offset, utf8_len(word[offset]));
      symbols.push_back({index - 1, offset + len == word.size() ? -1 : index + 1, offset, len});
      offset += len;
      ++index;
    }

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    const auto sym_text = [&](int i) {
      return std::string_view(word).substr(symbols[static_cast<size_t>(i)].begin, symbols[static_cast<size_t>(i)].n);
    };
    const auto add_bigram = [&](int left, int right) {
      if (left == -1 || right == -1) return;
      const int r = rank(sym_text(left), sym_text(right));
      if (r < 0) return;
      queue.push(Bigram{left, right, r, std::string(sym_text(left)) + std::string(sym_text(right))});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_bigram(i - 1, i);

    while (!queue.empty()) {
      Bigram b = queue.top();
      queue.pop();
      Symbol& l = symbols[static_cast<size_t>(b.left)];
      Symbol& r = symbols[static_cast<size_t>(b.right)];
      if (l.n == 0 || r.n == 0) continue;
      if (std::string(sym_text(b.left)) + std::string(sym_text(b.right)) != b.text) continue;  // outdated
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = b.left;
      add_bigram(l.prev, b.left);
      add_bigram(b.left, l.next);
    }

    for (const Symbol& s : symbols) {
      if (s.n == 0) continue;
      const std::string piece = word.substr(s.begin, s.n);
      const int32_t id = v.find(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (char c : piece) {  // as llama.cpp: each raw byte looked up on its own; misses are dropped
        int32_t bid = -1;
        if (pre_->byte_encode()) {
          bid = v.find(std::string(1, c));
        } else {  // raw UTF-8 words (Gemma 4): the byte tokens are <0xXX>
          char hex[7];
          std::snprintf(hex, sizeof(hex), "<0x%02X>", static_cast<unsigned>(static_cast<uint8_t>(c)));
          bid = v.find(hex);
        }
        if (bid >= 0) out.push_back(bid);
      }
    }
  }

  std::unique_ptr<PreTokenizer> pre_;
  std::unordered_map<std::string, int> ranks_;
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_bpe_gpt2(TokenizerSpec spec) {
  auto pre = PreTokenizer::create(spec.pre.empty() ? "default" : spec.pre);
  if (!pre.ok()) return pre.status();
  return std::unique_ptr<Tokenizer>(new BpeGpt2Tokenizer(std::move(spec), std::move(pre).value()));
}

}  // namespace pagoda::engine::tok
