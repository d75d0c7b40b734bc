// `pagoda bench-http chat`: the BENCH.md `chat` workload driven over HTTP against a running
// OpenAI-compatible server on this machine (pagodad or a peer such as llama-server): Poisson arrivals,
// log-normal prompt lengths, streaming completions; prints TTFT / TPOT / ITL, rates and goodput.
#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/arrivals.h"
#include "bench/http_load_driver.h"
#include "cli/commands.h"

namespace pagoda::cli {

namespace {

struct BenchHttpArgs {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string model;
  double rate = 1.0;
  int32_t requests = 20;
  int32_t max_tokens = 32;
  uint64_t seed = 1;
  std::string json_out;
  double slo_ttft_ms = 2000;
  double slo_tpot_ms = 200;
  int max_connections = 64;
  double time_limit_s = 600;
};

// Plain English text the prompts are cut from (repeated as needed).
constexpr const char* kParagraph =
    "The harbour town woke slowly in the grey light of early morning. Fishing boats rocked against the stone "
    "quay while gulls circled overhead, calling to one another above the sound of the waves. In the narrow "
    "streets behind the market, bakers pulled the first loaves from their ovens and the smell of fresh bread "
    "drifted down towards the water. An old man sat on a wooden bench near the lighthouse, mending a net with "
    "patient hands, as he had done every day for nearly fifty years. Children ran past him on their way to "
    "school, their voices bright and quick, and he smiled without looking up from his work. Later, when the sun "
    "had burned away the mist, the tourists would arrive with their cameras and maps, asking for directions to "
    "the castle on the hill or the best place to eat lunch. For now, though, the town belonged to the people "
    "who lived there, and the day began as it always had, quietly and without hurry.";

// A prompt of `words` words taken from the paragraph, repeated and truncated.
std::string make_prompt(int32_t words) {
  std::vector<std::string> vocab;
  std::istringstream in(kParagraph);
  for (std::string w; in >> w;) vocab.push_back(w);
  std::string out;
  for (int32_t i = 0; i < words; ++i) {
    if (i) out += ' ';
    out += vocab[static_cast<size_t>(i) % vocab.size()];
  }
  return out;
}

std::string ms(double s) { return std::isfinite(s) ? fmt::format("{:.1f}", s * 1e3) : std::string("-"); }

std::string latency_line(const char* name, const bench::LatencySummary& l) {
  return fmt::format("  {:<5} ms  p50 {:>8}  p90 {:>8}  p99 {:>8}  mean {:>8}  (n {})\n", name, ms(l.p50), ms(l.p90),
                     ms(l.p99), ms(l.mean), l.n);
}

nlohmann::json latency_json(const bench::LatencySummary& l) {
  auto v = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); };
  return {{"p50_s", v(l.p50)}, {"p90_s", v(l.p90)}, {"p99_s", v(l.p99)}, {"mean_s", v(l.mean)}, {"n", l.n}};
}

int run_chat(const BenchHttpArgs& a) {
  const size_t n = static_cast<size_t>(a.requests);
  std::vector<double> arrivals;
  std::vector<int32_t> lengths;
  try {
    arrivals = bench::poisson_arrivals(a.rate, n, a.seed);
    lengths = bench::lognormal_lengths(n, 200.0, 0.6, 16, 1024, a.seed + 1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  std::vector<bench::LoadRequest> reqs(n);
  for (size_t i = 0; i < n; ++i) reqs[i] = {make_prompt(lengths[i]), a.max_tokens, arrivals[i]};

  bench::HttpTarget target;
  target.host = a.host;
  target.port = a.port;
  target.model = a.model;
  auto r = bench::run_open_loop(target, reqs, a.max_connections, a.time_limit_s);
  if (!r.ok()) {
    std::fprintf(stderr, "error: %s\n", r.message().c_str());
    return 1;
  }
  const std::vector<bench::RequestSample>& samples = r.value();
  const bench::Slo slo{a.slo_ttft_ms / 1e3, a.slo_tpot_ms / 1e3};
  const bench::RunSummary sum = bench::summarize_run(samples, slo);

  std::printf(
      "chat over HTTP: %s:%d, %d requests, Poisson arrivals at %.3g req/s (seed %llu), prompts of log-normal length "
      "(median 200, sigma 0.6, clamped 16..1024) counted in words of a fixed English paragraph (an approximation "
      "of tokens), max_tokens %d, temperature 0\n",
      a.host.c_str(), a.port, a.requests, a.rate, static_cast<unsigned long long>(a.seed), a.max_tokens);
  std::string text;
  text += latency_line("TTFT", sum.ttft);
  text += latency_line("TPOT", sum.tpot);
  text += latency_line("ITL", sum.itl);
  text += latency_line("e2e", sum.e2e);
  text +=
      fmt::format("  output tok/s {:.1f}  request/s {:.3f}  goodput {:.3f} req/s (SLO TTFT <= {} ms, TPOT <= {} ms)\n",
                  sum.output_tok_s, sum.request_s, sum.goodput_request_s, a.slo_ttft_ms, a.slo_tpot_ms);
  text += fmt::format("  requests {}  errors {}\n", sum.requests, sum.errors);
  std::fputs(text.c_str(), stdout);
  size_t shown = 0;
  for (size_t i = 0; i < samples.size() && shown < 5; ++i) {
    if (samples[i].ok) continue;
    std::fprintf(stderr, "request %zu failed: %s\n", i, samples[i].error.c_str());
    ++shown;
  }

  if (!a.json_out.empty()) {
    nlohmann::json per = nlohmann::json::array();
    for (size_t i = 0; i < samples.size(); ++i) {
      const bench::RequestSample& s = samples[i];
      nlohmann::json j = {{"at_s", reqs[i].at_s},
                          {"prompt_words", lengths[i]},
                          {"ok", s.ok},
                          {"submit_s", s.submit_s},
                          {"end_s", s.end_s},
                          {"prompt_tokens", s.prompt_tokens},
                          {"output_tokens", s.output_tokens},
                          {"chunks", s.token_times_s.size()}};
      if (s.ok && !s.token_times_s.empty()) j["ttft_s"] = s.first_token_s - s.submit_s;
      if (s.ok && s.output_tokens >= 2) j["tpot_s"] = (s.end_s - s.first_token_s) / (s.output_tokens - 1);
      if (!s.ok) j["error"] = s.error;
      per.push_back(j);
    }
    nlohmann::json out = {{"workload", "chat-http"},
                          {"target", {{"host", a.host}, {"port", a.port}, {"model", a.model}}},
                          {"options",
                           {{"rate", a.rate},
                            {"requests", a.requests},
                            {"max_tokens", a.max_tokens},
                            {"seed", a.seed},
                            {"prompt_length", "log-normal median 200 sigma 0.6 clamped 16..1024, in words"},
                            {"slo_ttft_ms", a.slo_ttft_ms},
                            {"slo_tpot_ms", a.slo_tpot_ms},
                            {"max_connections", a.max_connections},
                            {"time_limit_s", a.time_limit_s}}},
                          {"summary",
                           {{"ttft", latency_json(sum.ttft)},
                            {"tpot", latency_json(sum.tpot)},
                            {"itl", latency_json(sum.itl)},
                            {"e2e", latency_json(sum.e2e)},
                            {"output_tok_s", sum.output_tok_s},
                            {"request_s", sum.request_s},
                            {"goodput_request_s", sum.goodput_request_s},
                            {"requests", sum.requests},
                            {"errors", sum.errors}}},
                          {"per_request", per}};
    std::ofstream f(a.json_out);
    f << out.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "error: cannot write %s\n", a.json_out.c_str());
      return 1;
    }
  }
  return sum.errors == 0 ? 0 : 1;
}

}  // namespace

Runner add_bench_http_command(CLI::App& app) {
  auto args = std::make_shared<BenchHttpArgs>();
  CLI::App* cmd = app.add_subcommand("bench-http", "load tests over HTTP against a server on this machine");
  cmd->require_subcommand(1);
  CLI::App* chat = cmd->add_subcommand("chat", "Poisson arrivals, log-normal prompts, streaming: TTFT, TPOT, goodput");
  chat->add_option("--host", args->host, "127.0.0.1, localhost or ::1 (loopback only)")->capture_default_str();
  chat->add_option("--port", args->port, "the server's HTTP port")->required()->check(CLI::Range(1, 65535));
  chat->add_option("--model", args->model, "model name to send (omitted when empty)");
  chat->add_option("--rate", args->rate, "arrivals per second")->check(CLI::PositiveNumber)->capture_default_str();
  chat->add_option("--requests", args->requests)->check(CLI::Range(1, 100000))->capture_default_str();
  chat->add_option("--max-tokens", args->max_tokens)->check(CLI::Range(1, 1 << 16))->capture_default_str();
  chat->add_option("--seed", args->seed)->capture_default_str();
  chat->add_option("--json", args->json_out, "also write the result as JSON here");
  chat->add_option("--slo-ttft-ms", args->slo_ttft_ms)->check(CLI::PositiveNumber)->capture_default_str();
  chat->add_option("--slo-tpot-ms", args->slo_tpot_ms)->check(CLI::PositiveNumber)->capture_default_str();
  chat->add_option("--max-connections", args->max_connections)->check(CLI::Range(1, 4096))->capture_default_str();
  chat->add_option("--time-limit-s", args->time_limit_s,
                   "stop waiting after this long; unfinished requests count as errors")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return [args] { return run_chat(*args); };
}

}  // namespace pagoda::cli
