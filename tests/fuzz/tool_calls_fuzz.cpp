// libFuzzer target: the tool-call parsers (server/tool_calls), on model output as a prompt injection could
// shape it. The input is a format, the request's function names and a generated text, fed to the streaming
// parser in fuzzed pieces (whole UTF-8 code points, as the output stage releases them).
// Properties: nothing crashes; the streamed content and calls equal parse_tool_calls on the whole text;
// every call names a known function and its arguments are a JSON object.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/tool_calls.h"

using namespace pagoda::server::tools;

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "tool_calls_fuzz: property violated: %s\n", what);
  std::abort();
}

// The length of the UTF-8 sequence starting with byte c (1 for a stray continuation byte).
size_t utf8_length(unsigned char c) {
  if (c >= 0xF0) return 4;
  if (c >= 0xE0) return 3;
  if (c >= 0xC0) return 2;
  return 1;
}

void check_calls(const std::vector<ToolCall>& calls, const std::vector<std::string>& names) {
  for (const ToolCall& c : calls) {
    if (std::find(names.begin(), names.end(), c.name) == names.end()) violated("a call to an unknown function");
    const nlohmann::json args = nlohmann::json::parse(c.arguments, nullptr, false);
    if (args.is_discarded() || !args.is_object()) violated("a call's arguments are not a JSON object");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const ToolCallFormat format = in.ConsumeBool() ? ToolCallFormat::Hermes : ToolCallFormat::Llama3Json;
  std::vector<std::string> names = {"get_weather", "add"};
  if (in.ConsumeBool()) names.push_back(in.ConsumeRandomLengthString(12));
  const size_t pieces_seed = in.ConsumeIntegral<uint8_t>();
  const std::string text = in.ConsumeRemainingBytesAsString();

  const ParsedToolOutput whole = parse_tool_calls(format, text, names);
  check_calls(whole.calls, names);

  ToolCallStreamParser stream(format, names);
  std::string content;
  std::vector<ToolCall> calls;
  const auto take = [&](ToolStreamDelta d) {
    content += d.content;
    calls.insert(calls.end(), d.calls.begin(), d.calls.end());
  };
  // Pieces of 1..8 code points, their sizes drawn from the seed.
  size_t pos = 0, step = pieces_seed;
  while (pos < text.size()) {
    step = step * 1103515245u + 12345u;
    size_t end = pos;
    for (size_t cps = 1 + (step >> 16) % 8; cps > 0 && end < text.size(); --cps) {
      end = std::min(text.size(), end + utf8_length(static_cast<unsigned char>(text[end])));
    }
    take(stream.feed(std::string_view(text).substr(pos, end - pos)));
    pos = end;
  }
  take(stream.finish());
  if (!stream.finish().content.empty()) violated("finish() released text twice");

  if (content != whole.content) violated("streamed content differs from the whole parse");
  if (calls != whole.calls) violated("streamed calls differ from the whole parse");
  return 0;
}
