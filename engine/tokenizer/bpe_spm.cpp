// SentencePiece-style BPE (tokenizer.ggml.model "llama"), token-identical to llama.cpp's
// llm_tokenizer_spm_session: spaces become U+2581 ("▁"), a space is prefixed to text that starts the input
// or follows a special token (add_space_prefix), adjacent pieces are merged by highest vocabulary score,
// and pieces that are not tokens fall back to <0xXX> byte tokens.
#include <cstdlib>
#include <map>
#include <queue>

#include "engine/tokenizer/tokenizer_impl.h"
#include "engine/tokenizer/unicode_utf8.h"
#include "engine/tokenizer/vocab.h"

namespace pagoda::engine::tok {

namespace {

const char* const kSpace = "\xE2\x96\x81";  // U+2581

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (;;) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

struct Symbol {
  int prev;
  int next;
  size_t begin;
  size_t n;
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;
};

struct BigramOrder {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return (l.score < r.score) || (l.score == r.score && l.left > r.left);
  }
};

class BpeSpmTokenizer final : public Tokenizer {
 public:
  explicit BpeSpmTokenizer(TokenizerSpec spec) : Tokenizer(std::move(spec)) {}

  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> out;
    bool prev_special = true;  // the first piece of text gets the space prefix
    if (add_special && spec_.add_bos && spec_.bos_id >= 0) out.push_back(spec_.bos_id);
    for (const Fragment& f : partition_special(*vocab_, text, parse_special)) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      std::string piece = (spec_.add_space_prefix && prev_special) ? " " : "";
      piece.append(text.substr(f.offset, f.length));
      replace_all(piece, " ", kSpace);
      tokenize_piece(piece, out);
      prev_special = false;
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
      std::string s = text;
      replace_all(s, kSpace, " ");
      return s;
    }
    if (attr & kAttrByte) return byte_token_piece(text);
    return {};
  }

 private:
  int32_t byte_token(uint8_t ch) const {
    static const char* hex = "0123456789ABCDEF";
    const char buf[7] = {'<', '0', 'x', hex[ch >> 4], hex[ch & 15], '>', 0};
    int32_t id = vocab_->find(buf);
    if (id < 0) id = vocab_->find(std::string(1, static_cast<char>(ch)));
    if (id < 0) id = spec_.unk_id;  // llama.cpp would throw here: no byte fallback for this byte
    return id;
  }

  void tokenize_piece(const std::string& text, std::vector<int32_t>& out) const {
    const Vocab& v = *vocab_;
    std::vector<Symbol> symbols;
    int index = 0;
    for (size_t offs = 0; offs < text.size();) {
      const size_t len = std::min(utf8_len(text[offs]), text.size() - offs);
      symbols.push_back({index - 1, offs + len == text.size() ? -1 : index + 1, offs, len});
      offs += len;
      ++index;
    }
    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    std::map<std::string, std::pair<int, int>> rev_merge;
    const auto try_add = [&](int left, int right) {
      if (left == -1 || right == -1) return;
      const Symbol& l = symbols[static_cast<size_t>(left)];
      const std::string s = text.substr(l.begin, l.n + symbols[static_cast<size_t>(right)].n);
      const int32_t id = v.find(s);
      if (id < 0 || static_cast<size_t>(id) >= v.texts.size()) return;
      const float score = spec_.scores.empty() ? 0.0f : spec_.scores[static_cast<size_t>(id)];
      queue.push(Bigram{left, right, score, s.size()});
      rev_merge[s] = {left, right};
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = symbols[static_cast<size_t>(b.left)];
      Symbol& r = symbols[static_cast<size_t>(b.right)];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }

    const auto resegment = [&](auto&& self, const Symbol& s) -> void {
      const std::string piece = text.substr(s.begin, s.n);
      const int32_t id = v.find(piece);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
      const auto it = rev_merge.find(piece);
      if (it == rev_merge.end()) {
        for (char c : piece) {
          const int32_t bid = byte_token(static_cast<uint8_t>(c));
          if (bid >= 0) out.push_back(bid);
        }
        return;
      }
      self(self, symbols[static_cast<size_t>(it->second.first)]);
      self(self, symbols[static_cast<size_t>(it->second.second)]);
    };
    if (symbols.empty()) return;
    for (int i = 0; i != -1; i = symbols[static_cast<size_t>(i)].next) resegment(resegment, symbols[static_cast<size_t>(i)]);
  }
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_bpe_spm(TokenizerSpec spec) {
  return std::unique_ptr<Tokenizer>(new BpeSpmTokenizer(std::move(spec)));
}

}  // namespace pagoda::engine::tok
