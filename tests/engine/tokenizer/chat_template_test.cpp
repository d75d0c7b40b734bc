// Chat templates rendered by the Jinja engine. The SmolLM2 expectations are what jinja2 renders from the
// model's own tokenizer.chat_template (checked with Python jinja2 3.1); tests/server/test_chat_templates.py
// compares every real template of llama.cpp's collection against jinja2 itself.
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

std::string render(const std::string& source, const std::vector<ChatMessage>& msgs, bool add_gen,
                   const std::string& tools = "") {
  auto r = ChatTemplate(source, "<s>", "</s>").render(msgs, tools, add_gen);
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? r.value() : std::string();
}

ChatMessage msg(std::string role, std::string content) { return {std::move(role), std::move(content), {}, {}}; }

struct Case {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt;
  std::string jinja2;  // what jinja2 renders
};

std::vector<Case> smol_cases() {
  return {
      {{msg("user", "Hello!")}, true, kSmolSystem + "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"},
      {{msg("user", "Hello!")}, false, kSmolSystem + "<|im_start|>user\nHello!<|im_end|>\n"},
      {{msg("system", "You are terse."), msg("user", "Hi")},
       true,
       "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
      {{msg("user", "What is 2+2?"), msg("assistant", "4"), msg("user", "And 3+3?")},
       true,
       kSmolSystem +
           "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd "
           "3+3?<|im_end|>\n<|im_start|>assistant\n"},
      {{}, true, "<|im_start|>assistant\n"},
      {{msg("assistant", "I start."), msg("user", "ok\nmulti\nline")},
       false,
       kSmolSystem + "<|im_start|>assistant\nI start.<|im_end|>\n<|im_start|>user\nok\nmulti\nline<|im_end|>\n"},
  };
}

TEST(ChatTemplate, SmolLM2MatchesJinja) {
  for (const Case& c : smol_cases()) EXPECT_EQ(render(kSmolTemplate, c.messages, c.add_generation_prompt), c.jinja2);
  const ChatTemplate t(kSmolTemplate, "", "");
  EXPECT_EQ(t.description(), "gguf");
  EXPECT_FALSE(t.caps().supports_tools);  // SmolLM2's template has no tool support: the server adds it
}

TEST(ChatTemplate, SmolLM2TemplateFromModel) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  auto file = GgufFile::open(test::model_path());
  ASSERT_TRUE(file.ok()) << file.message();
  auto spec = tokenizer_spec_from_gguf(*file.value());
  ASSERT_TRUE(spec.ok()) << spec.message();
  EXPECT_EQ(spec.value().chat_template, kSmolTemplate);
  for (const Case& c : smol_cases())
    EXPECT_EQ(render(spec.value().chat_template, c.messages, c.add_generation_prompt), c.jinja2);
}

TEST(ChatTemplate, FallsBackToChatML) {
  const ChatTemplate none("", "", "");
  EXPECT_EQ(none.description(), "chatml (fallback: the model has no chat template)");
  const ChatTemplate broken("{% for m in messages %}{{ m.content }", "", "");
  EXPECT_NE(broken.fallback_reason().find("does not parse"), std::string::npos) << broken.fallback_reason();
  for (const ChatTemplate* t : {&none, &broken}) {
    auto r = t->render({msg("user", "hi")}, "", true);
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r.value(), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  }
}

TEST(ChatTemplate, ATemplateWhoseProbeThrowsStillLoads) {
  // llama.cpp's capability probe throws on this one (it pops the probe's only message, then reads it).
  const ChatTemplate t("{%- set first = messages.pop(0) -%}{{ first.content }}|{% for m in messages %}{{ m.content }}"
                       "{% endfor %}", "", "");
  EXPECT_EQ(t.description(), "gguf");
  EXPECT_FALSE(t.caps().supports_tools);
  EXPECT_EQ(render(t.source(), {msg("system", "s"), msg("user", "u")}, true), "s|u");
}

TEST(ChatTemplate, RaiseExceptionIsAnError) {
  const std::string t =
      "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
      "{{ m.content }}{% endfor %}";
  auto r = ChatTemplate(t, "", "").render({msg("system", "s"), msg("user", "u")}, "", true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("System role not supported"), std::string::npos) << r.message();
  EXPECT_EQ(render(t, {msg("user", "u")}, true), "u");
}

TEST(ChatTemplate, BosAndLoopsAndFilters) {
  const std::string t =
      "{{ bos_token }}{% for m in messages %}{{ loop.index }}:{{ m.role | upper }}={{ m.content | trim }};"
      "{% endfor %}{% if add_generation_prompt %}>{% endif %}";
  EXPECT_EQ(render(t, {msg("user", "  a "), msg("assistant", "b")}, true), "<s>1:USER=a;2:ASSISTANT=b;>");
  EXPECT_EQ(render(t, {msg("user", "a")}, false), "<s>1:USER=a;");
}

TEST(ChatTemplate, ToolsAndToolCallsReachTheTemplate) {
  // A Hermes-style template reduced to what matters: tools as JSON, calls' arguments as objects.
  const std::string t =
      "{% if tools %}{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}{% endif %}"
      "{% for m in messages %}{{ m.role }}:{% if m.content %}{{ m.content }}{% endif %}"
      "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{\"name\": \"{{ c.function.name }}\", "
      "\"arguments\": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}{% endif %}"
      "{% if m.tool_call_id %}[{{ m.tool_call_id }}]{% endif %}\n{% endfor %}";
  const ChatTemplate tmpl(t, "", "");
  EXPECT_TRUE(tmpl.caps().supports_tools);
  EXPECT_TRUE(tmpl.caps().supports_tool_calls);
  ChatMessage call = msg("assistant", "");
  call.tool_calls.push_back({"call_1", "get_weather", R"({"city":"Paris","days":2})"});
  ChatMessage result = msg("tool", "sunny");
  result.tool_call_id = "call_1";
  const std::string tools = R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}])";
  auto r = tmpl.render({msg("user", "weather?"), call, result}, tools, false);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r.value(),
            "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": "
            "\"object\"}}}\nuser:weather?assistant:<tool_call>{\"name\": \"get_weather\", \"arguments\": "
            "{\"city\": \"Paris\", \"days\": 2}}</tool_call>tool:sunny[call_1]");  // trim_blocks, as jinja2
  EXPECT_FALSE(tmpl.render({msg("user", "x")}, "{not json", true).ok());
}

// A client's tools JSON may hold any number: floats past int64's range become the integer 0 (the
// vendored engine's cast was undefined behaviour there; cmake/llama_jinja.cmake fixes it), in range they
// truncate as Python's int() does.
TEST(ChatTemplate, HugeFloatsFromClientJsonConvertToIntegersSafely) {
  const std::string t = "{% for tool in tools %}{{ tool.x | int }},{{ tool.x }};{% endfor %}";
  auto r = ChatTemplate(t, "", "").render({msg("user", "u")}, R"([{"x": 6.67e76}, {"x": -1e300}, {"x": 12.75}])",
                                          false);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r.value().substr(0, 2), "0,") << r.value();
  EXPECT_NE(r.value().find(";0,"), std::string::npos) << r.value();
  EXPECT_NE(r.value().find(";12,12.75;"), std::string::npos) << r.value();
}

}  // namespace
}  // namespace pagoda::engine
