// `pagoda tokenize`: print the token ids (and optionally pieces) of a text.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "engine/loaded_model.h"
#include "engine/tokenizer/tokenizer.h"

namespace pagoda::cli {

namespace {

struct TokenizeArgs {
  std::string model = engine::default_model_path();
  std::string prompt;
  bool no_special = false;
  bool add_special = false;
  bool pieces = false;
};

int run_tokenize(const TokenizeArgs& a) {
  // Only the tokenizer is needed: read the metadata, skip the weights and the backend.
  auto tok = engine::load_tokenizer(a.model);
  if (!tok.ok()) {
    std::fprintf(stderr, "error: %s\n", tok.message().c_str());
    return 1;
  }
  const std::vector<int32_t> ids = tok.value()->encode(a.prompt, a.add_special, !a.no_special);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (a.pieces) {
      std::printf("%d\t'%s'\n", ids[i], tok.value()->token_to_piece(ids[i], true).c_str());
    } else {
      std::printf("%s%d", i ? " " : "", ids[i]);
    }
  }
  if (!a.pieces) std::printf("\n");
  return 0;
}

}  // namespace

Runner add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "print the token ids of a text");
  cmd->add_option("--model", args->model, "GGUF model file")->capture_default_str();
  cmd->add_option("--prompt", args->prompt, "text to tokenize")->required();
  cmd->add_flag("--no-special", args->no_special, "treat special-token text (<|im_start|>) as plain text");
  cmd->add_flag("--add-special", args->add_special, "add BOS/EOS as the model's metadata says");
  cmd->add_flag("--pieces", args->pieces, "print one 'id<TAB>piece' line per token");
  return [args] { return run_tokenize(*args); };
}

}  // namespace pagoda::cli
