#pragma once
// The HTTP front end (Boost.Beast on Boost.Asio, its own port and thread pool): OpenAI-compatible
// POST /v1/completions and /v1/chat/completions (JSON, or Server-Sent Events with stream: true, ending
// in `data: [DONE]`), GET /v1/models, GET /health, GET /ready, GET /metrics (Prometheus text).
// Errors use OpenAI's JSON error shape with the right status: 400 bad JSON / fields / too long,
// 401 missing or wrong API key, 404 unknown route, 405 wrong method, 413 body too large, 429 queue
// full, 503 draining.
// Keep-alive, a body size limit and header/idle timeouts protect the daemon from slow or hostile
// clients. A client that disconnects mid-stream has its request cancelled.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/status.h"
#include "server/api_keys.h"
#include "server/inference_service.h"
#include "server/tls.h"

namespace pagoda::server {

struct HttpGatewayOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0 = any free port (see port())
  int threads = 2;                 // Asio io_context threads
  size_t max_body_bytes = 1 << 20;
  int header_timeout_s = 10;       // to receive a request's headers (and body)
  int idle_timeout_s = 60;         // keep-alive connection idle limit; also how long a write may stall
  // A stream's bytes produced but not yet taken by the client's socket: past this, the client is not
  // reading, so its request is cancelled and the stream ends with an error event (slow consumers
  // cannot hold memory or engine time).
  size_t max_unsent_bytes = 1 << 20;
  // SO_SNDBUF of each connection: 0 keeps the kernel's autotuning (up to net.ipv4.tcp_wmem's maximum,
  // 4 MiB by default, that a client that does not read can fill before max_unsent_bytes applies).
  int send_buffer_bytes = 0;
  // Open connections at most; one more is answered 503 and closed at once (idle ones are closed after
  // idle_timeout_s, silent new ones after header_timeout_s).
  int max_connections = 4096;
  std::shared_ptr<const TlsCredentials> tls;  // null: plain HTTP
  // API keys (server/api_keys.h): null or none set = open; else every path but open_paths needs one.
  std::shared_ptr<const ApiKeys> api_keys;
  std::vector<std::string> open_paths = {"/health", "/ready"};
};

class HttpGateway {
 public:
  HttpGateway(InferenceService& service, const HttpGatewayOptions& options);
  ~HttpGateway();
  Status start();   // binds and serves; the error names the address
  int port() const;  // the bound port
  // Draining: new generation requests get 503, /ready reports not ready; running streams go on.
  void begin_drain();
  // Waits for running requests until the deadline, then closes everything and joins the threads.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagoda::server
