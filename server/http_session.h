#pragma once
// One HTTP connection of the gateway (http_gateway.cpp owns the acceptor and threads): reads requests
// with header / idle timeouts and the body limit, routes them, answers plain endpoints, and runs
// generation requests (JSON at the end, or SSE as tokens arrive). Everything a session does runs on
// its own strand; engine-thread events are posted there.
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "server/http_gateway.h"
#include "server/inference_service.h"

namespace boost::asio::ssl {
class context;
}

namespace pagoda::server {

// Shared by the engine thread's sinks and the gateway: once closed (at shutdown) sinks post nothing,
// so no handler reaches an io_context being torn down.
struct SinkGate {
  std::mutex mu;
  bool open = true;
};

class HttpSession {
 public:
  virtual ~HttpSession() = default;
  virtual void start() = 0;
  // Cancels a running request and closes the connection (from any thread).
  virtual void stop() = 0;
};

// What the gateway shares with its sessions.
struct HttpContext {
  HttpContext(InferenceService& s, const HttpGatewayOptions& o);
  InferenceService& service;
  HttpGatewayOptions opt;
  std::shared_ptr<boost::asio::ssl::context> tls;  // set when the gateway serves TLS (opt.tls)
  Counter* unread_streams_ended = nullptr;          // streams ended for a client that did not read
  int64_t created;  // unix time, for /v1/models
  std::atomic<bool> draining{false};
  std::atomic<int32_t> active{0};  // generations whose response is not fully written
  std::shared_ptr<SinkGate> gate = std::make_shared<SinkGate>();
  // Requests' grammars (constrained decoding) compile here, off the I/O threads and the engine thread:
  // a slow schema delays only its own request. At shutdown the pool is closed (under grammar_mu: no
  // task is posted after that) and joined while the io_context still runs, so every task's
  // continuation reaches a live one; tasks that start while draining answer 503 without compiling.
  boost::asio::thread_pool grammar_pool{2};
  std::mutex grammar_mu;
  bool grammar_closed = false;
  std::mutex sessions_mu;  // live sessions, for shutdown
  std::unordered_map<uint64_t, std::weak_ptr<HttpSession>> sessions;
  uint64_t next_session = 0;
};

// Creates a session for an accepted socket (its executor: a strand) and registers it in the context.
std::shared_ptr<HttpSession> make_http_session(HttpContext& context, boost::asio::ip::tcp::socket socket);

}  // namespace pagoda::server
