// Tool-call parsing: Hermes blocks and Llama 3 JSON outputs, bad blocks kept as content, and the streaming parser
// agreeing with the whole-output parser on every way of splitting the text.
#include "server/tool_calls.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace pagoda::server::tools {
namespace {

const std::vector<std::string> kNames = {"get_weather", "get_time"};

ParsedToolOutput hermes(std::string_view text) { return parse_tool_calls(ToolCallFormat::Hermes, text, kNames); }
ParsedToolOutput llama(std::string_view text) { return parse_tool_calls(ToolCallFormat::Llama3Json, text, kNames); }

std::string trimmed(const std::string& s) {
  const size_t first = s.find_first_not_of(" \t\n\r\f\v");
  if (first == std::string::npos) return "";
  const size_t last = s.find_last_not_of(" \t\n\r\f\v");
  return s.substr(first, last + 1 - first);
}

TEST(ToolCalls, FormatNames) {
  EXPECT_STREQ(tool_call_format_name(ToolCallFormat::Hermes), "hermes");
  EXPECT_STREQ(tool_call_format_name(ToolCallFormat::Llama3Json), "llama3_json");
}

TEST(ToolCalls, HermesSingleCall) {
  const auto r = hermes(
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n"
      "</tool_call>");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(r.calls[0].arguments, "{\"city\":\"Paris\",\"days\":2}");
}

TEST(ToolCalls, HermesTwoParallelCalls) {
  const auto r = hermes(
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>\n");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0], (ToolCall{"get_weather", "{\"city\":\"Paris\"}"}));
  EXPECT_EQ(r.calls[1], (ToolCall{"get_time", "{\"tz\":\"CET\"}"}));
}

TEST(ToolCalls, HermesContentBeforeACall) {
  const auto r = hermes(
      "Let me check the weather.\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n"
      "</tool_call>");
  EXPECT_EQ(r.content, "Let me check the weather.");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0], (ToolCall{"get_weather", "{}"}));
}

TEST(ToolCalls, HermesMissingArgumentsAreAnEmptyObject) {
  const auto r = hermes("<tool_call>{\"name\": \"get_time\"}</tool_call>");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0], (ToolCall{"get_time", "{}"}));
}

TEST(ToolCalls, HermesBadJsonStaysContent) {
  const std::string bad = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>";
  const auto r = hermes("Sure. " + bad + "\n<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>");
  EXPECT_EQ(r.content, "Sure. " + bad);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "get_time");
}

TEST(ToolCalls, HermesUnknownNameStaysContent) {
  const std::string text = "<tool_call>\n{\"name\": \"delete_everything\", \"arguments\": {}}\n</tool_call>";
  const auto r = hermes(text);
  EXPECT_EQ(r.content, text);
  EXPECT_TRUE(r.calls.empty());
  // No functions in the request: nothing is a call.
  EXPECT_TRUE(
      parse_tool_calls(ToolCallFormat::Hermes, "<tool_call>{\"name\": \"get_time\"}</tool_call>", {}).calls.empty());
}

TEST(ToolCalls, HermesUnterminatedBlockStaysContent) {
  const auto r = hermes(
      "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>\n"
      "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "get_time");
  EXPECT_EQ(r.content, "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa");
}

TEST(ToolCalls, HermesArgumentsNotAnObjectStayContent) {
  for (const std::string args : {"\"{\\\"city\\\": \\\"Paris\\\"}\"", "[1, 2]", "null", "3"}) {
    const std::string text = "<tool_call>{\"name\": \"get_weather\", \"arguments\": " + args + "}</tool_call>";
    const auto r = hermes(text);
    EXPECT_TRUE(r.calls.empty()) << args;
    EXPECT_EQ(r.content, text);
  }
  // Not an object at all, or a name that is not a string.
  EXPECT_TRUE(hermes("<tool_call>[\"get_weather\"]</tool_call>").calls.empty());
  EXPECT_TRUE(hermes("<tool_call>{\"name\": 7, \"arguments\": {}}</tool_call>").calls.empty());
}

TEST(ToolCalls, HermesContentBetweenCallsIsKept) {
  const auto r = hermes(
      "A <tool_call>{\"name\": \"get_time\"}</tool_call> B\n<tool_call>{\"name\": \"get_time\"}"
      "</tool_call>\n");
  EXPECT_EQ(r.content, "A  B");
  EXPECT_EQ(r.calls.size(), 2u);
}

TEST(ToolCalls, HermesPlainContent) {
  const auto r = hermes("  The answer is x < y, see <b>this</b>.\n");
  EXPECT_EQ(r.content, "The answer is x < y, see <b>this</b>.");
  EXPECT_TRUE(r.calls.empty());
}

TEST(ToolCalls, Llama3Parameters) {
  const auto r = llama("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0], (ToolCall{"get_weather", "{\"city\":\"Paris\"}"}));
}

TEST(ToolCalls, Llama3Arguments) {
  const auto r = llama("\n {\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}} \n");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0], (ToolCall{"get_time", "{\"tz\":\"UTC\"}"}));
}

TEST(ToolCalls, Llama3PythonTag) {
  const auto r = llama("<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0], (ToolCall{"get_weather", "{\"city\":\"Oslo\"}"}));
  // A built-in tool call in Python syntax is not JSON: content, tag and all.
  const auto py = llama("<|python_tag|>brave_search.call(query=\"x\")");
  EXPECT_TRUE(py.calls.empty());
  EXPECT_EQ(py.content, "<|python_tag|>brave_search.call(query=\"x\")");
}

TEST(ToolCalls, Llama3SemicolonSeparatedCalls) {
  const auto r = llama(
      "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"a;b}\"}}; {\"name\": \"get_time\", \"parameters\": "
      "{}};");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0], (ToolCall{"get_weather", "{\"city\":\"a;b}\"}"}));
  EXPECT_EQ(r.calls[1], (ToolCall{"get_time", "{}"}));
}

TEST(ToolCalls, Llama3PlainContent) {
  const auto r = llama("  The weather in Paris is {sunny}.  ");
  EXPECT_EQ(r.content, "The weather in Paris is {sunny}.");
  EXPECT_TRUE(r.calls.empty());
}

TEST(ToolCalls, Llama3AnyBadObjectMakesEverythingContent) {
  const std::vector<std::string> bad = {
      "{\"name\": \"get_time\", \"parameters\": {}} and then some text",
      "{\"name\": \"get_time\", \"parameters\": {}}; {\"name\": \"unknown\", \"parameters\": {}}",
      "{\"name\": \"get_time\", \"parameters\": \"tz=UTC\"}",
      "{\"name\": \"get_time\", \"parameters\": {}",
      "{\"name\": \"get_time\", \"parameters\": {}} {\"name\": \"get_time\"}",
      "{\"answer\": 42}",
  };
  for (const auto& text : bad) {
    const auto r = llama(text);
    EXPECT_TRUE(r.calls.empty()) << text;
    EXPECT_EQ(r.content, text);
  }
}

// Streaming --------------------------------------------------------------------------------------------------------

struct Streamed {
  std::string content;
  std::vector<ToolCall> calls;
};

Streamed stream(ToolCallFormat format, const std::vector<std::string>& pieces) {
  ToolCallStreamParser parser(format, kNames);
  Streamed s;
  auto take = [&s](ToolStreamDelta d) {
    s.content += d.content;
    for (auto& c : d.calls) s.calls.push_back(std::move(c));
  };
  for (const auto& p : pieces) take(parser.feed(p));
  take(parser.finish());
  return s;
}

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Pieces cut at the given sorted byte positions (all on code point boundaries).
std::vector<std::string> split_at(const std::string& text, const std::vector<size_t>& cuts) {
  std::vector<std::string> pieces;
  size_t prev = 0;
  for (size_t c : cuts) {
    pieces.push_back(text.substr(prev, c - prev));
    prev = c;
  }
  pieces.push_back(text.substr(prev));
  return pieces;
}

const std::vector<std::string> kHermesOutputs = {
    "",
    "   \n ",
    "Hello world",
    "  Héllo wörld — 日本語 🙂  \n",
    "x < y and <b>bold</b> and <tool and <tool_cal",
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\"}}\n</tool_call>",
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
    "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>\n",
    "Let me check.\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
    "Sure. <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": }</tool_call>\n \n"
    "<tool_call>{\"name\": \"get_time\"}</tool_call>  then text after\n",
    "<tool_call>{\"name\": \"nope\", \"arguments\": {}}</tool_call> <tool_call>{\"name\": \"get_time\"}</tool_call>",
    "A <tool_call>{\"name\": \"get_time\"}</tool_call> B \n<tool_call>{\"name\": \"get_time\"}</tool_call>\t",
    "<tool_call>{\"name\": \"get_time\"}</tool_call>\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"c",
    "<tool_call> x <tool_call>{\"name\": \"get_time\"}</tool_call></tool_call>",
    "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"q\": \"</tool_cal\"}}</tool_call>",
    "<<tool_call>{\"name\": \"get_time\"}</tool_call><</tool_call>",
};

const std::vector<std::string> kLlamaOutputs = {
    "",
    " \n",
    "The weather is fine.",
    "  {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}\n",
    "{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}",
    "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Köln\"}}",
    "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"a;b\"}}; {\"name\": \"get_time\", \"parameters\": {}}",
    "{\"name\": \"unknown\", \"parameters\": {}}",
    "{not json at all} \n",
    "<|python_tag|>brave_search.call(query=\"x\")",
    "<|pyth",
    "<|nope|> text",
    "  Sure — {\"name\": \"get_time\"} 🙂 ",
};

void expect_stream_matches(ToolCallFormat format, const std::string& text, const std::vector<std::string>& pieces) {
  const ParsedToolOutput whole = parse_tool_calls(format, text, kNames);
  const Streamed s = stream(format, pieces);
  // The contract allows trailing whitespace to differ; this implementation releases exactly the trimmed content.
  EXPECT_EQ(trimmed(s.content), whole.content) << text;
  EXPECT_EQ(s.content, whole.content) << text;
  EXPECT_EQ(s.calls, whole.calls) << text;
}

void check_all_splits(ToolCallFormat format, const std::vector<std::string>& outputs) {
  std::mt19937 rng(1234);
  for (const auto& text : outputs) {
    expect_stream_matches(format, text, {text});
    std::vector<size_t> boundaries;
    for (size_t i = 1; i < text.size(); ++i) {
      if (!is_continuation(text[i])) boundaries.push_back(i);
    }
    for (size_t b : boundaries) expect_stream_matches(format, text, split_at(text, {b}));
    expect_stream_matches(format, text, split_at(text, boundaries));  // one code point per piece
    if (boundaries.empty()) continue;
    for (int round = 0; round < 200; ++round) {
      std::vector<size_t> cuts;
      for (size_t b : boundaries) {
        if (rng() % 4 == 0) cuts.push_back(b);
      }
      expect_stream_matches(format, text, split_at(text, cuts));
    }
  }
}

TEST(ToolCallStream, HermesMatchesWholeParseOnEverySplit) { check_all_splits(ToolCallFormat::Hermes, kHermesOutputs); }

TEST(ToolCallStream, Llama3MatchesWholeParseOnEverySplit) {
  check_all_splits(ToolCallFormat::Llama3Json, kLlamaOutputs);
}

TEST(ToolCallStream, HermesPlainTextIsReleasedImmediately) {
  ToolCallStreamParser p(ToolCallFormat::Hermes, kNames);
  EXPECT_EQ(p.feed("Hello").content, "Hello");
  EXPECT_EQ(p.feed(", world").content, ", world");
  // A whitespace run waits for what follows it (it may be trailing, or between calls).
  EXPECT_EQ(p.feed(" ").content, "");
  EXPECT_EQ(p.feed("again.").content, " again.");
  EXPECT_EQ(p.finish().content, "");
}

TEST(ToolCallStream, HermesMarkerPrefixIsHeldBack) {
  ToolCallStreamParser p(ToolCallFormat::Hermes, kNames);
  EXPECT_EQ(p.feed("Checking <tool").content, "Checking");
  EXPECT_EQ(p.feed("s are").content, " <tools are");  // diverged: released with the space before it
  EXPECT_EQ(p.feed(" ok <").content, " ok");
  EXPECT_EQ(p.finish().content, " <");
}

TEST(ToolCallStream, HermesCallIsReleasedWhenItsBlockCloses) {
  ToolCallStreamParser p(ToolCallFormat::Hermes, kNames);
  EXPECT_EQ(p.feed("One moment.\n<tool_call>\n{\"name\": \"get_time\", ").content, "One moment.");
  auto d = p.feed("\"arguments\": {}}\n</tool_");
  EXPECT_EQ(d.content, "");
  EXPECT_TRUE(d.calls.empty());
  d = p.feed("call>\n<tool_call>{\"name\": \"get_weather\"}</tool_call>");
  EXPECT_EQ(d.content, "");
  ASSERT_EQ(d.calls.size(), 2u);
  EXPECT_EQ(d.calls[0], (ToolCall{"get_time", "{}"}));
  EXPECT_EQ(d.calls[1], (ToolCall{"get_weather", "{}"}));
  d = p.finish();
  EXPECT_EQ(d.content, "");
  EXPECT_TRUE(d.calls.empty());
}

TEST(ToolCallStream, Llama3ContentStreamsAndJsonIsHeld) {
  ToolCallStreamParser text(ToolCallFormat::Llama3Json, kNames);
  EXPECT_EQ(text.feed("  \n").content, "");
  EXPECT_EQ(text.feed("It is").content, "It is");
  EXPECT_EQ(text.feed(" sunny").content, " sunny");
  EXPECT_EQ(text.finish().content, "");

  ToolCallStreamParser call(ToolCallFormat::Llama3Json, kNames);
  EXPECT_EQ(call.feed("<|python").content, "");
  EXPECT_EQ(call.feed("_tag|>{\"name\": \"get_time\", ").content, "");
  EXPECT_TRUE(call.feed("\"parameters\": {}}").calls.empty());
  const auto d = call.finish();
  EXPECT_EQ(d.content, "");
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_EQ(d.calls[0], (ToolCall{"get_time", "{}"}));
}

TEST(ToolCallStream, NothingAfterFinish) {
  ToolCallStreamParser p(ToolCallFormat::Hermes, kNames);
  EXPECT_EQ(p.feed("a <").content, "a");
  EXPECT_EQ(p.finish().content, " <");
  EXPECT_EQ(p.feed("more").content, "");
  EXPECT_EQ(p.finish().content, "");
}

TEST(ToolCallsLimits, DeeplyNestedArgumentsAreNotACall) {
  const std::vector<std::string> names = {"f"};
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  const std::string text = "<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": " + deep + "}}</tool_call>";
  const ParsedToolOutput out = parse_tool_calls(ToolCallFormat::Hermes, text, names);
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, text);
  const std::string ok = "<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": [[[1]]]}}</tool_call>";
  ASSERT_EQ(parse_tool_calls(ToolCallFormat::Hermes, ok, names).calls.size(), 1u);
}

}  // namespace
}  // namespace pagoda::server::tools
