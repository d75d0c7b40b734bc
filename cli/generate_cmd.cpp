// `pagoda generate`: stream a completion for one prompt and report prefill / decode speed.
#include <spdlog/fmt/fmt.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "engine/loaded_model.h"
#include "engine/sampling/sampler.h"
#include "engine/single_sequence.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/incremental_detokenizer.h"

namespace pagoda::cli {

namespace {

struct GenerateArgs {
  std::string model = engine::default_model_path();
  std::string prompt;
  bool chat = false;
  int32_t max_tokens = 128;
  engine::SamplingParams sampling;
  int32_t threads = 0;
  int32_t ctx = 4096;
  engine::PrefillMatmul prefill_matmul = engine::PrefillMatmul::Int8;
  engine::BackendKind backend = engine::BackendKind::Auto;
  int32_t device = 0;
};

int run_generate(const GenerateArgs& a) {
  using clock = std::chrono::steady_clock;
  engine::LoadOptions lo;
  lo.backend.cpu.num_threads = a.threads;
  lo.kv_tokens = a.ctx;
  lo.backend.cpu.prefill_matmul = a.prefill_matmul;
  lo.backend.kind = a.backend;
  lo.backend.device = a.device;
  auto loaded = engine::load_model(a.model, lo);
  if (!loaded.ok()) {
    std::fprintf(stderr, "error: %s\n", loaded.message().c_str());
    return 1;
  }
  engine::LoadedModel& m = loaded.value();
  const engine::Tokenizer& tok = *m.tokenizer;

  std::vector<int32_t> prompt;
  if (a.chat) {
    auto text = engine::render_user_turn(tok, a.prompt);
    if (!text.ok()) {
      std::fprintf(stderr, "error: %s\n", text.message().c_str());
      return 2;
    }
    // Chat text carries the template's control tokens, so special-token parsing is on for it.
    prompt = engine::encode_rendered_chat(tok, text.value());
  } else {
    prompt = tok.encode(a.prompt, /*add_special=*/true, /*parse_special=*/false);
  }
  if (prompt.empty()) {
    std::fprintf(stderr, "error: the prompt is empty after tokenization\n");
    return 2;
  }
  const int32_t ctx = std::min(a.ctx, m.config().context_length);
  if (static_cast<int32_t>(prompt.size()) + a.max_tokens > ctx) {
    std::fprintf(stderr, "error: prompt (%zu tokens) + max_tokens (%d) exceeds the context of %d tokens\n",
                 prompt.size(), a.max_tokens, ctx);
    return 2;
  }

  engine::SingleSequence seq(*m.backend, m.config().vocab_size, ctx);
  engine::Sampler sampler(a.sampling);
  engine::IncrementalDetokenizer detok(tok);

  const auto t0 = clock::now();
  auto logits = seq.run(prompt);
  if (!logits.ok()) {
    std::fprintf(stderr, "error: %s\n", logits.message().c_str());
    return 1;
  }
  const auto t1 = clock::now();
  int32_t generated = 0;
  std::string finish = "length";
  for (; generated < a.max_tokens; ++generated) {
    const int32_t next = sampler.sample(logits.value()).token;
    if (tok.is_end_of_generation(next)) {
      finish = "stop";
      break;
    }
    std::fputs(detok.push(next).c_str(), stdout);
    std::fflush(stdout);
    if (generated + 1 == a.max_tokens) {
      ++generated;
      break;
    }
    logits = seq.run(std::span(&next, 1));
    if (!logits.ok()) {
      std::fprintf(stderr, "\nerror: %s\n", logits.message().c_str());
      return 1;
    }
  }
  std::fputs(detok.flush().c_str(), stdout);
  const auto t2 = clock::now();
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  // Decode speed counts the forward passes after the prefill (generated - 1 of them).
  const int32_t decode_steps = std::max(generated - 1, 0);
  std::printf("\n\n[prompt tokens: %zu | output tokens: %d | finish: %s | prefill: %.1f tok/s | decode: %.1f tok/s]\n",
              prompt.size(), generated, finish.c_str(), prompt.size() / prefill_s,
              decode_steps > 0 ? decode_steps / decode_s : 0.0);
  return 0;
}

}  // namespace

Runner add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "generate text for a prompt, streaming it to stdout");
  cmd->add_option("--model", args->model, "GGUF model file")->capture_default_str();
  cmd->add_option("--prompt", args->prompt, "prompt text")->required();
  cmd->add_flag("--chat", args->chat, "wrap the prompt in the model's chat template as a user turn");
  cmd->add_option("--max-tokens", args->max_tokens, "tokens to generate")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd->add_option("--temperature", args->sampling.temperature, "0 = greedy")->check(CLI::Range(0.0f, 100.0f))->capture_default_str();
  cmd->add_option("--top-p", args->sampling.top_p, "nucleus sampling mass")->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  cmd->add_option("--top-k", args->sampling.top_k, "0 = off")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--min-p", args->sampling.min_p, "0 = off")->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  cmd->add_option("--seed", args->sampling.seed, "sampling seed")->capture_default_str();
  cmd->add_option("--threads", args->threads, "compute threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--ctx", args->ctx, "context / KV capacity in tokens")->check(CLI::Range(16, 1 << 20))->capture_default_str();
  add_prefill_matmul_option(cmd, args->prefill_matmul);
  add_backend_options(cmd, args->backend, args->device);
  return [args] { return run_generate(*args); };
}

}  // namespace pagoda::cli
