// libFuzzer target: the gRPC request path after the transport. Byte 0 picks the message; the rest is
// parsed with ParseFromArray as a pagoda.v1 GenerateRequest, TokenizeRequest or DetokenizeRequest and
// handled as server/grpc_server.cpp does: to_request (prompt mapping, tokenization with the real
// model's tokenizer and chat template, defaults) and InferenceService::submit, whose validation
// (scheduler::validate_request and the scheduler's own check) runs on an engine loop that was told to
// stop, so a request that passes is answered Unavailable instead of being queued; Tokenize / Detokenize
// as the service's methods. The model is $PAGODA_MODEL, loaded once.
// Bytes 0 mod 8 in 4..7 build a GenerateRequest field by field instead (see structured()).
// Properties: every outcome is OK or a Status whose code is one the service documents for bad input
// (InvalidArgument, or Unavailable for an accepted request here), with a message; everything put in a
// response is valid UTF-8 and the response serializes; token ids are inside the vocabulary.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>
#include <google/protobuf/stubs/logging.h>

#include "engine/loaded_model.h"
#include "engine/tokenizer/unicode_utf8.h"
#include "pagoda/v1/pagoda.pb.h"
#include "scheduler/engine_loop.h"
#include "server/grpc_mapping.h"
#include "server/inference_service.h"
#include "server/metrics.h"

using namespace pagoda;

namespace {

struct World {
  engine::LoadedModel model;
  std::unique_ptr<scheduler::EngineLoop> loop;
  server::MetricsRegistry metrics;
  std::unique_ptr<server::InferenceService> service;
};

World* world = nullptr;

[[noreturn]] void violated(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "grpc_request_fuzz: property violated: %s %s\n", what, detail.c_str());
  std::abort();
}

void check_utf8(const std::string& s, const char* what) {
  if (engine::tok::sanitize_utf8(s) != s) violated(what);
}

void check_bad_input(const Status& s, bool accepted_is_unavailable) {
  if (s.ok()) return;
  if (s.message().empty()) violated("an error without a message");
  const bool ok_code = s.code() == StatusCode::InvalidArgument ||
                       (accepted_is_unavailable && s.code() == StatusCode::Unavailable);
  if (!ok_code) violated("unexpected status code for", s.message());
  const grpc::Status g = server::to_grpc_status(s);
  if (g.ok()) violated("an error mapped to grpc OK");
}

void generate(const v1::GenerateRequest& req) {
  const server::InferenceService& service = *world->service;
  auto mapped = server::to_request(req, service);
  if (!mapped.ok()) return check_bad_input(mapped.status(), false);
  scheduler::Request& r = mapped.value();
  const int32_t vocab = service.tokenizer().vocab_size();
  for (int32_t id : r.prompt) {
    if (id < 0 || id >= vocab) violated("a prompt token outside the vocabulary was mapped");
  }
  if (r.prompt.empty()) violated("an empty prompt was mapped");
  // What the stream would carry for the first prompt token and the request's text.
  scheduler::TokenEvent ev;
  ev.token = r.prompt.front();
  ev.text = req.text().substr(0, 64) + service.token_piece(r.prompt.front());
  ev.finish = scheduler::FinishReason::Stop;
  ev.sample.logprob = -0.5f;
  v1::GenerateResponse out;
  server::to_response(ev, r.sampling.logprobs >= 0, service, out);
  check_utf8(out.text(), "a response text is not valid UTF-8");
  std::string wire;
  if (!out.SerializeToString(&wire)) violated("a GenerateResponse does not serialize");

  r.sink = [](const scheduler::TokenEvent&) {};
  auto submitted = world->service->submit(std::move(r), "fuzz");
  if (submitted.ok()) violated("a request was queued on a stopped engine loop");
  check_bad_input(submitted.status(), true);
}

void tokenize(const v1::TokenizeRequest& req) {
  const server::InferenceService& service = *world->service;
  Result<std::vector<int32_t>> ids = Status::error("input is required: set text or chat");
  if (req.input_case() == v1::TokenizeRequest::kText) {
    ids = service.tokenize_text(req.text(), req.add_special(), req.parse_special());
  } else if (req.input_case() == v1::TokenizeRequest::kChat) {
    server::PromptInput in;
    in.kind = server::PromptInput::Kind::Chat;
    for (const v1::ChatMessage& m : req.chat().messages()) in.chat.push_back({m.role(), m.content(), {}, {}});
    ids = service.tokenize(in);
  }
  if (!ids.ok()) return check_bad_input(ids.status(), false);
  v1::TokenizeResponse response;
  for (int32_t id : ids.value()) {
    if (id < 0 || id >= service.tokenizer().vocab_size()) violated("a token outside the vocabulary");
    response.add_token_ids(id);
    response.add_pieces(server::utf8_safe(service.token_piece(id)));
    check_utf8(response.pieces(response.pieces_size() - 1), "a piece is not valid UTF-8");
  }
  std::string wire;
  if (!response.SerializeToString(&wire)) violated("a TokenizeResponse does not serialize");
}

void detokenize(const v1::DetokenizeRequest& req) {
  const std::vector<int32_t> ids(req.token_ids().begin(), req.token_ids().end());
  auto text = world->service->detokenize(ids, req.skip_special());
  if (!text.ok()) return check_bad_input(text.status(), false);
  v1::DetokenizeResponse response;
  response.set_text(server::utf8_safe(text.value()));
  check_utf8(response.text(), "a detokenized text is not valid UTF-8");
  std::string wire;
  if (!response.SerializeToString(&wire)) violated("a DetokenizeResponse does not serialize");
}

// A GenerateRequest built field by field from the input (most raw bytes are not a valid message, so
// this reaches the mapping and validation with every field set, unset, in range or not).
v1::GenerateRequest structured(FuzzedDataProvider& in) {
  v1::GenerateRequest req;
  const auto text = [&](size_t max) { return engine::tok::sanitize_utf8(in.ConsumeRandomLengthString(max)); };
  const auto id = [&] {
    return in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(-2, 49200) : in.ConsumeIntegral<int32_t>();
  };
  const auto real = [&]() -> float {
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
      case 0: return std::numeric_limits<float>::quiet_NaN();
      case 1: return std::numeric_limits<float>::infinity();
      case 2: return -std::numeric_limits<float>::infinity();
      case 3: return in.ConsumeFloatingPoint<float>();
      default: return in.ConsumeFloatingPointInRange<float>(-3.0f, 12.0f);
    }
  };
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: req.set_text(text(256)); break;
    case 1: {
      auto* ids = req.mutable_token_ids();
      for (size_t k = in.ConsumeIntegralInRange<size_t>(0, 40); k > 0; --k) ids->add_ids(id());
      break;
    }
    case 2: {
      static const char* const kRoles[] = {"system", "user", "assistant", "developer", ""};
      auto* chat = req.mutable_chat();
      for (size_t k = in.ConsumeIntegralInRange<size_t>(0, 4); k > 0; --k) {
        auto* m = chat->add_messages();
        m->set_role(in.ConsumeBool() ? std::string(kRoles[in.ConsumeIntegralInRange<int>(0, 4)]) : text(12));
        m->set_content(text(128));
      }
      break;
    }
    default: break;  // no prompt
  }
  if (in.ConsumeBool()) {
    auto* s = req.mutable_sampling();
    if (in.ConsumeBool()) s->set_temperature(real());
    if (in.ConsumeBool()) s->set_top_p(real());
    if (in.ConsumeBool()) s->set_top_k(in.ConsumeIntegral<int32_t>());
    if (in.ConsumeBool()) s->set_min_p(real());
    if (in.ConsumeBool()) s->set_repetition_penalty(real());
    if (in.ConsumeBool()) s->set_presence_penalty(real());
    if (in.ConsumeBool()) s->set_frequency_penalty(real());
    if (in.ConsumeBool()) s->set_seed(in.ConsumeIntegral<uint64_t>());
    if (in.ConsumeBool()) s->set_logprobs(in.ConsumeIntegralInRange<int32_t>(-3, 40));
  }
  if (in.ConsumeBool()) {
    auto* st = req.mutable_stop();
    if (in.ConsumeBool()) st->set_max_tokens(in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(-2, 9000)
                                                              : in.ConsumeIntegral<int32_t>());
    for (size_t k = in.ConsumeIntegralInRange<size_t>(0, 20); k > 0; --k) st->add_stop(text(40));
    for (size_t k = in.ConsumeIntegralInRange<size_t>(0, 70); k > 0; --k) st->add_stop_token_ids(id());
    st->set_ignore_eos(in.ConsumeBool());
  }
  if (in.ConsumeBool()) req.set_n(in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(-2, 20) : in.ConsumeIntegral<int32_t>());
  if (in.ConsumeBool()) req.set_priority(in.ConsumeIntegral<int32_t>());
  if (in.ConsumeBool()) req.set_request_id(text(16));
  if (in.ConsumeBool()) req.set_num_speculative_tokens(in.ConsumeIntegralInRange<int32_t>(-3, 40));
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: req.set_prediction_text(text(128)); break;
    case 1:
      for (size_t k = in.ConsumeIntegralInRange<size_t>(0, 40); k > 0; --k) req.mutable_prediction_token_ids()->add_ids(id());
      break;
    default: break;
  }
  // Constrained decoding: every kind of grammar, mostly malformed (the compiler's refusals are the target).
  static constexpr const char* kSchemas[] = {
      R"({"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"type": "string", "maxLength": 4}}})",
      R"({"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 3})",
      R"({"anyOf": [{"type": "string", "pattern": "^[a-z]{2}$"}, {"type": "null"}]})"};
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0: req.set_json_schema(in.ConsumeBool() ? std::string(kSchemas[in.ConsumeIntegralInRange<int>(0, 2)]) : text(200)); break;
    case 1: req.set_json_object(in.ConsumeBool()); break;
    case 2: req.set_regex(text(64)); break;
    case 3:
      for (size_t k = in.ConsumeIntegralInRange<size_t>(0, 6); k > 0; --k) req.mutable_choice()->add_choices(text(16));
      break;
    case 4: req.set_grammar(text(128)); break;
    default: break;
  }
  return req;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // ParseFromArray logs every string field with invalid UTF-8 (and then fails the parse): keep the log quiet.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  std::string path;
  if (const char* p = std::getenv("PAGODA_MODEL"); p && *p) {
    path = p;
  } else if (const char* home = std::getenv("HOME")) {
    path = std::string(home) + "/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  engine::LoadOptions options;
  options.kv_tokens = 256;
  options.backend.cpu.num_threads = 1;
  auto loaded = engine::load_model(path, options);
  if (!loaded.ok()) {
    std::fprintf(stderr, "grpc_request_fuzz: %s\n", loaded.message().c_str());
    std::exit(1);
  }
  world = new World{std::move(loaded).value(), nullptr, {}, nullptr};
  world->loop = std::make_unique<scheduler::EngineLoop>(*world->model.backend, *world->model.tokenizer,
                                                        scheduler::EngineLoopConfig{});
  world->loop->request_stop(/*drain=*/false);
  world->service = std::make_unique<server::InferenceService>(world->model, *world->loop, world->metrics, "fuzz-model",
                                                              world->loop->max_model_len());
  world->service->set_serving(true);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int kind = data[0] % 8;
  const void* body = data + 1;
  const int n = static_cast<int>(size - 1);
  if (kind >= 4) {
    FuzzedDataProvider in(data + 1, size - 1);
    const v1::GenerateRequest req = structured(in);
    // What a client would send: it serializes, and the server's parse gives the same message back.
    std::string wire;
    if (!req.SerializeToString(&wire)) violated("a built GenerateRequest does not serialize");
    v1::GenerateRequest back;
    if (!back.ParseFromString(wire)) violated("a serialized GenerateRequest does not parse");
    generate(back);
  } else if (kind <= 1) {
    v1::GenerateRequest req;
    if (req.ParseFromArray(body, n)) generate(req);
  } else if (kind == 2) {
    v1::TokenizeRequest req;
    if (req.ParseFromArray(body, n)) tokenize(req);
  } else {
    v1::DetokenizeRequest req;
    if (req.ParseFromArray(body, n)) detokenize(req);
  }
  return 0;
}
