#include "bench/prompt_corpus.h"

#include <fstream>
#include <sstream>

#include "engine/tokenizer/unicode_utf8.h"

namespace pagoda::bench {

const std::vector<std::string>& fortune_files() {
  static const std::vector<std::string> files = {"literature", "wisdom",    "people", "humorists", "science",
                                                 "politics",   "education", "work",   "law",       "miscellaneous"};
  return files;
}

namespace {

// Text as a terminal shows it: some quotations are typeset with overstrikes ("_\bx" underlines x), so a
// backspace drops the byte before it; other control bytes but whitespace are dropped.
std::string resolve_overstrikes(const std::string& line) {
  std::string out;
  for (const char c : line) {
    if (c == '\b') {
      if (!out.empty() && static_cast<unsigned char>(out.back()) < 0x80) out.pop_back();
    } else if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') {
      if (c != 0x7F) out += c;
    }
  }
  return out;
}

// Appends one quotation (its raw lines) as a single paragraph.
void append_quotation(const std::string& raw, std::string& out) {
  std::string para;
  std::istringstream words(raw);
  for (std::string w; words >> w;) {
    if (!para.empty()) para += ' ';
    para += w;
  }
  if (para.empty()) return;
  if (!out.empty()) out += "\n\n";
  out += para;
}

}  // namespace

Result<std::string> load_fortunes_text(const std::string& dir) {
  std::string out;
  for (const std::string& name : fortune_files()) {
    const std::string path = dir + "/" + name;
    std::ifstream f(path);
    if (!f)
      return Status::error(StatusCode::NotFound, "cannot read " + path +
                                                     ": the prompt text comes from the Debian package 'fortunes' "
                                                     "(apt-get install fortunes; scripts/setup.sh installs it)");
    std::string raw, line;
    while (std::getline(f, line)) {
      if (line == "%") {
        append_quotation(raw, out);
        raw.clear();
      } else {
        raw += resolve_overstrikes(line);
        raw += '\n';
      }
    }
    append_quotation(raw, out);
  }
  return out;
}

Result<PromptCorpus> PromptCorpus::build(const std::string& text, const engine::Tokenizer& tokenizer) {
  std::vector<int32_t> ids = tokenizer.encode(text, /*add_special=*/false, /*parse_special=*/false);
  if (ids.empty()) return Status::error("the prompt corpus is empty");
  return PromptCorpus(std::move(ids), tokenizer);
}

std::string PromptCorpus::text_at(size_t offset, int32_t n) const {
  std::vector<int32_t> window;
  window.reserve(static_cast<size_t>(std::max(n, 0)));
  for (int32_t i = 0; i < n; ++i) window.push_back(ids_[(offset + static_cast<size_t>(i)) % ids_.size()]);
  std::string text = tok_->decode(window);
  // A window may cut a multi-byte character whose bytes are separate tokens: drop the partial ends, as a
  // prompt must be valid UTF-8 (gRPC refuses anything else).
  size_t lead = 0;
  while (lead < text.size() && (static_cast<unsigned char>(text[lead]) & 0xC0) == 0x80) ++lead;
  text.erase(0, lead);
  text.resize(text.size() - engine::tok::incomplete_utf8_suffix(text));
  return engine::tok::sanitize_utf8(text);
}

std::string PromptCorpus::random_text(int32_t n, std::mt19937_64& rng) const {
  std::uniform_int_distribution<size_t> pick(0, ids_.size() - 1);
  return text_at(pick(rng), n);
}

}  // namespace pagoda::bench
