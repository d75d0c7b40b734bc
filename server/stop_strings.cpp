// Stop strings over streamed text. Invariant: no released byte can be the start of a stop string, because
// before releasing we hold back the longest suffix of the pending text that is a prefix of some stop string.
// So every match lies inside held_, and one search of held_ per delta finds it.
#include "server/stop_strings.h"

#include <algorithm>

namespace pagoda::server {
namespace {

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Bytes of the UTF-8 sequence a lead byte starts (1 for ASCII and for bytes that are not lead bytes).
size_t sequence_length(unsigned char c) {
  if (c >= 0xF0 && c < 0xF8) return 4;
  if (c >= 0xE0) return 3;
  if (c >= 0xC0) return 2;
  return 1;
}

// Largest n <= len such that s[0, n) ends on a code point boundary: not before a continuation byte, and not
// after a lead byte whose sequence is still incomplete. Stops and deltas are valid UTF-8, so this is a guard
// for the cut points we compute, not for the input.
size_t boundary_at_or_before(std::string_view s, size_t len) {
  size_t n = len;
  while (n > 0 && n < s.size() && is_continuation(static_cast<unsigned char>(s[n]))) --n;
  size_t start = n;  // the last sequence before n: up to 3 continuation bytes after its lead
  while (start > 0 && n - start < 3 && is_continuation(static_cast<unsigned char>(s[start - 1]))) --start;
  if (start > 0) {
    const size_t lead = start - 1;
    const unsigned char c = static_cast<unsigned char>(s[lead]);
    if (c >= 0xC0 && lead + sequence_length(c) > n) n = lead;
  }
  return n;
}

}  // namespace

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  // An empty stop string would match everywhere; it is kept (stop_index counts it) but never matched (request
  // validation rejects it earlier).
  stops_ = std::move(stops);
  for (const auto& s : stops_) max_len_ = std::max(max_len_, s.size());
}

StopStringMatcher::Output StopStringMatcher::push(std::string_view delta) {
  Output out;
  held_.append(delta);

  // The earliest complete match; among stops matching at the same position, the longest.
  size_t best_pos = std::string::npos, best_len = 0, best_index = 0;
  for (size_t k = 0; k < stops_.size(); ++k) {
    if (stops_[k].empty()) continue;
    const size_t pos = held_.find(stops_[k]);
    if (pos == std::string::npos) continue;
    if (pos < best_pos || (pos == best_pos && stops_[k].size() > best_len)) {
      best_pos = pos;
      best_len = stops_[k].size();
      best_index = k;
    }
  }
  if (best_pos != std::string::npos) {
    out.text = held_.substr(0, best_pos);
    out.stop_index = best_index;
    held_.clear();
    return out;
  }

  // Hold back the longest suffix that some stop string starts with (shorter than that stop: a full one would
  // have matched above).
  size_t hold = 0;
  const size_t longest = std::min(held_.size(), max_len_ > 0 ? max_len_ - 1 : 0);
  for (size_t len = longest; len > 0 && hold == 0; --len) {
    const std::string_view suffix = std::string_view(held_).substr(held_.size() - len);
    for (const auto& s : stops_) {
      if (s.size() > len && std::string_view(s).substr(0, len) == suffix) {
        hold = len;
        break;
      }
    }
  }
  const size_t release = boundary_at_or_before(held_, held_.size() - hold);
  out.text = held_.substr(0, release);
  held_.erase(0, release);
  return out;
}

std::string StopStringMatcher::flush() {
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace pagoda::server
