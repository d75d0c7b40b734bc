// `pagoda loadgen WORKLOAD`: BENCH.md's workloads driven over the wire against a running server on this
// machine: Pagoda's gRPC API, or any OpenAI-compatible HTTP endpoint (pagodad, llama.cpp's llama-server).
// Prints the summary, and optionally writes JSON and a markdown table.
#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include "bench/grpc_load_driver.h"
#include "bench/http_load_driver.h"
#include "bench/load_request.h"
#include "bench/memory_bandwidth.h"
#include "bench/progress_printer.h"
#include "bench/single_workload.h"
#include "bench/wire_report.h"
#include "cli/commands.h"
#include "engine/loaded_model.h"

namespace pagoda::cli {

namespace {

struct LoadgenArgs {
  std::string workload;
  std::string host = "127.0.0.1";
  int http_port = 0;
  int grpc_port = 0;
  std::string model;  // "model" field of HTTP requests
  std::string session_header;  // a header / metadata key carrying each request's session (none when empty)
  std::string server = "server";
  std::string tokenizer_model = engine::default_model_path();
  std::string corpus_dir = bench::kFortunesDir;
  bench::WireOptions wire;
  double slo_ttft_ms = 2000;
  double slo_tpot_ms = 200;
  int max_connections = 1024;
  double time_limit_s = 900;
  std::string arrivals = "poisson";
  std::string json_out, markdown_out;
  bool no_progress = false;
  std::string roofline_model;
  int32_t roofline_context = 0;
};

// Bytes one decode step reads on Pagoda's CPU backend (every weight once, plus the KV of `context`
// tokens), and this machine's read bandwidth on the same threads.
Result<bench::Roofline> measure_roofline(const std::string& model_path, int32_t context) {
  engine::LoadOptions lo;
  lo.kv_tokens = 64;
  auto m = engine::load_model(model_path, lo);
  if (!m.ok()) return m.status();
  bench::Roofline r;
  r.bytes_per_token = bench::decode_bytes_per_step(*m.value().backend, context);
  r.bandwidth_bytes_s = bench::measure_read_bandwidth();
  r.tok_s = r.bandwidth_bytes_s / r.bytes_per_token;
  return r;
}

// The mean context of a decode step in a point: mean prompt + half the mean output.
int32_t mean_decode_context(const bench::PointResult& p) {
  int64_t prompt = 0, output = 0, n = 0;
  for (const bench::RequestSample& s : p.samples) {
    if (!s.ok) continue;
    prompt += s.prompt_tokens;
    output += s.output_tokens;
    ++n;
  }
  return n == 0 ? 0 : static_cast<int32_t>((prompt + output / 2) / n);
}

Result<std::vector<bench::RequestSample>> drive(const LoadgenArgs& a, const bench::WirePoint& p,
                                                bench::LoadProgress& progress) {
  const int in_flight = std::min(p.concurrency, a.max_connections);
  if (a.grpc_port > 0) {
    bench::GrpcTarget t;
    t.host = a.host;
    t.port = a.grpc_port;
    t.session_header = a.session_header;
    return bench::run_grpc_load(t, p.requests, in_flight, a.time_limit_s, &progress);
  }
  bench::HttpTarget t;
  t.host = a.host;
  t.port = a.http_port;
  t.model = a.model;
  t.session_header = a.session_header;
  return bench::run_http_load(t, p.requests, in_flight, a.time_limit_s, &progress);
}

// This machine, for the report: CPU model and cores.
nlohmann::json machine() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string cpu = "unknown";
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    cpu = line.substr(line.find(':') + 2);
    break;
  }
  return {{"cpu", cpu}, {"cores", std::thread::hardware_concurrency()}};
}

// How the run was made: every option that shapes it, the machine and the time (BENCH.md Reporting).
nlohmann::json run_context(const LoadgenArgs& a) {
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return {{"date", date},
          {"machine", machine()},
          {"options",
           {{"workload", a.workload},
            {"seed", a.wire.seed},
            {"requests", a.wire.requests},
            {"max_tokens", a.wire.max_tokens},
            {"prompt_tokens", a.wire.prompt_tokens},
            {"rates", a.wire.rates},
            {"levels", a.wire.levels},
            {"sessions", a.wire.sessions},
            {"session_header", a.session_header},
            {"arrivals", a.arrivals},
            {"max_connections", a.max_connections},
            {"time_limit_s_per_point", a.time_limit_s},
            {"tokenizer_model", a.tokenizer_model},
            {"prompt_text", "Debian package 'fortunes': " + a.corpus_dir}}}};
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.close();
  if (!f) std::fprintf(stderr, "error: cannot write %s\n", path.c_str());
  return static_cast<bool>(f);
}

int run_loadgen(const LoadgenArgs& a) {
  if ((a.http_port > 0) == (a.grpc_port > 0)) {
    std::fprintf(stderr, "error: give exactly one of --http-port and --grpc-port\n");
    return 2;
  }
  auto tok = engine::load_tokenizer(a.tokenizer_model);
  if (!tok.ok()) {
    std::fprintf(stderr, "error: tokenizer: %s\n", tok.message().c_str());
    return 1;
  }
  auto text = bench::load_fortunes_text(a.corpus_dir);
  if (!text.ok()) {
    std::fprintf(stderr, "error: %s\n", text.message().c_str());
    return 1;
  }
  auto corpus = bench::PromptCorpus::build(text.value(), *tok.value());
  if (!corpus.ok()) {
    std::fprintf(stderr, "error: %s\n", corpus.message().c_str());
    return 1;
  }
  bench::WireOptions wire = a.wire;
  wire.constant_arrivals = a.arrivals == "constant";
  auto workload = bench::make_wire_workload(a.workload, corpus.value(), wire);
  if (!workload.ok()) {
    std::fprintf(stderr, "error: %s\n", workload.message().c_str());
    return 2;
  }
  for (const bench::WirePoint& p : workload.value().points) {
    if (p.rate == 0 && p.concurrency > a.max_connections) {
      std::fprintf(stderr, "error: %s needs %d requests in flight, more than --max-connections %d\n", p.label.c_str(),
                   p.concurrency, a.max_connections);
      return 2;
    }
  }

  bench::WireRun run;
  run.server = a.server;
  run.target = a.grpc_port > 0 ? fmt::format("grpc://{}:{}", a.host, a.grpc_port)
                               : fmt::format("http://{}:{}", a.host, a.http_port);
  run.workload = std::move(workload.value());
  run.slo = {a.slo_ttft_ms / 1e3, a.slo_tpot_ms / 1e3};
  run.context = run_context(a);
  const bool progress_bar = !a.no_progress && isatty(STDERR_FILENO);
  size_t errors = 0;
  for (const bench::WirePoint& p : run.workload.points) {
    bench::LoadProgress progress;
    std::optional<Result<std::vector<bench::RequestSample>>> samples;
    {
      bench::ProgressPrinter bar(progress, p.requests.size(), run.workload.name + " " + p.label, progress_bar);
      samples.emplace(drive(a, p, progress));
    }
    if (!samples->ok()) {
      std::fprintf(stderr, "error: %s\n", samples->message().c_str());
      return 1;
    }
    bench::PointResult r{p.label, p.rate, p.concurrency, std::move(samples->value()), {}, {}};
    r.summary = bench::summarize_run(r.samples, run.slo);
    r.figures = bench::point_figures(r.samples);
    size_t shown = 0;
    for (size_t i = 0; i < r.samples.size() && shown < 5; ++i) {
      if (r.samples[i].ok) continue;
      std::fprintf(stderr, "%s: request %zu failed: %s\n", p.label.c_str(), i, r.samples[i].error.c_str());
      ++shown;
    }
    errors += r.summary.errors;
    run.points.push_back(std::move(r));
  }
  if (!a.roofline_model.empty()) {
    auto roof = measure_roofline(a.roofline_model,
                                 a.roofline_context > 0 ? a.roofline_context : mean_decode_context(run.points[0]));
    if (!roof.ok()) {
      std::fprintf(stderr, "error: roofline: %s\n", roof.message().c_str());
      return 1;
    }
    run.has_roofline = true;
    run.roofline = roof.value();
  }

  std::fputs(bench::wire_run_text(run).c_str(), stdout);
  if (!a.json_out.empty() && !write_file(a.json_out, bench::wire_run_json(run).dump(2) + "\n")) return 1;
  if (!a.markdown_out.empty() && !write_file(a.markdown_out, bench::wire_run_markdown(run))) return 1;
  return errors == 0 ? 0 : 1;
}

}  // namespace

Runner add_loadgen_command(CLI::App& app) {
  auto a = std::make_shared<LoadgenArgs>();
  CLI::App* cmd = app.add_subcommand(
      "loadgen", "run a BENCH.md workload against a server on this machine over gRPC or OpenAI-compatible HTTP");
  cmd->add_option("workload", a->workload, "single, mixed-prefill, chat, concurrency, shared-prefix or copy")
      ->required()
      ->check(CLI::IsMember(bench::wire_workload_names()));
  cmd->add_option("--host", a->host, "127.0.0.1, localhost or ::1 (loopback only)")->capture_default_str();
  cmd->add_option("--http-port", a->http_port, "drive this OpenAI-compatible HTTP port")->check(CLI::Range(1, 65535));
  cmd->add_option("--grpc-port", a->grpc_port, "drive Pagoda's gRPC API on this port")->check(CLI::Range(1, 65535));
  cmd->add_option("--model", a->model, "\"model\" to send over HTTP (omitted when empty)");
  cmd->add_option("--server", a->server, "a label for the server in the report (pagoda, llama.cpp)")
      ->capture_default_str();
  cmd->add_option("--tokenizer-model", a->tokenizer_model, "GGUF whose tokenizer measures prompt lengths")
      ->capture_default_str();
  cmd->add_option("--corpus-dir", a->corpus_dir, "the Debian package 'fortunes' data folder")->capture_default_str();
  cmd->add_option("--seed", a->wire.seed)->capture_default_str();
  cmd->add_option("--requests", a->wire.requests, "requests per point (default: the workload's)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--max-tokens", a->wire.max_tokens, "output tokens per request (default: the workload's)")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--prompt-tokens", a->wire.prompt_tokens,
                  "prompt length (chat: the median; shared-prefix: the prefix; default: the workload's)")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--sessions", a->wire.sessions,
                  "shared-prefix: this many conversations, each with its own prefix, their turns in a random order")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--session-header", a->session_header,
                  "send each request's session (shared-prefix --sessions) in this header (HTTP) or metadata key "
                  "(gRPC), e.g. x-session-id")
      ->check([](const std::string& name) {
        const pagoda::Status st = bench::check_session_header(name);
        return st.ok() ? std::string() : st.message();
      });
  cmd->add_option("--rates", a->wire.rates, "chat: arrival rates in req/s, comma-separated")->delimiter(',');
  cmd->add_option("--levels", a->wire.levels, "concurrency: stream counts, comma-separated")->delimiter(',');
  cmd->add_option("--arrivals", a->arrivals, "chat: poisson or constant (evenly spaced)")
      ->check(CLI::IsMember({"poisson", "constant"}))
      ->capture_default_str();
  cmd->add_option("--slo-ttft-ms", a->slo_ttft_ms)->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--slo-tpot-ms", a->slo_tpot_ms)->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--max-connections", a->max_connections,
                  "the most requests in flight at once (open loop; a closed-loop level above it is refused)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--time-limit-s", a->time_limit_s,
                  "per point (a chat rate, a concurrency level); requests unfinished by then count as errors")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--json", a->json_out, "write the results (every request included) as JSON here");
  cmd->add_option("--markdown", a->markdown_out, "write a markdown table here");
  cmd->add_flag("--no-progress", a->no_progress, "no progress bar (it is drawn only when stderr is a terminal)");
  cmd->add_option("--roofline-model", a->roofline_model,
                  "after the run, measure the decode roofline of this GGUF on Pagoda's CPU backend");
  cmd->add_option("--roofline-context", a->roofline_context,
                  "mean context of a decode step for the roofline (default: mean prompt + max_tokens / 2)")
      ->check(CLI::Range(1, 1 << 20));
  return [a] { return run_loadgen(*a); };
}

}  // namespace pagoda::cli
