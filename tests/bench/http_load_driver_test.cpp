#include "bench/http_load_driver.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <map>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/bench/load_driver_checks.h"

namespace pagoda::bench {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using boost::system::error_code;

// What the fake server saw of one request.
struct SeenRequest {
  std::string method, target;
  bool keep_alive = true;
  json body;  // discarded (is_discarded()) when it was not JSON
  std::string session;  // its x-session-id header ("" without)
};

// A fake OpenAI-compatible `POST /v1/completions` streaming server: an Asio acceptor on its own thread and
// one blocking thread per connection (simple, and a slow or hung response never holds up the others).
// The response is chosen by the prompt:
//   "http400"    -> 400 with an OpenAI error body (message "bad thing"),
//   "hang"       -> 200 headers, then nothing until the client closes the connection,
//   "eventerror" -> one token, then `data: {"error": {"message": "boom"}}` and [DONE],
//   "errorline"  -> one token, then llama-server's `error: {"message": "boom2", ...}` event and the end,
//   "nodone"     -> the tokens and usage, no [DONE],
//   "nousage"    -> the tokens and [DONE], no usage,
//   "badusage"   -> the tokens, usage with "prompt_tokens": null, [DONE],
//   "notext"     -> one chunk with empty text, usage with completion_tokens 1, [DONE],
//   "short"      -> min(2, max_tokens) tokens and usage saying so (as if EOS came early), [DONE],
//   "fewtexts"   -> min(2, max_tokens) tokens, usage with completion_tokens = max_tokens (the rest came in
//                   the same chunks or never as text), [DONE],
//   "burst"      -> all token events in one write, then usage and [DONE],
//   "crlf"       -> as normal, with CRLF line ends,
//   "closedelim" -> as normal, with a close-delimited body (no chunked framing),
//   anything else (normal) -> max_tokens one-token events `kGap` apart, then usage (prompt_tokens = prompt
//                    length in bytes, completion_tokens = max_tokens) and [DONE], chunked.
// With a gate set, every streaming response first waits (up to 20 s) until `gate` connections were open at
// once, so "the client reaches N concurrent connections" is checked without depending on timing.
class FakeOpenAiServer {
 public:
  FakeOpenAiServer() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept();
    accept_thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeOpenAiServer() { stop(); }

  // Closes the listening port and ends every connection (a "hang" the driver never closed ends here).
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    asio::post(io_, [this] { acceptor_.close(); });
    accept_thread_.join();
    stopping_ = true;
    for (std::thread& t : connections_) t.join();  // no new ones: the acceptor is closed
  }

  int port() const { return port_; }
  void set_gate(int n) {
    std::lock_guard lock(mu_);
    gate_ = n;
  }
  int max_concurrent() {
    std::lock_guard lock(mu_);
    return max_active_;
  }
  int hangs_closed_by_client() {
    std::lock_guard lock(mu_);
    return hangs_closed_;
  }
  std::vector<SeenRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  // Counts an open connection. release() comes before the response's last bytes, so the client cannot see
  // the end of a response (and open its next connection) while this one still counts.
  class InFlight {
   public:
    explicit InFlight(FakeOpenAiServer& f) : f_(f) {
      std::lock_guard lock(f_.mu_);
      f_.max_active_ = std::max(f_.max_active_, ++f_.active_);
      if (f_.gate_ > 0 && f_.active_ >= f_.gate_) f_.gate_open_ = true;
      f_.cv_.notify_all();
    }
    ~InFlight() { release(); }
    void release() {
      if (released_) return;
      released_ = true;
      std::lock_guard lock(f_.mu_);
      --f_.active_;
    }

   private:
    FakeOpenAiServer& f_;
    bool released_ = false;
  };

  // Writes an SSE body: chunked (one chunk per write) or close-delimited, with LF or CRLF line ends.
  class SseWriter {
   public:
    SseWriter(tcp::socket& s, bool chunked, const char* eol) : s_(s), chunked_(chunked), eol_(eol) {}
    bool head() {
      std::string h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n";
      if (chunked_) h += "Transfer-Encoding: chunked\r\n";
      h += "Connection: close\r\n\r\n";
      return write_raw(h);
    }
    // One event of one line ("data: {...}" or "error: {...}"), as the text of an event to batch.
    std::string event(const std::string& line) const { return line + eol_ + eol_; }
    bool write(const std::string& events) {
      if (!chunked_) return write_raw(events);
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", events.size());
      return write_raw(size + events + "\r\n");
    }
    bool send(const std::string& line) { return write(event(line)); }
    bool finish() { return !chunked_ || write_raw("0\r\n\r\n"); }

   private:
    bool write_raw(const std::string& bytes) {
      error_code ec;
      asio::write(s_, asio::buffer(bytes), ec);
      return !ec;
    }
    tcp::socket& s_;
    bool chunked_;
    const char* eol_;
  };

  static std::string token_line(const char* text) {
    return std::string(R"(data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":")") + text +
           R"(","finish_reason":null}]})";
  }
  static std::string usage_line(const std::string& prompt_tokens, int completion_tokens) {
    return R"(data: {"id":"cmpl-1","object":"text_completion","choices":[],"usage":{"prompt_tokens":)" + prompt_tokens +
           R"(,"completion_tokens":)" + std::to_string(completion_tokens) + "}}";
  }
  static constexpr const char* kDone = "data: [DONE]";
  static constexpr auto kGap = 2ms;

  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (ec) return;  // the acceptor was closed: the server is stopping
      {
        std::lock_guard lock(mu_);
        connections_.emplace_back([this, s = std::move(socket)]() mutable { serve(s); });
      }
      accept();
    });
  }

  void serve(tcp::socket& socket) {
    InFlight in_flight(*this);
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    error_code ec;
    http::read(socket, buf, req, ec);
    if (ec) return;
    SeenRequest seen{std::string(req.method_string()), std::string(req.target()), req.keep_alive(),
                     json::parse(req.body(), nullptr, false), std::string(req["x-session-id"])};
    std::string prompt;
    int n = 0;
    if (seen.body.is_object()) {
      prompt = seen.body.value("prompt", "");
      n = seen.body.value("max_tokens", 0);
    }
    {
      std::lock_guard lock(mu_);
      requests_.push_back(std::move(seen));
    }
    respond(socket, prompt, n, in_flight);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  void respond(tcp::socket& socket, const std::string& prompt, int n, InFlight& in_flight) {
    if (prompt == "http400") {
      const std::string body = R"({"error":{"message":"bad thing","type":"invalid_request_error"}})";
      in_flight.release();
      error_code ec;
      asio::write(socket,
                  asio::buffer("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
                               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body),
                  ec);
      return;
    }
    SseWriter out(socket, prompt != "closedelim", prompt == "crlf" ? "\r\n" : "\n");
    if (prompt == "hang") {
      if (out.head() && wait_for_client_close(socket)) {
        std::lock_guard lock(mu_);
        ++hangs_closed_;
      }
      return;
    }
    wait_for_gate();
    if (!out.head()) return;
    const std::string prompt_tokens = std::to_string(prompt.size());
    if (prompt == "eventerror" || prompt == "errorline") {
      if (!out.send(token_line("a"))) return;
      in_flight.release();
      if (prompt == "eventerror") {
        out.write(out.event(R"(data: {"error":{"message":"boom","type":"server_error"}})") + out.event(kDone));
      } else {
        out.send(R"(error: {"code":500,"message":"boom2","type":"server_error"})");
      }
      out.finish();
      return;
    }
    if (prompt == "notext") {
      if (!out.send(R"(data: {"choices":[{"index":0,"text":"","finish_reason":null}]})")) return;
      in_flight.release();
      out.write(out.event(usage_line(prompt_tokens, 1)) + out.event(kDone));
      out.finish();
      return;
    }
    const int tokens = prompt == "short" || prompt == "fewtexts" ? std::min(2, n) : n;
    if (prompt == "burst") {
      std::string all;
      for (int k = 0; k < tokens; ++k) all += out.event(token_line("b"));
      if (!out.write(all)) return;
    } else {
      for (int k = 0; k < tokens; ++k) {
        std::this_thread::sleep_for(kGap);
        if (!out.send(token_line("a"))) return;
      }
    }
    const int usage_tokens = prompt == "fewtexts" ? n : tokens;
    std::string tail;
    if (prompt != "nousage") tail += out.event(usage_line(prompt == "badusage" ? "null" : prompt_tokens, usage_tokens));
    if (prompt != "nodone") tail += out.event(kDone);
    in_flight.release();
    out.write(tail);
    out.finish();
  }

  void wait_for_gate() {
    std::unique_lock lock(mu_);
    if (gate_ > 0) cv_.wait_for(lock, 20s, [&] { return gate_open_; });
  }

  // Blocks until the client closes the connection (true) or the server stops (false).
  bool wait_for_client_close(tcp::socket& socket) {
    pollfd p{socket.native_handle(), POLLIN, 0};
    while (!stopping_) {
      if (::poll(&p, 1, 10) <= 0) continue;
      char c;
      error_code ec;
      socket.read_some(asio::buffer(&c, 1), ec);
      if (ec) return true;  // EOF or reset: the client gave up on the response
    }
    return false;
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread accept_thread_;
  std::vector<std::thread> connections_;
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0, max_active_ = 0, gate_ = 0, hangs_closed_ = 0;
  bool gate_open_ = false;
  std::vector<SeenRequest> requests_;
};

class HttpLoadDriver : public ::testing::Test {
 protected:
  HttpTarget target() const {
    HttpTarget t;
    t.port = fake_.port();
    return t;
  }

  FakeOpenAiServer fake_;
};

using test::expect_consistent;
using test::expect_progress;
using test::req;
using test::seconds_since;

// A failed sample carries `what` in its error and, when it was sent, submit <= end.
void expect_failed(const RequestSample& s, const std::string& what, size_t i) {
  SCOPED_TRACE("request " + std::to_string(i));
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find(what), std::string::npos) << s.error;
  EXPECT_LE(s.submit_s, s.end_s);
}

TEST_F(HttpLoadDriver, EveryRequestAccountedInInputOrderAndSentInScheduleOrder) {
  // Scheduled in reverse input order; distinct lengths tell the samples apart.
  std::vector<LoadRequest> requests;
  for (int i = 0; i < 6; ++i)
    requests.push_back(req(std::string(static_cast<size_t>(i + 1), 'p'), i + 1, 0.05 * (5 - i), i % 2 == 0));
  LoadProgress progress;
  auto res = run_http_load(target(), requests, 8, 60, &progress);
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

  // The wire request: one streaming POST per connection, greedy, max_tokens and ignore_eos as asked.
  const auto seen = fake_.requests();
  ASSERT_EQ(seen.size(), requests.size());
  for (const SeenRequest& r : seen) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/v1/completions");
    EXPECT_FALSE(r.keep_alive);  // Connection: close
    ASSERT_TRUE(r.body.is_object());
    const auto it =
        std::find_if(requests.begin(), requests.end(), [&](auto& q) { return r.body.value("prompt", "") == q.prompt; });
    ASSERT_NE(it, requests.end()) << r.body.dump();
    EXPECT_EQ(r.body.value("max_tokens", -1), it->max_tokens);
    EXPECT_EQ(r.body.value("ignore_eos", !it->ignore_eos), it->ignore_eos);
    EXPECT_EQ(r.body.value("stream", false), true);
    ASSERT_TRUE(r.body.contains("temperature"));
    EXPECT_EQ(r.body["temperature"], 0);
    ASSERT_TRUE(r.body.contains("stream_options"));
    EXPECT_EQ(r.body["stream_options"].value("include_usage", false), true);
    EXPECT_FALSE(r.body.contains("model"));  // none given
  }
}

TEST_F(HttpLoadDriver, ModelIsSentWhenGivenAndLocalhostIsAccepted) {
  HttpTarget t = target();
  t.host = "localhost";
  t.model = "tiny-model";
  auto res = run_http_load(t, {req("m", 2)}, 1, 60);
  ASSERT_TRUE(res.ok()) << res.message();
  expect_consistent(res->at(0), 0);
  const auto seen = fake_.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].body.value("model", ""), "tiny-model");
}

TEST_F(HttpLoadDriver, SessionsGoInTheSessionHeaderWhenOneIsNamed) {
  const std::vector<LoadRequest> requests = test::session_requests();
  HttpTarget t = target();
  t.session_header = "x-session-id";
  auto res = run_http_load(t, requests, 1, 60);
  ASSERT_TRUE(res.ok()) << res.message();
  std::map<std::string, std::string> got;
  for (const SeenRequest& s : fake_.requests()) got[s.body.value("prompt", "")] = s.session;
  const std::map<std::string, std::string> want = test::sessions_seen_with_header();
  EXPECT_EQ(got, want);

  // Without a header name the sessions stay home; a name that is not a lower-case token is refused.
  ASSERT_TRUE(run_http_load(target(), {requests[0]}, 1, 60).ok());
  EXPECT_EQ(fake_.requests().back().session, "");
  for (const char* bad_name : {"X-Session", "x session", "-x", "host", "content-length", "grpc-timeout", "x-id-bin"}) {
    t.session_header = bad_name;
    auto bad = run_http_load(t, requests, 1, 60);
    ASSERT_FALSE(bad.ok()) << bad_name;
    EXPECT_NE(bad.message().find(bad_name), std::string::npos);
  }
}

TEST_F(HttpLoadDriver, ClosedLoopNeverExceedsMaxConnectionsAndReachesIt) {
  fake_.set_gate(3);
  std::vector<LoadRequest> requests;
  for (int i = 0; i < 10; ++i) requests.push_back(req("closed " + std::to_string(i), 4));
  LoadProgress progress;
  auto res = run_http_load(target(), requests, 3, 120, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  ASSERT_EQ(res->size(), requests.size());
  for (size_t i = 0; i < res->size(); ++i) expect_consistent(res.value()[i], i);
  for (size_t i = 1; i < res->size(); ++i)
    EXPECT_GE(res.value()[i].submit_s, res.value()[i - 1].submit_s) << i;  // stable
  EXPECT_EQ(fake_.max_concurrent(), 3);
  expect_progress(progress, res.value(), requests.size());
}

TEST_F(HttpLoadDriver, ManyConcurrentConnections) {
  constexpr int kStreams = 40;
  fake_.set_gate(kStreams);  // opens only once all 40 connections are open together
  std::vector<LoadRequest> requests(kStreams, req("wide", 3));
  LoadProgress progress;
  auto res = run_http_load(target(), requests, kStreams, 120, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  ASSERT_EQ(res->size(), requests.size());
  for (size_t i = 0; i < res->size(); ++i) expect_consistent(res.value()[i], i);
  EXPECT_EQ(fake_.max_concurrent(), kStreams);
  expect_progress(progress, res.value(), requests.size());
}

TEST_F(HttpLoadDriver, ParsesCrlfCloseDelimitedAndBatchedEvents) {
  LoadProgress progress;
  auto res = run_http_load(target(), {req("crlf", 3), req("closedelim", 4), req("burst", 5)}, 3, 60, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  const auto& s = res.value();
  ASSERT_EQ(s.size(), 3u);
  for (size_t i = 0; i < s.size(); ++i) {
    expect_consistent(s[i], i);
    EXPECT_EQ(s[i].output_tokens, static_cast<int32_t>(i + 3)) << i;
  }
  expect_progress(progress, s, 3);
}

TEST_F(HttpLoadDriver, ErrorStatusErrorEventsAndIncompleteStreamsFailTheRequest) {
  LoadProgress progress;
  const std::vector<LoadRequest> requests = {req("a", 2),         req("http400", 2), req("eventerror", 2),
                                             req("errorline", 2), req("nodone", 2),  req("nousage", 2),
                                             req("b", 3)};
  auto res = run_http_load(target(), requests, 2, 60, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  const auto& s = res.value();
  ASSERT_EQ(s.size(), requests.size());
  expect_consistent(s[0], 0);
  expect_failed(s[1], "HTTP 400", 1);
  expect_failed(s[1], "bad thing", 1);
  expect_failed(s[2], "boom", 2);
  expect_failed(s[3], "boom2", 3);
  expect_failed(s[4], "without [DONE]", 4);
  EXPECT_EQ(s[4].token_times_s.size(), 2u);  // what streamed is kept
  expect_failed(s[5], "usage", 5);
  expect_consistent(s[6], 6);
  expect_progress(progress, s, requests.size());
}

TEST_F(HttpLoadDriver, MalformedUsageFailsPromptlyAndTheRunGoesOn) {
  constexpr double kLimit = 60;
  LoadProgress progress;
  const auto t0 = std::chrono::steady_clock::now();
  // One connection: the requests after "badusage" run only if it gives its slot back.
  auto res = run_http_load(target(), {req("badusage", 2), req("a", 2), req("b", 2)}, 1, kLimit, &progress);
  const double elapsed = seconds_since(t0);
  ASSERT_TRUE(res.ok()) << res.message();
  const auto& s = res.value();
  ASSERT_EQ(s.size(), 3u);
  expect_failed(s[0], "usage", 0);
  EXPECT_EQ(s[0].error.find("time limit"), std::string::npos) << s[0].error;
  EXPECT_LT(s[0].end_s, kLimit / 2);
  expect_consistent(s[1], 1);
  expect_consistent(s[2], 2);
  EXPECT_LT(elapsed, kLimit / 2);  // generous: only "did not wait for the time limit"
  expect_progress(progress, s, 3);
}

TEST_F(HttpLoadDriver, TokenNeverSentAsTextIsTimedAtTheEnd) {
  LoadProgress progress;
  auto res = run_http_load(target(), {req("notext", 1)}, 1, 60, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  const RequestSample& s = res->at(0);
  expect_consistent(s, 0);
  EXPECT_EQ(s.output_tokens, 1);
  ASSERT_EQ(s.token_times_s.size(), 1u);
  EXPECT_EQ(s.token_times_s[0], s.end_s);
  EXPECT_EQ(s.first_token_s, s.end_s);
  expect_progress(progress, res.value(), 1, /*untimed=*/1);
}

TEST_F(HttpLoadDriver, TokensSharingAChunkAreNotInventedWhenSomeWereTimed) {
  // Only a stream with no timed token at all gets one at the end (load_request.h, settle_sample); several
  // tokens in one chunk keep the chunk's single time.
  LoadProgress progress;
  auto res = run_http_load(target(), {req("fewtexts", 5)}, 1, 60, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  const RequestSample& s = res->at(0);
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_EQ(s.output_tokens, 5);
  ASSERT_EQ(s.token_times_s.size(), 2u);
  EXPECT_EQ(s.first_token_s, s.token_times_s[0]);
  EXPECT_LE(s.submit_s, s.first_token_s);
  EXPECT_LE(s.token_times_s[0], s.token_times_s[1]);
  EXPECT_LE(s.token_times_s[1], s.end_s);
  expect_progress(progress, res.value(), 1);
}

TEST_F(HttpLoadDriver, IgnoreEosRequestShorterThanMaxTokensFails) {
  LoadProgress progress;
  // The same short answer is fine when the request may stop at EOS.
  auto res = run_http_load(target(), {req("short", 4, 0, true), req("short", 4, 0, false)}, 2, 60, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  const auto& s = res.value();
  ASSERT_EQ(s.size(), 2u);
  expect_failed(s[0], "ignore_eos", 0);
  expect_consistent(s[1], 1);
  EXPECT_EQ(s[1].output_tokens, 2);
  expect_progress(progress, s, 2);
}

TEST_F(HttpLoadDriver, TimeLimitFailsHungAndUnsentRequestsAndReturnsPromptly) {
  constexpr double kLimit = 3.0;
  // Two slots: "ok" and the first "hang" start; the second "hang" takes the slot "ok" frees; "queued"
  // never gets a slot; "late" is due after the limit.
  const std::vector<LoadRequest> requests = {req("ok", 2), req("hang", 4), req("hang", 4), req("queued", 2),
                                             req("late", 2, 100)};
  LoadProgress progress;
  const auto t0 = std::chrono::steady_clock::now();
  auto res = run_http_load(target(), requests, 2, kLimit, &progress);
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
  EXPECT_GE(s[1].end_s, kLimit - 0.05);  // streamed until the limit
  EXPECT_GE(s[3].end_s, kLimit - 0.05);  // waited for a slot until the limit
  EXPECT_GE(elapsed, kLimit - 0.05);
  EXPECT_LT(elapsed, kLimit + 20);  // generous: only "does not hang"
  expect_progress(progress, s, 3);

  // The driver closed both hung connections.
  const auto wait_start = std::chrono::steady_clock::now();
  while (fake_.hangs_closed_by_client() < 2 && seconds_since(wait_start) < 20) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(fake_.hangs_closed_by_client(), 2);
}

TEST_F(HttpLoadDriver, HugeTimeLimitRunsNormally) {
  for (double limit : {1e12, 1e300, std::numeric_limits<double>::max()}) {
    SCOPED_TRACE(limit);
    LoadProgress progress;
    auto res = run_http_load(target(), {req("a", 3), req("b", 2, 0.01, true)}, 2, limit, &progress);
    ASSERT_TRUE(res.ok()) << res.message();
    ASSERT_EQ(res->size(), 2u);
    for (size_t i = 0; i < res->size(); ++i) expect_consistent(res.value()[i], i);
    expect_progress(progress, res.value(), 2);
  }
}

TEST_F(HttpLoadDriver, EmptyRequestListReturnsEmpty) {
  auto res = run_http_load(target(), {}, 4, 10);
  ASSERT_TRUE(res.ok()) << res.message();
  EXPECT_TRUE(res->empty());
}

TEST_F(HttpLoadDriver, NothingListeningFailsEveryRequestPromptly) {
  const HttpTarget t = target();
  fake_.stop();  // the port is free now (nothing else in this test binary binds one)
  LoadProgress progress;
  const auto t0 = std::chrono::steady_clock::now();
  auto res = run_http_load(t, {req("a", 2), req("b", 2)}, 2, 60, &progress);
  ASSERT_TRUE(res.ok()) << res.message();
  for (size_t i = 0; i < res->size(); ++i) {
    const RequestSample& s = res.value()[i];
    EXPECT_FALSE(s.ok) << i;
    EXPECT_FALSE(s.error.empty()) << i;
    EXPECT_EQ(s.error.find("time limit"), std::string::npos) << s.error;
  }
  EXPECT_LT(seconds_since(t0), 30);
  expect_progress(progress, res.value(), 0);  // nothing was written
}

TEST_F(HttpLoadDriver, RefusesNonLoopbackTargetsAndBadArguments) {
  const std::vector<LoadRequest> one = {req("a", 1)};
  for (const char* host : {"10.0.0.1", "example.com", "0.0.0.0", "192.168.1.1", ""}) {
    HttpTarget t = target();
    t.host = host;
    auto res = run_http_load(t, one, 1, 10);
    ASSERT_FALSE(res.ok()) << host;
    EXPECT_NE(res.message().find("loopback"), std::string::npos) << res.message();
  }
  for (int port : {0, -1, 65536}) {
    HttpTarget t = target();
    t.port = port;
    EXPECT_FALSE(run_http_load(t, one, 1, 10).ok()) << port;
  }
  EXPECT_FALSE(run_http_load(target(), one, 0, 10).ok());
  EXPECT_FALSE(run_http_load(target(), one, -3, 10).ok());
  for (double limit : {0.0, -1.0, -std::numeric_limits<double>::infinity(), std::nan("")})
    EXPECT_FALSE(run_http_load(target(), one, 1, limit).ok()) << limit;
  EXPECT_TRUE(fake_.requests().empty());  // nothing was sent
}

}  // namespace
}  // namespace pagoda::bench
