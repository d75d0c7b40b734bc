#pragma once
// OpenAI response building: turns a request's TokenEvents into the completion / chat completion JSON
// (non-streaming: accumulated, one body at the end) or into Server-Sent Event chunks (streaming: one
// `data: {json}` per event, the finish chunks, the usage chunk when asked for, then `data: [DONE]`).
// Knows nothing about sockets: the gateway feeds events in order and writes what comes back.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scheduler/request.h"
#include "server/openai_mapping.h"
#include "server/tool_calls.h"

namespace pagoda::server::openai {

class ResponseBuilder {
 public:
  // piece: a token's text (for logprobs; may be partial UTF-8).
  ResponseBuilder(const ParsedRequest& request, std::string id, int64_t created, std::string model,
                  int32_t prompt_tokens, std::function<std::string(int32_t)> piece);

  // Streaming: the chunks to send before any token (chat: the assistant role, per choice).
  std::string stream_start();
  // Feeds one event. Streaming: returns the SSE bytes to send (possibly empty); non-streaming: "".
  std::string on_event(const scheduler::TokenEvent& ev);
  // Streaming: the bytes after the last choice finished (the usage chunk if asked for, [DONE]).
  std::string stream_end() const;

  bool finished() const { return done_ == static_cast<int32_t>(choices_.size()); }
  bool failed() const { return failed_; }        // an Error finish: see error()
  bool cancelled() const { return cancelled_; }  // a Cancelled finish
  const ApiError& error() const { return error_; }
  // Non-streaming: the whole response body.
  std::string body() const;

 private:
  struct Choice {
    std::string text;
    scheduler::FinishReason finish = scheduler::FinishReason::None;
    int32_t completion_tokens = 0;
    int32_t draft_tokens = 0, accepted_draft_tokens = 0;  // speculative decoding
    // logprobs, one entry per token
    std::vector<int32_t> tokens;
    std::vector<engine::SampleResult> samples;
    std::vector<size_t> offsets;  // text offset of each token (completions)
    // Tool calling (chat with tools): streaming releases content and calls through the parser.
    std::unique_ptr<tools::ToolCallStreamParser> tool_parser;
    int32_t tool_calls_sent = 0;
  };
  std::string tool_call_id(size_t choice, size_t k) const;
  nlohmann::json tool_calls_json(size_t choice, const std::vector<tools::ToolCall>& calls, size_t first,
                                 bool with_index) const;
  // Streaming with tools: the chunks for what the parser released.
  std::string tool_delta_chunks(int32_t index, Choice& c, const tools::ToolStreamDelta& d,
                                const std::vector<int32_t>& tokens, const std::vector<engine::SampleResult>& samples);
  nlohmann::json usage_json() const;
  // One streamed chunk holding `choice`, in the response's envelope (id, object, created, model, usage).
  std::string choice_event(nlohmann::json choice) const;
  std::string chunk(int32_t index, const std::string& text, const std::vector<int32_t>& tokens,
                    const std::vector<engine::SampleResult>& samples, size_t offset, const char* finish) const;

  bool chat_;
  bool stream_;
  bool include_usage_;
  int32_t logprobs_;
  std::string id_, model_;
  int64_t created_;
  int32_t prompt_tokens_;
  int32_t cached_tokens_ = 0;
  bool prediction_;  // the request brought one: usage reports accepted / rejected prediction tokens
  std::function<std::string(int32_t)> piece_;
  std::optional<ToolsRequest> tools_;
  std::optional<std::string> echo_;  // completions' echo: the prompt text, sent before each choice's text
  std::vector<Choice> choices_;
  int32_t done_ = 0;
  bool failed_ = false, cancelled_ = false;
  ApiError error_;
};

// "data: <json>\n\n" and the end marker.
std::string sse_event(const std::string& json);
inline const char* sse_done() { return "data: [DONE]\n\n"; }

}  // namespace pagoda::server::openai
