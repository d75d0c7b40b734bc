#pragma once
// What both front ends (gRPC, HTTP) share: tokenization and chat templates, request submission with
// ids, metrics and the per-request log line, cancellation, model info and the serving state. The front
// ends translate their wire formats to and from this; nothing else in them touches the engine.
#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/grammar/grammar.h"
#include "engine/loaded_model.h"
#include "engine/tokenizer/chat_template.h"
#include "scheduler/engine_loop.h"
#include "server/metrics.h"

namespace pagoda::server {

// A prompt as a client gives it, before tokenization.
struct PromptInput {
  enum class Kind { Text, TokenIds, Chat };
  Kind kind = Kind::Text;
  std::string text;                        // Text: special-token text is not parsed (it is plain text)
  std::vector<int32_t> token_ids;          // TokenIds
  std::vector<engine::ChatMessage> chat;   // Chat: rendered with the model's template + generation prompt
  std::string tools_json;                  // Chat: the request's tools (a JSON array) for the template; may be empty
  // Text / TokenIds: fill in the middle between the prompt and this suffix (completions' `suffix`).
  std::optional<std::string> suffix;
};

struct ModelInfoView {
  std::string id, architecture, quantization, backend, chat_template;
  int32_t context_length = 0, vocab_size = 0, n_layers = 0, d_model = 0;
};

class InferenceService {
 public:
  // max_model_len: the scheduler's limit on prompt + max_tokens (may be below the model's context).
  InferenceService(engine::LoadedModel& model, scheduler::EngineLoop& loop, MetricsRegistry& metrics,
                   std::string model_id, int32_t max_model_len);

  // Errors (InvalidArgument) name what is wrong: invalid UTF-8, unknown role, empty prompt, ids out
  // of the vocabulary.
  Result<std::vector<int32_t>> tokenize(const PromptInput& input) const;
  Result<std::vector<int32_t>> tokenize_text(const std::string& text, bool add_special, bool parse_special) const;
  // A predicted output (speculative decoding): plain text, at most the model's context.
  Result<std::vector<int32_t>> tokenize_prediction(const std::string& text) const;
  // Compiles a request's grammar (constrained decoding) on the calling thread, never the engine's;
  // compiled grammars are cached (bounded), so a repeated schema costs a lookup. InvalidArgument with
  // the compiler's message when it does not compile.
  Result<std::shared_ptr<const engine::CompiledGrammar>> compile_grammar(const engine::GrammarSpec& spec) const;
  std::string token_piece(int32_t id) const;  // the token's text (bytes, may be partial UTF-8)
  Result<std::string> detokenize(std::span<const int32_t> ids, bool skip_special) const;

  // Submits a request whose prompt, sampling, stop, n, priority and sink are set. The service gives it
  // an id, wraps the sink to record metrics (TTFT, TPOT, end-to-end, token counts, status) and log one
  // line when the request ends, and returns the id. Errors: InvalidArgument (bad parameters, prompt
  // over the context), ResourceExhausted (queue full), Unavailable (draining).
  // `log_id` is the client's request id for the log line (may be empty).
  Result<scheduler::RequestId> submit(scheduler::Request request, const std::string& log_id);
  void cancel(scheduler::RequestId id);

  ModelInfoView model_info() const;
  const std::string& model_id() const { return model_id_; }
  int32_t context_length() const;
  const scheduler::RequestLimits& request_limits() const;
  const engine::Tokenizer& tokenizer() const { return *model_.tokenizer; }
  const engine::ChatTemplate& chat_template() const { return chat_template_; }

  bool serving() const { return serving_.load(); }  // false while loading or draining
  void set_serving(bool on) { serving_.store(on); }
  int32_t in_flight() const { return in_flight_.load(); }
  MetricsRegistry& metrics() { return metrics_; }

 private:
  engine::LoadedModel& model_;
  scheduler::EngineLoop& loop_;
  MetricsRegistry& metrics_;
  std::string model_id_;
  int32_t loop_config_max_len_;
  engine::ChatTemplate chat_template_;        // the model's (thread-safe to render)
  mutable engine::GrammarCompiler grammars_;  // thread-safe
  std::atomic<uint64_t> next_id_{1};
  std::atomic<bool> serving_{false};
  std::atomic<int32_t> in_flight_{0};
};

}  // namespace pagoda::server
