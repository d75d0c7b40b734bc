#include "server/openai_response.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

namespace pagoda::server::openai {

namespace {

using json = nlohmann::json;
using scheduler::FinishReason;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// JSON has no infinities; a token the model rules out gets a very low but finite logprob (as vLLM).
double finite(float lp) { return std::isfinite(lp) ? static_cast<double>(lp) : -9999.0; }

const char* finish_name(FinishReason r) {
  switch (r) {
    case FinishReason::Length:
      return "length";
    case FinishReason::Stop:
      return "stop";
    default:
      return nullptr;
  }
}

json finish_json(FinishReason r) {
  const char* name = finish_name(r);
  return name ? json(name) : json();
}

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

std::string sse_event(const std::string& json_text) { return "data: " + json_text + "\n\n"; }

ResponseBuilder::ResponseBuilder(const ParsedRequest& request, std::string id, int64_t created, std::string model,
                                 int32_t prompt_tokens, std::function<std::string(int32_t)> piece)
    : chat_(request.endpoint == Endpoint::ChatCompletions),
      stream_(request.stream),
      include_usage_(request.include_usage),
      logprobs_(request.sampling.logprobs),
      id_(std::move(id)),
      model_(std::move(model)),
      created_(created),
      prompt_tokens_(prompt_tokens),
      prediction_(request.prediction.has_value()),
      piece_(std::move(piece)),
      tools_(request.tools),
      echo_(request.echo ? std::optional<std::string>(request.echo_text) : std::nullopt),
      choices_(static_cast<size_t>(std::max(request.n, 1))) {
  if (tools_ && stream_) {
    for (Choice& c : choices_) c.tool_parser = std::make_unique<tools::ToolCallStreamParser>(tools_->format, tools_->names);
  }
}

// Unique within the response (its id is random): call_<id's random part>_<choice>_<k>.
std::string ResponseBuilder::tool_call_id(size_t choice, size_t k) const {
  const size_t dash = id_.find('-');
  const std::string base = dash == std::string::npos ? id_ : id_.substr(dash + 1);
  return "call_" + base.substr(0, 24) + "_" + std::to_string(choice) + "_" + std::to_string(k);
}

json ResponseBuilder::tool_calls_json(size_t choice, const std::vector<tools::ToolCall>& calls, size_t first,
                                      bool with_index) const {
  json out = json::array();
  for (size_t k = 0; k < calls.size(); ++k) {
    json call = {{"id", tool_call_id(choice, first + k)},
                 {"type", "function"},
                 {"function", {{"name", calls[k].name}, {"arguments", calls[k].arguments}}}};
    if (with_index) call["index"] = first + k;  // streamed deltas carry the call's index
    out.push_back(std::move(call));
  }
  return out;
}

std::string ResponseBuilder::tool_delta_chunks(int32_t index, Choice& c, const tools::ToolStreamDelta& d,
                                               const std::vector<int32_t>& tokens,
                                               const std::vector<engine::SampleResult>& samples) {
  std::string out;
  if (!d.content.empty() || !tokens.empty()) out += chunk(index, d.content, tokens, samples, 0, nullptr);
  std::vector<tools::ToolCall> calls = d.calls;
  if (!tools_->parallel) {  // the grammar holds Hermes to one call; Llama 3 "auto" output is not constrained
    calls.resize(std::min<size_t>(calls.size(), c.tool_calls_sent > 0 ? 0 : 1));
  }
  if (calls.empty()) return out;
  json choice = {{"index", index},
                 {"delta", {{"tool_calls", tool_calls_json(static_cast<size_t>(index), calls,
                                                           static_cast<size_t>(c.tool_calls_sent), true)}}},
                 {"logprobs", nullptr},
                 {"finish_reason", nullptr}};
  c.tool_calls_sent += static_cast<int32_t>(calls.size());
  out += choice_event(std::move(choice));
  return out;
}

namespace {

// Completions: {tokens, token_logprobs, top_logprobs, text_offset}. Chat: {content: [{token, logprob,
// bytes, top_logprobs}]}.
json logprobs_json(bool chat, int32_t top_n, const std::vector<int32_t>& tokens,
                   const std::vector<engine::SampleResult>& samples, const std::vector<size_t>& offsets,
                   const std::function<std::string(int32_t)>& piece) {
  if (chat) {
    json content = json::array();
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string t = piece(tokens[i]);
      json top = json::array();
      for (const engine::TokenLogprob& alt : samples[i].top) {
        if (static_cast<int32_t>(top.size()) >= top_n) break;
        const std::string a = piece(alt.token);
        top.push_back({{"token", a}, {"logprob", finite(alt.logprob)}, {"bytes", bytes_of(a)}});
      }
      content.push_back(
          {{"token", t}, {"logprob", finite(samples[i].logprob)}, {"bytes", bytes_of(t)}, {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    toks.push_back(piece(tokens[i]));
    lps.push_back(finite(samples[i].logprob));
    json top = json::object();
    for (const engine::TokenLogprob& alt : samples[i].top) {
      if (static_cast<int32_t>(top.size()) >= top_n) break;
      top[piece(alt.token)] = finite(alt.logprob);
    }
    tops.push_back(top_n > 0 ? top : json());
    offs.push_back(offsets[i]);
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

}  // namespace

std::string ResponseBuilder::chunk(int32_t index, const std::string& text, const std::vector<int32_t>& tokens,
                                   const std::vector<engine::SampleResult>& samples, size_t offset,
                                   const char* finish) const {
  json choice = {{"index", index}};
  if (chat_) {
    choice["delta"] = text.empty() ? json::object() : json{{"content", text}};
  } else {
    choice["text"] = text;
  }
  if (logprobs_ >= 0 && !tokens.empty()) {
    std::vector<size_t> offsets(tokens.size(), offset);
    choice["logprobs"] = logprobs_json(chat_, logprobs_, tokens, samples, offsets, piece_);
  } else {
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = finish ? json(finish) : json();
  return choice_event(std::move(choice));
}

std::string ResponseBuilder::choice_event(json choice) const {
  json j = {{"id", id_},
            {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
            {"created", created_},
            {"model", model_},
            {"choices", json::array({std::move(choice)})}};
  if (include_usage_) j["usage"] = nullptr;
  return sse_event(dump(j));
}

std::string ResponseBuilder::stream_start() {
  std::string out;
  if (!chat_) {
    if (!echo_) return {};
    for (size_t i = 0; i < choices_.size(); ++i) out += chunk(static_cast<int32_t>(i), *echo_, {}, {}, 0, nullptr);
    return out;
  }
  for (size_t i = 0; i < choices_.size(); ++i) {
    out += choice_event({{"index", i},
                         {"delta", {{"role", "assistant"}, {"content", ""}}},
                         {"logprobs", nullptr},
                         {"finish_reason", nullptr}});
  }
  return out;
}

std::string ResponseBuilder::on_event(const scheduler::TokenEvent& ev) {
  if (failed_ || cancelled_ || finished()) return {};
  if (ev.finish == FinishReason::Error) {
    failed_ = true;
    error_.http_status = 500;
    error_.type = "server_error";
    error_.code = "internal_error";
    error_.message = ev.error.empty() ? "the request failed in the engine" : ev.error;
    return stream_ ? sse_event(error_body(error_)) : std::string();
  }
  if (ev.finish == FinishReason::Cancelled) {
    cancelled_ = true;
    return {};
  }
  if (ev.index < 0 || ev.index >= static_cast<int32_t>(choices_.size())) return {};
  Choice& c = choices_[static_cast<size_t>(ev.index)];
  if (c.finish != FinishReason::None) return {};
  const size_t offset = c.text.size();
  std::vector<int32_t> tokens;
  std::vector<engine::SampleResult> samples;
  if (logprobs_ >= 0 && ev.token >= 0) {
    tokens.push_back(ev.token);
    samples.push_back(ev.sample);
    if (!stream_) {
      c.tokens.push_back(ev.token);
      c.samples.push_back(ev.sample);
      c.offsets.push_back(offset);
    }
  }
  std::string out;
  if (stream_ && c.tool_parser) {
    out += tool_delta_chunks(ev.index, c, c.tool_parser->feed(ev.text), tokens, samples);
  } else if (stream_ && (!ev.text.empty() || !tokens.empty())) {
    out += chunk(ev.index, ev.text, tokens, samples, offset, nullptr);
  }
  if (!stream_) c.text += ev.text;
  if (ev.finish != FinishReason::None) {
    c.finish = ev.finish;
    c.completion_tokens = ev.completion_tokens;
    c.draft_tokens = ev.draft_tokens;
    c.accepted_draft_tokens = ev.accepted_draft_tokens;
    if (ev.prompt_tokens > 0) prompt_tokens_ = ev.prompt_tokens;
    cached_tokens_ = std::max(cached_tokens_, ev.cached_prompt_tokens);
    ++done_;
    const char* finish = finish_name(ev.finish);
    if (stream_ && c.tool_parser) {
      out += tool_delta_chunks(ev.index, c, c.tool_parser->finish(), {}, {});
      if (c.tool_calls_sent > 0 && ev.finish == FinishReason::Stop) finish = "tool_calls";
    }
    if (stream_) out += chunk(ev.index, "", {}, {}, offset, finish);
  }
  return out;
}

// OpenAI's usage; with a prediction, completion_tokens_details says how much of it the output kept
// (drafted tokens verified and kept) and how many drafted tokens were computed and thrown away.
json ResponseBuilder::usage_json() const {
  int32_t completion = 0, drafted = 0, accepted = 0;
  for (const Choice& c : choices_) {
    completion += c.completion_tokens;
    drafted += c.draft_tokens;
    accepted += c.accepted_draft_tokens;
  }
  json u = {{"prompt_tokens", prompt_tokens_},
            {"completion_tokens", completion},
            {"total_tokens", prompt_tokens_ + completion},
            {"prompt_tokens_details", {{"cached_tokens", cached_tokens_}}}};
  if (prediction_) {
    u["completion_tokens_details"] = {{"accepted_prediction_tokens", accepted},
                                      {"rejected_prediction_tokens", drafted - accepted}};
  }
  return u;
}

std::string ResponseBuilder::stream_end() const {
  std::string out;
  if (include_usage_) {
    json j = {{"id", id_},
              {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
              {"created", created_},
              {"model", model_},
              {"choices", json::array()},
              {"usage", usage_json()}};
    out += sse_event(dump(j));
  }
  out += sse_done();
  return out;
}

std::string ResponseBuilder::body() const {
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    json choice = {{"index", i}};
    json finish = finish_json(c.finish);
    if (chat_ && tools_) {
      tools::ParsedToolOutput parsed = tools::parse_tool_calls(tools_->format, c.text, tools_->names);
      if (!tools_->parallel && parsed.calls.size() > 1) parsed.calls.resize(1);
      json message = {{"role", "assistant"},
                      {"content", parsed.content.empty() && !parsed.calls.empty() ? json() : json(parsed.content)}};
      if (!parsed.calls.empty()) {
        message["tool_calls"] = tool_calls_json(i, parsed.calls, 0, false);
        if (c.finish == FinishReason::Stop) finish = "tool_calls";
      }
      choice["message"] = std::move(message);
    } else if (chat_) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = echo_ ? *echo_ + c.text : c.text;
    }
    choice["logprobs"] =
        logprobs_ >= 0 ? logprobs_json(chat_, logprobs_, c.tokens, c.samples, c.offsets, piece_) : json();
    choice["finish_reason"] = std::move(finish);
    choices.push_back(std::move(choice));
  }
  json j = {{"id", id_},           {"object", chat_ ? "chat.completion" : "text_completion"},
            {"created", created_}, {"model", model_},
            {"choices", choices},  {"usage", usage_json()}};
  return dump(j);
}

}  // namespace pagoda::server::openai
