#include "server/config.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <map>

namespace pagoda::server {

void add_server_flags(CLI::App& app, ServerConfig& c) {
  app.set_config();  // --config FILE (TOML/INI) with the same keys as the flags
  auto env = [](CLI::Option* o, const char* name) { return o->envname(std::string("PAGODA_") + name); };
  env(app.add_option("--model", c.model, "GGUF model file")->capture_default_str(), "MODEL");
  env(app.add_option("--model-id", c.model_id, "served model name (default: file name without .gguf)"), "MODEL_ID");
  env(app.add_option("--host", c.grpc.host, "address both front ends bind to")->capture_default_str(), "HOST");
  env(app.add_option("--grpc-port", c.grpc.port, "gRPC port (0 = any free port)")->check(CLI::Range(0, 65535))->capture_default_str(), "GRPC_PORT");
  env(app.add_option("--http-port", c.http.port, "HTTP port (0 = any free port)")->check(CLI::Range(0, 65535))->capture_default_str(), "HTTP_PORT");
  env(app.add_option("--threads", c.load.backend.cpu.num_threads, "compute threads (0 = all cores)")->check(CLI::NonNegativeNumber)->capture_default_str(), "THREADS");
  static const std::map<std::string, engine::PrefillMatmul> matmuls = {{"int8", engine::PrefillMatmul::Int8},
                                                                       {"bf16", engine::PrefillMatmul::OnednnBf16}};
  env(app.add_option("--prefill-matmul", c.load.backend.cpu.prefill_matmul,
                     "int8: the GGUF blocks, bit-identical to llama.cpp whatever the batching (default); bf16: oneDNN "
                     "bf16 for steps of 16+ tokens (prompts, batched decode), faster but not bit-identical, and a "
                     "sequence's numbers then depend on its step's size")
          ->transform(CLI::CheckedTransformer(matmuls, CLI::ignore_case)),
      "PREFILL_MATMUL");
  static const std::map<std::string, engine::BackendKind> backends = {
      {"auto", engine::BackendKind::Auto}, {"cpu", engine::BackendKind::Cpu}, {"cuda", engine::BackendKind::Cuda}};
  env(app.add_option("--backend", c.load.backend.kind, "auto (cuda when a GPU is visible, else cpu), cpu or cuda")
          ->transform(CLI::CheckedTransformer(backends, CLI::ignore_case))
          ->capture_default_str(),
      "BACKEND");
  env(app.add_option("--device", c.load.backend.device, "cuda: which GPU")->check(CLI::NonNegativeNumber)->capture_default_str(), "DEVICE");
  env(app.add_option("--cuda-graph-max-tokens", c.load.backend.cuda_graph_max_tokens, "cuda: steps of at most this many tokens (decode) replay CUDA graphs; 0 = none")->check(CLI::Range(0, 4096))->capture_default_str(), "CUDA_GRAPH_MAX_TOKENS");
  static const std::map<std::string, bool> decode_kernels = {{"cublas", false}, {"gemv", true}};
  env(app.add_option("--cuda-decode-kernel", c.load.backend.cuda_decode_gemv, "cuda: cublas (default: a sequence's logits do not depend on what shares its step) or gemv (a bandwidth-bound kernel for steps of <= 8 rows: faster decode, batch-dependent last bits)")->transform(CLI::CheckedTransformer(decode_kernels, CLI::ignore_case)), "CUDA_DECODE_KERNEL");
  env(app.add_option("--http-threads", c.http.threads, "HTTP I/O threads")->check(CLI::Range(1, 64))->capture_default_str(), "HTTP_THREADS");
  env(app.add_option("--kv-tokens", c.load.kv_tokens, "KV-cache capacity in tokens")->check(CLI::Range(16, 1 << 26))->capture_default_str(), "KV_TOKENS");
  env(app.add_option("--kv-memory-mib", c.kv_memory_mib, "KV-cache memory in MiB (overrides --kv-tokens)")->check(CLI::NonNegativeNumber), "KV_MEMORY_MIB");
  env(app.add_option("--kv-memory-fraction", c.load.kv_memory_fraction, "KV-cache memory as a fraction of the backend's free memory (host RAM for cpu, GPU memory for cuda)")->check(CLI::Range(0.0, 0.95)), "KV_MEMORY_FRACTION");
  env(app.add_option("--max-num-seqs", c.engine.scheduler.max_num_seqs, "sequences per engine step")->check(CLI::Range(1, 4096))->capture_default_str(), "MAX_NUM_SEQS");
  env(app.add_option("--max-num-batched-tokens", c.engine.scheduler.max_num_batched_tokens, "tokens per engine step")->check(CLI::Range(16, 1 << 20))->capture_default_str(), "MAX_NUM_BATCHED_TOKENS");
  env(app.add_option("--max-model-len", c.engine.scheduler.max_model_len, "prompt + max_tokens limit (capped at the model's context)")->check(CLI::Range(16, 1 << 24))->capture_default_str(), "MAX_MODEL_LEN");
  env(app.add_option("--max-queue", c.engine.scheduler.max_waiting, "requests waiting before new ones get 429 / RESOURCE_EXHAUSTED")->check(CLI::Range(1, 1 << 20))->capture_default_str(), "MAX_QUEUE");
  app.add_flag("!--no-chunked-prefill", c.engine.scheduler.chunked_prefill, "run every prompt in one step");
  static const std::map<std::string, engine::SpeculativeMode> spec_modes = {{"off", engine::SpeculativeMode::Off},
                                                                            {"ngram", engine::SpeculativeMode::Ngram},
                                                                            {"suffix", engine::SpeculativeMode::Suffix},
                                                                            {"draft", engine::SpeculativeMode::Draft},
                                                                            {"auto", engine::SpeculativeMode::Auto}};
  env(app.add_option("--speculative", c.engine.scheduler.speculative.mode,
                     "speculative decoding, lossless (outputs never change): off; ngram (prompt lookup: drafts copied "
                     "from the prompt and output, verified in the same step); suffix (prompt lookup plus a cache of "
                     "recent outputs shared by all requests: single-tenant servers); draft (a smaller model, "
                     "--draft-model); auto (prompt lookup, with draft lengths chosen per step from the measured step "
                     "cost and live acceptance, none where they do not pay). A request's `prediction` is always "
                     "drafted from, by prompt lookup")
          ->transform(CLI::CheckedTransformer(spec_modes, CLI::ignore_case))
          ->capture_default_str(),
      "SPECULATIVE");
  env(app.add_option("--draft-model", c.draft_model,
                     "GGUF of a draft model with the model's vocabulary; implies --speculative draft"),
      "DRAFT_MODEL");
  env(app.add_option("--suffix-cache-tokens", c.engine.scheduler.speculative.suffix_cache_tokens,
                     "suffix drafting: tokens of recent outputs kept to draft from (0: none; ~200 bytes each at most)")
          ->check(CLI::Range(int64_t{0}, int64_t{1} << 24))
          ->capture_default_str(),
      "SUFFIX_CACHE_TOKENS");
  env(app.add_option("--num-speculative-tokens", c.engine.scheduler.speculative.num_tokens,
                     "tokens drafted per sequence and step, at most")
          ->check(CLI::Range(1, 32))
          ->capture_default_str(),
      "NUM_SPECULATIVE_TOKENS");
  env(app.add_option("--api-key", c.api_keys,
                     "a key clients must send (HTTP Authorization: Bearer <key>, gRPC authorization metadata); "
                     "repeatable; none: no authentication")
          ->expected(1)
          ->allow_extra_args(false)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll),
      "API_KEY");
  env(app.add_option("--api-key-file", c.api_key_file, "a file of keys, one per line ('#' comments)"),
      "API_KEY_FILE");
  env(app.add_option("--open-paths", c.http.open_paths,
                     "HTTP paths served without a key when keys are set (comma separated; add /metrics to let "
                     "Prometheus scrape without one)")
          ->delimiter(',')
          ->capture_default_str(),
      "OPEN_PATHS");
  env(app.add_option("--tls-cert", c.tls_cert,
                     "PEM certificate chain (server certificate first): both ports then speak TLS 1.2+ only; "
                     "needs --tls-key"),
      "TLS_CERT");
  env(app.add_option("--tls-key", c.tls_key, "PEM private key of --tls-cert"), "TLS_KEY");
  app.add_flag("!--no-prefix-caching", c.engine.prefix_caching, "do not reuse KV blocks of identical prompt prefixes");
  env(app.add_option("--max-body-bytes", c.http.max_body_bytes, "largest HTTP request body")->check(CLI::Range(1024, 1 << 30))->capture_default_str(), "MAX_BODY_BYTES");
  env(app.add_option("--header-timeout-s", c.http.header_timeout_s, "seconds to receive a request")->check(CLI::Range(1, 3600))->capture_default_str(), "HEADER_TIMEOUT_S");
  env(app.add_option("--idle-timeout-s", c.http.idle_timeout_s, "seconds a keep-alive connection may idle")->check(CLI::Range(1, 3600))->capture_default_str(), "IDLE_TIMEOUT_S");
  env(app.add_option("--max-unsent-bytes", c.http.max_unsent_bytes,
                     "bytes of a stream waiting for a client that does not read it (HTTP and gRPC); past them "
                     "the request is cancelled and the stream ends with an error")
          ->check(CLI::Range(size_t{4096}, size_t{1} << 30))
          ->capture_default_str(),
      "MAX_UNSENT_BYTES");
  env(app.add_option("--http-send-buffer-bytes", c.http.send_buffer_bytes,
                     "SO_SNDBUF of HTTP connections (0: the kernel's autotuning, up to 4 MiB a connection)")
          ->check(CLI::Range(0, 1 << 26))
          ->capture_default_str(),
      "HTTP_SEND_BUFFER_BYTES");
  env(app.add_option("--max-connections", c.http.max_connections,
                     "open HTTP connections at most; more get 503 and are closed")
          ->check(CLI::Range(1, 1 << 20))
          ->capture_default_str(),
      "MAX_CONNECTIONS");
  env(app.add_option("--max-streams-per-connection", c.grpc.max_concurrent_streams,
                     "gRPC calls one connection may have open at once (HTTP/1.1 connections carry one)")
          ->check(CLI::Range(1, 65536))
          ->capture_default_str(),
      "MAX_STREAMS_PER_CONNECTION");
  env(app.add_option("--grace-period-s", c.grace_period_s, "seconds running requests get to finish on SIGTERM")->check(CLI::Range(0, 3600))->capture_default_str(), "GRACE_PERIOD_S");
  env(app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error")->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))->capture_default_str(), "LOG_LEVEL");
}

Status check_speculative_flags(ServerConfig& c, bool speculative_given) {
  engine::SpeculativeConfig& spec = c.engine.scheduler.speculative;
  if (!c.draft_model.empty()) {
    if (!speculative_given) spec.mode = engine::SpeculativeMode::Draft;  // --draft-model alone
    if (spec.mode != engine::SpeculativeMode::Draft) {
      return Status::error(fmt::format("--draft-model needs --speculative draft, not {}",
                                       engine::speculative_mode_name(spec.mode)));
    }
  } else if (spec.mode == engine::SpeculativeMode::Draft) {
    return Status::error("--speculative draft needs --draft-model");
  }
  return engine::check_speculative_config(spec);
}

Status load_api_keys(ServerConfig& c, bool file_given) {
  for (const std::string& p : c.http.open_paths) {
    if (p.empty() || p.front() != '/') return Status::error(fmt::format("--open-paths: '{}' is not a path", p));
  }
  auto keys = ApiKeys::load(c.api_keys, c.api_key_file, file_given);
  if (!keys.ok()) return keys.status();
  if (!keys.value()->enabled() && c.grpc.host != "127.0.0.1" && c.grpc.host != "localhost" && c.grpc.host != "::1") {
    spdlog::warn("listening on {} without API keys: anyone who can reach the ports can use them (--api-key-file)",
                 c.grpc.host);
  }
  c.http.api_keys = keys.value();
  c.grpc.api_keys = keys.value();
  return {};
}

void fit_connection_limit(ServerConfig& c) {
  // Each connection is a descriptor: raise the soft limit to the hard one, and keep --max-connections
  // below it with room for gRPC's connections, the model files and logs, so the limit answers 503
  // before accept() starts failing with EMFILE.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) return;
  if (files.rlim_cur < files.rlim_max) {
    rlimit raised = files;
    raised.rlim_cur = files.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) files = raised;
  }
  constexpr rlim_t kReserved = 256;
  const rlim_t room = files.rlim_cur > 2 * kReserved ? files.rlim_cur - kReserved : files.rlim_cur / 2;
  if (static_cast<rlim_t>(c.http.max_connections) > room) {
    spdlog::warn("--max-connections {} is above what the open-file limit ({}) leaves room for: using {}",
                 c.http.max_connections, static_cast<uint64_t>(files.rlim_cur), static_cast<uint64_t>(room));
    c.http.max_connections = static_cast<int>(room);
  }
}

Status load_tls(ServerConfig& c) {
  auto tls = load_tls_credentials(c.tls_cert, c.tls_key);
  if (!tls.ok()) return tls.status();
  c.http.tls = tls.value();
  c.grpc.tls = tls.value();
  return {};
}

void derive_load_options(ServerConfig& c) {
  if (c.kv_memory_mib > 0) c.load.kv_memory_bytes = static_cast<int64_t>(c.kv_memory_mib * 1024 * 1024);
  const scheduler::SchedulerConfig& sched = c.engine.scheduler;
  // The backend sets aside step memory for the scheduler's largest step before sizing the KV pool.
  c.load.backend.max_step_tokens = sched.max_num_batched_tokens;
  // Logits rows: one per sequence, plus one per drafted token (a request may ask for drafts even where
  // the server drafts none, up to --num-speculative-tokens each).
  c.load.backend.max_step_logits =
      std::min(sched.max_num_batched_tokens, sched.max_num_seqs * (1 + sched.speculative.num_tokens));
  c.load.max_sequence_length = sched.max_model_len;
  c.load.window_pool_seqs = sched.max_num_seqs;  // sliding-window layers: their own pool, for every sequence's window
}

Status finalize_config(ServerConfig& c, const engine::ModelConfig& model) {
  c.http.host = c.grpc.host;
  c.grpc.max_unsent_bytes = c.http.max_unsent_bytes;
  if (c.model_id.empty()) c.model_id = std::filesystem::path(c.model).stem().string();
  if (c.engine.scheduler.max_model_len > model.context_length) c.engine.scheduler.max_model_len = model.context_length;
  if (Status s = engine::check_speculative_config(c.engine.scheduler.speculative); !s.ok()) return s;
  if (c.grpc.port != 0 && c.grpc.port == c.http.port) {
    return Status::error(fmt::format("--grpc-port and --http-port are both {}", c.grpc.port));
  }
  return {};
}

std::string describe_config(const ServerConfig& c) {
  const auto& s = c.engine.scheduler;
  std::string open_paths;
  for (const std::string& p : c.http.open_paths) open_paths += (open_paths.empty() ? "" : ",") + p;
  return fmt::format(
      "model {} (served as '{}'); grpc {}:{}, http {}:{} ({} threads); backend {} (device {}); compute threads {}; "
      "matmul {}; kv {}; "
      "max_num_seqs {}, max_num_batched_tokens {}, max_model_len {}, max_queue {}, chunked prefill {}, prefix caching {}; "
      "speculative {}{} (up to {} tokens); {}; "
      "{}; max connections {}, max body {} bytes, header timeout {} s, idle timeout {} s, unsent stream bytes {}, gRPC streams per "
      "connection {}, grace period {} s",
      c.model, c.model_id, c.grpc.host, c.grpc.port, c.http.host, c.http.port, c.http.threads,
      engine::backend_kind_name(c.load.backend.kind), c.load.backend.device,
      c.load.backend.cpu.num_threads == 0 ? std::string("all cores") : std::to_string(c.load.backend.cpu.num_threads),
      c.load.backend.cpu.prefill_matmul == engine::PrefillMatmul::OnednnBf16 ? "bf16 for 16+ token steps"
                                                                             : "exact (int8, or F16/F32 as stored)",
      c.load.kv_memory_bytes > 0 ? fmt::format("{} MiB", c.load.kv_memory_bytes >> 20)
      : c.load.kv_memory_fraction > 0 ? fmt::format("{:.0f}% of the backend's free memory", c.load.kv_memory_fraction * 100)
                                     : fmt::format("{} tokens", c.load.kv_tokens),
      s.max_num_seqs, s.max_num_batched_tokens, s.max_model_len, s.max_waiting, s.chunked_prefill ? "on" : "off",
      c.engine.prefix_caching ? "on" : "off", engine::speculative_mode_name(s.speculative.mode),
      c.draft_model.empty() ? std::string() : fmt::format(" from {}", c.draft_model), s.speculative.num_tokens,
      c.http.api_keys && c.http.api_keys->enabled()
          ? fmt::format("{} API key(s), open HTTP paths {}", c.http.api_keys->size(), open_paths)
          : std::string("no API keys"),
      c.http.tls ? fmt::format("TLS from {}", c.tls_cert) : std::string("no TLS"), c.http.max_connections,
      c.http.max_body_bytes,
      c.http.header_timeout_s, c.http.idle_timeout_s, c.http.max_unsent_bytes, c.grpc.max_concurrent_streams,
      c.grace_period_s);
}

}  // namespace pagoda::server
