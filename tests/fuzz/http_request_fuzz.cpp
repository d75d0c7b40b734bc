// libFuzzer target: the HTTP request path up to the engine. Bytes arrive as the gateway reads them (a
// flat buffer filled in steps) and go through Boost.Beast's request_parser with the limits
// server/http_session.cpp sets (16 KiB of header, the default 1 MiB body, a Content-Length over it
// refused after the header); up to four pipelined requests are routed as HttpSession::handle does, and
// POST /v1/completions and /v1/chat/completions go through the OpenAI mapping (parse_request), the API
// key check, tools fitted to the template (apply_tools) and the chat template (as InferenceService::tokenize
// renders messages, tools included), the stop-string
// matcher's set-up and the context-length check (resolve_max_tokens).
// Properties: the parser ends in a request or an error, never a crash; parse_request gives a request or
// an ApiError with a 4xx status whose body (error_body) is valid JSON in OpenAI's error shape; a parsed
// request keeps the limits it was checked against (stop count, n, logprobs, speculative tokens).
// Input: byte 0 picks the read step and whether the rest is raw HTTP or a JSON body sent to a route.
#include <boost/asio/buffer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>

#include "engine/tokenizer/chat_template.h"
#include "server/api_keys.h"
#include "server/openai_mapping.h"
#include "server/openai_tools.h"
#include "server/stop_strings.h"

namespace beast = boost::beast;
namespace http = beast::http;
namespace openai = pagoda::server::openai;

namespace {

constexpr size_t kHeaderLimit = 16 * 1024;  // http_session.cpp read_next()
constexpr size_t kBodyLimit = 1 << 20;      // HttpGatewayOptions::max_body_bytes default
constexpr int32_t kContextLength = 8192;
const char* const kModel = "SmolLM2-135M-Instruct";
const char* const kTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "http_request_fuzz: property violated: %s\n", what);
  std::abort();
}

void check_error(const openai::ApiError& e) {
  if (e.http_status < 400 || e.http_status > 499) violated("a request error outside 4xx");
  if (e.message.empty()) violated("an error without a message");
  const std::string body = openai::error_body(e);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const std::exception&) {
    violated("error_body is not valid JSON");
  }
  if (!j.contains("error") || !j["error"].contains("message") || !j["error"]["message"].is_string())
    violated("error_body is not in OpenAI's error shape");
}

void generate(openai::Endpoint endpoint, const std::string& body, uint8_t knob) {
  openai::ParseLimits limits;
  limits.served_model = kModel;
  auto parsed = openai::parse_request(endpoint, body, limits);
  if (auto* err = std::get_if<openai::ApiError>(&parsed)) return check_error(*err);
  openai::ParsedRequest& p = std::get<openai::ParsedRequest>(parsed);
  if (p.endpoint != endpoint) violated("the request is for another endpoint");
  if (static_cast<int32_t>(p.stop.size()) > openai::kMaxOpenAiStop) violated("more stop strings than allowed");
  for (const std::string& s : p.stop) {
    if (s.empty()) violated("an empty stop string was accepted");
  }
  if (p.n < 1 || p.n > limits.request.max_n) violated("n outside its limits");
  if (p.sampling.logprobs > limits.request.max_logprobs) violated("logprobs over the limit");
  if (p.num_speculative_tokens < -1 || p.num_speculative_tokens > limits.request.max_speculative_tokens)
    violated("num_speculative_tokens outside its limits");
  if (p.max_tokens && *p.max_tokens < 1) violated("max_tokens below 1 was accepted");
  switch (p.prompt.kind) {
    case pagoda::server::PromptInput::Kind::Chat: {
      if (endpoint != openai::Endpoint::ChatCompletions || p.prompt.chat.empty()) violated("a chat prompt out of place");
      static const pagoda::engine::ChatTemplate tmpl(kTemplate, "", "");
      if (auto err = openai::apply_tools(p, tmpl)) return check_error(*err);
      if (p.tools && !p.grammar) violated("tools without a grammar for the Hermes format");
      // SmolLM2's template cannot fail on a conversation the mapping accepted.
      if (!tmpl.render(p.prompt.chat, p.prompt.tools_json, true).ok()) violated("an accepted conversation did not render");
      break;
    }
    case pagoda::server::PromptInput::Kind::Text:
      if (p.prompt.text.empty()) violated("an empty text prompt was accepted");
      break;
    case pagoda::server::PromptInput::Kind::TokenIds:
      for (int32_t id : p.prompt.token_ids) {
        if (id < 0) violated("a negative token id was accepted");
      }
      break;
  }
  pagoda::server::StopStringMatcher matcher(p.stop);
  (void)matcher.push(p.prompt.text);
  // The prompt's token count comes from the tokenizer; any count from 1 to past the context will do.
  const int32_t prompt_tokens = 1 + static_cast<int32_t>(knob) * 41;
  const std::optional<int64_t> asked = p.max_tokens;
  if (auto err = openai::resolve_max_tokens(p, prompt_tokens, kContextLength)) {
    check_error(*err);
    return;
  }
  if (!p.max_tokens || *p.max_tokens < 1 || prompt_tokens + *p.max_tokens > kContextLength)
    violated("resolve_max_tokens accepted a length over the context");
  if (asked && *asked != *p.max_tokens) violated("resolve_max_tokens changed the asked max_tokens");
}

void route(const http::request<http::string_body>& req, uint8_t knob) {
  static const pagoda::server::ApiKeys keys({"sk-fuzz-0123456789"});
  (void)keys.accepts_authorization(req[http::field::authorization]);
  const std::string target(req.target());
  const std::string path = target.substr(0, target.find('?'));
  if (req.method() != http::verb::post) return;
  if (path == "/v1/completions") generate(openai::Endpoint::Completions, req.body(), knob);
  if (path == "/v1/chat/completions") generate(openai::Endpoint::ChatCompletions, req.body(), knob);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string wire;
  if (mode < 64) {
    wire.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  } else {
    // A JSON body sent the way clients send it, so the mapping is reached without the framing breaking.
    const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
    const char* path = (mode & 1) ? "/v1/chat/completions" : "/v1/completions";
    wire = std::string("POST ") + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n";
    if (mode & 2) wire += "Authorization: Bearer sk-fuzz-0123456789\r\n";
    if (mode & 4) {
      wire += "Transfer-Encoding: chunked\r\n\r\n";
      char len[32];
      std::snprintf(len, sizeof len, "%zx\r\n", body.size());
      if (!body.empty()) wire += len + body + "\r\n";
      wire += "0\r\n\r\n";
    } else {
      wire += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }
  }
  // The read step: how many bytes each read adds to the buffer (1..64, or everything at once).
  const size_t step = (mode & 0x38) == 0x38 ? wire.size() + 1 : 1 + ((mode >> 3) & 7) * 9;
  const uint8_t knob = static_cast<uint8_t>(size > 1 ? data[size - 1] : 0);

  size_t avail = 0;  // bytes "received" so far
  size_t off = 0;    // bytes consumed by the parsers
  for (int request = 0; request < 4 && off < wire.size(); ++request) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    beast::error_code ec;
    bool header_checked = false;
    while (!parser.is_done()) {
      if (avail <= off) avail = off;
      if (avail < wire.size() && (avail - off) < step) avail = std::min(wire.size(), avail + step);
      const size_t used = parser.put(boost::asio::buffer(wire.data() + off, avail - off), ec);
      if (used > avail - off) violated("the parser consumed more than it was given");
      off += used;
      if (ec == http::error::need_more) {
        ec = {};
        if (avail >= wire.size()) {
          parser.put_eof(ec);  // the client closed the connection
          break;
        }
        avail = std::min(wire.size(), avail + step);
        continue;
      }
      if (ec) break;
      if (parser.is_header_done() && !header_checked) {
        header_checked = true;
        if (auto cl = parser.content_length(); cl && *cl > kBodyLimit) return 0;  // 413 before the body
      }
      if (used == 0 && !parser.is_done()) {
        if (avail >= wire.size()) {
          parser.put_eof(ec);
          break;
        }
        avail = std::min(wire.size(), avail + step);
      }
    }
    if (ec || !parser.is_done()) return 0;  // a 400 / 413 answer, or the connection just closes
    http::request<http::string_body> req = parser.release();
    if (req.body().size() > kBodyLimit) violated("a body over the limit was accepted");
    route(req, knob);
    if (!req.keep_alive()) return 0;
  }
  return 0;
}
