// libFuzzer target: the chat-template renderer (engine/tokenizer/chat_template). The input is a template
// text and a conversation; the template is either the fuzzed text or one of the known real ones.
// Properties: detection is deterministic; rendering never crashes; for the formats that copy message
// contents verbatim (ChatML, Zephyr, the fallback) every content appears in the output, in order, and
// the output ends with the generation prompt when one is asked for.
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

// SmolLM2-135M-Instruct's tokenizer.chat_template (the model the tests use), and short forms of others.
const char* const kTemplates[] = {
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}",
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}<<SYS>>{{ message['content'].strip() "
    "}}<</SYS>>{% endif %}[INST] {{ message['content'].strip() }} [/INST]{% endfor %}",
    "{% for m in messages %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}",
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim "
    "}}<|eot_id|>{% endfor %}",
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|endoftext|>{% endfor %}",
    "",
};

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "chat_template_fuzz: property violated: %s\n", what);
  std::abort();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint8_t which = in.ConsumeIntegral<uint8_t>();
  const bool add_gen = in.ConsumeBool();
  std::string tmpl = which < 128 ? in.ConsumeRandomLengthString(4096)
                                 : std::string(kTemplates[which % (sizeof kTemplates / sizeof kTemplates[0])]);
  std::vector<ChatMessage> messages;
  static const char* const kRoles[] = {"system", "user", "assistant"};
  while (in.remaining_bytes() > 0 && messages.size() < 16) {
    ChatMessage m;
    const uint8_t r = in.ConsumeIntegral<uint8_t>();
    m.role = r < 240 ? kRoles[r % 3] : in.ConsumeRandomLengthString(16);
    m.content = in.ConsumeRandomLengthString(1024);
    messages.push_back(std::move(m));
  }

  const ChatTemplateKind kind = detect_chat_template(tmpl);
  if (detect_chat_template(tmpl) != kind) violated("detection is not deterministic");
  (void)chat_template_kind_name(kind);
  const std::string out = apply_chat_template(tmpl, messages, add_gen);
  if (apply_chat_template(tmpl, messages, add_gen) != out) violated("rendering is not deterministic");

  std::string gen_prompt;
  switch (kind) {
    case ChatTemplateKind::ChatML:
    case ChatTemplateKind::Fallback: gen_prompt = "<|im_start|>assistant\n"; break;
    case ChatTemplateKind::Zephyr: gen_prompt = "<|assistant|>\n"; break;
    case ChatTemplateKind::Llama3: gen_prompt = "<|start_header_id|>assistant<|end_header_id|>\n\n"; break;
    case ChatTemplateKind::Llama2:
    case ChatTemplateKind::Mistral: break;  // no generation prompt: the turn is open after [/INST]
  }
  if (add_gen && !gen_prompt.empty() && !ends_with(out, gen_prompt)) violated("no generation prompt at the end");
  if (kind == ChatTemplateKind::ChatML || kind == ChatTemplateKind::Fallback || kind == ChatTemplateKind::Zephyr) {
    size_t pos = 0;
    for (const ChatMessage& m : messages) {
      const std::string turn =
          kind == ChatTemplateKind::Zephyr ? "<|" + m.role + "|>\n" + m.content : "<|im_start|>" + m.role + "\n" + m.content;
      const size_t at = out.find(turn, pos);
      if (at == std::string::npos) violated("a message is missing from the rendered conversation");
      pos = at + turn.size();
    }
  } else if (kind == ChatTemplateKind::Llama3) {
    // Contents are trimmed; each message still opens its header, in order.
    size_t pos = 0;
    for (const ChatMessage& m : messages) {
      const std::string head = "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n";
      const size_t at = out.find(head, pos);
      if (at == std::string::npos) violated("a message header is missing from the rendered conversation");
      pos = at + head.size();
    }
  } else if (out.rfind("[INST] ", 0) != 0) {
    violated("a Llama-2 / Mistral conversation does not open with [INST]");
  }
  return 0;
}
