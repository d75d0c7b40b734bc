#pragma once
// Subcommands of the `pagoda` tool. Each registers its flags on the CLI11 app and returns the
// process exit code when run (0 ok, 1 runtime error, 2 bad arguments).
#include <CLI/CLI.hpp>

#include <functional>

namespace pagoda::cli {

using Runner = std::function<int()>;

Runner add_generate_command(CLI::App& app);
Runner add_tokenize_command(CLI::App& app);
Runner add_bench_command(CLI::App& app);

}  // namespace pagoda::cli
