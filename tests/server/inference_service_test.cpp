// InferenceService::submit refuses a bad request before it builds anything from it. Found by the gRPC
// fuzz target (tests/fuzz/grpc_request_fuzz.cpp): the output stage (one detokenizer and stop-string
// matcher per choice) was built from n before the engine loop validated it, so a gRPC request with
// n = -1 threw std::length_error out of vector::reserve and ended the daemon, and a huge n allocated
// without bound. The engine loop here was told to stop, so a request that passes validation is
// answered Unavailable instead of being queued.
#include "server/inference_service.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "tests/test_env.h"

namespace pagoda::server {
namespace {

class InferenceServiceSubmitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PAGODA_REQUIRE_MODEL_OR_SKIP();
    engine::LoadOptions options;
    options.kv_tokens = 256;
    auto loaded = engine::load_model(test::model_path(), options);
    ASSERT_TRUE(loaded.ok()) << loaded.message();
    model_ = std::make_unique<engine::LoadedModel>(std::move(loaded).value());
    loop_ = std::make_unique<scheduler::EngineLoop>(*model_->backend, *model_->tokenizer, scheduler::EngineLoopConfig{});
    loop_->request_stop(/*drain=*/false);
    service_ = std::make_unique<InferenceService>(*model_, *loop_, metrics_, "m", loop_->max_model_len());
    service_->set_serving(true);
  }

  scheduler::Request request(int32_t n) const {
    scheduler::Request r;
    r.prompt = {1, 2, 3};
    r.stop.max_tokens = 4;
    r.stop.stop_strings = {"\n\n"};
    r.n = n;
    r.sink = [](const scheduler::TokenEvent&) {};
    return r;
  }

  std::unique_ptr<engine::LoadedModel> model_;
  std::unique_ptr<scheduler::EngineLoop> loop_;
  MetricsRegistry metrics_;
  std::unique_ptr<InferenceService> service_;
};

TEST_F(InferenceServiceSubmitTest, OutOfRangeNIsRefusedBeforeTheOutputStage) {
  for (int32_t n : {-1, 0, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(), 17}) {
    auto r = service_->submit(request(n), "test");
    ASSERT_FALSE(r.ok()) << "n " << n;
    EXPECT_EQ(r.status().code(), StatusCode::InvalidArgument) << "n " << n;
    EXPECT_NE(r.message().find("n must be in 1..16"), std::string::npos) << r.message();
  }
  EXPECT_EQ(service_->in_flight(), 0);
}

TEST_F(InferenceServiceSubmitTest, TooManyStopStringsAreRefusedBeforeTheyAreCopiedPerChoice) {
  scheduler::Request r = request(16);
  r.stop.stop_strings.assign(1000, std::string(100, 'x'));
  auto s = service_->submit(std::move(r), "test");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("stop strings"), std::string::npos) << s.message();
}

TEST_F(InferenceServiceSubmitTest, AValidRequestReachesTheEngineLoop) {
  auto r = service_->submit(request(2), "test");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::Unavailable) << r.message();  // the loop was told to stop
  EXPECT_EQ(service_->in_flight(), 0);
}

}  // namespace
}  // namespace pagoda::server
