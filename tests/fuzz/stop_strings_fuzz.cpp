// libFuzzer target: the stop-string matcher (server/stop_strings). The input is a few stop strings and a
// stream of text deltas. The matcher's output is checked against a direct model of what it must do:
// with T the text fed so far, the first push after which some stop string occurs inside T ends the
// stream, and what was released in total is T up to the earliest such occurrence (the longest stop
// there; the first listed among equals); until then, what was released is a prefix of T, never
// splits a UTF-8 character (the deltas are valid UTF-8, as the detokenizer makes them) and holds back
// no more than a stop string's length (plus an unfinished character); flush() gives back the rest.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "engine/tokenizer/unicode_utf8.h"
#include "server/stop_strings.h"

using pagoda::server::StopStringMatcher;

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "stop_strings_fuzz: property violated: %s\n", what);
  std::abort();
}

struct Match {
  size_t pos;
  size_t index;
};

// The earliest occurrence of a non-empty stop in t (longest at the same position; first listed among equals).
std::optional<Match> earliest(const std::string& t, const std::vector<std::string>& stops) {
  std::optional<Match> best;
  size_t best_len = 0;
  for (size_t k = 0; k < stops.size(); ++k) {
    if (stops[k].empty()) continue;
    const size_t pos = t.find(stops[k]);
    if (pos == std::string::npos) continue;
    if (!best || pos < best->pos || (pos == best->pos && stops[k].size() > best_len)) {
      best = Match{pos, k};
      best_len = stops[k].size();
    }
  }
  return best;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  // Raw mode feeds the bytes as they come (the matcher must not crash, and the prefix rules still
  // hold); otherwise every delta and stop is made valid UTF-8 first, as in the server.
  const bool raw = in.ConsumeIntegral<uint8_t>() < 32;
  const auto text = [&](size_t max) {
    std::string s = in.ConsumeRandomLengthString(max);
    return raw ? s : pagoda::engine::tok::sanitize_utf8(s);
  };
  std::vector<std::string> stops;
  const size_t n_stops = in.ConsumeIntegralInRange<size_t>(0, 5);
  size_t max_len = 0;
  for (size_t i = 0; i < n_stops; ++i) {
    stops.push_back(text(24));
    max_len = std::max(max_len, stops.back().size());
  }
  StopStringMatcher m(stops);
  if (m.empty() != stops.empty()) violated("empty() disagrees with the stop list");

  std::string fed, released;
  while (in.remaining_bytes() > 0) {
    const std::string delta = text(32);
    fed += delta;
    const StopStringMatcher::Output out = m.push(delta);
    released += out.text;
    if (!raw && pagoda::engine::tok::sanitize_utf8(out.text) != out.text) violated("released text is not valid UTF-8");
    const std::optional<Match> want = earliest(fed, stops);
    if (want) {
      if (!out.stop_index) violated("a stop string occurs in the text but no stop was reported");
      if (*out.stop_index != want->index) violated("the wrong stop string was reported");
      if (released != fed.substr(0, want->pos)) violated("the text released up to a stop is not the text before it");
      return 0;
    }
    if (out.stop_index) violated("a stop was reported where no stop string occurs");
    if (fed.compare(0, released.size(), released) != 0 || released.size() > fed.size())
      violated("released text is not a prefix of the input");
    if (!raw) {
      const size_t held = fed.size() - released.size();
      if (held > (max_len > 0 ? max_len - 1 : 0) + 3) violated("more text is held back than a stop string could need");
    }
  }
  released += m.flush();
  if (released != fed) violated("without a stop, the output is not the whole input");
  return 0;
}
