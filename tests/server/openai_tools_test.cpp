// Tool calling, model-free: which tool-call format each real chat template of llama.cpp's collection gets
// (server/openai_tools.h), that a tools request and a conversation with earlier calls and results render
// through every supported one, and the OpenAI wire shape the response builder writes for calls, streamed
// and not (server/openai_response.h).
#include "server/openai_tools.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <variant>

#include "server/openai_response.h"

namespace pagoda::server::openai {
namespace {

using json = nlohmann::json;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

engine::ChatTemplate real_template(const std::string& name) {
  const std::string path = std::string(PAGODA_CHAT_TEMPLATES_DIR) + "/" + name + ".jinja";
  EXPECT_TRUE(std::filesystem::exists(path)) << path;
  return engine::ChatTemplate(read(path), "<s>", "</s>");
}

ParsedRequest parse_ok(const std::string& body) {
  ParseLimits limits;
  limits.served_model = "m";
  auto r = parse_request(Endpoint::ChatCompletions, body, limits);
  if (auto* e = std::get_if<ApiError>(&r)) ADD_FAILURE() << e->message;
  return std::get<ParsedRequest>(r);
}

const char* const kToolTurnRequest = R"({
  "messages": [
    {"role": "system", "content": "You help with weather."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
      "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 C"},
    {"role": "user", "content": "And tomorrow?"}],
  "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
  "tool_choice": "required"})";

struct Expect {
  const char* name;
  const char* format;  // "hermes", "llama3_json", or "" for unsupported
  bool native;
  bool system_role = true;
};

TEST(OpenAiTools, EachRealTemplateGetsItsFormatAndRendersAToolConversation) {
  const Expect cases[] = {
      {"Qwen-Qwen2.5-7B-Instruct", "hermes", true},
      {"Qwen-Qwen3-0.6B", "hermes", true},
      {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "hermes", true},
      {"ibm-granite-granite-4.0", "hermes", true},
      {"meta-llama-Llama-3.1-8B-Instruct", "llama3_json", true},
      {"meta-llama-Llama-3.2-3B-Instruct", "llama3_json", true},
      {"meta-llama-Llama-3.3-70B-Instruct", "llama3_json", true},
      // No tool support: Hermes, described in the prompt.
      {"microsoft-Phi-3.5-mini-instruct", "hermes", false},
      {"HuggingFaceTB-SmolLM3-3B", "hermes", false},
      {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "hermes", false},
      {"google-gemma-2-2b-it", "hermes", false, /*system_role=*/false},
      // Formats not parsed yet.
      {"mistralai-Mistral-Nemo-Instruct-2407", "", true},
      {"Qwen3-Coder", "", true},
      {"GLM-4.6", "", true},
      {"MiniMax-M2", "", true},
      {"meetkai-functionary-medium-v3.1", "", true},
      {"meetkai-functionary-medium-v3.2", "", true},
      {"openai-gpt-oss-120b", "", true},
  };
  for (const Expect& e : cases) {
    SCOPED_TRACE(e.name);
    const engine::ChatTemplate tmpl = real_template(e.name);
    const TemplateToolSupport support = template_tool_support(tmpl);
    EXPECT_EQ(support.native, e.native);
    ParsedRequest r = parse_ok(kToolTurnRequest);
    if (!e.system_role) r.prompt.chat.erase(r.prompt.chat.begin());  // Gemma refuses a client's system turn
    const auto err = apply_tools(r, tmpl);
    if (*e.format == '\0') {
      EXPECT_FALSE(support.unsupported.empty());
      ASSERT_TRUE(err.has_value());
      EXPECT_EQ(err->http_status, 400);
      EXPECT_EQ(err->param, "tools");
      continue;
    }
    ASSERT_FALSE(err.has_value()) << err->message;
    EXPECT_STREQ(tools::tool_call_format_name(r.tools->format), e.format);
    ASSERT_TRUE(r.grammar.has_value());
    auto rendered = tmpl.render(r.prompt.chat, r.prompt.tools_json, true);
    ASSERT_TRUE(rendered.ok()) << rendered.message();
    const std::string& text = rendered.value();
    EXPECT_NE(text.find("get_weather"), std::string::npos);  // the tools, and the earlier call
    EXPECT_NE(text.find("Paris"), std::string::npos);
    EXPECT_NE(text.find("Sunny, 24 C"), std::string::npos);  // the tool's result
    EXPECT_NE(text.find("And tomorrow?"), std::string::npos);
    if (!e.native) {
      EXPECT_NE(text.find("<tool_response>\nSunny, 24 C\n</tool_response>"), std::string::npos);
      EXPECT_NE(text.find("<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</tool_call>"),
                std::string::npos);
    }
  }
}

TEST(OpenAiTools, ToolTurnsWithoutToolsAreRewrittenForATemplateWithoutToolSupport) {
  const engine::ChatTemplate smol("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                                  "{% endfor %}",
                                  "", "");
  ParsedRequest r = parse_ok(json::parse(kToolTurnRequest).dump());
  r.tools.reset();  // as tool_choice "none"
  ASSERT_FALSE(apply_tools(r, smol).has_value());
  auto text = smol.render(r.prompt.chat, r.prompt.tools_json, false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text.value().find("<|im_start|>tool"), std::string::npos) << text.value();
  EXPECT_EQ(text.value().find("# Tools"), std::string::npos);
  EXPECT_NE(text.value().find("<|im_start|>user\n<tool_response>\nSunny, 24 C\n</tool_response><|im_end|>"),
            std::string::npos)
      << text.value();
}

std::string feed(ResponseBuilder& b, int32_t index, const std::string& text,
                 scheduler::FinishReason finish = scheduler::FinishReason::None) {
  scheduler::TokenEvent ev;
  ev.index = index;
  ev.token = 7;
  ev.text = text;
  ev.finish = finish;
  ev.completion_tokens = 3;
  return b.on_event(ev);
}

ParsedRequest tools_request(bool stream, bool parallel) {
  ParsedRequest r = parse_ok(json{{"messages", {{{"role", "user"}, {"content", "x"}}}},
                                  {"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}},
                                  {"parallel_tool_calls", parallel},
                                  {"stream", stream},
                                  {"n", 2}}
                                 .dump());
  r.tools->format = tools::ToolCallFormat::Hermes;
  return r;
}

const char* const kTwoCalls =
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>\n<tool_call>\n{\"name\": \"f\", "
    "\"arguments\": {}}\n</tool_call>";

TEST(OpenAiTools, ResponseCarriesToolCallsTheOpenAiWay) {
  ParsedRequest p = tools_request(/*stream=*/false, /*parallel=*/true);
  ResponseBuilder b(p, "chatcmpl-abc", 1, "m", 5, [](int32_t) { return std::string("t"); });
  feed(b, 0, kTwoCalls, scheduler::FinishReason::Stop);
  feed(b, 1, "Just text.", scheduler::FinishReason::Stop);
  const json body = json::parse(b.body());
  const json& m0 = body["choices"][0]["message"];
  EXPECT_TRUE(m0["content"].is_null());
  ASSERT_EQ(m0["tool_calls"].size(), 2u);
  EXPECT_EQ(m0["tool_calls"][0]["type"], "function");
  EXPECT_EQ(m0["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(m0["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");  // a string, as OpenAI sends it
  EXPECT_FALSE(m0["tool_calls"][0].contains("index"));
  EXPECT_NE(m0["tool_calls"][0]["id"], m0["tool_calls"][1]["id"]);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(body["choices"][1]["message"]["content"], "Just text.");
  EXPECT_FALSE(body["choices"][1]["message"].contains("tool_calls"));
  EXPECT_EQ(body["choices"][1]["finish_reason"], "stop");

  // parallel_tool_calls false: one call, whatever the text held.
  ParsedRequest one = tools_request(false, false);
  ResponseBuilder b1(one, "chatcmpl-abc", 1, "m", 5, [](int32_t) { return std::string("t"); });
  feed(b1, 0, kTwoCalls, scheduler::FinishReason::Stop);
  feed(b1, 1, "", scheduler::FinishReason::Length);
  EXPECT_EQ(json::parse(b1.body())["choices"][0]["message"]["tool_calls"].size(), 1u);
}

TEST(OpenAiTools, StreamedToolCallsAreIndexedDeltas) {
  ParsedRequest p = tools_request(/*stream=*/true, /*parallel=*/true);
  ResponseBuilder b(p, "chatcmpl-abc", 1, "m", 5, [](int32_t) { return std::string("t"); });
  std::string sse = b.stream_start();
  const std::string text = kTwoCalls;
  for (size_t i = 0; i < text.size(); i += 5) sse += feed(b, 0, text.substr(i, 5));
  sse += feed(b, 0, "", scheduler::FinishReason::Stop);
  sse += feed(b, 1, "Hi <tool", scheduler::FinishReason::None);
  sse += feed(b, 1, " there", scheduler::FinishReason::Stop);
  std::vector<json> calls;
  std::string content1;
  std::string finish0, finish1;
  for (size_t pos = sse.find("data: "); pos != std::string::npos; pos = sse.find("data: ", pos + 1)) {
    const size_t end = sse.find("\n\n", pos);
    const json chunk = json::parse(sse.substr(pos + 6, end - pos - 6));
    const json& c = chunk["choices"][0];
    if (c["index"] == 0 && c["delta"].contains("tool_calls")) {
      for (const json& tc : c["delta"]["tool_calls"]) calls.push_back(tc);
    }
    if (c["index"] == 0 && c["delta"].contains("content")) {
      EXPECT_EQ(c["delta"]["content"], "");  // the role chunk only
    }
    if (c["index"] == 1 && c["delta"].contains("content")) content1 += c["delta"]["content"].get<std::string>();
    if (!c["finish_reason"].is_null()) (c["index"] == 0 ? finish0 : finish1) = c["finish_reason"];
  }
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[1]["index"], 1);
  EXPECT_EQ(calls[0]["function"]["arguments"], "{\"a\":1}");
  EXPECT_EQ(finish0, "tool_calls");
  EXPECT_EQ(content1, "Hi <tool there");  // held while it could open a call, then released
  EXPECT_EQ(finish1, "stop");
}

}  // namespace
}  // namespace pagoda::server::openai
