// pagodad: load the model, start the engine thread, serve gRPC and HTTP; on SIGTERM/SIGINT drain
// (health NOT_SERVING, new requests refused with 503 / UNAVAILABLE, running streams finish within the
// grace period) and exit 0; a second signal during the drain exits at once with 1.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "engine/spec/draft_model_drafter.h"
#include "server/config.h"
#include "server/grpc_server.h"
#include "server/http_gateway.h"
#include "server/inference_service.h"
#include "server/metrics.h"

using namespace pagoda;

int main(int argc, char** argv) {
  server::ServerConfig config;
  CLI::App app{"pagodad: the Pagoda model-serving daemon (gRPC + OpenAI-compatible HTTP)"};
  server::add_server_flags(app, config);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Signals are taken synchronously by the main thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (Status s = server::load_api_keys(config, app.count("--api-key-file") > 0); !s.ok()) {
    spdlog::error("{}", s.message());
    return 2;
  }
  if (Status s = server::load_tls(config); !s.ok()) {
    spdlog::error("{}", s.message());
    return 2;
  }
  server::fit_connection_limit(config);
  if (Status s = server::check_speculative_flags(config, app.count("--speculative") > 0); !s.ok()) {
    spdlog::error("{}", s.message());
    return 2;
  }
  spdlog::info("loading {}", config.model);
  server::derive_load_options(config);
  const auto& sched = config.engine.scheduler;
  auto loaded = engine::load_model(config.model, config.load);
  if (!loaded.ok()) {
    spdlog::error("{}", loaded.message());
    return 1;
  }
  engine::LoadedModel& model = loaded.value();
  if (Status s = server::finalize_config(config, model.config()); !s.ok()) {
    spdlog::error("{}", s.message());
    return 2;
  }
  spdlog::info("{}", model.config().summary());
  const engine::BackendInfo backend_info = model.backend->info();
  spdlog::info("{}; a decode step reads {} MiB of weights", backend_info.kernels, backend_info.decode_weight_bytes >> 20);
  spdlog::info("config: {}", server::describe_config(config));
  spdlog::info("kv cache: {} blocks of {} tokens, {} ({} MiB)", model.backend->kv_shape().num_blocks,
               model.backend->kv_shape().block_size, engine::kv_dtype_name(model.backend->kv_shape().dtype),
               (model.backend->kv_bytes_per_block() * model.backend->kv_shape().num_blocks) >> 20);
  if (model.backend->kv_shape().num_window_blocks > 0) {
    spdlog::info("kv cache: the sliding-window layers ({}-token window) keep their own pool of {} blocks ({} MiB)",
                 model.backend->kv_window(), model.backend->kv_shape().num_window_blocks,
                 (model.backend->kv_bytes_per_window_block() * model.backend->kv_shape().num_window_blocks) >> 20);
  }

  scheduler::EngineLoop loop(*model.backend, *model.tokenizer, config.engine);
  if (!config.draft_model.empty()) {
    // The draft's KV pool holds as many tokens as the target's, in blocks of the same size.
    engine::LoadOptions draft_load = config.load;
    draft_load.kv_memory_bytes = 0;
    draft_load.kv_memory_fraction = 0.0;
    draft_load.kv_tokens = model.backend->kv_shape().num_blocks * model.backend->kv_shape().block_size;
    draft_load.block_size = model.backend->kv_shape().block_size;
    draft_load.backend.max_step_logits = sched.max_num_seqs;
    draft_load.window_pool_seqs = 0;  // the drafter addresses its pool with one table per sequence
    spdlog::info("loading draft model {}", config.draft_model);
    auto drafter = engine::DraftModelDrafter::load(config.draft_model, draft_load, *model.tokenizer,
                                                   model.config().vocab_size, sched.max_num_batched_tokens);
    if (!drafter.ok()) {
      spdlog::error("{}", drafter.message());
      return 1;
    }
    const engine::LoadedModel& draft = drafter.value()->model();
    spdlog::info("draft model: {}; kv cache: {} blocks ({} MiB)", draft.config().summary(),
                 draft.backend->kv_shape().num_blocks,
                 (draft.backend->kv_bytes_per_block() * draft.backend->kv_shape().num_blocks) >> 20);
    loop.set_drafter(std::move(drafter.value()));
  }
  server::MetricsRegistry metrics;
  server::InferenceService service(model, loop, metrics, config.model_id, loop.max_model_len());
  server::GrpcServer grpc(service, config.grpc);
  server::HttpGateway http(service, config.http);
  if (Status s = grpc.start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  if (Status s = http.start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  spdlog::info("grpc listening on {}:{}", config.grpc.host, grpc.port());
  spdlog::info("http listening on {}:{}", config.http.host, http.port());
  service.set_serving(true);
  grpc.set_serving(true);

  // A control thread waits for the signal and drains; the main thread, which loaded the model, runs
  // the engine loop (see EngineLoop::run for why the engine must stay on this thread).
  std::thread control([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    // A second signal while draining means "now": exit at once, streams cut (an operator's second
    // Ctrl-C, or an orchestrator that will not wait out the grace period).
    std::thread([&signals] {
      int again = 0;
      sigwait(&signals, &again);
      spdlog::warn("second {} received: exiting without finishing the drain", again == SIGTERM ? "SIGTERM" : "SIGINT");
      spdlog::default_logger()->flush();
      std::_Exit(1);
    }).detach();
    spdlog::info("{} received: draining ({} requests in flight, grace period {} s)",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT", service.in_flight(), config.grace_period_s);
    service.set_serving(false);
    grpc.set_serving(false);
    http.begin_drain();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(config.grace_period_s);
    while (service.in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto left = [&] {
      return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()),
                      std::chrono::milliseconds(0));
    };
    grpc.shutdown(left());
    http.shutdown(left());  // what is left of the same grace period, not a second one
    loop.request_stop(/*drain=*/false);
  });
  loop.run();
  control.join();
  spdlog::info("stopped");
  return 0;
}
