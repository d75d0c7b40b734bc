// Tool-call parsing for the Hermes and Llama 3 JSON formats (see tool_calls.h). The whole-output parser and the
// streaming parser are written separately on purpose: the tests check that they agree on every split of the text.
// Both share the decision "is this JSON text a call?" (call_from_json) and the whitespace rule (trim vs. the
// streaming sink, which drops leading whitespace and holds trailing whitespace until more content follows).
#include "server/tool_calls.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

namespace pagoda::server::tools {
namespace {

using json = nlohmann::ordered_json;  // arguments keep the order the model wrote them in

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

size_t skip_space(std::string_view s, size_t pos) {
  while (pos < s.size() && is_space(s[pos])) ++pos;
  return pos;
}

std::string_view trim(std::string_view s) {
  const size_t first = skip_space(s, 0);
  size_t last = s.size();
  while (last > first && is_space(s[last - 1])) --last;
  return s.substr(first, last - first);
}

bool is_known(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Compact JSON; `replace` so that dump() cannot throw (the parser already rejects invalid UTF-8 in strings).
std::string compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Calls on_bracket(i, c) for each bracket of s outside JSON strings, from `start`, until it returns false.
// Whether the text is valid JSON is for the parser to say; this only follows its nesting.
template <typename OnBracket>
void for_each_bracket(std::string_view s, size_t start, OnBracket on_bracket) {
  bool in_string = false;
  for (size_t i = start; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[' || c == '}' || c == ']') {
      if (!on_bracket(i, c)) return;
    }
  }
}

// Deeper JSON is not a call: dump() writes it back recursively (the request parser's limit, for the same reason).
constexpr int kMaxJsonDepth = 64;

bool nested_deeper_than(std::string_view s, int limit) {
  int depth = 0;
  bool deeper = false;
  for_each_bracket(s, 0, [&](size_t, char c) {
    depth += (c == '{' || c == '[') ? 1 : -1;
    deeper = depth > limit;
    return !deeper;
  });
  return deeper;
}

// One call object: {"name": <known name>, <args_key>: {...}}. Llama 3 templates say "parameters", Hermes ones
// "arguments"; Llama models sometimes write "arguments" anyway, so that format accepts both ("parameters" wins).
std::optional<ToolCall> call_from_json(std::string_view text, bool accept_parameters,
                                       const std::vector<std::string>& names) {
  if (nested_deeper_than(text, kMaxJsonDepth)) return std::nullopt;
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string()) return std::nullopt;
  ToolCall call;
  call.name = name->get<std::string>();
  if (!is_known(names, call.name)) return std::nullopt;
  auto args = j.end();
  if (accept_parameters) args = j.find("parameters");
  if (args == j.end()) args = j.find("arguments");
  if (args == j.end()) {
    call.arguments = "{}";
    return call;
  }
  if (!args->is_object()) return std::nullopt;
  call.arguments = compact(*args);
  return call;
}

// A complete Hermes block, markers included.
std::optional<ToolCall> parse_hermes_block(std::string_view block, const std::vector<std::string>& names) {
  const std::string_view body = block.substr(kOpen.size(), block.size() - kOpen.size() - kClose.size());
  return call_from_json(body, false, names);
}

ParsedToolOutput parse_hermes(std::string_view text, const std::vector<std::string>& names) {
  ParsedToolOutput out;
  std::string outside;
  size_t pos = 0;
  while (true) {
    const size_t open = text.find(kOpen, pos);
    const size_t close = open == std::string_view::npos ? open : text.find(kClose, open + kOpen.size());
    if (close == std::string_view::npos) {  // no more blocks, or one that never ends: content
      outside.append(text.substr(pos));
      break;
    }
    const size_t end = close + kClose.size();
    if (auto call = parse_hermes_block(text.substr(open, end - open), names)) {
      outside.append(text.substr(pos, open - pos));
      out.calls.push_back(std::move(*call));
    } else {
      outside.append(text.substr(pos, end - pos));  // a bad block stays, verbatim
    }
    pos = end;
  }
  out.content = std::string(trim(outside));
  return out;
}

// Index just past the JSON object starting at s[start] == '{'; npos if it never closes.
size_t object_end(std::string_view s, size_t start) {
  int depth = 0;
  size_t end = std::string_view::npos;
  for_each_bracket(s, start, [&](size_t i, char c) {
    depth += (c == '{' || c == '[') ? 1 : -1;
    if (depth == 0) end = i + 1;
    return depth != 0;
  });
  return end;
}

// `{...}` or `{...}; {...}` (Llama 3.2 sometimes writes parallel calls that way), a trailing ';' allowed. All the
// objects must be calls, or none is.
std::optional<std::vector<ToolCall>> parse_llama_calls(std::string_view body, const std::vector<std::string>& names) {
  std::vector<ToolCall> calls;
  size_t pos = skip_space(body, 0);
  while (true) {
    if (pos >= body.size() || body[pos] != '{') return std::nullopt;
    const size_t end = object_end(body, pos);
    if (end == std::string_view::npos) return std::nullopt;
    auto call = call_from_json(body.substr(pos, end - pos), true, names);
    if (!call) return std::nullopt;
    calls.push_back(std::move(*call));
    pos = skip_space(body, end);
    if (pos == body.size()) return calls;
    if (body[pos] != ';') return std::nullopt;
    pos = skip_space(body, pos + 1);
    if (pos == body.size()) return calls;
  }
}

ParsedToolOutput parse_llama(std::string_view text, const std::vector<std::string>& names) {
  ParsedToolOutput out;
  const std::string_view trimmed = trim(text);
  std::string_view body = trimmed;
  if (body.starts_with(kPythonTag)) body.remove_prefix(kPythonTag.size());
  if (auto calls = parse_llama_calls(body, names)) {
    out.calls = std::move(*calls);
  } else {
    out.content = std::string(trimmed);
  }
  return out;
}

// Length of the longest suffix of s that is a proper prefix of "<tool_call>". The marker has one '<', at its
// start, so the only candidate begins at the last '<'.
size_t marker_prefix_suffix(std::string_view s) {
  const size_t lt = s.rfind('<');
  if (lt == std::string_view::npos) return 0;
  const std::string_view tail = s.substr(lt);
  return tail.size() < kOpen.size() && kOpen.starts_with(tail) ? tail.size() : 0;
}

}  // namespace

const char* tool_call_format_name(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::Hermes:
      return "hermes";
    case ToolCallFormat::Llama3Json:
      return "llama3_json";
  }
  return "unknown";
}

ParsedToolOutput parse_tool_calls(ToolCallFormat format, std::string_view text,
                                  const std::vector<std::string>& known_names) {
  if (format == ToolCallFormat::Llama3Json) return parse_llama(text, known_names);
  return parse_hermes(text, known_names);
}

ToolCallStreamParser::ToolCallStreamParser(ToolCallFormat format, std::vector<std::string> known_names)
    : format_(format), known_names_(std::move(known_names)) {}

ToolStreamDelta ToolCallStreamParser::feed(std::string_view text) {
  ToolStreamDelta out;
  if (finished_) return out;
  if (format_ == ToolCallFormat::Llama3Json) {
    held_.append(text);
    feed_llama(out);
  } else {
    pending_.append(text);
    feed_hermes(out);
  }
  return out;
}

ToolStreamDelta ToolCallStreamParser::finish() {
  ToolStreamDelta out;
  if (finished_) return out;
  finished_ = true;
  if (format_ == ToolCallFormat::Hermes) {
    emit_content(pending_, out.content);  // a held marker prefix, or an unterminated block: content
    pending_.clear();
  } else if (mode_ == LlamaMode::Hold) {
    ParsedToolOutput parsed = parse_llama(held_, known_names_);
    emit_content(parsed.content, out.content);
    out.calls = std::move(parsed.calls);
    held_.clear();
  } else {
    emit_content(held_, out.content);
    held_.clear();
  }
  ws_.clear();  // trailing whitespace of the output: trimmed, as parse_tool_calls does
  return out;
}

// pending_ is the unreleased text; outside a block it starts after the last released content, inside a block it
// starts with "<tool_call>". Loop because one piece can finish a block and start (or finish) the next.
void ToolCallStreamParser::feed_hermes(ToolStreamDelta& out) {
  while (true) {
    if (!in_block_) {
      const size_t open = pending_.find(kOpen);
      if (open == std::string::npos) {
        const size_t release = pending_.size() - marker_prefix_suffix(pending_);
        emit_content(std::string_view(pending_).substr(0, release), out.content);
        pending_.erase(0, release);
        return;
      }
      emit_content(std::string_view(pending_).substr(0, open), out.content);
      pending_.erase(0, open);
      in_block_ = true;
      scan_from_ = kOpen.size();
    }
    const size_t close = pending_.find(kClose, scan_from_);
    if (close == std::string::npos) {
      // The close marker can only end in text not seen yet: resume where a partial one could start.
      scan_from_ = std::max(kOpen.size(), pending_.size() - (kClose.size() - 1));
      return;
    }
    const size_t end = close + kClose.size();
    const std::string_view block = std::string_view(pending_).substr(0, end);
    if (auto call = parse_hermes_block(block, known_names_)) {
      out.calls.push_back(std::move(*call));
    } else {
      emit_content(block, out.content);
    }
    pending_.erase(0, end);
    in_block_ = false;
  }
}

// Undecided until the first non-whitespace text shows whether the output can be a call ('{' or the python tag, held
// to the end) or not (content, streamed from then on).
void ToolCallStreamParser::feed_llama(ToolStreamDelta& out) {
  if (mode_ == LlamaMode::Undecided) {
    const std::string_view rest = std::string_view(held_).substr(skip_space(held_, 0));
    if (rest.empty()) return;
    if (rest.front() == '{' || rest.starts_with(kPythonTag)) {
      mode_ = LlamaMode::Hold;
      return;
    }
    if (kPythonTag.starts_with(rest)) return;  // may still become the tag
    mode_ = LlamaMode::Pass;
  }
  if (mode_ == LlamaMode::Hold) return;
  emit_content(held_, out.content);
  held_.clear();
}

// The released content must equal trim(outside text): whitespace before the first content is dropped, and a
// whitespace run is released only once non-whitespace content follows it (it may turn out to be trailing, or to sit
// between two calls at the end).
void ToolCallStreamParser::emit_content(std::string_view s, std::string& out) {
  size_t last = s.size();
  while (last > 0 && is_space(s[last - 1])) --last;
  if (last == 0) {
    if (content_started_) ws_.append(s);
    return;
  }
  size_t first = 0;
  if (content_started_) {
    out.append(ws_);
  } else {
    first = skip_space(s, 0);
    content_started_ = true;
  }
  out.append(s.substr(first, last - first));
  ws_.assign(s.substr(last));
}

}  // namespace pagoda::server::tools
