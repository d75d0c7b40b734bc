// IncrementalDetokenizer: streams the text of a growing id list, holding back the bytes of a code point
// that a later token may still complete, so no chunk ever ends inside a UTF-8 sequence.
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/unicode_utf8.h"

namespace pagoda::engine {

std::string IncrementalDetokenizer::push(int32_t id) {
  pending_ += tokenizer_.token_to_piece(id, special_);
  const size_t hold = tok::incomplete_utf8_suffix(pending_);
  const std::string ready = tok::sanitize_utf8(std::string_view(pending_).substr(0, pending_.size() - hold));
  pending_.erase(0, pending_.size() - hold);
  return ready;
}

std::string IncrementalDetokenizer::flush() {
  std::string out = tok::sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace pagoda::engine
