// Tokenizer base: the vocabulary shared by both algorithms, decode, end-of-generation, and the factory.
#include "engine/tokenizer/tokenizer.h"

#include <algorithm>

#include "engine/tokenizer/tokenizer_impl.h"
#include "engine/tokenizer/vocab.h"

namespace pagoda::engine {

Tokenizer::Tokenizer(TokenizerSpec spec) : spec_(std::move(spec)) {
  auto vocab = std::make_shared<tok::Vocab>(tok::build_vocab(spec_));
  end_of_generation_ids_ = vocab->eog_ids;
  vocab_ = std::move(vocab);
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::create(TokenizerSpec spec) {
  if (spec.tokens.empty()) return Status::error("tokenizer: the vocabulary (tokenizer.ggml.tokens) is empty");
  const size_t n = spec.tokens.size();
  if (!spec.token_types.empty() && spec.token_types.size() < n)
    return Status::error("tokenizer: " + std::to_string(spec.token_types.size()) +
                         " token types for " + std::to_string(n) + " tokens (need one per token)");
  if (!spec.scores.empty() && spec.scores.size() < n)
    return Status::error("tokenizer: " + std::to_string(spec.scores.size()) + " scores for " + std::to_string(n) +
                         " tokens (need one per token)");
  if (spec.model == "gpt2") return tok::make_bpe_gpt2(std::move(spec));
  if (spec.model == "llama") return tok::make_bpe_spm(std::move(spec));
  return Status::error("tokenizer: unsupported tokenizer.ggml.model '" + spec.model + "' (supported: gpt2, llama)");
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool special) const {
  std::string out;
  for (int32_t id : ids) out += token_to_piece(id, special);
  return out;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::binary_search(end_of_generation_ids_.begin(), end_of_generation_ids_.end(), id);
}

int32_t Tokenizer::find_token(std::string_view text) const { return vocab_->find(std::string(text)); }

uint32_t Tokenizer::token_attr(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_->attrs.size()) return 0;
  return vocab_->attrs[static_cast<size_t>(id)];
}

}  // namespace pagoda::engine
