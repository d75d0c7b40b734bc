#pragma once
// A generation request as the front ends hand it to the scheduler (DESIGN.md step 1): prompt token ids,
// sampling parameters, stop criteria and a stream sink that receives every new token.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/sampling/sampling_params.h"
#include "engine/status.h"

namespace pagoda::scheduler {

using RequestId = uint64_t;

struct StopCriteria {
  int32_t max_tokens = 16;
  std::vector<int32_t> stop_token_ids;    // in addition to the model's end-of-generation tokens
  // Matched on the text across token boundaries and never emitted, by the output stage
  // (server/output_processor.h), which then ends the choice (EngineLoop::stop_choice).
  std::vector<std::string> stop_strings;
  bool ignore_eos = false;                // keep going past end-of-generation tokens
};

enum class FinishReason { None, Length, Stop, Cancelled, Error };
const char* finish_reason_name(FinishReason r);

// One event on a request's stream: a new token of choice `index` (n > 1 has several), or its end.
struct TokenEvent {
  RequestId request = 0;
  int32_t index = 0;          // choice index, 0..n-1
  int32_t token = -1;         // -1 on a pure finish event
  // Text that became final with this token (stop strings held back): filled in by the output stage
  // (server/output_processor.h); the engine loop emits token ids only.
  std::string text;
  engine::SampleResult sample;  // logprob / top alternatives when asked for
  FinishReason finish = FinishReason::None;
  std::string error;          // with FinishReason::Error
  int32_t prompt_tokens = 0;      // usage so far, on every event
  int32_t completion_tokens = 0;  // (this choice)
  int32_t cached_prompt_tokens = 0;
  int32_t draft_tokens = 0;           // speculative decoding, this choice so far: tokens drafted
  int32_t accepted_draft_tokens = 0;  // and of those, kept
};

// Called on the engine thread: must be quick and must not call back into the scheduler.
using StreamSink = std::function<void(const TokenEvent&)>;

struct Request {
  RequestId id = 0;
  std::vector<int32_t> prompt;
  engine::SamplingParams sampling;
  StopCriteria stop;
  int32_t n = 1;         // independent choices sharing the prompt (its KV blocks are forked)
  int32_t priority = 0;  // lower runs first; FCFS within a priority
  // Speculative decoding (engine/spec/drafter.h): the predicted output's token ids (OpenAI
  // `prediction`), drafted from first; tokens drafted per step at most (-1: the server's setting,
  // 0: none for this request).
  std::vector<int32_t> prediction;
  int32_t num_speculative_tokens = -1;
  StreamSink sink;
};

struct RequestLimits {
  int32_t max_model_len = 8192;  // prompt + max_tokens
  int32_t vocab_size = 0;
  int32_t max_n = 16;
  int32_t max_logprobs = 20;
  // Untrusted input is bounded before it is copied per choice or scanned every token.
  int32_t max_stop_strings = 16;
  int32_t max_stop_string_bytes = 1024;
  int32_t max_stop_token_ids = 64;
  int32_t max_logit_bias = 300;  // entries (OpenAI's limit)
  int32_t max_abs_priority = 1'000'000;
  int32_t max_speculative_tokens = 32;
};

// Checks a request against the limits; the message names the field and the limit.
Status validate_request(const Request& r, const RequestLimits& limits);

}  // namespace pagoda::scheduler
