// libFuzzer target: chat templates (engine/tokenizer/chat_template, llama.cpp's Jinja engine). The input is
// a conversation, as clients send it (any roles, contents, earlier tool calls with any arguments text, a
// tools JSON text), rendered by one of the real templates. The template text itself is not fuzzed: it is
// the model file's, trusted like its weights, and llama.cpp's engine does not bound what a template may
// do (a fuzzed `{{ 'x' * 100000000 }}` allocates gigabytes; its debug asserts abort on some malformed
// syntax, which release builds compile out).
// Properties: parsing and rendering never crash (an error is a Status); rendering is deterministic; with
// SmolLM2's ChatML template every content appears in the output, in order, and the output ends with the
// generation prompt when one is asked for.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/tokenizer/chat_template.h"

using namespace pagoda::engine;

namespace {

const char* const kSmolLM2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

// Qwen2.5's tool-calling template, shortened to what it does with tools, calls and tool results.
const char* const kQwenTools =
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] "
    "}}{%- endif %}{{- \"\\n\\n# Tools\\n<tools>\" }}{%- for tool in tools %}{{- \"\\n\" }}{{- tool | tojson }}{%- "
    "endfor %}{{- \"\\n</tools><|im_end|>\\n\" }}{%- endif %}{%- for message in messages %}{%- if message.role == "
    "\"user\" or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not "
    "message.tool_calls) %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- "
    "elif message.role == \"assistant\" %}{{- '<|im_start|>' + message.role }}{%- if message.content %}{{- '\\n' + "
    "message.content }}{%- endif %}{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined "
    "%}{%- set tool_call = tool_call.function %}{%- endif %}{{- '\\n<tool_call>\\n{\"name\": \"' }}{{- tool_call.name "
    "}}{{- '\", \"arguments\": ' }}{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- "
    "'<|im_end|>\\n' }}{%- elif message.role == \"tool\" %}{{- '<|im_start|>user\\n<tool_response>\\n' }}{{- "
    "message.content }}{{- '\\n</tool_response><|im_end|>\\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt "
    "%}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

// Llama 3.x style: trims contents, raises on a bad role order.
const char* const kLlama3 =
    "{{- bos_token }}{%- for m in messages %}{%- if m.role == 'tool' and loop.first %}{{- raise_exception('a tool "
    "result cannot come first') }}{%- endif %}{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + "
    "m.content | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "chat_template_fuzz: property violated: %s\n", what);
  std::abort();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const ChatTemplate& real_template(int which) {
  static const ChatTemplate smol(kSmolLM2, "<s>", "</s>");
  static const ChatTemplate qwen(kQwenTools, "", "<|im_end|>");
  static const ChatTemplate llama(kLlama3, "<|begin_of_text|>", "<|eot_id|>");
  return which == 0 ? smol : which == 1 ? qwen : llama;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint8_t which = in.ConsumeIntegral<uint8_t>();
  const bool add_gen = in.ConsumeBool();
  const ChatTemplate& tmpl = real_template(which % 3);
  const bool smol = which % 3 == 0;

  const std::string tools = in.ConsumeBool() ? in.ConsumeRandomLengthString(256) : std::string();
  std::vector<ChatMessage> messages;
  static const char* const kRoles[] = {"system", "user", "assistant", "tool"};
  while (in.remaining_bytes() > 0 && messages.size() < 12) {
    ChatMessage m;
    const uint8_t r = in.ConsumeIntegral<uint8_t>();
    m.role = r < 240 ? kRoles[r % 4] : in.ConsumeRandomLengthString(16);
    m.content = in.ConsumeRandomLengthString(512);
    if (m.role == "assistant" && in.ConsumeBool()) {
      m.tool_calls.push_back({in.ConsumeRandomLengthString(16), in.ConsumeRandomLengthString(16),
                              in.ConsumeRandomLengthString(128)});
    }
    if (m.role == "tool") m.tool_call_id = in.ConsumeRandomLengthString(16);
    messages.push_back(std::move(m));
  }

  const pagoda::Result<std::string> out = tmpl.render(messages, tools, add_gen);
  const pagoda::Result<std::string> again = tmpl.render(messages, tools, add_gen);
  if (out.ok() != again.ok() || (out.ok() && out.value() != again.value())) violated("rendering is not deterministic");
  if (!out.ok()) {
    if (out.message().empty()) violated("an error without a message");
    return 0;
  }
  if (smol && tools.empty()) {
    const std::string& text = out.value();
    size_t pos = 0;
    for (const ChatMessage& m : messages) {
      const std::string turn = "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      const size_t at = text.find(turn, pos);
      if (at == std::string::npos) violated("a message is missing from the rendered conversation");
      pos = at + turn.size();
    }
    if (add_gen && !ends_with(text, "<|im_start|>assistant\n")) violated("no generation prompt at the end");
  }
  return 0;
}
