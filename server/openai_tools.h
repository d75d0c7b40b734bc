#pragma once
// OpenAI tool calling on the request side: `tools`, `tool_choice` and `parallel_tool_calls` read into a
// ToolsRequest (openai_mapping.h), then fitted to the model's chat template by apply_tools:
//  - the tool-call format is the template's own: Hermes `<tool_call>{json}</tool_call>` (Qwen2.5/3,
//    Hermes, Granite 4) or Llama 3.x JSON; a template that knows no tools (SmolLM2, Phi-3.5, Gemma 2) gets
//    Hermes, with the tools described in the prompt, earlier calls and tool results written as Qwen2.5
//    writes them; other formats (Mistral's, XML ones, functionary's) are a 400 for now;
//  - tool_choice "required" or a named function is enforced with a grammar (a structural tag: each call
//    is the format's wrapper around JSON valid against the function's `parameters` schema); "auto"
//    leaves the text free, and for Hermes a call the model starts is still held to its schema.
// The output side (text back into tool_calls) is server/tool_calls.h.
#include <optional>
#include <string>
#include <string_view>

#include "engine/tokenizer/chat_template.h"
#include "server/openai_json_fields.h"
#include "server/openai_mapping.h"

namespace pagoda::server::openai {

// OpenAI's limit on a request's tools.
inline constexpr size_t kMaxTools = 128;

// Reads the tool fields (throws Reject, a 400 naming the field). `body` is the request body that parsed:
// schemas and the tools' JSON keep the client's key order (the prompt and the grammar follow it).
// nullopt when the request has no tools, or tool_choice is "none" (the tools are then not shown).
std::optional<ToolsRequest> parse_tools(const Fields& f, std::string_view body);

// How a template writes tool calls: a format this server parses (natively rendered tools, or Hermes described
// in the prompt for a template without tool support), or why not (`unsupported`: Mistral's [TOOL_CALLS],
// XML formats such as Qwen3-Coder's or GLM's, functionary's, a template's own).
struct TemplateToolSupport {
  tools::ToolCallFormat format = tools::ToolCallFormat::Hermes;
  bool native = false;      // the template renders `tools` itself
  std::string unsupported;  // empty: supported
};
TemplateToolSupport template_tool_support(const engine::ChatTemplate& tmpl);

// Fits a request with tools to the template (see above): sets r.tools->format, the prompt's tools or the
// rewritten conversation, and r.grammar for tool_choice. Without tools shown (none, or tool_choice "none"),
// a conversation's earlier calls and tool results are still rewritten for a template that knows no tool
// turns. A 400 when the template's tool format is one Pagoda does not parse, or the request also asks for
// response_format / guided decoding or ignore_eos.
std::optional<ApiError> apply_tools(ParsedRequest& r, const engine::ChatTemplate& tmpl);

}  // namespace pagoda::server::openai
