// `pagoda chat-template`: render a conversation with a model's chat template (or a template file), as
// pagodad renders a chat request's prompt. For operators checking what the model sees, and for the test
// that compares the Jinja engine with Python's jinja2 (tests/server/test_chat_templates.py).
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "engine/loaded_model.h"
#include "engine/tokenizer/chat_template.h"

namespace pagoda::cli {

namespace {

using json = nlohmann::ordered_json;

struct ChatTemplateArgs {
  std::string model = engine::default_model_path();
  std::string template_file;
  std::string bos, eos;
  std::string messages_file;
  std::string tools_file;
  std::string cases_file;
  bool no_generation_prompt = false;
  bool caps = false;
};

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// OpenAI-shaped messages: {role, content, tool_calls: [{id, function: {name, arguments}}], tool_call_id}.
Result<std::vector<engine::ChatMessage>> parse_messages_or_throw(const json& j) {
  if (!j.is_array()) return Status::error("--messages: not a JSON array");
  std::vector<engine::ChatMessage> out;
  for (const json& m : j) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return Status::error("--messages: each message needs a string 'role'");
    }
    engine::ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    if (m.contains("content") && m["content"].is_string()) msg.content = m["content"].get<std::string>();
    if (m.contains("tool_call_id") && m["tool_call_id"].is_string()) msg.tool_call_id = m["tool_call_id"].get<std::string>();
    if (m.contains("tool_calls") && m["tool_calls"].is_array()) {
      for (const json& c : m["tool_calls"]) {
        const json& fn = c.value("function", json::object());
        const json args = fn.value("arguments", json("{}"));
        msg.tool_calls.push_back({c.value("id", std::string()), fn.value("name", std::string()),
                                  args.is_string() ? args.get<std::string>() : args.dump()});
      }
    }
    out.push_back(std::move(msg));
  }
  return out;
}

Result<std::vector<engine::ChatMessage>> parse_messages(const json& j) {
  try {
    return parse_messages_or_throw(j);
  } catch (const json::exception& e) {  // a field of the wrong type
    return Status::error(std::string("--messages: ") + e.what());
  }
}

// Many conversations in one run (a test renders hundreds): a JSON array of {messages, tools?,
// add_generation_prompt?} in, a JSON array of {text} or {error} out.
int run_cases(const engine::ChatTemplate& tmpl, const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) return std::fprintf(stderr, "error: %s\n", text.message().c_str()), 2;
  const json cases = json::parse(text.value(), nullptr, /*allow_exceptions=*/false);
  if (!cases.is_array()) return std::fprintf(stderr, "error: --cases: not a JSON array\n"), 2;
  json out = json::array();
  for (const json& c : cases) {
    if (!c.is_object() || !c.contains("messages")) return std::fprintf(stderr, "error: --cases: a case needs messages\n"), 2;
    auto messages = parse_messages(c["messages"]);
    if (!messages.ok()) return std::fprintf(stderr, "error: %s\n", messages.message().c_str()), 2;
    const std::string tools = c.contains("tools") && !c["tools"].is_null() ? c["tools"].dump() : std::string();
    const json& gen = c.contains("add_generation_prompt") ? c["add_generation_prompt"] : json(true);
    if (!gen.is_boolean()) return std::fprintf(stderr, "error: --cases: add_generation_prompt is not a boolean\n"), 2;
    auto rendered = tmpl.render(messages.value(), tools, gen.get<bool>());
    out.push_back(rendered.ok() ? json{{"text", rendered.value()}} : json{{"error", rendered.message()}});
  }
  std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  return 0;
}

int run_chat_template(const ChatTemplateArgs& a) {
  std::unique_ptr<engine::ChatTemplate> tmpl;
  if (!a.template_file.empty()) {
    auto source = read_file(a.template_file);
    if (!source.ok()) return std::fprintf(stderr, "error: %s\n", source.message().c_str()), 2;
    tmpl = std::make_unique<engine::ChatTemplate>(source.value(), a.bos, a.eos);
  } else {
    auto tok = engine::load_tokenizer(a.model);
    if (!tok.ok()) return std::fprintf(stderr, "error: %s\n", tok.message().c_str()), 1;
    tmpl = std::make_unique<engine::ChatTemplate>(engine::ChatTemplate::from_tokenizer(*tok.value()));
  }
  if (!tmpl->fallback_reason().empty()) std::fprintf(stderr, "warning: ChatML, because %s\n", tmpl->fallback_reason().c_str());
  if (a.caps) {
    const engine::ChatTemplateCaps& c = tmpl->caps();
    const json j = {{"template", tmpl->description()},
                    {"supports_tools", c.supports_tools},
                    {"supports_tool_calls", c.supports_tool_calls},
                    {"supports_system_role", c.supports_system_role},
                    {"supports_object_arguments", c.supports_object_arguments},
                    {"bos_token", tmpl->bos_token()},
                    {"eos_token", tmpl->eos_token()},
                    {"source", tmpl->source()}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (!a.cases_file.empty()) return run_cases(*tmpl, a.cases_file);
  if (a.messages_file.empty()) return std::fprintf(stderr, "error: --messages is required (or --caps, --cases)\n"), 2;
  auto text = read_file(a.messages_file);
  if (!text.ok()) return std::fprintf(stderr, "error: %s\n", text.message().c_str()), 2;
  auto messages = parse_messages(json::parse(text.value(), nullptr, /*allow_exceptions=*/false));
  if (!messages.ok()) return std::fprintf(stderr, "error: %s\n", messages.message().c_str()), 2;
  std::string tools;
  if (!a.tools_file.empty()) {
    auto t = read_file(a.tools_file);
    if (!t.ok()) return std::fprintf(stderr, "error: %s\n", t.message().c_str()), 2;
    tools = t.value();
  }
  auto rendered = tmpl->render(messages.value(), tools, !a.no_generation_prompt);
  if (!rendered.ok()) return std::fprintf(stderr, "error: %s\n", rendered.message().c_str()), 1;
  std::fwrite(rendered.value().data(), 1, rendered.value().size(), stdout);  // exactly the prompt text
  return 0;
}

}  // namespace

Runner add_chat_template_command(CLI::App& app) {
  auto args = std::make_shared<ChatTemplateArgs>();
  CLI::App* cmd = app.add_subcommand("chat-template", "render a conversation with the model's chat template");
  cmd->add_option("--model", args->model, "GGUF model file (its template, BOS and EOS)")->capture_default_str();
  cmd->add_option("--template", args->template_file, "a Jinja template file instead of the model's");
  cmd->add_option("--bos", args->bos, "with --template: the BOS token's text");
  cmd->add_option("--eos", args->eos, "with --template: the EOS token's text");
  cmd->add_option("--messages", args->messages_file, "a JSON file: the messages, as OpenAI's chat API takes them");
  cmd->add_option("--tools", args->tools_file, "a JSON file: the tools array, as OpenAI's chat API takes it");
  cmd->add_option("--cases", args->cases_file,
                  "a JSON file: an array of {messages, tools, add_generation_prompt}; prints an array of {text} or "
                  "{error}");
  cmd->add_flag("--no-generation-prompt", args->no_generation_prompt, "do not open an assistant turn at the end");
  cmd->add_flag("--caps", args->caps, "print the template (source, BOS, EOS) and what it supports (tools, system role ...) as JSON");
  return [args] { return run_chat_template(*args); };
}

}  // namespace pagoda::cli
