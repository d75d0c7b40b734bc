// Stop strings across streamed deltas: held-back prefixes, release on divergence, earliest/longest match,
// UTF-8 code points never split, flush.
#include "server/stop_strings.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/test_utf8.h"

namespace pagoda::server {
namespace {

// Feeds deltas; returns everything emitted (flushed at the end when no stop matched) and the stop index.
struct Run {
  std::string text;
  std::optional<size_t> stop;
  std::vector<std::string> chunks;  // per-push output, to check what was held
};
Run feed(std::vector<std::string> stops, const std::vector<std::string>& deltas) {
  StopStringMatcher m(std::move(stops));
  Run r;
  for (const auto& d : deltas) {
    auto out = m.push(d);
    r.text += out.text;
    r.chunks.push_back(out.text);
    if (out.stop_index) {
      r.stop = out.stop_index;
      return r;
    }
  }
  r.text += m.flush();
  return r;
}

using test::valid_utf8;

TEST(StopStrings, NoStopsPassThrough) {
  StopStringMatcher m({});
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.push("hello ").text, "hello ");
  EXPECT_EQ(m.push("world").text, "world");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, StopSpanningTwoDeltas) {
  const auto r = feed({"END"}, {"abc E", "ND tail"});
  EXPECT_EQ(r.text, "abc ");
  EXPECT_EQ(r.stop, 0u);
  EXPECT_EQ(r.chunks[0], "abc ");  // "E" held back
}

TEST(StopStrings, StopSpanningThreeDeltas) {
  const auto r = feed({"</stop>"}, {"x </s", "to", "p> never"});
  EXPECT_EQ(r.text, "x ");
  EXPECT_EQ(r.stop, 0u);
  EXPECT_EQ(r.chunks[0], "x ");
  EXPECT_EQ(r.chunks[1], "");
}

TEST(StopStrings, PartialPrefixThenDivergenceReleasesTheHeldText) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.push("go ST").text, "go ");
  const auto out = m.push("ART");
  EXPECT_EQ(out.text, "START");
  EXPECT_FALSE(out.stop_index);
  // Divergence that itself begins a new prefix: "STS" -> release "ST", hold "S".
  EXPECT_EQ(m.push(" ST").text, " ");
  EXPECT_EQ(m.push("S").text, "ST");
  EXPECT_EQ(m.flush(), "S");
}

TEST(StopStrings, OverlappingPrefixesTakeEarliestThenLongest) {
  // "ab" completes first while "abc" is still possible: the stop ends generation at the earliest match.
  auto r = feed({"abc", "ab"}, {"xa", "b"});
  EXPECT_EQ(r.text, "x");
  EXPECT_EQ(r.stop, 1u);
  // Both complete in the same delta at the same position: the longer wins.
  r = feed({"ab", "abc"}, {"x", "abcd"});
  EXPECT_EQ(r.text, "x");
  EXPECT_EQ(r.stop, 1u);
  // Different positions in one delta: the earlier one wins even if listed later.
  r = feed({"cd", "b"}, {"abcd"});
  EXPECT_EQ(r.text, "a");
  EXPECT_EQ(r.stop, 1u);
  // Held text is the longest suffix that prefixes any stop.
  StopStringMatcher m({"aab", "ab"});
  EXPECT_EQ(m.push("xaa").text, "x");
  const auto out = m.push("b");
  EXPECT_EQ(out.text, "");
  EXPECT_EQ(out.stop_index, 0u);  // "aab" starts at 0 of the held "aab", before "ab" at 1
}

TEST(StopStrings, StopAtTheVeryStart) {
  const auto r = feed({"###"}, {"###", "more"});
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.stop, 0u);
  const auto split = feed({"###"}, {"#", "#", "# more"});
  EXPECT_EQ(split.text, "");
  EXPECT_EQ(split.stop, 0u);
}

TEST(StopStrings, NoMatchFlushesEverythingHeld) {
  const auto r = feed({"STOP"}, {"the end ST", "O"});
  EXPECT_FALSE(r.stop);
  EXPECT_EQ(r.text, "the end STO");
  EXPECT_EQ(r.chunks[1], "");  // "STO" held until flush
}

TEST(StopStrings, MultiByteStopSplitAcrossDeltas) {
  // "。" is E3 80 82; split mid code point is not something the detokenizer sends, but a stop that is a whole
  // code point split across token deltas at code point boundaries is.
  auto r = feed({"。"}, {"你好", "。", "再见"});
  EXPECT_EQ(r.text, "你好");
  EXPECT_EQ(r.stop, 0u);
  // Emoji stop spanning two deltas with a multi-byte stop of two code points.
  r = feed({"🙂👋"}, {"hi 🙂", "👋 bye"});
  EXPECT_EQ(r.text, "hi ");
  EXPECT_EQ(r.stop, 0u);
  // Shares its first bytes with the text but diverges: "。" and "、" (E3 80 81) share E3 80.
  r = feed({"。x"}, {"a。", "、b"});
  EXPECT_FALSE(r.stop);
  EXPECT_EQ(r.text, "a。、b");
  for (const auto& c : r.chunks) EXPECT_TRUE(valid_utf8(c)) << c;
}

TEST(StopStrings, ReleasedTextNeverSplitsACodePoint) {
  // Stops whose first bytes are the tail bytes of a code point in the text (not valid as UTF-8 stops on their
  // own, so built from bytes) must not make the matcher cut inside the text's code point.
  const std::string tail = "\x80\x82";  // the last two bytes of "。"
  StopStringMatcher m({tail + "zz"});
  const auto out = m.push("ab。");
  EXPECT_TRUE(valid_utf8(out.text)) << out.text;
  EXPECT_EQ(out.text, "ab");
  const auto more = m.push("c");
  EXPECT_EQ(out.text + more.text, "ab。c");
  EXPECT_FALSE(more.stop_index);
  // Bytes fed one at a time (an incremental detokenizer that did split) are released whole.
  StopStringMatcher bytes({"zz"});
  std::string emitted;
  for (const char c : std::string("é🙂x")) {
    const auto o = bytes.push(std::string(1, c));
    EXPECT_TRUE(valid_utf8(o.text));
    emitted += o.text;
  }
  EXPECT_EQ(emitted + bytes.flush(), "é🙂x");
}

TEST(StopStrings, EmptyStopStringsAreIgnored) {
  const auto r = feed({"", "Z"}, {"abc", "dZ"});
  EXPECT_EQ(r.text, "abcd");
  EXPECT_EQ(r.stop, 1u);
}

}  // namespace
}  // namespace pagoda::server
