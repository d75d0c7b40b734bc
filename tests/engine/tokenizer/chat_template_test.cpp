// Chat templates: detection by markers and rendering. The SmolLM2 expectations are what jinja2 renders
// from the model's own tokenizer.chat_template (checked with Python jinja2 3.1).
#include <gtest/gtest.h>

#include "engine/gguf/gguf_file.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/test_env.h"

namespace pagoda::engine {
namespace {

// SmolLM2-135M-Instruct's tokenizer.chat_template, verbatim.
const std::string kSmolTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const std::string kSmolSystem =
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

struct Case {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt;
  std::string jinja2;  // what jinja2 renders
};

std::vector<Case> smol_cases() {
  return {
      {{{"user", "Hello!"}}, true, kSmolSystem + "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"},
      {{{"user", "Hello!"}}, false, kSmolSystem + "<|im_start|>user\nHello!<|im_end|>\n"},
      {{{"system", "You are terse."}, {"user", "Hi"}},
       true,
       "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
      {{{"user", "What is 2+2?"}, {"assistant", "4"}, {"user", "And 3+3?"}},
       true,
       kSmolSystem +
           "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd "
           "3+3?<|im_end|>\n<|im_start|>assistant\n"},
      {{}, true, "<|im_start|>assistant\n"},
      {{{"assistant", "I start."}, {"user", "ok\nmulti\nline"}},
       false,
       kSmolSystem + "<|im_start|>assistant\nI start.<|im_end|>\n<|im_start|>user\nok\nmulti\nline<|im_end|>\n"},
  };
}

TEST(ChatTemplate, SmolLM2MatchesJinja) {
  EXPECT_EQ(detect_chat_template(kSmolTemplate), ChatTemplateKind::ChatML);
  for (const Case& c : smol_cases())
    EXPECT_EQ(apply_chat_template(kSmolTemplate, c.messages, c.add_generation_prompt), c.jinja2);
}

TEST(ChatTemplate, SmolLM2TemplateFromModel) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  auto file = GgufFile::open(test::model_path());
  ASSERT_TRUE(file.ok()) << file.message();
  auto spec = tokenizer_spec_from_gguf(*file.value());
  ASSERT_TRUE(spec.ok()) << spec.message();
  EXPECT_EQ(spec.value().chat_template, kSmolTemplate);
  for (const Case& c : smol_cases())
    EXPECT_EQ(apply_chat_template(spec.value().chat_template, c.messages, c.add_generation_prompt), c.jinja2);
}

TEST(ChatTemplate, EscapedNewlinesInTemplateLiterals) {
  // The same template as written in tokenizer_config.json style, with \n escapes inside the literals.
  const std::string t =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
  EXPECT_EQ(apply_chat_template(t, {{"user", "x"}}, true),
            "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, PlainChatMLHasNoDefaultSystem) {
  const std::string t = "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}"
                        "{% endfor %}";
  EXPECT_EQ(apply_chat_template(t, {{"user", "hi"}}, true), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, DetectsByMarkers) {
  EXPECT_EQ(detect_chat_template("{{ '<|start_header_id|>' + role + '<|end_header_id|>' }}"), ChatTemplateKind::Llama3);
  EXPECT_EQ(detect_chat_template("[INST] <<SYS>>\n{{ sys }}\n<</SYS>>"), ChatTemplateKind::Llama2);
  EXPECT_EQ(detect_chat_template("{{ '[INST] ' + content + ' [/INST]' }}"), ChatTemplateKind::Mistral);
  EXPECT_EQ(detect_chat_template("<|user|>\n{{ content }}<|endoftext|>"), ChatTemplateKind::Zephyr);
  EXPECT_EQ(detect_chat_template("something else"), ChatTemplateKind::Fallback);
  EXPECT_EQ(detect_chat_template(""), ChatTemplateKind::Fallback);
  EXPECT_STREQ(chat_template_kind_name(ChatTemplateKind::Fallback), "fallback (chatml)");
}

TEST(ChatTemplate, RendersOtherFormats) {
  const std::vector<ChatMessage> msgs = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}, {"user", "V"}};
  EXPECT_EQ(apply_chat_template("<|start_header_id|><|end_header_id|>", msgs, true),
            "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nU"
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nV<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(apply_chat_template("[INST] <<SYS>>", msgs, true),
            "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]A</s>[INST] V [/INST]");
  EXPECT_EQ(apply_chat_template("[INST]", msgs, true), "[INST] S\nU [/INST]A</s>[INST] V [/INST]");
  EXPECT_EQ(apply_chat_template("<|user|>", msgs, true),
            "<|system|>\nS<|endoftext|>\n<|user|>\nU<|endoftext|>\n<|assistant|>\nA<|endoftext|>\n<|user|>\nV"
            "<|endoftext|>\n<|assistant|>\n");
  EXPECT_EQ(apply_chat_template("unknown", {{"user", "U"}}, true), "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace pagoda::engine
