#include "server/inference_service.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <mutex>

#include "engine/gguf/gguf_file.h"
#include "server/output_processor.h"

namespace pagoda::server {

namespace {

using clock = std::chrono::steady_clock;

// Memory xgrammar's cache of compiled grammars may hold (LRU beyond it): thousands of typical schemas.
constexpr int64_t kGrammarCacheBytes = int64_t{256} << 20;

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    // Overlong forms and surrogates, as a strict decoder rejects them.
    const uint32_t cp = len == 1 ? c
                        : len == 2 ? ((c & 0x1F) << 6) | (s[i + 1] & 0x3F)
                        : len == 3 ? ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F)
                                   : ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Per-request timing and counts, shared by the wrapped sink (engine thread).
struct RequestTrace {
  clock::time_point submitted = clock::now();
  clock::time_point first_token{};
  bool got_first = false;
  int32_t choices = 1, finished = 0;
  int64_t generated = 0;
  std::string log_id;
  std::string last_finish;
};

}  // namespace

InferenceService::InferenceService(engine::LoadedModel& model, scheduler::EngineLoop& loop, MetricsRegistry& metrics,
                                   std::string model_id, int32_t max_model_len)
    : model_(model), loop_(loop), metrics_(metrics), model_id_(std::move(model_id)), loop_config_max_len_(max_model_len),
      chat_template_(engine::ChatTemplate::from_tokenizer(*model.tokenizer)),
      grammars_(*model.tokenizer, kGrammarCacheBytes) {
  if (!chat_template_.fallback_reason().empty()) {
    spdlog::warn("chat template: ChatML, because {}", chat_template_.fallback_reason());
  }
  // Structured outputs' series exist (at 0) before the first constrained request.
  metrics_.histogram("pagoda_grammar_compile_seconds", "Time to compile (or find cached) a request's grammar",
                     latency_buckets());
  metrics_.counter("pagoda_grammar_compile_errors_total", "Grammars that did not compile");
  // Gauges that mirror the engine loop's published stats, refreshed at each /metrics render.
  Gauge& queue = metrics_.gauge("pagoda_queue_depth", "Sequences waiting to be scheduled");
  Gauge& running = metrics_.gauge("pagoda_running_sequences", "Sequences running in the engine");
  Gauge& used = metrics_.gauge("pagoda_kv_blocks_used", "KV-cache blocks referenced by sequences");
  Gauge& total = metrics_.gauge("pagoda_kv_blocks_total", "KV-cache blocks in the pool");
  Gauge& cached = metrics_.gauge("pagoda_kv_blocks_cached", "Unreferenced KV blocks kept for the prefix cache");
  Gauge& window_used = metrics_.gauge("pagoda_kv_window_blocks_used",
                                      "Sliding-window layers' KV blocks referenced by sequences (their own pool)");
  Gauge& window_total =
      metrics_.gauge("pagoda_kv_window_blocks_total",
                     "Blocks in the sliding-window layers' pool (0: those layers, if any, in the main pool)");
  Gauge& hit_rate = metrics_.gauge("pagoda_prefix_cache_hit_rate", "Prompt blocks found in the prefix cache / looked up");
  Gauge& preempt = metrics_.gauge("pagoda_preemptions", "Sequences preempted since start");
  Gauge& steps = metrics_.gauge("pagoda_engine_steps", "Engine steps since start");
  Gauge& prompt_tokens = metrics_.gauge("pagoda_prompt_tokens_total", "Prompt tokens computed (prefix-cache hits excluded)");
  Gauge& gen_tokens = metrics_.gauge("pagoda_generation_tokens_total", "Tokens generated");
  Gauge& in_flight = metrics_.gauge("pagoda_requests_in_flight", "Requests submitted and not finished");
  // Speculative decoding, as vLLM names them.
  Gauge& spec_drafts = metrics_.gauge("pagoda_spec_decode_num_drafts", "Sequence-steps that verified drafted tokens");
  Gauge& spec_draft_tokens = metrics_.gauge("pagoda_spec_decode_num_draft_tokens", "Tokens drafted and verified");
  Gauge& spec_accepted = metrics_.gauge("pagoda_spec_decode_num_accepted_tokens", "Drafted tokens kept");
  Gauge& spec_wasted = metrics_.gauge("pagoda_spec_decode_num_wasted_tokens", "Drafted tokens computed and thrown away");
  Gauge& spec_step_s = metrics_.gauge("pagoda_spec_decode_step_seconds",
                                      "Time of the steps that verified drafts, scheduling and drafting included");
  Gauge& spec_plain_s = metrics_.gauge("pagoda_spec_decode_estimated_plain_seconds",
                                       "Estimated time decoding without drafts would have taken to commit the tokens "
                                       "those steps committed (from the measured step-cost profile)");
  Gauge& spec_speedup = metrics_.gauge("pagoda_spec_decode_estimated_speedup",
                                       "Estimated speed-up of the drafting steps over decoding without drafts "
                                       "(estimated_plain_seconds / step_seconds; below 1: drafts cost more than "
                                       "they gave; 1 before any)");
  metrics_.add_collector([&, this] {
    const scheduler::EngineLoopStats s = loop_.stats();
    queue.set(s.waiting);
    running.set(s.running);
    used.set(s.kv_blocks_used);
    total.set(s.kv_blocks_total);
    cached.set(s.kv_blocks_cached);
    window_used.set(s.kv_window_blocks_used);
    window_total.set(s.kv_window_blocks_total);
    hit_rate.set(s.prefix_queries ? static_cast<double>(s.prefix_hits) / static_cast<double>(s.prefix_queries) : 0.0);
    preempt.set(static_cast<double>(s.preemptions));
    steps.set(static_cast<double>(s.steps));
    prompt_tokens.set(static_cast<double>(s.prompt_tokens));
    gen_tokens.set(static_cast<double>(s.generated_tokens));
    in_flight.set(in_flight_.load());
    spec_drafts.set(static_cast<double>(s.spec_drafts));
    spec_draft_tokens.set(static_cast<double>(s.spec_draft_tokens));
    spec_accepted.set(static_cast<double>(s.spec_accepted_tokens));
    spec_wasted.set(static_cast<double>(s.spec_draft_tokens - s.spec_accepted_tokens));
    spec_step_s.set(s.spec_step_ms / 1000.0);
    spec_plain_s.set(s.spec_plain_estimate_ms / 1000.0);
    spec_speedup.set(s.spec_step_ms > 0 ? s.spec_plain_estimate_ms / s.spec_step_ms : 1.0);
    for (size_t j = 0; j < s.spec_accepted_per_position.size(); ++j) {  // collectors run outside the registry lock
      metrics_
          .gauge("pagoda_spec_decode_num_accepted_tokens_per_pos", "Drafted tokens kept, by their position in the draft",
                 {{"position", std::to_string(j)}})
          .set(static_cast<double>(s.spec_accepted_per_position[j]));
    }
  });
}

Result<std::vector<int32_t>> InferenceService::tokenize_prediction(const std::string& text) const {
  auto ids = tokenize_text(text, /*add_special=*/false, /*parse_special=*/false);
  if (!ids.ok()) return ids.status();
  if (static_cast<int64_t>(ids.value().size()) > context_length()) {
    return Status::error(fmt::format("'prediction' is {} tokens, more than the model's context of {}", ids.value().size(),
                                     context_length()));
  }
  return ids;
}

Result<std::vector<int32_t>> InferenceService::tokenize_text(const std::string& text, bool add_special,
                                                             bool parse_special) const {
  if (!valid_utf8(text)) return Status::error("prompt is not valid UTF-8");
  return model_.tokenizer->encode(text, add_special, parse_special);
}

Result<std::vector<int32_t>> InferenceService::tokenize(const PromptInput& in) const {
  const engine::Tokenizer& tok = *model_.tokenizer;
  std::vector<int32_t> ids;
  switch (in.kind) {
    case PromptInput::Kind::TokenIds:
      for (size_t i = 0; i < in.token_ids.size(); ++i) {
        if (in.token_ids[i] < 0 || in.token_ids[i] >= tok.vocab_size()) {
          return Status::error(fmt::format("prompt token id {} at index {} is outside the vocabulary (0..{})",
                                           in.token_ids[i], i, tok.vocab_size() - 1));
        }
      }
      ids = in.token_ids;
      break;
    case PromptInput::Kind::Text: {
      // With a suffix the prompt is the prefix of a fill-in-the-middle prompt: no BOS of its own.
      auto r = tokenize_text(in.text, /*add_special=*/!in.suffix, /*parse_special=*/false);
      if (!r.ok()) return r;
      ids = std::move(r.value());
      break;
    }
    case PromptInput::Kind::Chat: {
      if (in.chat.empty()) return Status::error("messages is empty: at least one message is required");
      for (size_t i = 0; i < in.chat.size(); ++i) {
        const std::string& role = in.chat[i].role;
        if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
          return Status::error(fmt::format("messages[{}].role '{}' is not one of system, user, assistant, tool", i, role));
        }
        if (!valid_utf8(in.chat[i].content)) return Status::error(fmt::format("messages[{}].content is not valid UTF-8", i));
      }
      auto text = chat_template_.render(in.chat, in.tools_json, /*add_generation_prompt=*/true);
      if (!text.ok()) return text.status();
      // The template's control tokens are real special tokens; message text cannot inject them
      // beyond what the template itself does (same as llama.cpp's server).
      ids = engine::encode_rendered_chat(tok, text.value());
      break;
    }
  }
  if (in.suffix && in.kind != PromptInput::Kind::Chat) {
    if (!valid_utf8(*in.suffix)) return Status::error("suffix is not valid UTF-8");
    // The FIM prompt brings its own BOS: a client's leading one (ids) would be a second.
    if (!ids.empty() && tok.spec().add_bos && ids.front() == tok.bos_id()) ids.erase(ids.begin());
    auto fim = tok.encode_fill_in_the_middle(ids, *in.suffix);
    if (!fim.ok()) return fim.status();
    ids = std::move(fim.value());
  }
  if (ids.empty()) return Status::error("prompt is empty: at least one token is required");
  return ids;
}

std::string InferenceService::token_piece(int32_t id) const { return model_.tokenizer->token_to_piece(id, true); }

Result<std::string> InferenceService::detokenize(std::span<const int32_t> ids, bool skip_special) const {
  for (int32_t id : ids) {
    if (id < 0 || id >= model_.tokenizer->vocab_size()) {
      return Status::error(fmt::format("token id {} is outside the vocabulary (0..{})", id, model_.tokenizer->vocab_size() - 1));
    }
  }
  return model_.tokenizer->decode(ids, !skip_special);
}

Result<std::shared_ptr<const engine::CompiledGrammar>> InferenceService::compile_grammar(const engine::GrammarSpec& spec) const {
  const auto t0 = clock::now();
  auto compiled = grammars_.compile(spec);
  const double s = std::chrono::duration<double>(clock::now() - t0).count();
  metrics_.histogram("pagoda_grammar_compile_seconds", "Time to compile (or find cached) a request's grammar",
                     latency_buckets()).observe(s);
  if (!compiled.ok()) {
    metrics_.counter("pagoda_grammar_compile_errors_total", "Grammars that did not compile").inc();
    return compiled.status();
  }
  return compiled;
}

Result<scheduler::RequestId> InferenceService::submit(scheduler::Request request, const std::string& log_id) {
  if (!serving()) return Status::error(StatusCode::Unavailable, "the server is not serving (starting up or draining)");
  // Checked before the output stage below is built from n and the stop strings (one detokenizer and
  // matcher per choice): a gRPC n of -1 or 2^31-1 must be refused here, not reach a vector's reserve.
  if (Status s = scheduler::validate_request(request, loop_.limits()); !s.ok()) {
    metrics_.counter("pagoda_requests_total", "Requests finished, by how they ended", {{"status", "rejected"}}).inc();
    return s;
  }
  request.id = next_id_++;
  auto trace = std::make_shared<RequestTrace>();
  trace->choices = request.n;
  trace->log_id = log_id;
  Histogram& ttft = metrics_.histogram("pagoda_time_to_first_token_seconds", "Time to first token", latency_buckets());
  Histogram& tpot = metrics_.histogram("pagoda_time_per_output_token_seconds", "Time per output token after the first",
                                       latency_buckets());
  Histogram& e2e = metrics_.histogram("pagoda_e2e_request_latency_seconds", "Request latency, submit to last token",
                                      latency_buckets());
  const scheduler::RequestId id = request.id;
  const int32_t prompt_len = static_cast<int32_t>(request.prompt.size());
  scheduler::StreamSink inner = std::move(request.sink);
  request.sink = [this, trace, inner, id, prompt_len, &ttft, &tpot, &e2e](const scheduler::TokenEvent& ev) {
    const auto now = clock::now();
    if (ev.token >= 0) {
      ++trace->generated;
      if (!trace->got_first) {
        trace->got_first = true;
        trace->first_token = now;
        ttft.observe(std::chrono::duration<double>(now - trace->submitted).count());
      }
    }
    if (ev.finish != scheduler::FinishReason::None) {
      ++trace->finished;
      trace->last_finish = scheduler::finish_reason_name(ev.finish);
      if (ev.finish == scheduler::FinishReason::Error) trace->last_finish = "error";
    }
    const bool done = trace->finished == trace->choices;
    inner(ev);
    if (!done) return;
    const double total_s = std::chrono::duration<double>(now - trace->submitted).count();
    e2e.observe(total_s);
    if (trace->got_first && trace->generated > trace->choices) {
      tpot.observe(std::chrono::duration<double>(now - trace->first_token).count() /
                   static_cast<double>(trace->generated - trace->choices));
    }
    metrics_.counter("pagoda_requests_total", "Requests finished, by how they ended", {{"status", trace->last_finish}}).inc();
    spdlog::info("request {}{}: prompt {} tokens, output {} tokens, ttft {:.3f} s, total {:.3f} s, finish {}", id,
                 trace->log_id.empty() ? "" : " (" + trace->log_id + ")", prompt_len, trace->generated,
                 trace->got_first ? std::chrono::duration<double>(trace->first_token - trace->submitted).count() : 0.0,
                 total_s, trace->last_finish);
    --in_flight_;
  };
  // The engine's token events go through the output stage (text, stop strings) before the metrics and
  // the front end see them.
  OutputOptions out;
  out.n = request.n;
  out.stop_strings = request.stop.stop_strings;
  out.stop_choice = [this, id](int32_t index) { loop_.stop_choice(id, index); };
  request.sink = make_output_processor(*model_.tokenizer, std::move(out), std::move(request.sink));
  ++in_flight_;
  if (Status s = loop_.submit(std::move(request)); !s.ok()) {
    --in_flight_;
    metrics_.counter("pagoda_requests_total", "Requests finished, by how they ended", {{"status", "rejected"}}).inc();
    return s;
  }
  return id;
}

void InferenceService::cancel(scheduler::RequestId id) { loop_.cancel(id); }

const scheduler::RequestLimits& InferenceService::request_limits() const { return loop_.limits(); }

int32_t InferenceService::context_length() const {
  return std::min(model_.config().context_length, loop_config_max_len_);
}

ModelInfoView InferenceService::model_info() const {
  const engine::ModelConfig& c = model_.config();
  ModelInfoView v;
  v.id = model_id_;
  v.architecture = c.architecture;
  v.context_length = context_length();
  v.vocab_size = c.vocab_size;
  v.n_layers = c.n_layers;
  v.d_model = c.d_model;
  v.quantization = model_.weights->file ? [&] {
    auto ft = model_.weights->file->find_tensor("blk.0.attn_q.weight");
    return std::string(ft ? engine::ggml_type_name(static_cast<uint32_t>(ft->type)) : "?");
  }() : "?";
  v.backend = model_.backend->info().kernels;
  v.chat_template = chat_template_.description();
  return v;
}

}  // namespace pagoda::server
