#include "engine/spec/drafter.h"

#include <spdlog/fmt/fmt.h>

#include "engine/spec/prompt_lookup_drafter.h"
#include "engine/spec/suffix_drafter.h"

namespace pagoda::engine {

const char* speculative_mode_name(SpeculativeMode mode) {
  switch (mode) {
    case SpeculativeMode::Off: return "off";
    case SpeculativeMode::Ngram: return "ngram";
    case SpeculativeMode::Suffix: return "suffix";
    case SpeculativeMode::Draft: return "draft";
    case SpeculativeMode::Auto: return "auto";
  }
  return "?";
}

Status check_speculative_config(const SpeculativeConfig& c) {
  if (c.num_tokens < 1 || c.num_tokens > 32) {
    return Status::error(fmt::format("--num-speculative-tokens {} is outside 1..32", c.num_tokens));
  }
  if (c.ngram_min < 1 || c.ngram_max < c.ngram_min || c.ngram_max > 64) {
    return Status::error(fmt::format("prompt lookup n-gram sizes {}..{} are not 1 <= min <= max <= 64", c.ngram_min,
                                     c.ngram_max));
  }
  if (c.suffix_cache_tokens < 0 || c.suffix_cache_tokens > (int64_t{1} << 24)) {
    return Status::error(fmt::format("--suffix-cache-tokens {} is outside 0..2^24", c.suffix_cache_tokens));
  }
  return {};
}

std::unique_ptr<Drafter> make_drafter(const SpeculativeConfig& c) {
  switch (c.mode) {
    case SpeculativeMode::Off:
    case SpeculativeMode::Draft: return nullptr;
    case SpeculativeMode::Ngram:
    case SpeculativeMode::Auto: return std::make_unique<PromptLookupDrafter>(c.ngram_min, c.ngram_max);
    case SpeculativeMode::Suffix:
      return std::make_unique<SuffixDrafter>(c.ngram_min, c.ngram_max, c.suffix_cache_tokens);
  }
  return nullptr;
}

}  // namespace pagoda::engine
