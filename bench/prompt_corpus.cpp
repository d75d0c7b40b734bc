#include "bench/prompt_corpus.h"

#include <fstream>
#include <sstream>

namespace pagoda::bench {

const std::vector<std::string>& fortune_files() {
  static const std::vector<std::string> files = {"literature", "wisdom",    "people", "humorists", "science",
                                                 "politics",   "education", "work",   "law",       "miscellaneous"};
  return files;
}

namespace {

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
        raw += line;
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
  return tok_->decode(window);
}

std::string PromptCorpus::random_text(int32_t n, std::mt19937_64& rng) const {
  std::uniform_int_distribution<size_t> pick(0, ids_.size() - 1);
  return text_at(pick(rng), n);
}

}  // namespace pagoda::bench
