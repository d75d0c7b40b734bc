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

namespace pagoda::server {

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  int port = 50051;                       // 0 = any free port (see port())
  int max_message_bytes = 4 << 20;
  // API keys (server/api_keys.h): null or none set = open; else every pagoda.v1.Generation call needs
  // `authorization: Bearer <key>` metadata (health and reflection stay open).
  std::shared_ptr<const ApiKeys> api_keys;
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
