#pragma once
// pagodad's configuration: every limit is a flag with a safe default, printed at start-up
// (DESIGN.md conventions). Environment variables PAGODA_<FLAG> (upper case, '-' -> '_') set defaults.
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "engine/loaded_model.h"
#include "scheduler/engine_loop.h"
#include "server/grpc_server.h"
#include "server/http_gateway.h"

namespace pagoda::server {

struct ServerConfig {
  ServerConfig() {
    load.kv_tokens = 16384;  // a server holds many sequences: 16k tokens (360 MiB for SmolLM2)
    load.backend.kind = engine::BackendKind::Auto;
    // Lossless and cost-aware: drafts run only where the measured step cost says they pay.
    engine.scheduler.speculative.mode = engine::SpeculativeMode::Auto;
    engine.profile_step_costs = true;  // the start-up log prints it; the speed-up metric needs it
  }
  std::string model = engine::default_model_path();
  std::string model_id;  // served name; default: the file name without .gguf
  std::string draft_model;  // --speculative draft: the drafting GGUF (same vocabulary as the model)
  std::vector<std::string> api_keys;  // --api-key (never logged)
  std::string api_key_file;           // --api-key-file: one key per line
  std::string tls_cert, tls_key;      // --tls-cert / --tls-key: PEM files, TLS on both ports
  engine::LoadOptions load;
  scheduler::EngineLoopConfig engine;
  GrpcServerOptions grpc;
  HttpGatewayOptions http;
  double kv_memory_mib = 0;
  int grace_period_s = 30;
  std::string log_level = "info";
};

// Registers every flag on `app`, bound to `config`.
void add_server_flags(CLI::App& app, ServerConfig& config);
// The drafter flags, before any model loads: --draft-model alone means --speculative draft (with
// another --speculative given, an error), draft needs --draft-model, and the values' ranges.
Status check_speculative_flags(ServerConfig& config, bool speculative_given);
// Reads the API keys (--api-key, --api-key-file) into both front ends' options; errors name the flag.
Status load_api_keys(ServerConfig& config, bool file_given);  // file_given: --api-key-file was set
// Reads --tls-cert / --tls-key into both front ends' options (checked: PEM, key matches certificate).
Status load_tls(ServerConfig& config);
// Raises the open-file soft limit to the hard one and keeps --max-connections under it (a warning).
void fit_connection_limit(ServerConfig& config);
// The model's load options that follow from the other flags (--kv-memory-mib, the scheduler's limits):
// before the model loads.
void derive_load_options(ServerConfig& config);
// Fills derived values (model id, context limits) after the model loaded; errors name the flag.
Status finalize_config(ServerConfig& config, const engine::ModelConfig& model);
// One line per setting, for the start-up log.
std::string describe_config(const ServerConfig& config);

}  // namespace pagoda::server
