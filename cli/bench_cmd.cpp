// `pagoda bench single`: in-process benchmark of one stream. `pagoda bench mixed-prefill`, `concurrency`,
// `shared-prefix` and `speculative`: the serving workloads in process, straight into an EngineLoop (the
// server-driven workloads arrive with the load-test harness).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#include <spdlog/fmt/fmt.h>

#include "bench/in_process_workloads.h"
#include "bench/single_workload.h"
#include "bench/speculative_workload.h"
#include "cli/commands.h"

namespace pagoda::cli {

namespace {

struct BenchArgs {
  std::string model = engine::default_model_path();
  bench::SingleOptions single;
  int32_t threads = 0;
  std::string json_out;
  engine::PrefillMatmul prefill_matmul = engine::PrefillMatmul::Int8;
  engine::BackendKind backend = engine::BackendKind::Auto;
  int32_t device = 0;
  engine::BackendOptions cuda;  // its cuda_* fields: --cuda-graph-max-tokens, --cuda-decode-kernel
  bench::MixedPrefillOptions mixed;
  bench::ConcurrencyOptions concurrency;
  bench::SharedPrefixOptions shared;
  bench::SpeculativeOptions speculative;
};

// Loads the model with a KV pool of kv_tokens for a serving workload of up to max_seqs sequences at
// once (a sliding-window model's window pool is sized for them); prints the error on failure.
std::optional<engine::LoadedModel> load_for_serving(const BenchArgs& a, int32_t kv_tokens, int32_t max_seqs) {
  engine::LoadOptions lo;
  lo.backend.cpu.num_threads = a.threads;
  lo.backend.cpu.prefill_matmul = a.prefill_matmul;
  lo.backend.cpu.profile_ops = a.concurrency.profile_ops;
  lo.backend.kind = a.backend;
  lo.backend.device = a.device;
  lo.backend.cuda_graph_max_tokens = a.cuda.cuda_graph_max_tokens;
  lo.backend.cuda_decode_gemv = a.cuda.cuda_decode_gemv;
  lo.kv_tokens = kv_tokens;
  lo.window_pool_seqs = max_seqs;
  auto loaded = engine::load_model(a.model, lo);
  if (!loaded.ok()) {
    std::fprintf(stderr, "error: %s\n", loaded.message().c_str());
    return std::nullopt;
  }
  return std::move(loaded).value();
}

// Runs a serving workload: load, run, print the table, write --json.
template <typename Options, typename RunFn>
int run_serving(const BenchArgs& a, const char* title, const Options& o, int32_t kv_tokens, RunFn run,
                int32_t max_seqs = 64) {
  auto model = load_for_serving(a, kv_tokens, max_seqs);
  if (!model) return 1;
  auto r = run(*model, o);
  if (!r.ok()) {
    std::fprintf(stderr, "error: %s\n", r.message().c_str());
    return 1;
  }
  std::printf("%s\n%s", title, r.value().to_text().c_str());
  if (!a.json_out.empty()) {
    std::ofstream(a.json_out) << r.value().to_json(o, a.model) << "\n";
  }
  return 0;
}

int run_bench_mixed_prefill(const BenchArgs& a) {
  const bench::MixedPrefillOptions& o = a.mixed;
  if (o.min_len > o.max_len) {
    std::fprintf(stderr, "error: --min-len (%d) must not exceed --max-len (%d)\n", o.min_len, o.max_len);
    return 2;
  }
  const std::string title = fmt::format(
      "mixed-prefill: {} prompts of {}..{} tokens (uniform, seed {}), max_tokens 1, budget {} tokens/step, {} "
      "repeats of each mode alternating (median (min-max))",
      o.prompts, o.min_len, o.max_len, o.seed, o.budget, o.repeats);
  return run_serving(a, title.c_str(), o, bench::mixed_prefill_kv_tokens(o), bench::run_mixed_prefill);
}

int run_bench_concurrency(const BenchArgs& a) {
  const bench::ConcurrencyOptions& o = a.concurrency;
  const std::string title = fmt::format(
      "concurrency: closed loop, {}-token prompts, {} greedy output tokens (ignore_eos), {} requests per stream, {} "
      "rounds (median (min-max))",
      o.prompt_len, o.max_tokens, o.requests_per_stream, o.rounds);
  return run_serving(a, title.c_str(), o, bench::concurrency_kv_tokens(o), bench::run_concurrency,
                     std::max(64, *std::max_element(o.streams.begin(), o.streams.end())));
}

int run_bench_shared_prefix(const BenchArgs& a) {
  const bench::SharedPrefixOptions& o = a.shared;
  const std::string title = fmt::format(
      "shared-prefix: {}-token shared prefix + {}-token user turns, {} requests one after another, max_tokens {}, {} "
      "rounds (caching on / off alternating); the first (cold-cache) request of each caching-on round is left out "
      "of the warm median",
      o.prefix_len, o.user_len, o.requests, o.max_tokens, o.rounds);
  return run_serving(a, title.c_str(), o, bench::shared_prefix_kv_tokens(o), bench::run_shared_prefix);
}

int run_bench_speculative(const BenchArgs& a) {
  const bench::SpeculativeOptions& o = a.speculative;
  const std::string title = fmt::format(
      "speculative: copy/edit chat tasks one at a time, greedy, max_tokens {}, up to {} drafted tokens per step, {} "
      "repeats (modes rotating; median (min-max))",
      o.max_tokens, o.num_tokens, o.repeats);
  return run_serving(a, title.c_str(), o, bench::speculative_kv_tokens(o), bench::run_speculative);
}

// --model, --threads, --json, --prefill-matmul and --backend/--device, as `single` has them.
void add_common_options(CLI::App* cmd, BenchArgs& a) {
  cmd->add_option("--model", a.model, "GGUF model file")->capture_default_str();
  cmd->add_option("--threads", a.threads, "compute threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--json", a.json_out, "also write the result as JSON here");
  add_prefill_matmul_option(cmd, a.prefill_matmul);
  add_backend_options(cmd, a.backend, a.device);
  add_cuda_options(cmd, a.cuda);
}

int run_bench_single(const BenchArgs& a) {
  engine::LoadOptions lo;
  lo.backend.cpu.num_threads = a.threads;
  lo.kv_tokens = a.single.prompt_tokens + a.single.gen_tokens;
  lo.backend.cpu.prefill_matmul = a.prefill_matmul;
  lo.backend.cpu.profile_ops = a.single.profile_ops;
  lo.backend.kind = a.backend;
  lo.backend.device = a.device;
  lo.backend.cuda_graph_max_tokens = a.cuda.cuda_graph_max_tokens;
  lo.backend.cuda_decode_gemv = a.cuda.cuda_decode_gemv;
  auto loaded = engine::load_model(a.model, lo);
  if (!loaded.ok()) {
    std::fprintf(stderr, "error: %s\n", loaded.message().c_str());
    return 1;
  }
  auto r = bench::run_single(loaded.value(), a.single);
  if (!r.ok()) {
    std::fprintf(stderr, "error: %s\n", r.message().c_str());
    return 1;
  }
  std::printf("single: %d prompt tokens, %d output tokens, %d repeats (median (min-max))\n%s",
              a.single.prompt_tokens, a.single.gen_tokens, a.single.repeats, r.value().to_text().c_str());
  if (!a.json_out.empty()) {
    std::ofstream(a.json_out) << r.value().to_json(a.single, a.model) << "\n";
  }
  return 0;
}

}  // namespace

Runner add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "benchmarks (BENCH.md workloads)");
  cmd->require_subcommand(1);
  CLI::App* single = cmd->add_subcommand("single", "one stream: prompt then greedy decode; roofline");
  single->add_option("--model", args->model, "GGUF model file")->capture_default_str();
  single->add_option("--prompt-tokens", args->single.prompt_tokens)->check(CLI::Range(1, 1 << 16))->capture_default_str();
  single->add_option("--gen-tokens", args->single.gen_tokens)->check(CLI::Range(1, 1 << 16))->capture_default_str();
  single->add_option("--repeats", args->single.repeats)->check(CLI::Range(1, 100))->capture_default_str();
  single->add_option("--threads", args->threads, "compute threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  single->add_option("--json", args->json_out, "also write the result as JSON here");
  single->add_flag("--profile-ops", args->single.profile_ops,
                   "also report the backend's time by kind of operation, prefill and decode apart (cpu)");
  add_prefill_matmul_option(single, args->prefill_matmul);
  add_backend_options(single, args->backend, args->device);
  add_cuda_options(single, args->cuda);

  CLI::App* mixed = cmd->add_subcommand("mixed-prefill", "prompts of mixed lengths at once: packed vs padded prefill");
  mixed->add_option("--prompts", args->mixed.prompts)->check(CLI::Range(1, 1024))->capture_default_str();
  mixed->add_option("--min-len", args->mixed.min_len)->check(CLI::Range(1, 8191))->capture_default_str();
  mixed->add_option("--max-len", args->mixed.max_len)->check(CLI::Range(1, 8191))->capture_default_str();
  mixed->add_option("--budget", args->mixed.budget, "tokens per step")->check(CLI::Range(16, 1 << 16))->capture_default_str();
  mixed->add_option("--repeats", args->mixed.repeats)->check(CLI::Range(1, 100))->capture_default_str();
  mixed->add_option("--seed", args->mixed.seed)->capture_default_str();
  add_common_options(mixed, *args);

  CLI::App* conc = cmd->add_subcommand("concurrency", "closed loop at several concurrent streams: output tok/s, TPOT");
  conc->add_option("--streams", args->concurrency.streams, "concurrency levels, comma separated")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  conc->add_option("--prompt-len", args->concurrency.prompt_len)->check(CLI::Range(1, 4096))->capture_default_str();
  conc->add_option("--max-tokens", args->concurrency.max_tokens)->check(CLI::Range(1, 4096))->capture_default_str();
  conc->add_option("--requests-per-stream", args->concurrency.requests_per_stream)
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  conc->add_option("--rounds", args->concurrency.rounds)->check(CLI::Range(1, 100))->capture_default_str();
  conc->add_option("--budget", args->concurrency.budget, "tokens per step")->check(CLI::Range(16, 1 << 16))->capture_default_str();
  conc->add_option("--seed", args->concurrency.seed)->capture_default_str();
  static const std::map<std::string, engine::SpeculativeMode> spec_modes = {{"off", engine::SpeculativeMode::Off},
                                                                            {"ngram", engine::SpeculativeMode::Ngram},
                                                                            {"auto", engine::SpeculativeMode::Auto}};
  conc->add_option("--speculative", args->concurrency.speculative,
                   "speculative modes, comma separated (several: run side by side, against the first)")
      ->delimiter(',')
      ->transform(CLI::CheckedTransformer(spec_modes, CLI::ignore_case));
  conc->add_flag("--profile-ops", args->concurrency.profile_ops,
                 "also report the backend's time by kind of operation per level (cpu: e.g. MoE routing vs experts)");
  add_common_options(conc, *args);

  CLI::App* shared = cmd->add_subcommand("shared-prefix", "shared system prompt + user turns: TTFT with and without prefix caching");
  shared->add_option("--prefix-len", args->shared.prefix_len)->check(CLI::Range(1, 4096))->capture_default_str();
  shared->add_option("--requests", args->shared.requests)->check(CLI::Range(2, 1000))->capture_default_str();
  shared->add_option("--user-len", args->shared.user_len)->check(CLI::Range(1, 4096))->capture_default_str();
  shared->add_option("--max-tokens", args->shared.max_tokens)->check(CLI::Range(1, 4096))->capture_default_str();
  shared->add_option("--rounds", args->shared.rounds)->check(CLI::Range(1, 100))->capture_default_str();
  shared->add_option("--seed", args->shared.seed)->capture_default_str();
  add_common_options(shared, *args);

  CLI::App* spec = cmd->add_subcommand(
      "speculative", "copy/edit tasks at batch 1: speculation off, ngram, auto, prediction, suffix, draft");
  spec->add_option("--max-tokens", args->speculative.max_tokens)->check(CLI::Range(2, 4096))->capture_default_str();
  spec->add_option("--repeats", args->speculative.repeats)->check(CLI::Range(1, 100))->capture_default_str();
  spec->add_option("--num-speculative-tokens", args->speculative.num_tokens)->check(CLI::Range(1, 32))->capture_default_str();
  spec->add_option("--draft-model", args->speculative.draft_model,
                   "a GGUF with the model's vocabulary: adds the draft-model mode (the model itself: the cost of the "
                   "machinery at 100% acceptance)");
  add_common_options(spec, *args);

  return [args, single, mixed, conc, shared, spec] {
    if (mixed->parsed()) return run_bench_mixed_prefill(*args);
    if (spec->parsed()) return run_bench_speculative(*args);
    if (conc->parsed()) return run_bench_concurrency(*args);
    if (shared->parsed()) return run_bench_shared_prefix(*args);
    (void)single;
    return run_bench_single(*args);
  };
}

}  // namespace pagoda::cli
