#include "bench/grpc_load_driver.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "pagoda/v1/pagoda.grpc.pb.h"
#include "tests/bench/load_driver_checks.h"

namespace pagoda::bench {
namespace {

using namespace std::chrono_literals;

// A fake pagoda.v1.Generation (sync API: one server thread per call keeps it simple). Prompts:
//   "fail"    -> INVALID_ARGUMENT "bad prompt" at once,
//   "hang"    -> sends nothing until the call is cancelled (client cancel or deadline),
//   "nofinal" -> max_tokens one-id responses, then OK without a final response,
//   "pairs"   -> max_tokens / 2 responses of two ids each and a text-only response between, then final,
//   anything else -> max_tokens one-id responses `gap` apart, then finish_reason LENGTH with usage
//                    (prompt_tokens = prompt length in bytes, completion_tokens = max_tokens).
// With a gate set, every streaming call first waits (up to 20 s) until `gate` calls were in flight at
// once, so "the client reaches N concurrent calls" is checked without depending on timing.
class FakeGeneration final : public v1::Generation::Service {
 public:
  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    InFlight in_flight(*this);  // ends when the handler returns, before the client can see the status
    record(*req, *ctx);
    const std::string& prompt = req->text();
    if (prompt == "fail") return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad prompt");
    if (prompt == "hang") return hang(ctx);
    wait_for_gate();
    const int32_t n = req->stop().max_tokens();
    if (prompt == "pairs") {
      if (!stream_pairs(ctx, writer, n)) return grpc::Status::CANCELLED;
    } else if (!stream_tokens(ctx, writer, n)) {
      return grpc::Status::CANCELLED;
    }
    if (prompt == "nofinal") return grpc::Status::OK;
    v1::GenerateResponse last;
    last.set_finish_reason(v1::FINISH_REASON_LENGTH);
    last.mutable_usage()->set_prompt_tokens(static_cast<int32_t>(prompt.size()));
    last.mutable_usage()->set_completion_tokens(n);
    writer->Write(last);
    return grpc::Status::OK;
  }

  void set_gate(int n) {
    std::lock_guard lock(mu_);
    gate_ = n;
  }
  int max_concurrent() {
    std::lock_guard lock(mu_);
    return max_active_;
  }
  int hangs_cancelled() {
    std::lock_guard lock(mu_);
    return hangs_cancelled_;
  }
  std::vector<v1::GenerateRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // The x-session-id metadata each prompt came with ("" without).
  std::map<std::string, std::string> sessions() {
    std::lock_guard lock(mu_);
    return sessions_;
  }

 private:
  struct InFlight {
    explicit InFlight(FakeGeneration& f) : f(f) {
      std::lock_guard lock(f.mu_);
      f.max_active_ = std::max(f.max_active_, ++f.active_);
      if (f.gate_ > 0 && f.active_ >= f.gate_) f.gate_open_ = true;
      f.cv_.notify_all();
    }
    ~InFlight() {
      std::lock_guard lock(f.mu_);
      --f.active_;
    }
    FakeGeneration& f;
  };

  void record(const v1::GenerateRequest& req, const grpc::ServerContext& ctx) {
    std::lock_guard lock(mu_);
    requests_.push_back(req);
    const auto session = ctx.client_metadata().find("x-session-id");
    sessions_[req.text()] = session == ctx.client_metadata().end() ? "" : std::string(session->second.data(), session->second.size());
  }

  void wait_for_gate() {
    std::unique_lock lock(mu_);
    if (gate_ > 0) cv_.wait_for(lock, 20s, [&] { return gate_open_; });
  }

  grpc::Status hang(grpc::ServerContext* ctx) {
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(5ms);
    std::lock_guard lock(mu_);
    ++hangs_cancelled_;
    return grpc::Status::CANCELLED;
  }

  static bool stream_tokens(grpc::ServerContext* ctx, grpc::ServerWriter<v1::GenerateResponse>* writer, int32_t n) {
    for (int32_t k = 0; k < n; ++k) {
      std::this_thread::sleep_for(kGap);
      if (ctx->IsCancelled()) return false;
      v1::GenerateResponse r;
      r.add_token_ids(1000 + k);
      r.set_text("t");
      if (!writer->Write(r)) return false;
    }
    return true;
  }

  static bool stream_pairs(grpc::ServerContext* ctx, grpc::ServerWriter<v1::GenerateResponse>* writer, int32_t n) {
    for (int32_t k = 0; k < n / 2; ++k) {
      std::this_thread::sleep_for(kGap);
      v1::GenerateResponse pair;
      pair.add_token_ids(2 * k);
      pair.add_token_ids(2 * k + 1);
      v1::GenerateResponse text_only;  // carries no token id: must not count
      text_only.set_text("x");
      if (ctx->IsCancelled() || !writer->Write(pair) || !writer->Write(text_only)) return false;
    }
    return true;
  }

  static constexpr auto kGap = 10ms;

  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0, max_active_ = 0, gate_ = 0, hangs_cancelled_ = 0;
  bool gate_open_ = false;
  std::vector<v1::GenerateRequest> requests_;
  std::map<std::string, std::string> sessions_;
};

class GrpcLoadDriver : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  // The deadline cancels any call still running (a "hang" the driver failed to cancel would end here).
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 5s);
  }

  GrpcTarget target() const { return GrpcTarget{"127.0.0.1", port_, ""}; }

  FakeGeneration fake_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

using test::expect_consistent;
using test::expect_progress;
using test::req;
using test::seconds_since;

TEST_F(GrpcLoadDriver, EveryRequestAccountedInInputOrderAndSentInScheduleOrder) {
  // Scheduled in reverse input order; distinct lengths tell the samples apart.
  std::vector<LoadRequest> requests;
  for (int i = 0; i < 6; ++i)
    requests.push_back(req(std::string(static_cast<size_t>(i + 1), 'p'), i + 1, 0.05 * (5 - i), i % 2 == 0));
  LoadProgress progress;
  auto res = run_grpc_load(target(), requests, 8, 60, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  const auto& s = res.value();
  ASSERT_EQ(s.size(), requests.size());
  for (size_t i = 0; i < s.size(); ++i) {
    expect_consistent(s[i], i);
    EXPECT_EQ(s[i].output_tokens, requests[i].max_tokens) << i;
    EXPECT_EQ(s[i].prompt_tokens, static_cast<int32_t>(requests[i].prompt.size())) << i;
    EXPECT_GE(s[i].submit_s, requests[i].at_s) << i;  // never early
  }
  for (size_t i = 1; i < s.size(); ++i) EXPECT_LE(s[i].submit_s, s[i - 1].submit_s) << i;  // later at_s, later send
  expect_progress(progress, s, requests.size());

  // The wire request: greedy, max_tokens and ignore_eos as asked.
  const auto seen = fake_.requests();
  ASSERT_EQ(seen.size(), requests.size());
  for (const v1::GenerateRequest& r : seen) {
    const auto it = std::find_if(requests.begin(), requests.end(), [&](auto& q) { return q.prompt == r.text(); });
    ASSERT_NE(it, requests.end());
    EXPECT_TRUE(r.sampling().has_temperature());
    EXPECT_EQ(r.sampling().temperature(), 0.0f);
    EXPECT_EQ(r.stop().max_tokens(), it->max_tokens);
    EXPECT_EQ(r.stop().ignore_eos(), it->ignore_eos);
  }
}

TEST_F(GrpcLoadDriver, SessionsGoInTheSessionMetadataWhenOneIsNamed) {
  const std::vector<LoadRequest> requests = test::session_requests();
  GrpcTarget t = target();
  t.session_header = "x-session-id";
  auto res = run_grpc_load(t, requests, 1, 60);
  ASSERT_TRUE(res.ok()) << res.message();
  const std::map<std::string, std::string> want = test::sessions_seen_with_header();
  EXPECT_EQ(fake_.sessions(), want);

  // Without a header name the sessions stay home; a name gRPC cannot carry is refused before sending.
  ASSERT_TRUE(run_grpc_load(target(), {requests[0]}, 1, 60).ok());
  EXPECT_EQ(fake_.sessions().at("a"), "");
  t.session_header = "X-Session";
  auto bad = run_grpc_load(t, requests, 1, 60);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("X-Session"), std::string::npos);
}

TEST_F(GrpcLoadDriver, ClosedLoopNeverExceedsMaxInFlightAndReachesIt) {
  fake_.set_gate(3);
  std::vector<LoadRequest> requests;
  for (int i = 0; i < 10; ++i) requests.push_back(req("closed " + std::to_string(i), 4));
  auto res = run_grpc_load(target(), requests, 3, 120);
  ASSERT_TRUE(res.ok()) << res.message();
  ASSERT_EQ(res->size(), requests.size());
  for (size_t i = 0; i < res->size(); ++i) expect_consistent(res.value()[i], i);
  for (size_t i = 1; i < res->size(); ++i)
    EXPECT_GE(res.value()[i].submit_s, res.value()[i - 1].submit_s) << i;  // stable
  EXPECT_EQ(fake_.max_concurrent(), 3);
}

TEST_F(GrpcLoadDriver, ManyConcurrentStreamsShareOneChannel) {
  constexpr int kStreams = 80;
  fake_.set_gate(kStreams);  // opens only once all 80 calls are in flight together
  std::vector<LoadRequest> requests(kStreams, req("wide", 3));
  LoadProgress progress;
  auto res = run_grpc_load(target(), requests, kStreams, 120, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  ASSERT_EQ(res->size(), requests.size());
  for (size_t i = 0; i < res->size(); ++i) expect_consistent(res.value()[i], i);
  EXPECT_EQ(fake_.max_concurrent(), kStreams);
  expect_progress(progress, res.value(), requests.size());
}

TEST_F(GrpcLoadDriver, MultiTokenResponsesGiveOneTimePerTokenAndEmptyOnesNone) {
  auto res = run_grpc_load(target(), {req("pairs", 6)}, 1, 60);
  ASSERT_TRUE(res.ok()) << res.message();
  const RequestSample& s = res->at(0);
  expect_consistent(s, 0);
  ASSERT_EQ(s.token_times_s.size(), 6u);
  for (size_t k = 0; k < 6; k += 2) EXPECT_EQ(s.token_times_s[k], s.token_times_s[k + 1]) << k;
}

TEST_F(GrpcLoadDriver, ErrorStatusAndMissingFinalResponseFailTheRequest) {
  LoadProgress progress;
  auto res = run_grpc_load(target(), {req("a", 2), req("fail", 2), req("nofinal", 2), req("b", 3)}, 2, 60, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  const auto& s = res.value();
  ASSERT_EQ(s.size(), 4u);
  expect_consistent(s[0], 0);
  EXPECT_FALSE(s[1].ok);
  EXPECT_EQ(s[1].error, "gRPC INVALID_ARGUMENT: bad prompt");
  EXPECT_LE(s[1].submit_s, s[1].end_s);
  EXPECT_FALSE(s[2].ok);
  EXPECT_NE(s[2].error.find("final response"), std::string::npos) << s[2].error;
  EXPECT_EQ(s[2].token_times_s.size(), 2u);  // what streamed is kept
  expect_consistent(s[3], 3);
  expect_progress(progress, s, 4);
}

TEST_F(GrpcLoadDriver, TimeLimitFailsHungAndUnsentRequestsAndReturnsPromptly) {
  constexpr double kLimit = 3.0;
  // Two slots: "ok" and the first "hang" start; the second "hang" takes the slot "ok" frees; "queued"
  // never gets a slot; "late" is due after the limit.
  const std::vector<LoadRequest> requests = {req("ok", 2), req("hang", 4), req("hang", 4), req("queued", 2),
                                             req("late", 2, 100)};
  LoadProgress progress;
  const auto t0 = std::chrono::steady_clock::now();
  auto res = run_grpc_load(target(), requests, 2, kLimit, &progress);
  const double elapsed = seconds_since(t0);
  ASSERT_TRUE(res.ok()) << res.message();
  const auto& s = res.value();
  ASSERT_EQ(s.size(), requests.size());
  expect_consistent(s[0], 0);
  for (size_t i = 1; i < s.size(); ++i) {
    EXPECT_FALSE(s[i].ok) << i;
    EXPECT_EQ(s[i].error, "time limit reached") << i;
  }
  EXPECT_GE(s[2].submit_s, s[0].end_s);  // waited for the slot
  EXPECT_GE(s[1].end_s, kLimit - 0.05);  // streamed until the limit (gRPC's deadline clock may run a hair early)
  EXPECT_GE(s[3].end_s, kLimit - 0.05);  // waited for a slot until the limit
  EXPECT_GE(elapsed, kLimit - 0.05);
  EXPECT_LT(elapsed, kLimit + 20);  // generous: only "does not hang"
  expect_progress(progress, s, 3);

  // The cancellation reached the server: both hung handlers ended.
  const auto wait_start = std::chrono::steady_clock::now();
  while (fake_.hangs_cancelled() < 2 && seconds_since(wait_start) < 20) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(fake_.hangs_cancelled(), 2);
}

TEST_F(GrpcLoadDriver, EmptyRequestListReturnsEmpty) {
  auto res = run_grpc_load(target(), {}, 4, 10);
  ASSERT_TRUE(res.ok()) << res.message();
  EXPECT_TRUE(res->empty());
}

TEST_F(GrpcLoadDriver, NothingListeningFailsEveryRequestUnavailable) {
  server_->Shutdown(std::chrono::system_clock::now() + 1s);
  server_.reset();  // the port is free now (nothing else in this test binary binds one)
  LoadProgress progress;
  auto res = run_grpc_load(target(), {req("a", 2), req("b", 2)}, 2, 60, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  for (const RequestSample& s : res.value()) {
    EXPECT_FALSE(s.ok);
    EXPECT_EQ(s.error.rfind("gRPC UNAVAILABLE: ", 0), 0u) << s.error;
  }
  expect_progress(progress, res.value(), 2);
}

TEST_F(GrpcLoadDriver, RefusesNonLoopbackTargetsAndBadArguments) {
  const std::vector<LoadRequest> one = {req("a", 1)};
  for (const char* host : {"10.0.0.1", "example.com", "0.0.0.0", "192.168.1.1", ""}) {
    auto res = run_grpc_load(GrpcTarget{host, port_, ""}, one, 1, 10);
    ASSERT_FALSE(res.ok()) << host;
    EXPECT_NE(res.message().find("loopback"), std::string::npos) << res.message();
  }
  for (int port : {0, -1, 65536}) EXPECT_FALSE(run_grpc_load(GrpcTarget{"127.0.0.1", port, ""}, one, 1, 10).ok()) << port;
  EXPECT_FALSE(run_grpc_load(target(), one, 0, 10).ok());
  EXPECT_FALSE(run_grpc_load(target(), one, -3, 10).ok());
  for (double limit : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::nan("")})
    EXPECT_FALSE(run_grpc_load(target(), one, 1, limit).ok()) << limit;
  EXPECT_TRUE(fake_.requests().empty());  // nothing was sent
}

}  // namespace
}  // namespace pagoda::bench
