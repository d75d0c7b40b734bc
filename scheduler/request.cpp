#include "scheduler/request.h"

#include <spdlog/fmt/fmt.h>

namespace pagoda::scheduler {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "none";
    case FinishReason::Length: return "length";
    case FinishReason::Stop: return "stop";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "?";
}

Status validate_request(const Request& r, const RequestLimits& l) {
  const engine::SamplingParams& s = r.sampling;
  if (r.prompt.empty()) return Status::error("prompt is empty: at least one token is required");
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    if (r.prompt[i] < 0 || r.prompt[i] >= l.vocab_size) {
      return Status::error(fmt::format("prompt token {} at index {} is outside the vocabulary (0..{})", r.prompt[i], i,
                                       l.vocab_size - 1));
    }
  }
  if (r.stop.max_tokens < 1) return Status::error(fmt::format("max_tokens must be at least 1, got {}", r.stop.max_tokens));
  const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.stop.max_tokens;
  if (total > l.max_model_len) {
    return Status::error(fmt::format("prompt ({} tokens) + max_tokens ({}) = {} exceeds the context length of {} tokens",
                                     r.prompt.size(), r.stop.max_tokens, total, l.max_model_len));
  }
  if (r.n < 1 || r.n > l.max_n) return Status::error(fmt::format("n must be in 1..{}, got {}", l.max_n, r.n));
  if (s.grammar && r.stop.ignore_eos) {
    return Status::error("ignore_eos cannot be combined with a grammar: a constrained output ends with an "
                         "end-of-generation token once its grammar is complete");
  }
  if (!(s.temperature >= 0.0f && s.temperature <= 100.0f)) {
    return Status::error(fmt::format("temperature must be in [0, 100], got {}", s.temperature));
  }
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) return Status::error(fmt::format("top_p must be in (0, 1], got {}", s.top_p));
  if (!(s.min_p >= 0.0f && s.min_p <= 1.0f)) return Status::error(fmt::format("min_p must be in [0, 1], got {}", s.min_p));
  if (s.top_k < 0) return Status::error(fmt::format("top_k must be >= 0 (0 = off), got {}", s.top_k));
  if (!(s.repetition_penalty > 0.0f && s.repetition_penalty <= 10.0f)) {
    return Status::error(fmt::format("repetition_penalty must be in (0, 10], got {}", s.repetition_penalty));
  }
  for (auto [name, v] : {std::pair{"presence_penalty", s.presence_penalty}, std::pair{"frequency_penalty", s.frequency_penalty}}) {
    if (!(v >= -2.0f && v <= 2.0f)) return Status::error(fmt::format("{} must be in [-2, 2], got {}", name, v));
  }
  if (s.logprobs > l.max_logprobs || s.logprobs < -1) {
    return Status::error(fmt::format("logprobs must be in 0..{}, got {}", l.max_logprobs, s.logprobs));
  }
  if (static_cast<int64_t>(s.logit_bias.size()) > l.max_logit_bias) {
    return Status::error(fmt::format("logit_bias may have at most {} entries, got {}", l.max_logit_bias,
                                     s.logit_bias.size()));
  }
  for (auto [token, bias] : s.logit_bias) {
    if (token < 0 || token >= l.vocab_size) {
      return Status::error(fmt::format("logit_bias token id {} is outside the vocabulary (0..{})", token, l.vocab_size - 1));
    }
    if (!(bias >= -100.0f && bias <= 100.0f)) {
      return Status::error(fmt::format("logit_bias for token {} must be in [-100, 100], got {}", token, bias));
    }
  }
  if (static_cast<int64_t>(r.stop.stop_strings.size()) > l.max_stop_strings) {
    return Status::error(fmt::format("at most {} stop strings are allowed, got {}", l.max_stop_strings,
                                     r.stop.stop_strings.size()));
  }
  if (static_cast<int64_t>(r.stop.stop_token_ids.size()) > l.max_stop_token_ids) {
    return Status::error(fmt::format("at most {} stop token ids are allowed, got {}", l.max_stop_token_ids,
                                     r.stop.stop_token_ids.size()));
  }
  if (r.priority < -l.max_abs_priority || r.priority > l.max_abs_priority) {
    return Status::error(fmt::format("priority must be in [{}, {}], got {}", -l.max_abs_priority, l.max_abs_priority,
                                     r.priority));
  }
  for (int32_t t : r.stop.stop_token_ids) {
    if (t < 0 || t >= l.vocab_size) return Status::error(fmt::format("stop token id {} is outside the vocabulary", t));
  }
  for (const std::string& st : r.stop.stop_strings) {
    if (st.empty()) return Status::error("stop strings must not be empty");
    if (static_cast<int64_t>(st.size()) > l.max_stop_string_bytes) {
      return Status::error(fmt::format("a stop string may be at most {} bytes, got {}", l.max_stop_string_bytes, st.size()));
    }
  }
  if (r.num_speculative_tokens < -1 || r.num_speculative_tokens > l.max_speculative_tokens) {
    return Status::error(fmt::format("num_speculative_tokens must be in [-1, {}], got {}", l.max_speculative_tokens,
                                     r.num_speculative_tokens));
  }
  if (static_cast<int64_t>(r.prediction.size()) > l.max_model_len) {
    return Status::error(fmt::format("prediction is {} tokens, more than the model's context of {}", r.prediction.size(),
                                     l.max_model_len));
  }
  for (int32_t t : r.prediction) {
    if (t < 0 || t >= l.vocab_size) return Status::error(fmt::format("prediction token id {} is outside the vocabulary", t));
  }
  return {};
}

}  // namespace pagoda::scheduler
