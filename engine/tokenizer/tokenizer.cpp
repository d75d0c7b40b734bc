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
  if (spec.model == "gpt2" || spec.model == "gemma4") return tok::make_bpe_gpt2(std::move(spec));
  if (spec.model == "llama") return tok::make_bpe_spm(std::move(spec));
  return Status::error("tokenizer: unsupported tokenizer.ggml.model '" + spec.model + "' (supported: gpt2, llama, gemma4)");
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

Result<std::vector<int32_t>> Tokenizer::encode_fill_in_the_middle(std::span<const int32_t> prefix,
                                                                  std::string_view suffix) const {
  if (!has_fill_in_the_middle()) {
    return Status::error("this model has no fill-in-the-middle tokens (FIM prefix, suffix and middle markers): "
                         "'suffix' needs a code model trained for it");
  }
  std::vector<int32_t> out;
  if (spec_.add_bos && spec_.bos_id >= 0) out.push_back(spec_.bos_id);
  out.push_back(spec_.fim_pre_id);
  out.insert(out.end(), prefix.begin(), prefix.end());
  out.push_back(spec_.fim_suf_id);
  const std::vector<int32_t> s = encode(suffix, /*add_special=*/false, /*parse_special=*/false);
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(spec_.fim_mid_id);
  return out;
}

uint32_t Tokenizer::token_attr(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_->attrs.size()) return 0;
  return vocab_->attrs[static_cast<size_t>(id)];
}

}  // namespace pagoda::engine
