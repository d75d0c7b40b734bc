#pragma once
// Subcommands of the `pagoda` tool. Each registers its flags on the CLI11 app and returns the
// process exit code when run (0 ok, 1 runtime error, 2 bad arguments).
#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <string>

#include "engine/backend.h"

namespace pagoda::cli {

using Runner = std::function<int()>;

Runner add_generate_command(CLI::App& app);
Runner add_tokenize_command(CLI::App& app);
Runner add_bench_command(CLI::App& app);
Runner add_make_model_command(CLI::App& app);
Runner add_loadgen_command(CLI::App& app);
Runner add_chat_template_command(CLI::App& app);

// --prefill-matmul int8|bf16, shared by the commands that run the model.
inline void add_prefill_matmul_option(CLI::App* cmd, engine::PrefillMatmul& target) {
  static const std::map<std::string, engine::PrefillMatmul> kinds = {{"int8", engine::PrefillMatmul::Int8},
                                                                     {"bf16", engine::PrefillMatmul::OnednnBf16}};
  cmd->add_option("--prefill-matmul", target,
                  "int8: the GGUF blocks with llama.cpp-identical arithmetic (default); bf16: oneDNN bf16 matmul "
                  "for steps of 16+ tokens")
      ->transform(CLI::CheckedTransformer(kinds, CLI::ignore_case));
}

// --backend auto|cpu|cuda and --device N, shared by the commands that run the model.
inline void add_backend_options(CLI::App* cmd, engine::BackendKind& kind, int32_t& device) {
  static const std::map<std::string, engine::BackendKind> kinds = {
      {"auto", engine::BackendKind::Auto}, {"cpu", engine::BackendKind::Cpu}, {"cuda", engine::BackendKind::Cuda}};
  cmd->add_option("--backend", kind, "auto (cuda when a GPU is visible, else cpu), cpu or cuda")
      ->transform(CLI::CheckedTransformer(kinds, CLI::ignore_case))
      ->capture_default_str();
  cmd->add_option("--device", device, "cuda: which GPU")->check(CLI::NonNegativeNumber)->capture_default_str();
}

// --cuda-graph-max-tokens N and --cuda-decode-kernel cublas|gemv (engine/backend.h).
inline void add_cuda_options(CLI::App* cmd, engine::BackendOptions& target) {
  cmd->add_option("--cuda-graph-max-tokens", target.cuda_graph_max_tokens,
                  "cuda: steps of at most this many tokens (decode) replay CUDA graphs; 0 = none")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  static const std::map<std::string, bool> kernels = {{"cublas", false}, {"gemv", true}};
  cmd->add_option("--cuda-decode-kernel", target.cuda_decode_gemv,
                  "cuda: cublas (default: a sequence's logits do not depend on what shares its step) or gemv "
                  "(a bandwidth-bound kernel for steps of <= 8 rows: faster decode, batch-dependent last bits)")
      ->transform(CLI::CheckedTransformer(kernels, CLI::ignore_case));
}

}  // namespace pagoda::cli
