// `pagoda`: generate text, tokenize, render chat templates, and benchmark from the command line.
#include <spdlog/spdlog.h>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"pagoda: run and measure GGUF language models on the Pagoda engine"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "debug logging");
  std::vector<std::pair<CLI::App*, pagoda::cli::Runner>> commands;
  for (auto add : {pagoda::cli::add_generate_command, pagoda::cli::add_tokenize_command, pagoda::cli::add_bench_command,
                   pagoda::cli::add_loadgen_command, pagoda::cli::add_make_model_command,
                   pagoda::cli::add_chat_template_command}) {
    pagoda::cli::Runner run = add(app);
    commands.emplace_back(app.get_subcommands({}).back(), std::move(run));
  }
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);
  for (auto& [sub, run] : commands) {
    if (sub->parsed()) return run();
  }
  return 2;
}
