#include "bench/http_load_driver.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string_view>

namespace pagoda::bench {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr const char* kTimeLimit = "time limit reached";
constexpr double kMaxLimitS = 1e8;  // ~3 years; keeps the deadline far from the clock's range

bool is_loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

// The error message of an OpenAI-style error body ({"error": {"message": ...}}), else the body itself.
std::string error_message(const std::string& body) {
  try {
    json j = json::parse(body);
    if (j.is_object() && j.contains("error")) {
      const json& e = j["error"];
      if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
      if (e.is_string()) return e.get<std::string>();
    }
  } catch (const std::exception&) {
  }
  return body.size() > 300 ? body.substr(0, 300) + "..." : body;
}

// Incremental SSE parser for one completion stream: events are separated by a blank line; `data:` lines
// carry them (llama-server sends its errors as `error:` lines).
class SseState {
 public:
  SseState(RequestSample& s, LoadProgress* progress) : s_(s), progress_(progress) {}

  // Feeds bytes received at time t (seconds from the run start).
  void feed(std::string_view bytes, double t) {
    buf_.append(bytes);
    for (;;) {
      size_t sep = buf_.find("\n\n");
      size_t len = 2;
      const size_t crlf = buf_.find("\r\n\r\n");
      if (crlf != std::string::npos && (sep == std::string::npos || crlf < sep)) {
        sep = crlf;
        len = 4;
      }
      if (sep == std::string::npos) break;
      event(buf_.substr(0, sep), t);
      buf_.erase(0, sep + len);
    }
  }

  bool done() const { return done_; }
  bool got_usage() const { return got_usage_; }
  const std::string& error() const { return error_; }

 private:
  void event(const std::string& ev, double t) {
    size_t pos = 0;
    std::string data;
    bool error_event = false;  // llama-server streams its errors as `error: {...}`
    while (pos <= ev.size()) {
      size_t nl = ev.find('\n', pos);
      if (nl == std::string::npos) nl = ev.size();
      std::string line = ev.substr(pos, nl - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const bool is_data = line.rfind("data:", 0) == 0, is_error = line.rfind("error:", 0) == 0;
      if (is_data || is_error) {
        error_event = error_event || is_error;
        std::string_view v(line);
        v.remove_prefix(is_data ? 5 : 6);
        if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
        if (!data.empty()) data += '\n';
        data.append(v);
      }
      pos = nl + 1;
    }
    if (data.empty()) return;
    if (error_event) {
      if (error_.empty()) error_ = "stream error: " + error_message("{\"error\": " + data + "}");
      return;
    }
    if (data == "[DONE]") {
      done_ = true;
      return;
    }
    json j;
    try {
      j = json::parse(data);
    } catch (const std::exception& e) {
      if (error_.empty()) error_ = std::string("unparseable SSE event: ") + e.what();
      return;
    }
    if (!j.is_object()) return;
    if (j.contains("error")) {
      if (error_.empty()) error_ = "stream error: " + error_message(data);
      return;
    }
    if (j.contains("choices") && j["choices"].is_array()) {
      for (const json& c : j["choices"]) {
        if (!c.is_object() || !c.contains("text") || !c["text"].is_string()) continue;
        if (c["text"].get_ref<const std::string&>().empty()) continue;
        if (s_.token_times_s.empty()) s_.first_token_s = t;
        s_.token_times_s.push_back(t);
        if (progress_) ++progress_->tokens;
      }
    }
    if (j.contains("usage") && j["usage"].is_object()) {
      const json& u = j["usage"];
      auto count = [&](const char* key) -> const json* {
        const auto it = u.find(key);
        return it != u.end() && it->is_number_integer() && it->get<int64_t>() >= 0 ? &*it : nullptr;
      };
      const json *prompt = count("prompt_tokens"), *completion = count("completion_tokens");
      if (!prompt || !completion) {
        if (error_.empty())
          error_ = "malformed usage (prompt_tokens and completion_tokens must be counts): " + u.dump();
        return;
      }
      s_.prompt_tokens = static_cast<int32_t>(std::min<int64_t>(prompt->get<int64_t>(), INT32_MAX));
      s_.output_tokens = static_cast<int32_t>(std::min<int64_t>(completion->get<int64_t>(), INT32_MAX));
      got_usage_ = true;
    }
  }

  RequestSample& s_;
  LoadProgress* progress_;
  std::string buf_;
  std::string error_;
  bool done_ = false;
  bool got_usage_ = false;
};

struct Run {
  asio::io_context io;
  HttpTarget target;
  tcp::resolver::results_type endpoints;
  Clock::time_point start;
  Clock::time_point deadline;
  double limit_s = 0;  // deadline - start, in seconds
  int max_connections = 1;
  int active = 0;
  asio::steady_timer slot_freed{io};
  std::vector<RequestSample> samples;
  LoadProgress* progress = nullptr;

  // Records the end of request i (ok or failed) in the progress counters.
  void finished(size_t i) {
    if (!progress) return;
    ++progress->finished;
    if (!samples[i].ok) ++progress->failed;
  }

  double now_s() const { return std::chrono::duration<double>(Clock::now() - start).count(); }
};

std::string request_body(const HttpTarget& target, const LoadRequest& r) {
  json b = {{"prompt", r.prompt}, {"max_tokens", r.max_tokens},
            {"temperature", 0},   {"ignore_eos", r.ignore_eos},
            {"stream", true},     {"stream_options", {{"include_usage", true}}}};
  if (!target.model.empty()) b["model"] = target.model;
  return b.dump(-1, ' ', false, json::error_handler_t::replace);
}

void fail(RequestSample& s, std::string message, double t) {
  s.ok = false;
  s.error = std::move(message);
  s.end_s = t;
}

// One request on `stream`; the stream's expiry is the run deadline (beast::error::timeout). Sets the
// sample's outcome; may throw (the caller turns that into a failed request).
asio::awaitable<void> exchange(Run& run, size_t index, const LoadRequest& request, beast::tcp_stream& stream) {
  RequestSample& s = run.samples[index];
  std::string body = request_body(run.target, request);
  error_code ec;
  auto err_text = [&](const char* what) {
    return ec == beast::error::timeout ? std::string(kTimeLimit) : std::string(what) + ": " + ec.message();
  };
  do {
    co_await stream.async_connect(run.endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      fail(s, err_text("connect"), run.now_s());
      break;
    }
    http::request<http::string_body> req{http::verb::post, "/v1/completions", 11};
    req.set(http::field::host, run.target.host + ":" + std::to_string(run.target.port));
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    if (!run.target.session_header.empty() && !request.session.empty())
      req.set(run.target.session_header, request.session);
    req.keep_alive(false);
    req.body() = std::move(body);
    req.prepare_payload();
    s.submit_s = run.now_s();
    if (run.progress) ++run.progress->sent;
    co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      fail(s, err_text("write"), run.now_s());
      break;
    }
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    co_await http::async_read_header(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      fail(s, err_text("read header"), run.now_s());
      break;
    }
    const unsigned status = parser.get().result_int();
    SseState sse(s, run.progress);
    std::string raw;  // the body of a non-200 response
    char chunk[16384];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      co_await http::async_read_some(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) break;
      const size_t got = sizeof chunk - parser.get().body().size;
      if (got == 0) continue;
      if (status == 200) {
        sse.feed(std::string_view(chunk, got), run.now_s());
      } else if (raw.size() < 65536) {
        raw.append(chunk, got);
      }
    }
    const double end = run.now_s();
    if (ec) {
      fail(s, err_text("read body"), end);
      break;
    }
    if (status != 200) {
      fail(s, "HTTP " + std::to_string(status) + ": " + error_message(raw), end);
      break;
    }
    if (!sse.error().empty()) {
      fail(s, sse.error(), end);
      break;
    }
    if (!sse.done() || !sse.got_usage()) {
      fail(s, !sse.done() ? "stream ended without [DONE]" : "stream carried no usage", end);
      break;
    }
    s.end_s = end;
    s.ok = true;
    s.error.clear();
    settle_sample(request, s);
  } while (false);
}

// One request on its own connection. Whatever happens, the request ends with an outcome and frees its
// slot (an exception escaping a detached coroutine would otherwise lose both and stall the run).
asio::awaitable<void> one_request(Run& run, size_t index, const LoadRequest& request) {
  beast::tcp_stream stream(run.io);
  stream.expires_at(run.deadline);
  try {
    co_await exchange(run, index, request, stream);
  } catch (const std::exception& e) {
    fail(run.samples[index], std::string("load driver: ") + e.what(), run.now_s());
  }
  error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream.close();
  run.finished(index);
  --run.active;
  run.slot_freed.cancel();
}

// Sends the requests in order of their scheduled time, waiting for a free connection slot.
asio::awaitable<void> dispatch(Run& run, const std::vector<LoadRequest>& requests) {
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Negative and NaN send times count as 0 (NaN would also break the sort).
  auto at = [&](size_t i) { return requests[i].at_s > 0 ? requests[i].at_s : 0.0; };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return at(a) < at(b); });
  asio::steady_timer timer(run.io);
  error_code ec;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    // Compared in seconds first: a far-future at_s would overflow the clock's integer duration.
    if (at(i) >= run.limit_s) {
      fail(run.samples[i], kTimeLimit, run.now_s());
      run.finished(i);
      continue;
    }
    timer.expires_at(run.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(at(i))));
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    while (run.active >= run.max_connections && Clock::now() < run.deadline) {
      run.slot_freed.expires_at(run.deadline);
      co_await run.slot_freed.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (Clock::now() >= run.deadline) {
      fail(run.samples[i], kTimeLimit, run.now_s());
      run.finished(i);
      continue;
    }
    ++run.active;
    asio::co_spawn(run.io, one_request(run, i, requests[i]), asio::detached);
  }
}

}  // namespace

Result<std::vector<RequestSample>> run_http_load(const HttpTarget& target, const std::vector<LoadRequest>& requests,
                                                 int max_connections, double time_limit_s, LoadProgress* progress) {
  if (!is_loopback(target.host))
    return Status::error("load target host '" + target.host +
                         "' refused: only loopback targets (127.0.0.1, localhost, ::1) may be driven");
  if (target.port <= 0 || target.port > 65535)
    return Status::error("load target port " + std::to_string(target.port) + " is outside 1..65535");
  if (max_connections < 1)
    return Status::error("max_connections must be at least 1, got " + std::to_string(max_connections));
  if (!(time_limit_s > 0) || !std::isfinite(time_limit_s))
    return Status::error("time_limit_s must be positive and finite, got " + std::to_string(time_limit_s));
  if (Status st = check_session_header(target.session_header); !st.ok()) return st;

  Run run;
  run.target = target;
  run.max_connections = max_connections;
  run.progress = progress;
  run.samples.resize(requests.size());
  for (RequestSample& s : run.samples) s.error = kTimeLimit;  // overwritten by every request that ends
  {
    tcp::resolver resolver(run.io);
    error_code ec;
    run.endpoints = resolver.resolve(target.host, std::to_string(target.port), ec);
    if (ec) return Status::error(StatusCode::Unavailable, "cannot resolve '" + target.host + "': " + ec.message());
    for (const auto& e : run.endpoints) {
      if (!e.endpoint().address().is_loopback())
        return Status::error("load target '" + target.host + "' resolves to non-loopback " +
                             e.endpoint().address().to_string());
    }
  }
  run.start = Clock::now();
  run.limit_s = std::min(time_limit_s, kMaxLimitS);
  run.deadline = run.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(run.limit_s));
  // An exception in the dispatcher ends the run with an error instead of vanishing in a detached coroutine.
  asio::co_spawn(run.io, dispatch(run, requests), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  try {
    run.io.run();
  } catch (const std::exception& e) {
    return Status::error(StatusCode::Internal, std::string("load driver failed: ") + e.what());
  }
  return std::move(run.samples);
}

}  // namespace pagoda::bench
