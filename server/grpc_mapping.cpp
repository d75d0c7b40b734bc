#include "server/grpc_mapping.h"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace pagoda::server {

grpc::StatusCode to_grpc_code(StatusCode code) {
  switch (code) {
    case StatusCode::Ok:
      return grpc::StatusCode::OK;
    case StatusCode::InvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case StatusCode::NotFound:
      return grpc::StatusCode::NOT_FOUND;
    case StatusCode::ResourceExhausted:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case StatusCode::Unavailable:
      return grpc::StatusCode::UNAVAILABLE;
    case StatusCode::Unauthenticated:
      return grpc::StatusCode::UNAUTHENTICATED;
    case StatusCode::DeadlineExceeded:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case StatusCode::Cancelled:
      return grpc::StatusCode::CANCELLED;
    case StatusCode::Internal:
      return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

grpc::Status to_grpc_status(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(to_grpc_code(status.code()), status.message());
}

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (strict: no overlongs, surrogates or > U+10FFFF),
// 0 when the bytes there do not form one.
size_t valid_sequence_at(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = byte(i);
  if (c < 0x80) return 1;
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return len;
}

uint64_t random_seed() {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return gen();
}

std::vector<engine::ChatMessage> to_chat(const v1::ChatMessages& chat) {
  std::vector<engine::ChatMessage> out;
  out.reserve(static_cast<size_t>(chat.messages_size()));
  for (const v1::ChatMessage& m : chat.messages()) out.push_back({m.role(), m.content(), {}, {}});
  return out;
}

void fill_token_logprob(int32_t token, float logprob, const InferenceService& service, v1::TokenLogprob& out) {
  out.set_token_id(token);
  out.set_token(utf8_safe(service.token_piece(token)));
  out.set_logprob(logprob);
}

}  // namespace

std::string utf8_safe(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const size_t len = valid_sequence_at(bytes, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(bytes.substr(i, len));
      i += len;
    }
  }
  return out;
}

Result<PromptInput> to_prompt_input(const v1::GenerateRequest& req) {
  PromptInput in;
  switch (req.prompt_case()) {
    case v1::GenerateRequest::kText:
      in.kind = PromptInput::Kind::Text;
      in.text = req.text();
      break;
    case v1::GenerateRequest::kTokenIds:
      in.kind = PromptInput::Kind::TokenIds;
      in.token_ids.assign(req.token_ids().ids().begin(), req.token_ids().ids().end());
      break;
    case v1::GenerateRequest::kChat:
      in.kind = PromptInput::Kind::Chat;
      in.chat = to_chat(req.chat());
      break;
    case v1::GenerateRequest::PROMPT_NOT_SET:
      return Status::error("prompt is required: set one of text, token_ids or chat");
  }
  return in;
}

namespace {

const char* grammar_field(const v1::GenerateRequest& req) {
  switch (req.constraint_case()) {
    case v1::GenerateRequest::kJsonSchema:
      return "json_schema";
    case v1::GenerateRequest::kJsonObject:
      return "json_object";
    case v1::GenerateRequest::kRegex:
      return "regex";
    case v1::GenerateRequest::kChoice:
      return "choice";
    case v1::GenerateRequest::kGrammar:
      return "grammar";
    case v1::GenerateRequest::CONSTRAINT_NOT_SET:
      break;
  }
  return "constraint";
}

// The request's constraint as a grammar spec; nullopt when there is none (json_object false included).
std::optional<Result<engine::GrammarSpec>> to_grammar_spec(const v1::GenerateRequest& req) {
  using Kind = engine::GrammarSpec::Kind;
  switch (req.constraint_case()) {
    case v1::GenerateRequest::kJsonSchema:
      return Result<engine::GrammarSpec>(engine::GrammarSpec{Kind::JsonSchema, req.json_schema(), {}});
    case v1::GenerateRequest::kJsonObject:
      if (!req.json_object()) return std::nullopt;
      return Result<engine::GrammarSpec>(engine::GrammarSpec{Kind::JsonObject, {}, {}});
    case v1::GenerateRequest::kRegex:
      return Result<engine::GrammarSpec>(engine::GrammarSpec{Kind::Regex, req.regex(), {}});
    case v1::GenerateRequest::kChoice: {
      const auto& c = req.choice().choices();
      if (c.empty()) return Result<engine::GrammarSpec>(Status::error("choice: at least one choice is required"));
      if (static_cast<size_t>(c.size()) > engine::kMaxGrammarChoices) {
        return Result<engine::GrammarSpec>(Status::error(
            "choice: " + std::to_string(c.size()) + " choices; at most " + std::to_string(engine::kMaxGrammarChoices) + " are allowed"));
      }
      for (const std::string& s : c) {
        if (s.empty()) return Result<engine::GrammarSpec>(Status::error("choice: a choice is empty"));
      }
      return Result<engine::GrammarSpec>(engine::GrammarSpec{Kind::Choice, {}, {c.begin(), c.end()}});
    }
    case v1::GenerateRequest::kGrammar:
      return Result<engine::GrammarSpec>(engine::GrammarSpec{Kind::Ebnf, req.grammar(), {}});
    case v1::GenerateRequest::CONSTRAINT_NOT_SET:
      break;
  }
  return std::nullopt;
}

}  // namespace

Result<scheduler::Request> to_request(const v1::GenerateRequest& req, const InferenceService& service) {
  auto input = to_prompt_input(req);
  if (!input.ok()) return input.status();
  auto ids = service.tokenize(input.value());
  if (!ids.ok()) return ids.status();

  scheduler::Request r;
  r.prompt = std::move(ids.value());
  const v1::SamplingParams& s = req.sampling();
  engine::SamplingParams& p = r.sampling;
  p.temperature = s.has_temperature() ? s.temperature() : 1.0f;
  p.top_p = s.has_top_p() ? s.top_p() : 1.0f;
  p.top_k = s.has_top_k() ? s.top_k() : 0;
  p.min_p = s.has_min_p() ? s.min_p() : 0.0f;
  p.repetition_penalty = s.has_repetition_penalty() ? s.repetition_penalty() : 1.0f;
  p.presence_penalty = s.has_presence_penalty() ? s.presence_penalty() : 0.0f;
  p.frequency_penalty = s.has_frequency_penalty() ? s.frequency_penalty() : 0.0f;
  p.seed = s.has_seed() ? s.seed() : random_seed();
  if (s.has_logprobs() && s.logprobs() < 0) {
    return Status::error("sampling.logprobs must be >= 0 (leave it unset for none), got " +
                         std::to_string(s.logprobs()));
  }
  p.logprobs = s.has_logprobs() ? s.logprobs() : -1;  // the upper limit is validate_request's

  const v1::StopCriteria& st = req.stop();
  r.stop.max_tokens = st.has_max_tokens() ? st.max_tokens() : 16;
  r.stop.stop_strings.assign(st.stop().begin(), st.stop().end());
  r.stop.stop_token_ids.assign(st.stop_token_ids().begin(), st.stop_token_ids().end());
  r.stop.ignore_eos = st.ignore_eos();

  r.n = req.has_n() ? req.n() : 1;
  r.priority = req.priority();
  if (req.has_num_speculative_tokens()) r.num_speculative_tokens = req.num_speculative_tokens();  // validate_request bounds it
  switch (req.predicted_case()) {
    case v1::GenerateRequest::kPredictionText: {
      auto predicted = service.tokenize_prediction(req.prediction_text());
      if (!predicted.ok()) return Status::error("prediction_text: " + predicted.message());
      r.prediction = std::move(predicted.value());
      break;
    }
    case v1::GenerateRequest::kPredictionTokenIds:
      r.prediction.assign(req.prediction_token_ids().ids().begin(), req.prediction_token_ids().ids().end());
      break;
    case v1::GenerateRequest::PREDICTED_NOT_SET:
      break;
  }
  if (std::optional<Result<engine::GrammarSpec>> spec = to_grammar_spec(req)) {
    if (!spec->ok()) return spec->status();
    if (r.stop.ignore_eos) {  // validate_request says so too, but only after a compile for nothing
      return Status::error(std::string(grammar_field(req)) + " cannot be combined with stop.ignore_eos: a constrained "
                           "output ends with an end-of-generation token once its grammar is complete");
    }
    auto grammar = service.compile_grammar(spec->value());  // on this gRPC thread, never the engine's
    if (!grammar.ok()) return Status::error(std::string(grammar_field(req)) + ": " + grammar.message());
    r.sampling.grammar = std::move(grammar.value());
  }
  return r;
}

v1::FinishReason to_wire(scheduler::FinishReason reason) {
  switch (reason) {
    case scheduler::FinishReason::None:
      return v1::FINISH_REASON_UNSPECIFIED;
    case scheduler::FinishReason::Length:
      return v1::FINISH_REASON_LENGTH;
    case scheduler::FinishReason::Stop:
      return v1::FINISH_REASON_STOP;
    case scheduler::FinishReason::Cancelled:
      return v1::FINISH_REASON_CANCELLED;
    case scheduler::FinishReason::Error:
      return v1::FINISH_REASON_UNSPECIFIED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void to_response(const scheduler::TokenEvent& ev, bool with_logprobs, const InferenceService& service,
                 v1::GenerateResponse& out) {
  out.set_index(ev.index);
  if (ev.token >= 0) {
    out.add_token_ids(ev.token);
    if (with_logprobs) {
      v1::Logprobs* lp = out.add_logprobs();
      fill_token_logprob(ev.token, ev.sample.logprob, service, *lp->mutable_chosen());
      for (const engine::TokenLogprob& t : ev.sample.top)
        fill_token_logprob(t.token, t.logprob, service, *lp->add_top());
    }
  }
  if (!ev.text.empty()) out.set_text(utf8_safe(ev.text));
  if (ev.finish != scheduler::FinishReason::None) {
    out.set_finish_reason(to_wire(ev.finish));
    v1::Usage* u = out.mutable_usage();
    u->set_prompt_tokens(ev.prompt_tokens);
    u->set_completion_tokens(ev.completion_tokens);
    u->set_cached_prompt_tokens(ev.cached_prompt_tokens);
    u->set_draft_tokens(ev.draft_tokens);
    u->set_accepted_draft_tokens(ev.accepted_draft_tokens);
  }
}

}  // namespace pagoda::server
