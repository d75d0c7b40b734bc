#include "bench/single_workload.h"

#include <spdlog/fmt/fmt.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "bench/memory_bandwidth.h"
#include "bench/op_profile_report.h"
#include "engine/sampling/sampler.h"
#include "engine/single_sequence.h"

namespace pagoda::bench {

double decode_bytes_per_step(const engine::Backend& b, double mean_context) {
  const double kv_bytes_per_token = static_cast<double>(b.kv_bytes_per_block()) / b.kv_shape().block_size;
  return static_cast<double>(b.info().decode_weight_bytes) + kv_bytes_per_token * mean_context;
}

Result<SingleResult> run_single(engine::LoadedModel& m, const SingleOptions& o) {
  using clock = std::chrono::steady_clock;
  const engine::ModelConfig& c = m.config();
  SingleResult r;
  r.backend = m.backend->info().kernels;
  engine::SingleSequence seq(*m.backend, c.vocab_size, o.prompt_tokens + o.gen_tokens);
  if (Status s = seq.check_capacity(o.prompt_tokens + o.gen_tokens); !s.ok()) return s;

  // A fixed pseudo-random prompt: what matters here is its length, not its text.
  std::mt19937 rng(1234);
  std::vector<int32_t> prompt(o.prompt_tokens);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(c.vocab_size));

  std::vector<double> prefill, decode;
  (void)m.backend->take_op_profile();  // the load's
  for (int rep = 0; rep < o.repeats + 1; ++rep) {  // the first pass warms caches and is not counted
    seq.reset();
    const auto t0 = clock::now();
    auto logits = seq.run(prompt);
    if (!logits.ok()) return logits.status();
    const auto t1 = clock::now();
    const engine::OpProfile prefill_ops = m.backend->take_op_profile();
    const auto t1_decode = clock::now();  // the take is not the decode's
    for (int32_t i = 0; i < o.gen_tokens; ++i) {
      const int32_t next = engine::argmax(logits.value());
      logits = seq.run(std::span(&next, 1));
      if (!logits.ok()) return logits.status();
    }
    const auto t2 = clock::now();
    const engine::OpProfile decode_ops = m.backend->take_op_profile();
    if (rep == 0) continue;
    add_profile(r.prefill_profile, prefill_ops);
    add_profile(r.decode_profile, decode_ops);
    prefill.push_back(o.prompt_tokens / std::chrono::duration<double>(t1 - t0).count());
    decode.push_back(o.gen_tokens / std::chrono::duration<double>(t2 - t1_decode).count());
  }
  r.prefill_tok_s = summarize(prefill);
  r.decode_tok_s = summarize(decode);
  r.decode_bytes_per_token = decode_bytes_per_step(*m.backend, o.prompt_tokens + o.gen_tokens / 2.0);
  // The roofline is host memory bandwidth: it bounds the CPU backend only. (A GPU's comes with the
  // CUDA benchmarks.)
  if (m.backend->name() == "cpu") {
    r.bandwidth_bytes_s = measure_read_bandwidth();
    r.roofline_tok_s = r.bandwidth_bytes_s / r.decode_bytes_per_token;
  }
  return r;
}

std::string SingleResult::to_text() const {
  std::string text = fmt::format("backend: {}\nprefill: {} tok/s\ndecode:  {} tok/s\n", backend,
                                 prefill_tok_s.format(), decode_tok_s.format());
  if (roofline_tok_s > 0) {
    text += fmt::format(
        "roofline: read bandwidth {:.1f} GB/s / {:.1f} MB per decode step = {:.0f} tok/s; decode at {:.0f}% of it\n",
        bandwidth_bytes_s / 1e9, decode_bytes_per_token / 1e6, roofline_tok_s,
        100.0 * decode_tok_s.median / roofline_tok_s);
  } else {
    text += fmt::format("decode reads {:.1f} MB per step (no host-bandwidth roofline for this backend)\n",
                        decode_bytes_per_token / 1e6);
  }
  if (!prefill_profile.seconds.empty()) {
    text += fmt::format("backend time by operation (share of the steps' time):\n  prefill {}\n  decode  {}\n",
                        profile_text(prefill_profile), profile_text(decode_profile));
  }
  return text;
}

std::string SingleResult::to_json(const SingleOptions& o, const std::string& model_path) const {
  auto summary = [](const Summary& s) {
    return nlohmann::json{{"median", s.median}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
  };
  nlohmann::json j{{"workload", "single"},
                   {"model", model_path},
                   {"prompt_tokens", o.prompt_tokens},
                   {"gen_tokens", o.gen_tokens},
                   {"backend", backend},
                   {"prefill_tok_s", summary(prefill_tok_s)},
                   {"decode_tok_s", summary(decode_tok_s)},
                   {"decode_bytes_per_token", decode_bytes_per_token}};
  if (roofline_tok_s > 0) {
    j["read_bandwidth_gb_s"] = bandwidth_bytes_s / 1e9;
    j["roofline_tok_s"] = roofline_tok_s;
  }
  if (!prefill_profile.seconds.empty()) {
    j["op_profile"] = {{"prefill", profile_json(prefill_profile)}, {"decode", profile_json(decode_profile)}};
  }
  return j.dump(2);
}

}  // namespace pagoda::bench
