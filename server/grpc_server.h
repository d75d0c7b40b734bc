#pragma once
// The gRPC front end: pagoda.v1.Generation on the callback (reactor) API — no thread per stream —
// plus grpc.health.v1.Health and server reflection. Maps wire messages to InferenceService calls and
// Status codes to gRPC codes; a client cancel or deadline cancels the request in the engine.
#include <chrono>
#include <memory>
#include <string>

#include "engine/status.h"
#include "server/api_keys.h"
#include "server/inference_service.h"
#include "server/tls.h"

namespace pagoda::server {

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  int port = 50051;                       // 0 = any free port (see port())
  int max_message_bytes = 4 << 20;
  // API keys (server/api_keys.h): null or none set = open; else every pagoda.v1.Generation call needs
  // `authorization: Bearer <key>` metadata (health and reflection stay open).
  std::shared_ptr<const ApiKeys> api_keys;
  std::shared_ptr<const TlsCredentials> tls;  // null: plaintext (insecure credentials)
  // A Generate stream's messages produced but not yet written to the client: past this many bytes the
  // client is not reading, so its request is cancelled and the call ends with RESOURCE_EXHAUSTED.
  size_t max_unsent_bytes = 1 << 20;
  // HTTP/2 streams (calls) one connection may have open at once.
  int max_concurrent_streams = 256;
};

class GrpcServer {
 public:
  GrpcServer(InferenceService& service, const GrpcServerOptions& options);
  ~GrpcServer();
  Status start();   // binds and serves; the error names the address
  int port() const;  // the bound port
  // Health: SERVING / NOT_SERVING for "" and "pagoda.v1.Generation".
  void set_serving(bool serving);
  // Stops accepting calls; running streams may finish until the deadline, then are cancelled.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagoda::server
