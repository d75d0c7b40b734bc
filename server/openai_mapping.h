#pragma once
// OpenAI request mapping: the JSON body of POST /v1/completions or /v1/chat/completions becomes a
// ParsedRequest (a PromptInput plus sampling, stop and streaming options), or an ApiError that names
// the offending field and the rule it broke. Every field a client sends is either honoured or
// rejected; unknown fields are rejected by name. Also the OpenAI error JSON and the Status -> HTTP map.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/grammar/grammar.h"
#include "engine/sampling/sampling_params.h"
#include "engine/status.h"
#include "scheduler/request.h"
#include "server/inference_service.h"
#include "server/tool_calls.h"

namespace pagoda::server::openai {

// An error as OpenAI reports it: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty -> null
  std::string code;   // empty -> null
};

ApiError invalid(std::string message, std::string param = {});
// Maps a Status from the service: InvalidArgument 400, NotFound 404, ResourceExhausted 429,
// Unavailable 503, DeadlineExceeded 504, anything else 500.
ApiError error_from_status(const Status& status);
std::string error_body(const ApiError& error);  // the JSON text

enum class Endpoint { Completions, ChatCompletions };

// A chat request's tools (server/openai_tools.h): present only when it has tools and tool_choice is not "none".
struct ToolsRequest {
  enum class Choice { Auto, Required, Named };
  Choice choice = Choice::Auto;
  std::string named;                // Choice::Named: the function that must be called
  bool parallel = true;             // parallel_tool_calls: more than one call per turn
  std::vector<std::string> names;   // the functions, in request order
  std::vector<std::string> schemas; // each function's `parameters` (JSON text, the client's key order)
  std::string tools_json;           // the `tools` array as the chat template gets it (client's key order)
  tools::ToolCallFormat format = tools::ToolCallFormat::Hermes;  // the template's (set by apply_tools)
};

struct ParsedRequest {
  Endpoint endpoint = Endpoint::Completions;
  PromptInput prompt;
  std::optional<int64_t> max_tokens;  // none: the endpoint's default (16; chat: the rest of the context)
  engine::SamplingParams sampling;    // sampling.logprobs: completions `logprobs`; chat `top_logprobs`
  std::vector<std::string> stop;
  int32_t n = 1;
  bool ignore_eos = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string user;
  // Predicted Outputs: `prediction: {"type": "content", "content": text or [{"type": "text", "text": ...}]}`.
  std::optional<std::string> prediction;
  int32_t num_speculative_tokens = -1;  // extension: tokens drafted per step (-1: the server's setting)
  // Constrained decoding (server/openai_structured_outputs.h): the grammar, compiled by the service, and
  // the field it came from (for a compile error's `param`).
  std::optional<engine::GrammarSpec> grammar;
  std::string grammar_param;
  std::optional<ToolsRequest> tools;  // chat: tool calling
  // Completions' `echo`: the prompt comes back before the completion. echo_text is the prompt as text (for a
  // prompt of token ids, their detokenized text), filled in by the front end before the response is built.
  bool echo = false;
  std::string echo_text;
};

// OpenAI's own rule: `stop` holds up to 4 sequences (the engine would take more).
inline constexpr int32_t kMaxOpenAiStop = 4;

struct ParseLimits {
  std::string served_model;         // `model` must equal it (or be omitted)
  scheduler::RequestLimits request;  // the engine's bounds (n, logprobs ...), refused here with a 400 first
};

// Parses and validates a request body. Errors: malformed JSON or a non-object body, wrong JSON types,
// values out of range, unsupported features, unknown fields (400); an unknown model (404).
std::variant<ParsedRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body,
                                                    const ParseLimits& limits);

// The prompt + completion length check against the context, with OpenAI's message; fills in the
// default max_tokens. `prompt_tokens` is the tokenized prompt's length.
std::optional<ApiError> resolve_max_tokens(ParsedRequest& request, int32_t prompt_tokens, int32_t context_length);

}  // namespace pagoda::server::openai
