#pragma once
// Stop strings matched on the detokenized text as it streams, across token boundaries: text that could
// still become the start of a stop string is held back; when a stop string completes, the text before
// it is released and the stop string itself never is.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pagoda::server {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);
  struct Output {
    std::string text;                  // safe to emit now
    std::optional<size_t> stop_index;  // which stop string matched (generation ends)
  };
  // Feed the next text delta (valid UTF-8 from the incremental detokenizer).
  Output push(std::string_view delta);
  // End of generation without a stop: everything held back.
  std::string flush();
  bool empty() const { return stops_.empty(); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  size_t max_len_ = 0;
};

}  // namespace pagoda::server
