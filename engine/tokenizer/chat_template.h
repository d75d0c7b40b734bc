#pragma once
// Chat templates: the model's own tokenizer.chat_template (the Hugging Face Jinja text the GGUF carries),
// parsed once and rendered by llama.cpp's Jinja engine (cmake/llama_jinja.cmake), the way transformers'
// apply_chat_template renders it with jinja2. A GGUF without a template, or with one that does not parse,
// gets ChatML, and fallback_reason() says so for the start-up log.
//
// The header stays free of JSON types (the engine does not speak JSON, DESIGN.md): tool definitions and a
// tool call's arguments cross it as JSON text, which the server has already validated.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/status.h"

namespace pagoda::engine {

class Tokenizer;

struct ChatToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON object, as text
};

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant" | "tool"
  std::string content;
  std::vector<ChatToolCall> tool_calls;  // an assistant turn's calls
  std::string tool_call_id;              // a tool turn: the call it answers
};

// What the template's source handles, found by running it on probe conversations (llama.cpp's caps).
struct ChatTemplateCaps {
  bool supports_tools = false;              // renders `tools` (a tool-calling template)
  bool supports_tool_calls = false;         // renders an assistant message's `tool_calls`
  bool supports_system_role = true;
  bool supports_object_arguments = false;   // wants tool_calls[].function.arguments as an object
};

class ChatTemplate {
 public:
  // Parses `source`; an empty or unparsable source falls back to ChatML. bos/eos: the tokens' text, which
  // templates may print (`{{ bos_token }}`).
  ChatTemplate(const std::string& source, std::string bos_token, std::string eos_token);
  // The model's template with its BOS/EOS text.
  static ChatTemplate from_tokenizer(const Tokenizer& tokenizer);

  // The prompt text for `messages` (ending with the opening of an assistant turn when
  // add_generation_prompt). tools_json: the request's `tools` array as JSON text, or empty for none.
  // An error carries the template's own message (e.g. its raise_exception on a role order it refuses).
  // Thread-safe: the parsed template is read-only (one that calls strftime_now renders one at a time).
  Result<std::string> render(const std::vector<ChatMessage>& messages, const std::string& tools_json,
                             bool add_generation_prompt) const;

  const ChatTemplateCaps& caps() const;
  const std::string& source() const;           // the text rendered (ChatML's when falling back)
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  const std::string& fallback_reason() const;  // empty when the model's own template is used
  std::string description() const;            // "gguf" or "chatml (fallback: <reason>)"

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// A rendered conversation's tokens: the template's control tokens are parsed as special tokens, and a
// BOS the template printed itself is dropped when the tokenizer adds one anyway (llama.cpp does the same;
// Llama 3's template starts with {{ bos_token }}).
std::vector<int32_t> encode_rendered_chat(const Tokenizer& tokenizer, const std::string& text);

// Convenience for tools and benchmarks: one user turn through the model's template, with the generation
// prompt. Errors (a template that raises) come back as the Status.
Result<std::string> render_user_turn(const Tokenizer& tokenizer, const std::string& user_text);

}  // namespace pagoda::engine
