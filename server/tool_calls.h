#pragma once
// Tool calls in a model's generated text, turned into OpenAI tool calls. Models write calls in the format their
// chat template taught them; two families are covered:
// - Hermes (Hermes-2-Pro, Qwen2.5, SmolLM3 templates): `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
//   blocks, several in a row for parallel calls, ordinary text around them.
// - Llama 3.1/3.2/3.3 JSON tool calling: the whole output is `{"name": ..., "parameters": {...}}` (optionally after
//   `<|python_tag|>`), or several such objects separated by ';'.
// A block that is not a well-formed call to one of the request's functions is not a call: its text stays content.
// The streaming parser releases the same result piece by piece, holding back only what could still be a call.
#include <string>
#include <string_view>
#include <vector>

namespace pagoda::server::tools {

enum class ToolCallFormat { Hermes, Llama3Json };
const char* tool_call_format_name(ToolCallFormat f);  // "hermes", "llama3_json"

struct ToolCall {
  std::string name;
  std::string arguments;  // the arguments object as compact JSON (the model's key order); "{}" when absent
  friend bool operator==(const ToolCall&, const ToolCall&) = default;
};

struct ParsedToolOutput {
  std::string content;  // the text outside tool-call blocks, trimmed of leading/trailing whitespace
  std::vector<ToolCall> calls;
};

// A finished output. `known_names`: the request's function names. A block whose JSON does not parse, whose name is
// not among `known_names`, or whose arguments are not an object is not a call: its text stays in content verbatim.
// Llama3Json is all or nothing: if any ';'-separated object is not a valid call, the whole output is content.
ParsedToolOutput parse_tool_calls(ToolCallFormat format, std::string_view text,
                                  const std::vector<std::string>& known_names);

struct ToolStreamDelta {
  std::string content;          // content that can no longer become part of a call
  std::vector<ToolCall> calls;  // calls whose block is complete
};

// The same result as parse_tool_calls, released incrementally. Concatenating every delta's content gives exactly
// parse_tool_calls(...).content (trailing whitespace included: whitespace is held until non-whitespace content
// follows, and dropped at finish()), and the calls come in the same order.
// Hermes: content is released as soon as it cannot be the start of "<tool_call>"; a block is held until its
// "</tool_call>", then released as a call (or, if bad, as content verbatim). An unterminated block is content.
// Llama3Json: an output whose first non-whitespace text is '{' or "<|python_tag|>" is held until finish();
// anything else is content and streams as it comes.
class ToolCallStreamParser {
 public:
  ToolCallStreamParser(ToolCallFormat format, std::vector<std::string> known_names);
  // The next piece of generated text (whole UTF-8 code points).
  ToolStreamDelta feed(std::string_view text);
  // End of generation: everything held back. Call once; feed() and finish() return nothing afterwards.
  ToolStreamDelta finish();

 private:
  enum class LlamaMode { Undecided, Hold, Pass };

  void feed_hermes(ToolStreamDelta& out);
  void feed_llama(ToolStreamDelta& out);
  // Content goes through here: drops the output's leading whitespace and holds trailing whitespace in ws_.
  void emit_content(std::string_view s, std::string& out);

  ToolCallFormat format_;
  std::vector<std::string> known_names_;
  bool finished_ = false;
  bool content_started_ = false;  // some non-whitespace content was released
  std::string ws_;                // whitespace after the last released content, released when more follows
  // Hermes
  bool in_block_ = false;
  std::string pending_;   // outside a block: a held prefix of "<tool_call>"; inside: the block so far
  size_t scan_from_ = 0;  // inside a block: where to look for "</tool_call>" next
  // Llama3Json
  LlamaMode mode_ = LlamaMode::Undecided;
  std::string held_;
};

}  // namespace pagoda::server::tools
