#pragma once
// Real English text for load-test prompts (BENCH.md `chat`: "prompts built from real English text").
// The text is the quotations of the Debian package `fortunes` (fortune-mod's data files, plain text in
// /usr/share/games/fortunes), tokenized once with the served model's tokenizer; a prompt of n tokens is
// a window of n consecutive tokens starting at a seeded random place, so prompts have the lengths the
// workload draws and do not share prefixes (which would let a prefix cache flatter TTFT).
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/status.h"
#include "engine/tokenizer/tokenizer.h"

namespace pagoda::bench {

inline constexpr const char* kFortunesDir = "/usr/share/games/fortunes";

// The English prose files of `fortunes` used, in this order (the package's other files are ASCII art,
// code, song lyrics or very short).
const std::vector<std::string>& fortune_files();

// Reads fortune_files() from `dir` and returns their quotations as paragraphs: each quotation's lines
// joined with single spaces (tabs and runs of blanks collapsed), quotations separated by a blank line.
// Errors name the missing file and the package to install.
Result<std::string> load_fortunes_text(const std::string& dir = kFortunesDir);

class PromptCorpus {
 public:
  // Tokenizes `text` (no special tokens). `tokenizer` must outlive the corpus. Fails on an empty text.
  static Result<PromptCorpus> build(const std::string& text, const engine::Tokenizer& tokenizer);

  size_t size() const { return ids_.size(); }
  // The text of tokens [offset, offset + n) of the corpus, wrapping around at its end, as valid UTF-8: a
  // character whose bytes the window cuts at either end is dropped.
  std::string text_at(size_t offset, int32_t n) const;
  // text_at a uniformly drawn offset.
  std::string random_text(int32_t n, std::mt19937_64& rng) const;

 private:
  PromptCorpus(std::vector<int32_t> ids, const engine::Tokenizer& tokenizer) : ids_(std::move(ids)), tok_(&tokenizer) {}
  std::vector<int32_t> ids_;
  const engine::Tokenizer* tok_;
};

}  // namespace pagoda::bench
