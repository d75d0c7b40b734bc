#include "server/openai_mapping.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "server/openai_json_fields.h"
#include "server/openai_structured_outputs.h"
#include "server/openai_tools.h"

namespace pagoda::server::openai {

namespace {

using json = nlohmann::json;

const std::set<std::string> kCommonFields = {"model", "max_tokens", "temperature", "top_p", "n", "stop", "seed",
                                             "presence_penalty", "frequency_penalty", "stream", "stream_options",
                                             "user", "logit_bias", "logprobs", "prediction", "response_format",
                                             // Extensions (as vLLM names them; the last is Pagoda's).
                                             "top_k", "min_p", "repetition_penalty", "ignore_eos", "guided_json",
                                             "guided_regex", "guided_choice", "guided_grammar", "structured_outputs",
                                             "num_speculative_tokens"};

std::set<std::string> allowed_fields(Endpoint e) {
  std::set<std::string> s = kCommonFields;
  if (e == Endpoint::Completions) {
    s.insert({"prompt", "echo", "best_of", "suffix"});
  } else {
    s.insert({"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice", "functions", "function_call",
              "parallel_tool_calls"});
  }
  return s;
}

void parse_model(const Fields& f, const ParseLimits& limits) {
  const json* v = f.get("model");
  if (!v) return;
  const std::string& model = as_string(*v, "model");
  if (model != limits.served_model) {
    ApiError e;
    e.http_status = 404;
    e.message = fmt::format("The model '{}' does not exist; this server serves '{}'", model, limits.served_model);
    e.param = "model";
    e.code = "model_not_found";
    throw Reject{e};
  }
}

std::vector<int32_t> token_ids(const json& arr, const std::string& field) {
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string name = fmt::format("{}[{}]", field, i);
    const int64_t id = as_int(arr[i], name);
    if (id < 0 || id > std::numeric_limits<int32_t>::max())
      reject(fmt::format("'{}' is not a token id: {}", name, id), field);
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

PromptInput parse_prompt(const Fields& f) {
  const json* v = f.get("prompt");
  if (!v) reject("'prompt' is required", "prompt");
  PromptInput in;
  const char* expected = "a string, an array of one string, or an array of token ids";
  if (v->is_string()) {
    in.kind = PromptInput::Kind::Text;
    in.text = v->get<std::string>();
    if (in.text.empty()) reject("'prompt' is empty", "prompt");
    return in;
  }
  if (!v->is_array()) wrong_type(*v, "prompt", expected);
  if (v->empty()) reject("'prompt' is empty", "prompt");
  const json& first = v->front();
  if (first.is_string() || first.is_array()) {
    if (v->size() != 1) {
      reject(fmt::format("'prompt' has {} prompts; batched prompts are not supported, send one prompt per request",
                         v->size()),
             "prompt");
    }
    if (first.is_string()) {
      in.kind = PromptInput::Kind::Text;
      in.text = first.get<std::string>();
      if (in.text.empty()) reject("'prompt' is empty", "prompt");
      return in;
    }
    in.kind = PromptInput::Kind::TokenIds;
    in.token_ids = token_ids(first, "prompt[0]");
    if (in.token_ids.empty()) reject("'prompt' is empty", "prompt");
    return in;
  }
  if (!first.is_number_integer()) wrong_type(first, "prompt[0]", "a string or a token id");
  in.kind = PromptInput::Kind::TokenIds;
  in.token_ids = token_ids(*v, "prompt");
  return in;
}

std::string message_content(const json& content, const std::string& field) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(content, field, "a string or an array of text parts");
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    const std::string name = fmt::format("{}[{}]", field, j);
    if (!part.is_object()) wrong_type(part, name, "an object");
    if (!part.contains("type")) reject(fmt::format("'{}.type' is required", name), name);
    const std::string& type = as_string(part["type"], name + ".type");
    if (type != "text") {
      reject(fmt::format("'{}.type' is '{}'; only 'text' content parts are supported", name, type), name);
    }
    for (const auto& [key, value] : part.items()) {
      if (key != "type" && key != "text") reject(fmt::format("'{}.{}' is not supported", name, key), name);
    }
    if (!part.contains("text")) reject(fmt::format("'{}.text' is required", name), name);
    if (j > 0) text += "\n";
    text += as_string(part["text"], name + ".text");
  }
  return text;
}

// An assistant turn's earlier calls: [{"id", "type": "function", "function": {"name", "arguments"}}].
std::vector<engine::ChatToolCall> message_tool_calls(const json& v, const std::string& field) {
  if (!v.is_array()) wrong_type(v, field, "an array");
  std::vector<engine::ChatToolCall> calls;
  for (size_t j = 0; j < v.size(); ++j) {
    const json& c = v[j];
    const std::string name = fmt::format("{}[{}]", field, j);
    if (!c.is_object()) wrong_type(c, name, "an object");
    for (const auto& [key, value] : c.items()) {
      if (key != "id" && key != "type" && key != "function") reject(fmt::format("'{}.{}' is not supported", name, key), "messages");
    }
    if (c.contains("type") && !(c["type"].is_string() && c["type"] == "function")) {
      reject(fmt::format("'{}.type' must be \"function\"", name), "messages");
    }
    if (!c.contains("function") || !c["function"].is_object()) reject(fmt::format("'{}.function' is required", name), "messages");
    const json& fn = c["function"];
    if (!fn.contains("name")) reject(fmt::format("'{}.function.name' is required", name), "messages");
    engine::ChatToolCall call;
    call.id = c.contains("id") && !c["id"].is_null() ? as_string(c["id"], name + ".id") : std::string();
    call.name = as_string(fn["name"], name + ".function.name");
    call.arguments = fn.contains("arguments") && !fn["arguments"].is_null()
                         ? as_string(fn["arguments"], name + ".function.arguments")
                         : std::string("{}");
    calls.push_back(std::move(call));
  }
  return calls;
}

PromptInput parse_messages(const Fields& f) {
  const json* v = f.get("messages");
  if (!v) reject("'messages' is required", "messages");
  if (!v->is_array()) wrong_type(*v, "messages", "an array of messages");
  if (v->empty()) reject("'messages' must contain at least one message", "messages");
  PromptInput in;
  in.kind = PromptInput::Kind::Chat;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string name = fmt::format("messages[{}]", i);
    if (!m.is_object()) wrong_type(m, name, "an object");
    if (!m.contains("role")) reject(fmt::format("'{}.role' is required", name), "messages");
    std::string role = as_string(m["role"], name + ".role");
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      reject(fmt::format("'{}.role' is '{}'; supported roles are system, user, assistant and tool", name, role),
             "messages");
    }
    for (const auto& [key, value] : m.items()) {
      const bool known = key == "role" || key == "content" || key == "name" ||
                         (key == "tool_calls" && role == "assistant") || (key == "tool_call_id" && role == "tool") ||
                         (key == "refusal" && role == "assistant");
      if (!known) reject(fmt::format("'{}.{}' is not supported for a {} message", name, key, role), "messages");
    }
    if (m.contains("name") && !m["name"].is_null()) as_string(m["name"], name + ".name");
    engine::ChatMessage msg;
    msg.role = role;
    if (role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      msg.tool_calls = message_tool_calls(m["tool_calls"], name + ".tool_calls");
    }
    if (role == "tool") {
      if (!m.contains("tool_call_id") || m["tool_call_id"].is_null()) {
        reject(fmt::format("'{}.tool_call_id' is required for a tool message", name), "messages");
      }
      msg.tool_call_id = as_string(m["tool_call_id"], name + ".tool_call_id");
    }
    const bool content_optional = role == "assistant" && !msg.tool_calls.empty();
    if (!m.contains("content") || m["content"].is_null()) {
      if (!content_optional) reject(fmt::format("'{}.content' is required", name), "messages");
    } else {
      msg.content = message_content(m["content"], name + ".content");
    }
    in.chat.push_back(std::move(msg));
  }
  return in;
}

std::vector<std::string> parse_stop(const Fields& f, const ParseLimits& limits) {
  const json* v = f.get("stop");
  std::vector<std::string> stop;
  if (!v) return stop;
  if (v->is_string()) {
    stop.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    const int32_t max_stop = std::min(kMaxOpenAiStop, limits.request.max_stop_strings);
    if (static_cast<int32_t>(v->size()) > max_stop) {
      reject(fmt::format("'stop' has {} sequences; at most {} are allowed", v->size(), max_stop), "stop");
    }
    for (size_t i = 0; i < v->size(); ++i) stop.push_back(as_string((*v)[i], fmt::format("stop[{}]", i)));
  } else {
    wrong_type(*v, "stop", "a string or an array of strings");
  }
  for (const std::string& s : stop) {
    if (s.empty()) reject("'stop' sequences must not be empty", "stop");
  }
  return stop;
}

void parse_sampling(const Fields& f, ParsedRequest& r) {
  engine::SamplingParams& s = r.sampling;
  if (const json* v = f.get("temperature")) {
    const double t = as_number(*v, "temperature");
    check_range(t, 0.0, 2.0, "temperature");
    s.temperature = static_cast<float>(t);
  }
  if (const json* v = f.get("top_p")) {
    const double p = as_number(*v, "top_p");
    if (!(p > 0.0 && p <= 1.0)) reject(fmt::format("'top_p' must be in (0, 1], got {}", p), "top_p");
    s.top_p = static_cast<float>(p);
  }
  if (const json* v = f.get("presence_penalty")) {
    const double p = as_number(*v, "presence_penalty");
    check_range(p, -2.0, 2.0, "presence_penalty");
    s.presence_penalty = static_cast<float>(p);
  }
  if (const json* v = f.get("frequency_penalty")) {
    const double p = as_number(*v, "frequency_penalty");
    check_range(p, -2.0, 2.0, "frequency_penalty");
    s.frequency_penalty = static_cast<float>(p);
  }
  if (const json* v = f.get("seed")) s.seed = static_cast<uint64_t>(as_int(*v, "seed"));
  if (const json* v = f.get("logit_bias"); v && !v->is_null()) {
    // {"token id": bias}: ids are checked against the vocabulary with the rest of the request.
    if (!v->is_object()) wrong_type(*v, "logit_bias", "an object");
    if (v->size() > 300) reject(fmt::format("'logit_bias' may have at most 300 entries, got {}", v->size()), "logit_bias");
    for (const auto& [key, value] : v->items()) {
      int32_t id = -1;
      const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
      if (ec != std::errc() || end != key.data() + key.size() || id < 0) {
        reject(fmt::format("'logit_bias' keys must be token ids, got '{}'", key), "logit_bias");
      }
      for (const auto& [seen, bias] : s.logit_bias) {
        if (seen == id) reject(fmt::format("'logit_bias' names token {} twice", id), "logit_bias");
      }
      const double b = as_number(value, "logit_bias." + key);
      check_range(b, -100.0, 100.0, "logit_bias." + key);
      s.logit_bias.emplace_back(id, static_cast<float>(b));
    }
  }
  if (const json* v = f.get("top_k")) {
    const int64_t k = as_int(*v, "top_k");
    check_range(k, int64_t{-1}, int64_t{1} << 30, "top_k");
    s.top_k = static_cast<int32_t>(std::max<int64_t>(k, 0));  // -1 (vLLM) and 0 both mean off
  }
  if (const json* v = f.get("min_p")) {
    const double p = as_number(*v, "min_p");
    check_range(p, 0.0, 1.0, "min_p");
    s.min_p = static_cast<float>(p);
  }
  if (const json* v = f.get("repetition_penalty")) {
    const double p = as_number(*v, "repetition_penalty");
    if (!(p > 0.0 && p <= 10.0))
      reject(fmt::format("'repetition_penalty' must be in (0, 10], got {}", p), "repetition_penalty");
    s.repetition_penalty = static_cast<float>(p);
  }
}

void parse_logprobs(const Fields& f, ParsedRequest& r, const ParseLimits& limits) {
  const int64_t max_lp = limits.request.max_logprobs;
  if (r.endpoint == Endpoint::Completions) {
    if (const json* v = f.get("logprobs")) {
      const int64_t n = as_int(*v, "logprobs");
      check_range(n, int64_t{0}, max_lp, "logprobs");
      r.sampling.logprobs = static_cast<int32_t>(n);
    }
    return;
  }
  bool want = false;
  if (const json* v = f.get("logprobs")) want = as_bool(*v, "logprobs");
  int64_t top = 0;
  if (const json* v = f.get("top_logprobs")) {
    top = as_int(*v, "top_logprobs");
    check_range(top, int64_t{0}, max_lp, "top_logprobs");
    if (!want) reject("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
  }
  r.sampling.logprobs = want ? static_cast<int32_t>(top) : -1;
}

void parse_lengths(const Fields& f, ParsedRequest& r) {
  auto read = [&](const char* name) -> std::optional<int64_t> {
    const json* v = f.get(name);
    if (!v) return std::nullopt;
    const int64_t n = as_int(*v, name);
    if (n < 1) reject(fmt::format("'{}' must be at least 1, got {}", name, n), name);
    return n;
  };
  r.max_tokens = read("max_tokens");
  if (r.endpoint == Endpoint::ChatCompletions) {
    if (auto m = read("max_completion_tokens")) {
      if (r.max_tokens && *r.max_tokens != *m) {
        reject(fmt::format("'max_tokens' ({}) and 'max_completion_tokens' ({}) disagree; send one", *r.max_tokens, *m),
               "max_completion_tokens");
      }
      r.max_tokens = m;
    }
  }
}

void parse_streaming(const Fields& f, ParsedRequest& r) {
  if (const json* v = f.get("stream")) r.stream = as_bool(*v, "stream");
  if (const json* v = f.get("stream_options")) {
    if (!v->is_object()) wrong_type(*v, "stream_options", "an object");
    if (!r.stream) reject("'stream_options' is only allowed when 'stream' is true", "stream_options");
    for (const auto& [key, value] : v->items()) {
      if (key != "include_usage") reject(fmt::format("'stream_options.{}' is not supported", key), "stream_options");
      if (!value.is_null()) r.include_usage = as_bool(value, "stream_options.include_usage");
    }
  }
}

// Predicted Outputs (OpenAI `prediction`): the text the client expects, drafted from by speculative
// decoding. The output is the same with or without it; only its speed changes.
void parse_prediction(const Fields& f, ParsedRequest& r, const ParseLimits& limits) {
  if (const json* v = f.get("num_speculative_tokens")) {
    const int64_t k = as_int(*v, "num_speculative_tokens");
    check_range(k, int64_t{0}, int64_t{limits.request.max_speculative_tokens}, "num_speculative_tokens");
    r.num_speculative_tokens = static_cast<int32_t>(k);
  }
  const json* v = f.get("prediction");
  if (!v || v->is_null()) return;
  if (!v->is_object()) wrong_type(*v, "prediction", "an object");
  for (const auto& [key, value] : v->items()) {
    if (key != "type" && key != "content") reject(fmt::format("'prediction.{}' is not supported", key), "prediction");
  }
  const json* type = v->contains("type") ? &(*v)["type"] : nullptr;
  if (!type || !type->is_string() || type->get<std::string>() != "content") {
    reject("'prediction.type' must be \"content\"", "prediction");
  }
  if (!v->contains("content")) reject("'prediction.content' is required", "prediction");
  const json& content = (*v)["content"];
  if (content.is_string()) {
    r.prediction = content.get<std::string>();
    return;
  }
  if (!content.is_array()) wrong_type(content, "prediction.content", "a string or an array of text parts");
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
        !part["text"].is_string() || part.size() != 2) {
      reject("'prediction.content' parts must be {\"type\": \"text\", \"text\": \"...\"}", "prediction");
    }
    text += part["text"].get<std::string>();
  }
  r.prediction = std::move(text);
}

// Fields OpenAI defines that Pagoda cannot honour: accepted only at their no-op values.
void parse_unsupported(const Fields& f, ParsedRequest& r) {
  if (r.endpoint == Endpoint::Completions) {
    if (const json* v = f.get("echo"); v && as_bool(*v, "echo")) {
      if (r.sampling.logprobs >= 0) {
        reject("'echo' with 'logprobs' is not supported: it needs the prompt's log-probabilities, which this server "
               "does not compute", "echo");
      }
      r.echo = true;
    }
    if (const json* v = f.get("best_of")) {
      const int64_t b = as_int(*v, "best_of");
      if (b != r.n) reject(fmt::format("'best_of' ({}) other than 'n' ({}) is not supported", b, r.n), "best_of");
    }
    if (const json* v = f.get("suffix"); v && !as_string(*v, "suffix").empty()) {
      r.prompt.suffix = v->get<std::string>();  // fill in the middle (the model must have FIM tokens)
    }
  }
}

void parse_grammar(const Fields& f, ParsedRequest& r) {
  std::optional<StructuredOutput> so = parse_structured_output(f);
  if (!so) return;
  if (r.ignore_eos) {
    reject(fmt::format("'ignore_eos' cannot be combined with '{}': a constrained output ends with an "
                       "end-of-generation token once its grammar is complete", so->param), "ignore_eos");
  }
  r.grammar = std::move(so->spec);
  r.grammar_param = std::move(so->param);
}

ParsedRequest parse_object(Endpoint endpoint, const json& body, std::string_view text, const ParseLimits& limits) {
  Fields f(body, allowed_fields(endpoint));
  f.reject_unknown();
  parse_model(f, limits);
  ParsedRequest r;
  r.endpoint = endpoint;
  r.prompt = endpoint == Endpoint::Completions ? parse_prompt(f) : parse_messages(f);
  parse_lengths(f, r);
  if (const json* v = f.get("n")) {
    const int64_t n = as_int(*v, "n");
    check_range(n, int64_t{1}, int64_t{limits.request.max_n}, "n");
    r.n = static_cast<int32_t>(n);
  }
  r.stop = parse_stop(f, limits);
  parse_sampling(f, r);
  parse_logprobs(f, r, limits);
  parse_streaming(f, r);
  if (const json* v = f.get("user")) r.user = as_string(*v, "user");
  if (const json* v = f.get("ignore_eos")) r.ignore_eos = as_bool(*v, "ignore_eos");
  parse_prediction(f, r, limits);
  parse_grammar(f, r);
  parse_unsupported(f, r);
  if (endpoint == Endpoint::ChatCompletions) r.tools = parse_tools(f, text);
  return r;
}

}  // namespace

ApiError invalid(std::string message, std::string param) {
  ApiError e;
  e.http_status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

ApiError error_from_status(const Status& status) {
  ApiError e;
  e.message = status.message();
  switch (status.code()) {
    case StatusCode::Ok:
    case StatusCode::InvalidArgument:
      e.http_status = 400;
      break;
    case StatusCode::NotFound:
      e.http_status = 404;
      e.code = "not_found";
      break;
    case StatusCode::ResourceExhausted:
      e.http_status = 429;
      e.type = "rate_limit_error";
      e.code = "queue_full";
      break;
    case StatusCode::Unavailable:
      e.http_status = 503;
      e.type = "server_error";
      e.code = "unavailable";
      break;
    case StatusCode::Unauthenticated:  // as OpenAI answers a wrong key
      e.http_status = 401;
      e.code = "invalid_api_key";
      break;
    case StatusCode::DeadlineExceeded:
      e.http_status = 504;
      e.type = "server_error";
      e.code = "timeout";
      break;
    case StatusCode::Cancelled:
    case StatusCode::Internal:
      e.http_status = 500;
      e.type = "server_error";
      e.code = "internal_error";
      break;
  }
  return e;
}

std::string error_body(const ApiError& error) {
  json e = {{"message", error.message},
            {"type", error.type},
            {"param", error.param.empty() ? json() : json(error.param)},
            {"code", error.code.empty() ? json() : json(error.code)}};
  return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::variant<ParsedRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body,
                                                    const ParseLimits& limits) {
  // Deeply nested input is refused while parsing: later recursive walks (dump, destruction) of a
  // 100,000-level document would overflow an I/O thread's stack.
  constexpr int kMaxDepth = 64;
  struct TooDeep {};
  json j;
  try {
    j = json::parse(body, [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxDepth) throw TooDeep{};
      return true;
    });
  } catch (const json::exception& e) {
    // nlohmann's message names the position and, for bad bytes, "ill-formed UTF-8". Not only
    // parse_error: a number past the double range (1e400) throws out_of_range (406) from the parser.
    return invalid(fmt::format("The request body is not valid JSON: {}", e.what()));
  } catch (const TooDeep&) {
    return invalid(fmt::format("The request body nests JSON deeper than {} levels", kMaxDepth));
  }
  if (!j.is_object()) {
    return invalid(fmt::format("The request body must be a JSON object, got {}", json_type_name(j)));
  }
  try {
    ParsedRequest r = parse_object(endpoint, j, body, limits);
    if (r.grammar && r.grammar->kind == engine::GrammarSpec::Kind::JsonSchema) {
      r.grammar->text = schema_in_client_order(body, r.grammar_param);
    }
    return r;
  } catch (const Reject& r) {
    return r.error;
  }
}

std::optional<ApiError> resolve_max_tokens(ParsedRequest& request, int32_t prompt_tokens, int32_t context_length) {
  const char* prompt_field = request.endpoint == Endpoint::Completions ? "prompt" : "messages";
  if (prompt_tokens >= context_length) {
    return invalid(fmt::format("This model's maximum context length is {} tokens, but the prompt has {} tokens; "
                               "no room is left for the completion",
                               context_length, prompt_tokens),
                   prompt_field);
  }
  if (!request.max_tokens) {
    request.max_tokens = request.endpoint == Endpoint::Completions ? 16 : context_length - prompt_tokens;
  }
  // max_tokens may be anything up to INT64_MAX: compare with the room left, and add in unsigned
  // arithmetic for the message (both are non-negative here), so neither can overflow.
  if (*request.max_tokens > int64_t{context_length} - prompt_tokens) {
    const uint64_t total = static_cast<uint64_t>(prompt_tokens) + static_cast<uint64_t>(*request.max_tokens);
    return invalid(fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                               "({} in the prompt, {} for the completion). Please reduce the length of the prompt "
                               "or the completion.",
                               context_length, total, prompt_tokens, *request.max_tokens),
                   "max_tokens");
  }
  return std::nullopt;
}

}  // namespace pagoda::server::openai
