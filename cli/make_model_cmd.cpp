// `pagoda make-model`: write a GGUF of a registered family with random weights (tests, benchmarks at real
// shapes), optionally with the tokenizer of a real model or vocabulary file.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "engine/model/random_model.h"

namespace pagoda::cli {

namespace {

struct MakeModelArgs {
  std::string preset = "tiny";
  std::string type;  // empty: the preset's default
  int32_t layers = 0;
  std::optional<uint64_t> seed;
  std::string vocab;
  std::string out;
};

std::optional<engine::GgmlType> parse_type(const std::string& s) {
  static const std::map<std::string, engine::GgmlType> kTypes = {{"q4_0", engine::GgmlType::Q4_0},
                                                                 {"q4_1", engine::GgmlType::Q4_1},
                                                                 {"q8_0", engine::GgmlType::Q8_0},
                                                                 {"f16", engine::GgmlType::F16},
                                                                 {"f32", engine::GgmlType::F32}};
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = kTypes.find(lower);
  if (it == kTypes.end()) return std::nullopt;
  return it->second;
}

int run_make_model(const MakeModelArgs& a) {
  auto spec = engine::random_model_preset(a.preset);
  if (!spec) {
    std::string names;
    for (const std::string& n : engine::random_model_preset_names()) names += (names.empty() ? "" : ", ") + n;
    std::fprintf(stderr, "error: unknown preset '%s' (known: %s)\n", a.preset.c_str(), names.c_str());
    return 2;
  }
  if (!a.type.empty()) {
    auto t = parse_type(a.type);
    if (!t) {
      std::fprintf(stderr, "error: unknown weight type '%s' (known: q4_0, q4_1, q8_0, f16, f32)\n", a.type.c_str());
      return 2;
    }
    spec->weight_type = *t;
  }
  if (a.layers < 0) {
    std::fprintf(stderr, "error: --layers must be positive\n");
    return 2;
  }
  if (a.layers > 0) spec->n_layers = a.layers;
  if (a.seed) spec->seed = *a.seed;
  if (!a.vocab.empty()) {
    if (Status s = engine::use_vocabulary(*spec, a.vocab); !s.ok()) {
      std::fprintf(stderr, "error: --vocab: %s\n", s.message().c_str());
      return 2;
    }
  }
  if (Status s = engine::validate_random_model_spec(*spec); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 2;
  }

  const auto t0 = std::chrono::steady_clock::now();
  int last_percent = -1;
  auto progress = [&](const engine::RandomModelProgress& p) {
    if (p.bytes_total < (uint64_t{64} << 20)) return;  // small files: no progress lines
    const int percent = static_cast<int>(100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total));
    const bool last = p.tensor_index + 1 == p.tensor_count;
    if (percent != last_percent && (last || p.tensor_name.ends_with("ffn_down.weight") ||
                                    p.tensor_name == "token_embd.weight")) {
      std::fprintf(stderr, "make-model: %3d%% (%zu/%zu tensors, %s)\n", percent, p.tensor_index + 1, p.tensor_count,
                   p.tensor_name.c_str());
      last_percent = percent;
    }
  };
  if (Status s = engine::write_random_llama(*spec, a.out, progress); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::FILE* f = std::fopen(a.out.c_str(), "rb");
  long long size = -1;
  if (f) {
    std::fseek(f, 0, SEEK_END);
    size = std::ftell(f);
    std::fclose(f);
  }
  const int64_t params = engine::random_model_param_count(*spec);
  const double mib = static_cast<double>(size) / (1024.0 * 1024.0);
  std::printf("wrote %s: preset %s (%s), %s, %d layers, vocabulary %d (%s), %lld bytes (%.1f MiB), %lld parameters "
              "(%.3f M) in %.1f s\n",
              a.out.c_str(), a.preset.c_str(), spec->architecture.c_str(),
              engine::ggml_type_name(static_cast<uint32_t>(spec->weight_type)), spec->n_layers, spec->vocab_size,
              a.vocab.empty() ? "bytes" : a.vocab.c_str(), size, mib, static_cast<long long>(params),
              static_cast<double>(params) / 1e6, secs);
  return 0;
}

}  // namespace

Runner add_make_model_command(CLI::App& app) {
  auto args = std::make_shared<MakeModelArgs>();
  CLI::App* cmd = app.add_subcommand("make-model", "write a GGUF model with random weights (llama, qwen2, qwen3, qwen3moe, phi3, gemma2, gemma3)");
  std::string presets;
  for (const std::string& n : engine::random_model_preset_names()) presets += (presets.empty() ? "" : " | ") + n;
  cmd->add_option("--preset", args->preset, presets)->capture_default_str();
  cmd->add_option("--type", args->type, "weight type: q4_0 | q4_1 | q8_0 | f16 | f32 (default: the preset's)");
  cmd->add_option("--layers", args->layers, "override the number of layers");
  cmd->add_option("--seed", args->seed, "random seed (default 1)");
  cmd->add_option("--vocab", args->vocab,
                  "take the tokenizer (every tokenizer.* key) of this GGUF, e.g. llama.cpp's "
                  "models/ggml-vocab-qwen2.gguf; the vocabulary size follows it");
  cmd->add_option("--out", args->out, "output GGUF path")->required();
  return [args] { return run_make_model(*args); };
}

}  // namespace pagoda::cli
