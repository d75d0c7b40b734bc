// Request validation: every bad field is rejected with a message naming it and the limit.
#include "scheduler/request.h"

#include <gtest/gtest.h>

#include <cmath>

namespace pagoda::scheduler {
namespace {

Request good() {
  Request r;
  r.prompt = {1, 2, 3};
  r.stop.max_tokens = 8;
  r.sink = [](const TokenEvent&) {};
  return r;
}

TEST(RequestValidation, AcceptsAGoodRequest) {
  const RequestLimits limits{.max_model_len = 64, .vocab_size = 100};
  EXPECT_TRUE(validate_request(good(), limits).ok());
}

TEST(RequestValidation, RejectsEachBadField) {
  const RequestLimits limits{.max_model_len = 64, .vocab_size = 100};
  struct Case {
    const char* what;
    void (*mutate)(Request&);
    const char* message_part;
  };
  const Case cases[] = {
      {"empty prompt", [](Request& r) { r.prompt.clear(); }, "prompt is empty"},
      {"token outside vocab", [](Request& r) { r.prompt[1] = 100; }, "outside the vocabulary"},
      {"negative token", [](Request& r) { r.prompt[0] = -5; }, "outside the vocabulary"},
      {"zero max_tokens", [](Request& r) { r.stop.max_tokens = 0; }, "max_tokens"},
      {"over context", [](Request& r) { r.stop.max_tokens = 62; }, "context length of 64"},
      {"n zero", [](Request& r) { r.n = 0; }, "n must be"},
      {"n huge", [](Request& r) { r.n = 1000; }, "n must be"},
      {"negative temperature", [](Request& r) { r.sampling.temperature = -1; }, "temperature"},
      {"nan temperature", [](Request& r) { r.sampling.temperature = std::nanf(""); }, "temperature"},
      {"top_p zero", [](Request& r) { r.sampling.top_p = 0; }, "top_p"},
      {"min_p above one", [](Request& r) { r.sampling.min_p = 1.5f; }, "min_p"},
      {"negative top_k", [](Request& r) { r.sampling.top_k = -1; }, "top_k"},
      {"presence penalty", [](Request& r) { r.sampling.presence_penalty = 3; }, "presence_penalty"},
      {"frequency penalty", [](Request& r) { r.sampling.frequency_penalty = -3; }, "frequency_penalty"},
      {"repetition penalty", [](Request& r) { r.sampling.repetition_penalty = 0; }, "repetition_penalty"},
      {"logprobs", [](Request& r) { r.sampling.logprobs = 21; }, "logprobs"},
      {"stop token", [](Request& r) { r.stop.stop_token_ids = {100}; }, "stop token id"},
      {"empty stop string", [](Request& r) { r.stop.stop_strings = {""}; }, "stop strings"},
      {"too many stop strings", [](Request& r) { r.stop.stop_strings.assign(17, "x"); }, "at most 16 stop strings"},
      {"huge stop string", [](Request& r) { r.stop.stop_strings = {std::string(1025, 'x')}; }, "at most 1024 bytes"},
      {"too many stop ids", [](Request& r) { r.stop.stop_token_ids.assign(65, 1); }, "at most 64 stop token ids"},
      {"priority overflow", [](Request& r) { r.priority = 1 << 30; }, "priority"},
  };
  for (const Case& c : cases) {
    Request r = good();
    c.mutate(r);
    Status s = validate_request(r, limits);
    EXPECT_FALSE(s.ok()) << c.what;
    EXPECT_NE(s.message().find(c.message_part), std::string::npos) << c.what << ": " << s.message();
  }
}

}  // namespace
}  // namespace pagoda::scheduler
