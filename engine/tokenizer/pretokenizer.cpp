#include "engine/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <stdexcept>

#include "engine/tokenizer/unicode_utf8.h"

namespace pagoda::engine::tok {

namespace {

// llama.cpp's pre-tokenizer regexes, written as in src/llama-vocab.cpp (\s, \S keep llama.cpp's meaning).
const char* const kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const char* const kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Qwen3.5: Qwen2's, with combining marks (\p{M}) kept inside words.
const char* const kQwen35 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
    "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kPoro = " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+";

struct PreSet {
  std::vector<const char*> names;
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  bool byte_encode = true;  // false: words stay raw UTF-8 (SPM-style BPE with <0xXX> byte tokens)
};

const std::vector<PreSet>& pre_sets() {
  static const std::vector<PreSet> sets = {
      {{"default"},
       {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"},
       false},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"},
       {kLlama3},
       true},
      {{"dbrx", "smaug-bpe", "chatglm-bpe"}, {kLlama3}, false},
      {{"glm4", "glm5"}, {kLlama3}, true},
      {{"deepseek-llm"},
       {"[\r\n]",
        "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
        "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
        "\\s+$",
        "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
        "\\p{N}+"},
       false},
      {{"deepseek-coder"}, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"}, false},
      {{"deepseek-v3"},
       {"\\p{N}{1,3}",
        "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
       false},
      {{"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"}, false},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone"}, {"\\p{N}", kGpt2}, false},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
        "modern-bert", "mpt", "olmo", "jais", "exaone4", "jina-v1-en", "jina-v2-code", "roberta-bpe"},
       {kGpt2},
       false},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2"}, {kQwen2}, false},
      {{"qwen35"}, {kQwen35}, false},
      // Gemma 4: SPM-style BPE (spaces already escaped to U+2581), merged over whole lines; only newlines
      // split (llama.cpp's BPE merge lookup must not see one inside a token).
      {{"gemma4", "granite-embed-multi-311m"}, {"[^\\n]+|[\\n]+"}, false, /*byte_encode=*/false},
      {{"poro-chat", "bloom", "gpt3-finnish"}, {kPoro}, false},
      {{"viking"}, {kPoro, "\\p{N}"}, false},
      {{"tekken"},
       {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^"
        "a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       true},
  };
  return sets;
}

// llama.cpp's whitespace set (unicode_set_whitespace), as PCRE2 class items.
const char* const kWsItems =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

bool is_llama_whitespace(uint32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Rewrites \s and \S (inside and outside classes) to llama.cpp's whitespace set.
std::string to_pcre2(const std::string& re) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < re.size(); ++i) {
    const char c = re[i];
    if (c == '\\' && i + 1 < re.size()) {
      const char n = re[i + 1];
      ++i;
      if (n == 's') {
        out += in_class ? std::string(kWsItems) : "[" + std::string(kWsItems) + "]";
      } else if (n == 'S') {
        if (in_class) throw std::logic_error("\\S inside a class is not supported: " + re);
        out += "[^" + std::string(kWsItems) + "]";
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < re.size() && re[i + 1] == '^') out += re[++i];
      if (i + 1 < re.size() && re[i + 1] == ']') out += re[++i];  // leading ']' is a literal
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  // llama.cpp runs a regex without \p{..} categories through std::wregex on text whose non-ASCII
  // whitespace was replaced by U+000B; literal ranges in such a regex (deepseek's U+3000) then miss it.
  bool fold_ws = false;
  ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::~PreTokenizer() = default;

std::vector<std::string> PreTokenizer::known_names() {
  std::vector<std::string> names;
  for (const auto& s : pre_sets())
    for (const char* n : s.names) names.emplace_back(n);
  return names;
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::create(std::string_view pre) {
  const PreSet* found = nullptr;
  for (const auto& s : pre_sets())
    for (const char* n : s.names)
      if (pre == n) found = &s;
  if (!found) {
    std::string known;
    for (const auto& n : known_names()) known += (known.empty() ? "" : ", ") + n;
    return Status::error("unknown tokenizer.ggml.pre '" + std::string(pre) + "' (known: " + known + ")");
  }
  std::unique_ptr<PreTokenizer> p(new PreTokenizer());
  p->ignore_merges_ = found->ignore_merges;
  p->byte_encode_ = found->byte_encode;
  for (const auto& re : found->regexes) {
    const std::string pattern = to_pcre2(re);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return Status::error("pre-tokenizer '" + std::string(pre) + "': PCRE2 cannot compile regex at offset " +
                           std::to_string(err_off) + ": " + reinterpret_cast<const char*>(msg));
    }
    auto c = std::make_unique<Compiled>();
    c->code = code;
    c->fold_ws = re.find("\\p{") == std::string::npos;
    p->regexes_.push_back(std::move(c));
  }
  return p;
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  const std::vector<uint32_t> cpts = decode_utf8_lax(text);
  const size_t n = cpts.size();

  // PCRE2 needs valid UTF-8: surrogates (category C in llama.cpp's tables) become U+E000 (also C),
  // out-of-range values U+FFFD. The code point count is unchanged, so offsets carry over.
  struct Subject {
    std::string bytes;
    std::vector<size_t> byte_of;  // code point index -> byte offset
    std::vector<size_t> cpt_of;   // byte offset (at code point boundaries) -> code point index
  };
  const auto make_subject = [&](bool fold_ws) {
    Subject s;
    s.bytes.reserve(text.size() + 8);
    s.byte_of.resize(n + 1);
    for (size_t i = 0; i < n; ++i) {
      s.byte_of[i] = s.bytes.size();
      uint32_t c = cpts[i];
      if (c >= 0xD800 && c <= 0xDFFF) c = 0xE000;
      if (c > 0x10FFFF) c = 0xFFFD;
      if (fold_ws && c > 0x7F && is_llama_whitespace(c)) c = 0x0B;
      append_utf8(s.bytes, c);
    }
    s.byte_of[n] = s.bytes.size();
    s.cpt_of.assign(s.bytes.size() + 1, 0);
    for (size_t i = 0; i <= n; ++i) s.cpt_of[s.byte_of[i]] = i;
    return s;
  };
  Subject plain, folded;
  bool have_plain = false, have_folded = false;

  std::vector<size_t> offsets;  // lengths (in code points) of consecutive pieces
  if (n > 0) offsets.push_back(n);

  pcre2_match_data* md = nullptr;
  for (const auto& re : regexes_) {
    if (re->fold_ws && !have_folded) {
      folded = make_subject(true);
      have_folded = true;
    } else if (!re->fold_ws && !have_plain) {
      plain = make_subject(false);
      have_plain = true;
    }
    const Subject& sub = re->fold_ws ? folded : plain;
    const std::string& subject = sub.bytes;
    const std::vector<size_t>& byte_of = sub.byte_of;
    const std::vector<size_t>& cpt_of = sub.cpt_of;
    if (md) pcre2_match_data_free(md);
    md = pcre2_match_data_create_from_pattern(re->code, nullptr);
    std::vector<size_t> next;
    next.reserve(offsets.size() * 2);
    size_t start = 0;
    for (size_t len : offsets) {
      const size_t b0 = byte_of[start], b1 = byte_of[start + len];
      const auto* seg = reinterpret_cast<PCRE2_SPTR>(subject.data() + b0);
      const size_t seg_len = b1 - b0;
      size_t pos = 0;   // search position (bytes, relative to the segment)
      size_t prev = 0;  // end of the last emitted piece
      while (pos <= seg_len) {
        const int rc = pcre2_match(re->code, seg, seg_len, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0) break;  // no match (or a resource limit: the rest stays one piece)
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t ms = ov[0], me = ov[1];
        if (me == ms) {  // empty match: skip one code point
          if (ms >= seg_len) break;
          pos = ms + utf8_len(static_cast<char>(seg[ms]));
          continue;
        }
        if (ms > prev) next.push_back(cpt_of[b0 + ms] - cpt_of[b0 + prev]);
        next.push_back(cpt_of[b0 + me] - cpt_of[b0 + ms]);
        prev = pos = me;
      }
      if (prev < seg_len) next.push_back(cpt_of[b1] - cpt_of[b0 + prev]);
      start += len;
    }
    offsets = std::move(next);
  }
  if (md) pcre2_match_data_free(md);

  std::vector<std::string> words;
  words.reserve(offsets.size());
  size_t start = 0;
  for (size_t len : offsets) {
    std::string raw;
    for (size_t i = start; i < start + len; ++i) append_utf8(raw, cpts[i]);
    start += len;
    if (!byte_encode_) {
      words.push_back(std::move(raw));
      continue;
    }
    std::string enc;
    enc.reserve(raw.size() * 2);
    for (char ch : raw) enc += byte_to_unicode(static_cast<uint8_t>(ch));
    words.push_back(std::move(enc));
  }
  return words;
}

}  // namespace pagoda::engine::tok
