#pragma once
#include <cstdint>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace pagoda::engine {

// Streams text for a growing list of ids without ever emitting a broken UTF-8 sequence: bytes of an
// incomplete code point are held back until the next token completes it (or flush() ends the stream).
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, bool special = false)
      : tokenizer_(tokenizer), special_(special) {}
  std::string push(int32_t id);  // text that became complete with this token (may be empty)
  std::string flush();           // whatever is held back (invalid bytes become U+FFFD)

 private:
  const Tokenizer& tokenizer_;
  bool special_;
  std::string pending_;
};

}  // namespace pagoda::engine
