// Chat templates rendered by llama.cpp's Jinja engine (common/jinja): parsed once per model into a
// read-only program, executed per request in a fresh context holding the conversation. The inputs are
// those transformers gives jinja2: messages, tools (only when the request has some), bos_token,
// eos_token, add_generation_prompt.
#include "engine/tokenizer/chat_template.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>

#include "engine/tokenizer/tokenizer.h"
// llama.cpp's Jinja engine and its JSON value (cmake/llama_jinja.cmake).
#include "jinja/caps.h"
#include "jinja/lexer.h"
#include "jinja/parser.h"
#include "jinja/runtime.h"
#include "json.h"

namespace pagoda::engine {

namespace {

using ordered_json = nlohmann::ordered_json;

// What transformers uses for a tokenizer without a template, and what llama.cpp falls back to.
constexpr const char* kChatMlSource =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

jinja::program parse_program(const std::string& source) {
  jinja::lexer lexer;
  const jinja::lexer_result tokens = lexer.tokenize(source);
  return jinja::parse_from_tokens(tokens);
}

// The message as the template sees it: OpenAI's shape (tool_calls[].function.{name, arguments}), with
// arguments as an object for templates that print them with `| tojson` (Qwen2.5, Hermes), else as text.
ordered_json message_json(const ChatMessage& m, bool object_arguments) {
  // An assistant turn that only called tools has "" as content, not OpenAI's null: `{% if message.content %}`
  // skips both, and jinja2 would print a null as "None".
  ordered_json j = {{"role", m.role}, {"content", m.content}};
  if (!m.tool_calls.empty()) {
    ordered_json calls = ordered_json::array();
    for (const ChatToolCall& c : m.tool_calls) {
      ordered_json arguments = c.arguments;
      if (object_arguments) {
        ordered_json parsed = ordered_json::parse(c.arguments, nullptr, /*allow_exceptions=*/false);
        if (!parsed.is_discarded()) arguments = std::move(parsed);
      }
      calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", arguments}}}});
    }
    j["tool_calls"] = std::move(calls);
  }
  if (!m.tool_call_id.empty()) j["tool_call_id"] = m.tool_call_id;
  return j;
}

}  // namespace

struct ChatTemplate::Impl {
  std::string source;
  bool serialize = false;     // render under render_mu (see the constructor)
  mutable std::mutex render_mu;
  std::string fallback_reason;
  std::string bos_token, eos_token;
  jinja::program program;
  ChatTemplateCaps caps;
};

ChatTemplate::ChatTemplate(const std::string& source, std::string bos_token, std::string eos_token) {
  auto impl = std::make_shared<Impl>();
  impl->bos_token = std::move(bos_token);
  impl->eos_token = std::move(eos_token);
  if (source.empty()) {
    impl->fallback_reason = "the model has no chat template";
  } else {
    try {
      impl->program = parse_program(source);
      impl->source = source;
    } catch (const std::exception& e) {
      impl->fallback_reason = fmt::format("its chat template does not parse: {}", e.what());
    }
  }
  if (!impl->fallback_reason.empty()) {
    impl->source = kChatMlSource;
    impl->program = parse_program(impl->source);
  }
  // llama.cpp's capability probe runs the template on small conversations. A template can throw from it
  // (one that pops messages[0]): then it keeps the conservative capabilities (no tools), and a conversation
  // it cannot render is that request's error, not the daemon's.
  try {
    const jinja::caps c = jinja::caps_get(impl->program);
    impl->caps.supports_tools = c.supports_tools;
    impl->caps.supports_tool_calls = c.supports_tool_calls;
    impl->caps.supports_system_role = c.supports_system_role;
    impl->caps.supports_object_arguments = c.supports_object_arguments;
  } catch (const std::exception& e) {
    spdlog::warn("chat template: its capability probe failed ({}); assuming no tool support", e.what());
  }
  // strftime_now formats with std::localtime, whose result is one static buffer: such templates render
  // one at a time.
  impl->serialize = impl->source.find("strftime_now") != std::string::npos;
  impl_ = std::move(impl);
}

ChatTemplate ChatTemplate::from_tokenizer(const Tokenizer& tokenizer) {
  const TokenizerSpec& spec = tokenizer.spec();
  const auto text = [&](int32_t id) {
    return id >= 0 && id < tokenizer.vocab_size() ? tokenizer.token_to_piece(id, /*special=*/true) : std::string();
  };
  return ChatTemplate(spec.chat_template, text(spec.bos_id), text(spec.eos_id));
}

Result<std::string> ChatTemplate::render(const std::vector<ChatMessage>& messages, const std::string& tools_json,
                                         bool add_generation_prompt) const {
  ordered_json inputs;
  ordered_json msgs = ordered_json::array();
  for (const ChatMessage& m : messages) msgs.push_back(message_json(m, impl_->caps.supports_object_arguments));
  inputs["messages"] = std::move(msgs);
  if (!tools_json.empty()) {
    ordered_json tools = ordered_json::parse(tools_json, nullptr, /*allow_exceptions=*/false);
    if (tools.is_discarded() || !tools.is_array()) return Status::error("tools is not a JSON array");
    inputs["tools"] = std::move(tools);
  }
  inputs["bos_token"] = impl_->bos_token;
  inputs["eos_token"] = impl_->eos_token;
  inputs["add_generation_prompt"] = add_generation_prompt;
  std::unique_lock<std::mutex> lock(impl_->render_mu, std::defer_lock);
  if (impl_->serialize) lock.lock();
  try {
    jinja::context ctx(impl_->source);
    jinja::global_from_json(ctx, common_json::parse(inputs.dump()), /*mark_input=*/false);
    jinja::runtime runtime(ctx);
    const jinja::value results = runtime.execute(impl_->program);
    return jinja::runtime::gather_string_parts(results)->as_string().str();
  } catch (const std::exception& e) {
    return Status::error(fmt::format("the chat template failed on this conversation: {}", e.what()));
  }
}

const ChatTemplateCaps& ChatTemplate::caps() const { return impl_->caps; }
const std::string& ChatTemplate::source() const { return impl_->source; }
const std::string& ChatTemplate::bos_token() const { return impl_->bos_token; }
const std::string& ChatTemplate::eos_token() const { return impl_->eos_token; }
const std::string& ChatTemplate::fallback_reason() const { return impl_->fallback_reason; }

std::string ChatTemplate::description() const {
  return impl_->fallback_reason.empty() ? "gguf" : fmt::format("chatml (fallback: {})", impl_->fallback_reason);
}

std::vector<int32_t> encode_rendered_chat(const Tokenizer& tokenizer, const std::string& text) {
  const TokenizerSpec& spec = tokenizer.spec();
  if (spec.add_bos && spec.bos_id >= 0 && spec.bos_id < tokenizer.vocab_size()) {
    const std::string bos = tokenizer.token_to_piece(spec.bos_id, /*special=*/true);
    if (!bos.empty() && text.compare(0, bos.size(), bos) == 0) {
      return tokenizer.encode(text.substr(bos.size()), /*add_special=*/true, /*parse_special=*/true);
    }
  }
  return tokenizer.encode(text, /*add_special=*/true, /*parse_special=*/true);
}

Result<std::string> render_user_turn(const Tokenizer& tokenizer, const std::string& user_text) {
  return ChatTemplate::from_tokenizer(tokenizer).render({{"user", user_text, {}, {}}}, std::string(), true);
}

}  // namespace pagoda::engine
