// `pagoda bench single`: in-process benchmark of one stream (the server-driven workloads arrive with
// the load-test harness).
#include <cstdio>
#include <fstream>
#include <memory>

#include "bench/single_workload.h"
#include "cli/commands.h"

namespace pagoda::cli {

namespace {

struct BenchArgs {
  std::string model = engine::default_model_path();
  bench::SingleOptions single;
  int32_t threads = 0;
  std::string json_out;
  engine::PrefillMatmul prefill_matmul = engine::PrefillMatmul::Int8;
};

int run_bench_single(const BenchArgs& a) {
  engine::LoadOptions lo;
  lo.backend.num_threads = a.threads;
  lo.kv_tokens = a.single.prompt_tokens + a.single.gen_tokens;
  lo.backend.prefill_matmul = a.prefill_matmul;
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
  add_prefill_matmul_option(single, args->prefill_matmul);
  return [args] { return run_bench_single(*args); };
}

}  // namespace pagoda::cli
