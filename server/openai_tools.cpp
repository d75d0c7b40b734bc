#include "server/openai_tools.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

namespace pagoda::server::openai {

namespace {

using json = nlohmann::json;
using ordered = nlohmann::ordered_json;

bool contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

// OpenAI's rule for function names.
bool valid_function_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

void check_tool(const json& tool, size_t i) {
  const std::string name = fmt::format("tools[{}]", i);
  if (!tool.is_object()) wrong_type(tool, name, "an object");
  for (const auto& [key, value] : tool.items()) {
    if (key != "type" && key != "function") reject(fmt::format("'{}.{}' is not supported", name, key), "tools");
  }
  if (!tool.contains("type") || !tool["type"].is_string() || tool["type"] != "function") {
    reject(fmt::format("'{}.type' must be \"function\"", name), "tools");
  }
  if (!tool.contains("function")) reject(fmt::format("'{}.function' is required", name), "tools");
  const json& fn = tool["function"];
  if (!fn.is_object()) wrong_type(fn, name + ".function", "an object");
  for (const auto& [key, value] : fn.items()) {
    if (key != "name" && key != "description" && key != "parameters" && key != "strict") {
      reject(fmt::format("'{}.function.{}' is not supported", name, key), "tools");
    }
  }
  if (!fn.contains("name")) reject(fmt::format("'{}.function.name' is required", name), "tools");
  const std::string& fname = as_string(fn["name"], name + ".function.name");
  if (!valid_function_name(fname)) {
    reject(fmt::format("'{}.function.name' must be 1 to 64 of a-z, A-Z, 0-9, '_' and '-', got '{}'", name, fname),
           "tools");
  }
  if (fn.contains("description") && !fn["description"].is_null()) as_string(fn["description"], name + ".function.description");
  if (fn.contains("strict") && !fn["strict"].is_null()) as_bool(fn["strict"], name + ".function.strict");
  if (fn.contains("parameters") && !fn["parameters"].is_null() && !fn["parameters"].is_object()) {
    reject(fmt::format("'{}.function.parameters' must be a JSON schema (an object), got {}", name,
                       json_type_name(fn["parameters"])),
           "tools");
  }
}

ToolsRequest::Choice parse_choice(const json& v, const std::vector<std::string>& names, std::string& named) {
  if (v.is_string()) {
    const std::string& s = v.get<std::string>();
    if (s == "auto") return ToolsRequest::Choice::Auto;
    if (s == "required") return ToolsRequest::Choice::Required;
    reject(fmt::format("'tool_choice' must be \"none\", \"auto\", \"required\" or a named function, got \"{}\"", s),
           "tool_choice");
  }
  if (!v.is_object()) wrong_type(v, "tool_choice", "a string or an object");
  if (!v.contains("type") || v["type"] != "function" || !v.contains("function") || !v["function"].is_object() ||
      !v["function"].contains("name") || !v["function"]["name"].is_string()) {
    reject("'tool_choice' as an object must be {\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice");
  }
  named = v["function"]["name"].get<std::string>();
  if (std::find(names.begin(), names.end(), named) == names.end()) {
    reject(fmt::format("'tool_choice' names function '{}', which is not in 'tools'", named), "tool_choice");
  }
  return ToolsRequest::Choice::Named;
}

// ---- prompt: tools for a template that knows none (Qwen2.5's wording, the Hermes format) ----------------

std::string hermes_tools_block(const ToolsRequest& t) {
  std::string out =
      "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
      "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
  const ordered tools = ordered::parse(t.tools_json);
  for (const ordered& tool : tools) out += "\n" + tool.dump();
  out +=
      "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
      "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
      "<args-json-object>}\n</tool_call>";
  return out;
}

std::string hermes_call_text(const engine::ChatToolCall& c) {
  ordered call = {{"name", c.name}};
  ordered args = ordered::parse(c.arguments, nullptr, /*allow_exceptions=*/false);
  call["arguments"] = args.is_discarded() ? ordered(c.arguments) : args;
  return "<tool_call>\n" + call.dump() + "\n</tool_call>";
}

// The conversation rewritten for a template short of tool support: the tools (if shown) in the system
// message, or in front of the first user turn for a template without a system role (Gemma's); when the
// template renders no tool_calls, an assistant turn's calls as Hermes blocks in its text; when it knows no
// tools at all, tool results as a user turn of <tool_response> blocks (Qwen2.5's wording throughout).
std::vector<engine::ChatMessage> hermes_conversation(const std::vector<engine::ChatMessage>& in, const ToolsRequest* t,
                                                     const engine::ChatTemplateCaps& caps) {
  std::vector<engine::ChatMessage> out;
  std::string block = t ? hermes_tools_block(*t) : std::string();
  size_t i = 0;
  if (!block.empty() && caps.supports_system_role) {
    if (!in.empty() && in[0].role == "system") {
      out.push_back({"system", in[0].content + "\n\n" + block, {}, {}});
      i = 1;
    } else {
      out.push_back({"system", block, {}, {}});
    }
    block.clear();
  }
  for (; i < in.size(); ++i) {
    const engine::ChatMessage& m = in[i];
    if (m.role == "tool" && !caps.supports_tools) {
      const std::string response = "<tool_response>\n" + m.content + "\n</tool_response>";
      if (i > 0 && in[i - 1].role == "tool") {
        out.back().content += "\n" + response;
      } else {
        out.push_back({"user", response, {}, {}});
      }
      continue;
    }
    if (m.role == "assistant" && !m.tool_calls.empty() && !caps.supports_tool_calls) {
      std::string text = m.content;
      for (const engine::ChatToolCall& c : m.tool_calls) {
        if (!text.empty()) text += "\n";
        text += hermes_call_text(c);
      }
      out.push_back({"assistant", std::move(text), {}, {}});
      continue;
    }
    out.push_back(m);
    if (m.role == "user" && !block.empty()) {  // no system role: the tools lead the first user turn
      out.back().content = block + "\n\n" + out.back().content;
      block.clear();
    }
  }
  return out;
}

// A template that insists on alternating user and assistant turns (Gemma's, Mistral's raise otherwise)
// gets a tool-result turn and the user turn after it as one.
std::vector<engine::ChatMessage> merge_same_role_turns(std::vector<engine::ChatMessage> in) {
  std::vector<engine::ChatMessage> out;
  for (engine::ChatMessage& m : in) {
    if (!out.empty() && out.back().role == m.role && m.tool_calls.empty() && out.back().tool_calls.empty() &&
        (m.role == "user" || m.role == "assistant")) {
      out.back().content += "\n\n" + m.content;
    } else {
      out.push_back(std::move(m));
    }
  }
  return out;
}

std::vector<engine::ChatMessage> rewrite_for(const engine::ChatTemplate& tmpl, const std::vector<engine::ChatMessage>& in,
                                             const ToolsRequest* t) {
  std::vector<engine::ChatMessage> out = hermes_conversation(in, t, tmpl.caps());
  if (contains(tmpl.source(), "alternate")) out = merge_same_role_turns(std::move(out));
  return out;
}

bool has_tool_turns(const std::vector<engine::ChatMessage>& chat) {
  return std::any_of(chat.begin(), chat.end(),
                     [](const engine::ChatMessage& m) { return m.role == "tool" || !m.tool_calls.empty(); });
}

// ---- grammar -------------------------------------------------------------------------------------------

// One call's JSON: {"name": <one of the functions>, <arguments key>: <its parameters schema>}.
ordered call_schema(const ToolsRequest& t, const char* arguments_key) {
  ordered alternatives = ordered::array();
  for (size_t i = 0; i < t.names.size(); ++i) {
    if (t.choice == ToolsRequest::Choice::Named && t.names[i] != t.named) continue;
    ordered one = {{"type", "object"},
                   {"properties", {{"name", {{"const", t.names[i]}}}, {arguments_key, ordered::parse(t.schemas[i])}}},
                   {"required", {"name", arguments_key}},
                   {"additionalProperties", false}};
    alternatives.push_back(std::move(one));
  }
  if (alternatives.size() == 1) return alternatives[0];
  return {{"anyOf", alternatives}};
}

engine::GrammarSpec hermes_grammar(const ToolsRequest& t) {
  // At most one whitespace character between JSON tokens: a small model given free whitespace can spend
  // its whole budget on newlines.
  const ordered tag = {{"type", "tag"},
                       {"begin", "<tool_call>\n"},
                       {"content", {{"type", "json_schema"}, {"json_schema", call_schema(t, "arguments")},
                                    {"max_whitespace_cnt", 1}}},
                       {"end", "\n</tool_call>"}};
  ordered format;
  if (t.choice == ToolsRequest::Choice::Auto) {
    // Free text; once the model opens a call, the call must be valid.
    format = {{"type", "triggered_tags"},
              {"triggers", {"<tool_call>"}},
              {"tags", {tag}},
              {"at_least_one", false},
              {"stop_after_first", !t.parallel}};
  } else {
    format = {{"type", "tags_with_separator"},
              {"tags", {tag}},
              {"separator", "\n"},
              {"at_least_one", true},
              {"stop_after_first", !t.parallel}};
  }
  const ordered tagj = {{"type", "structural_tag"}, {"format", format}};
  return engine::GrammarSpec{engine::GrammarSpec::Kind::StructuralTag, tagj.dump(), {}};
}

}  // namespace

std::optional<ToolsRequest> parse_tools(const Fields& f, std::string_view body) {
  for (const char* legacy : {"functions", "function_call"}) {
    if (const json* v = f.get(legacy)) {
      if (!(v->is_array() && v->empty()) && !(v->is_string() && v->get<std::string>() == "none")) {
        reject(fmt::format("'{}' is deprecated and not supported: use 'tools' and 'tool_choice'", legacy), legacy);
      }
    }
  }
  const json* tools = f.get("tools");
  const json* choice = f.get("tool_choice");
  const json* parallel = f.get("parallel_tool_calls");
  if (parallel) as_bool(*parallel, "parallel_tool_calls");
  if (tools && !tools->is_array()) wrong_type(*tools, "tools", "an array");
  const bool none = choice && choice->is_string() && choice->get<std::string>() == "none";
  if (!tools || tools->empty()) {
    if (choice && !none) reject("'tool_choice' needs 'tools'", "tool_choice");
    return std::nullopt;
  }
  if (tools->size() > kMaxTools) {
    reject(fmt::format("'tools' has {} functions; at most {} are allowed", tools->size(), kMaxTools), "tools");
  }
  ToolsRequest t;
  for (size_t i = 0; i < tools->size(); ++i) {
    check_tool((*tools)[i], i);
    const std::string& name = (*tools)[i]["function"]["name"].get_ref<const std::string&>();
    if (std::find(t.names.begin(), t.names.end(), name) != t.names.end()) {
      reject(fmt::format("'tools' defines function '{}' twice", name), "tools");
    }
    t.names.push_back(name);
  }
  if (none) return std::nullopt;  // validated, but not shown to the model
  if (choice) t.choice = parse_choice(*choice, t.names, t.named);
  if (parallel) t.parallel = parallel->get<bool>();

  // The client's key order, for the prompt and for the grammar (xgrammar writes properties in schema order).
  const ordered body_json = ordered::parse(body, nullptr, /*allow_exceptions=*/false);
  ordered tools_ordered = ordered::array();
  for (const ordered& tool : body_json.at("tools")) {
    const ordered& fn = tool.at("function");
    ordered params = fn.contains("parameters") && !fn["parameters"].is_null() ? fn["parameters"]
                                                                                : ordered{{"type", "object"}};
    t.schemas.push_back(params.dump());
    ordered fn_out = {{"name", fn.at("name")}};
    if (fn.contains("description") && !fn["description"].is_null()) fn_out["description"] = fn["description"];
    fn_out["parameters"] = std::move(params);
    tools_ordered.push_back({{"type", "function"}, {"function", std::move(fn_out)}});
  }
  t.tools_json = tools_ordered.dump();
  return t;
}

TemplateToolSupport template_tool_support(const engine::ChatTemplate& tmpl) {
  const std::string& src = tmpl.source();
  TemplateToolSupport t;
  t.native = tmpl.caps().supports_tools;
  if (contains(src, "[TOOL_CALLS]")) {
    t.unsupported = "Mistral's [TOOL_CALLS] format";
  } else if (contains(src, "<function=") || contains(src, "<parameter=") || contains(src, "<arg_key>") ||
             contains(src, "<invoke") || contains(src, ">>>")) {
    t.unsupported = "an XML or functionary call format";  // Qwen3-Coder, GLM-4.x, MiniMax, functionary
  } else if (contains(src, "<tool_call>")) {
    t.format = tools::ToolCallFormat::Hermes;
  } else if (t.native && (contains(src, "<|python_tag|>") || contains(src, "<|start_header_id|>"))) {
    t.format = tools::ToolCallFormat::Llama3Json;
  } else if (t.native) {
    t.unsupported = "its own tool-call format";
  } else {
    t.format = tools::ToolCallFormat::Hermes;  // no tool support: Hermes, described in the prompt
  }
  return t;
}

std::optional<ApiError> apply_tools(ParsedRequest& r, const engine::ChatTemplate& tmpl) {
  const engine::ChatTemplateCaps& caps = tmpl.caps();
  if (!r.tools) {
    // No tools shown, but earlier calls and their results must still read right to a template that
    // renders no tool turns (SmolLM2's would print a "tool" role and drop the calls).
    if (r.prompt.kind == PromptInput::Kind::Chat && (!caps.supports_tools || !caps.supports_tool_calls) &&
        has_tool_turns(r.prompt.chat)) {
      r.prompt.chat = rewrite_for(tmpl, r.prompt.chat, nullptr);
    }
    return std::nullopt;
  }
  ToolsRequest& t = *r.tools;
  if (r.ignore_eos) {
    return invalid("'ignore_eos' cannot be combined with 'tools': a tool call ends with an end-of-generation token",
                   "ignore_eos");
  }
  if (r.grammar) {
    return invalid(fmt::format("'{}' cannot be combined with 'tools' (unless tool_choice is \"none\")", r.grammar_param),
                   r.grammar_param);
  }
  const TemplateToolSupport support = template_tool_support(tmpl);
  if (!support.unsupported.empty()) {
    return invalid(fmt::format("this model's chat template writes tool calls in {}, which this server does not parse "
                               "yet (supported: Hermes <tool_call> JSON, Llama 3.x JSON)", support.unsupported),
                   "tools");
  }
  t.format = support.format;
  if (support.native) {
    r.prompt.tools_json = t.tools_json;
    if (!caps.supports_tool_calls) r.prompt.chat = rewrite_for(tmpl, r.prompt.chat, nullptr);
  } else {
    r.prompt.chat = rewrite_for(tmpl, r.prompt.chat, &t);
  }

  if (t.format == tools::ToolCallFormat::Hermes) {
    r.grammar = hermes_grammar(t);
  } else if (t.choice != ToolsRequest::Choice::Auto) {
    // Llama 3.x: one call, the whole output; the JSON-safe plain schema grammar.
    r.grammar = engine::GrammarSpec{engine::GrammarSpec::Kind::JsonSchema, call_schema(t, "parameters").dump(), {}};
  }
  r.grammar_param = "tools";
  return std::nullopt;
}

}  // namespace pagoda::server::openai
