#include "bench/in_process_workloads.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "bench/in_process_harness.h"
#include "bench/op_profile_report.h"
#include "bench/padded_prefill_backend.h"
#include "scheduler/engine_loop.h"

namespace pagoda::bench {

namespace {

using scheduler::EngineLoop;
using scheduler::EngineLoopConfig;
using scheduler::FinishReason;

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

nlohmann::json summary_json(const Summary& s) {
  return nlohmann::json{{"median", s.median}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
}

double median_of(std::vector<double> v) { return summarize(std::move(v)).median; }

int32_t round_up(int32_t n, int32_t block) { return (n + block - 1) / block * block; }

// ---- mixed-prefill ------------------------------------------------------------------------------

// KV tokens (whole 16-token blocks) the real sequences need at most: every prompt at once.
int32_t mixed_prefill_real_tokens(const MixedPrefillOptions& o) {
  const int64_t per_prompt = round_up(o.max_len + 1, 16) + 16;
  return static_cast<int32_t>(std::min<int64_t>(per_prompt * o.prompts, 1 << 29));
}

Result<MixedPrefillRun> mixed_prefill_once(engine::LoadedModel& m, const MixedPrefillOptions& o,
                                           const std::vector<std::vector<int32_t>>& prompts, bool padded) {
  Tracker tr(prompts.size());  // outlives the loop: its sinks point here
  // Both modes schedule in the same blocks; the ablation's pads write to the rest of the pool.
  const int32_t block_size = m.backend->kv_shape().block_size;
  const int32_t real_blocks = (mixed_prefill_real_tokens(o) + block_size - 1) / block_size;
  CountingBackend backend(*m.backend);  // counts the pads too: it runs the padded plans
  PaddedPrefillBackend pads(backend, real_blocks);
  EngineLoopConfig config = loop_config(o.budget, 64, false);
  config.num_kv_blocks = real_blocks;
  EngineLoop loop(padded ? static_cast<engine::Backend&>(pads) : backend, *m.tokenizer, config);
  // Every prompt is queued before the engine thread starts, so the first step sees all of them (the
  // same arrival set for both modes: the step plans differ only by the pads).
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (Status s = loop.submit(make_request(i + 1, prompts[i], 1, tr.sink(i))); !s.ok()) return s;
  }
  const Clock::time_point t0 = Clock::now();
  Clock::time_point end = t0;
  Status driven = loop.run_with_driver([&]() -> Status {
    for (size_t k = 0; k < prompts.size(); ++k) {
      auto i = tr.wait_next();
      if (!i.ok()) return i.status();
      end = std::max(end, tr.trace(i.value()).finished);
    }
    return {};
  });
  if (!driven.ok()) return driven;
  if (pads.skipped_pad_tokens > 0) {
    return Status::error(fmt::format("mixed-prefill: {} pad tokens did not fit the pool's pad blocks",
                                     pads.skipped_pad_tokens));
  }
  MixedPrefillRun run;
  run.padded = padded;
  run.wall_s = secs(end - t0);
  run.prompt_tokens = loop.stats().prompt_tokens;
  run.executed_tokens = backend.tokens;
  run.steps = backend.steps;
  return run;
}

// ---- concurrency --------------------------------------------------------------------------------

struct ConcurrencyRun {
  double wall_s = 0, tok_s = 0, tpot_ms = 0, ttft_ms = 0;
};

Result<ConcurrencyRun> concurrency_once(engine::LoadedModel& m, const ConcurrencyOptions& o, int32_t streams,
                                        engine::SpeculativeMode speculative, PromptMaker& pm) {
  const int32_t max_seqs = std::max(64, *std::max_element(o.streams.begin(), o.streams.end()));
  const size_t total = static_cast<size_t>(streams) * static_cast<size_t>(o.requests_per_stream);
  std::vector<std::vector<int32_t>> prompts(total);
  for (auto& p : prompts) p = pm.make(o.prompt_len);

  Tracker tr(total);  // outlives the loop: its sinks point here
  CountingBackend backend(*m.backend);
  EngineLoopConfig config = loop_config(o.budget, max_seqs, false);
  config.scheduler.speculative.mode = speculative;
  EngineLoop loop(backend, *m.tokenizer, config);
  // Request k*streams + s is stream s's k-th request.
  auto submit = [&](size_t i) -> Status {
    tr.trace(i).submit = Clock::now();
    return loop.submit(make_request(i + 1, prompts[i], o.max_tokens, tr.sink(i)));
  };
  const Clock::time_point t0 = Clock::now();
  Clock::time_point end = t0;
  Status driven = loop.run_with_driver([&]() -> Status {
    for (int32_t s = 0; s < streams; ++s) {
      if (Status st = submit(static_cast<size_t>(s)); !st.ok()) return st;
    }
    for (size_t done = 0; done < total; ++done) {
      auto i = tr.wait_next();
      if (!i.ok()) return i.status();
      const Trace& t = tr.trace(i.value());
      end = std::max(end, t.finished);
      const size_t next = i.value() + static_cast<size_t>(streams);
      if (next < total) {
        if (Status st = submit(next); !st.ok()) return st;
      }
    }
    return {};
  });
  if (!driven.ok()) return driven;

  ConcurrencyRun r;
  double tpot_sum = 0, ttft_sum = 0;
  int64_t tokens = 0;
  for (size_t i = 0; i < total; ++i) {
    const Trace& t = tr.trace(i);
    if (t.tokens != o.max_tokens) {
      return Status::error(fmt::format("request {} produced {} tokens, expected {}", i, t.tokens, o.max_tokens));
    }
    tokens += t.tokens;
    ttft_sum += ms(t.first - t.submit);
    if (t.tokens > 1) tpot_sum += ms(t.last - t.first) / (t.tokens - 1);
  }
  r.wall_s = secs(end - t0);
  r.tok_s = static_cast<double>(tokens) / r.wall_s;
  r.tpot_ms = tpot_sum / static_cast<double>(total);
  r.ttft_ms = ttft_sum / static_cast<double>(total);
  return r;
}

// ---- shared-prefix ------------------------------------------------------------------------------

struct SharedPrefixRun {
  std::vector<double> ttft_ms;
  int64_t prefix_hits = 0, prefix_queries = 0, cached_prompt_tokens = 0;
};

Result<SharedPrefixRun> shared_prefix_once(engine::LoadedModel& m, const std::vector<std::vector<int32_t>>& prompts,
                                           int32_t max_tokens, bool caching) {
  Tracker tr(prompts.size());  // outlives the loop: its sinks point here
  CountingBackend backend(*m.backend);
  EngineLoop loop(backend, *m.tokenizer, loop_config(2048, 64, caching));
  SharedPrefixRun run;
  Status driven = loop.run_with_driver([&]() -> Status {
    for (size_t i = 0; i < prompts.size(); ++i) {  // one at a time: TTFT without queueing
      tr.trace(i).submit = Clock::now();
      if (Status s = loop.submit(make_request(i + 1, prompts[i], max_tokens, tr.sink(i))); !s.ok()) return s;
      auto done = tr.wait_next();
      if (!done.ok()) return done.status();
      const Trace& t = tr.trace(i);
      run.ttft_ms.push_back(ms(t.first - t.submit));
      run.cached_prompt_tokens += t.cached_prompt_tokens;
    }
    return {};
  });
  if (!driven.ok()) return driven;
  const scheduler::EngineLoopStats st = loop.stats();
  run.prefix_hits = st.prefix_hits;
  run.prefix_queries = st.prefix_queries;
  return run;
}

}  // namespace

// ---- mixed-prefill ------------------------------------------------------------------------------

int32_t mixed_prefill_kv_tokens(const MixedPrefillOptions& o) {
  // The ablation's pads of one step: at most max_len per other prefill of that step (<= 64 sequences).
  const int64_t pads = (round_up(o.max_len + 1, 16) + 16) * int64_t{std::min(o.prompts, 64)};
  return static_cast<int32_t>(std::min<int64_t>(mixed_prefill_real_tokens(o) + pads, 1 << 30));
}

Result<MixedPrefillResult> run_mixed_prefill(engine::LoadedModel& m, const MixedPrefillOptions& o) {
  MixedPrefillResult res;
  res.backend = m.backend->info().kernels;
  PromptMaker pm(m.tokenizer->vocab_size(), o.seed);
  std::uniform_int_distribution<int32_t> len(o.min_len, o.max_len);
  std::vector<std::vector<int32_t>> prompts;
  for (int32_t i = 0; i < o.prompts; ++i) {
    prompts.push_back(pm.make(len(pm.rng())));
    res.total_prompt_tokens += static_cast<int64_t>(prompts.back().size());
  }
  if (Status s = warm_up(m); !s.ok()) return s;

  std::vector<double> packed, padded, ratio, packed_tps, padded_tps;
  for (int32_t rep = 0; rep < o.repeats; ++rep) {
    // ABBA order: packed first in even repeats, padded first in odd ones.
    double wall[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      const bool pad = (rep % 2 == 0) ? k == 1 : k == 0;
      auto run = mixed_prefill_once(m, o, prompts, pad);
      if (!run.ok()) return run.status();
      std::fprintf(stderr, "[mixed-prefill] repeat %d %s: %.2f s, %lld executed tokens, %lld steps\n", rep + 1,
                   pad ? "padded" : "packed", run.value().wall_s, static_cast<long long>(run.value().executed_tokens),
                   static_cast<long long>(run.value().steps));
      wall[pad ? 1 : 0] = run.value().wall_s;
      res.runs.push_back(run.value());
    }
    packed.push_back(wall[0]);
    padded.push_back(wall[1]);
    ratio.push_back(wall[1] / wall[0]);
    packed_tps.push_back(static_cast<double>(res.total_prompt_tokens) / wall[0]);
    padded_tps.push_back(static_cast<double>(res.total_prompt_tokens) / wall[1]);
  }
  res.packed_s = summarize(packed);
  res.padded_s = summarize(padded);
  res.ratio = summarize(ratio);
  res.packed_tok_s = summarize(packed_tps);
  res.padded_tok_s = summarize(padded_tps);
  return res;
}

std::string MixedPrefillResult::to_text() const {
  int64_t exec_packed = 0, exec_padded = 0, steps_packed = 0, steps_padded = 0, computed = 0;
  for (const auto& r : runs) {
    (r.padded ? exec_padded : exec_packed) = r.executed_tokens;
    (r.padded ? steps_padded : steps_packed) = r.steps;
    if (!r.padded) computed = r.prompt_tokens;
  }
  std::string s = fmt::format("backend: {}\n", backend);
  s += fmt::format("{:<8} {:>24} {:>24} {:>16} {:>7}\n", "mode", "wall s", "prompt tok/s", "executed tokens", "steps");
  s += fmt::format("{:<8} {:>24} {:>24} {:>16} {:>7}\n", "packed", packed_s.format(2), packed_tok_s.format(0),
                   exec_packed, steps_packed);
  s += fmt::format("{:<8} {:>24} {:>24} {:>16} {:>7}\n", "padded", padded_s.format(2), padded_tok_s.format(0),
                   exec_padded, steps_padded);
  s += fmt::format("padded / packed wall time: {}\n", ratio.format(2));
  s += fmt::format("prompt tokens: {} in the prompts, {} computed; padded runs also ran {} pad tokens ({:.2f}x)\n",
                   total_prompt_tokens, computed, exec_padded - exec_packed,
                   exec_packed ? static_cast<double>(exec_padded) / static_cast<double>(exec_packed) : 0.0);
  return s;
}

std::string MixedPrefillResult::to_json(const MixedPrefillOptions& o, const std::string& model_path) const {
  nlohmann::json rs = nlohmann::json::array();
  for (const auto& r : runs) {
    rs.push_back({{"mode", r.padded ? "padded" : "packed"},
                  {"wall_s", r.wall_s},
                  {"prompt_tokens", r.prompt_tokens},
                  {"executed_tokens", r.executed_tokens},
                  {"steps", r.steps}});
  }
  nlohmann::json j{{"workload", "mixed-prefill"},
                   {"model", model_path},
                   {"backend", backend},
                   {"prompts", o.prompts},
                   {"min_len", o.min_len},
                   {"max_len", o.max_len},
                   {"budget", o.budget},
                   {"repeats", o.repeats},
                   {"seed", o.seed},
                   {"total_prompt_tokens", total_prompt_tokens},
                   {"packed_wall_s", summary_json(packed_s)},
                   {"padded_wall_s", summary_json(padded_s)},
                   {"padded_over_packed", summary_json(ratio)},
                   {"packed_prompt_tok_s", summary_json(packed_tok_s)},
                   {"padded_prompt_tok_s", summary_json(padded_tok_s)},
                   {"runs", rs}};
  return j.dump(2);
}

// ---- concurrency --------------------------------------------------------------------------------

int32_t concurrency_kv_tokens(const ConcurrencyOptions& o) {
  const int32_t most = *std::max_element(o.streams.begin(), o.streams.end());
  return most * (round_up(o.prompt_len + o.max_tokens, 16) + 16);
}

Result<ConcurrencyResult> run_concurrency(engine::LoadedModel& m, const ConcurrencyOptions& o) {
  ConcurrencyResult res;
  res.backend = m.backend->info().kernels;
  PromptMaker pm(m.tokenizer->vocab_size(), o.seed);
  if (Status s = warm_up(m); !s.ok()) return s;
  (void)m.backend->take_op_profile();  // the warm-up's
  const size_t M = o.speculative.size();
  for (int32_t c : o.streams) {
    for (engine::SpeculativeMode mode : o.speculative) {
      ConcurrencyLevel level;
      level.streams = c;
      level.speculative = mode;
      res.levels.push_back(level);
    }
  }
  std::vector<std::vector<double>> ratios(res.levels.size()), vs_first(res.levels.size());
  for (int32_t round = 0; round < o.rounds; ++round) {
    std::vector<double> one_stream(M, 0.0);
    for (size_t g = 0; g < res.levels.size(); g += M) {  // one streams level, every mode
      for (size_t k = 0; k < M; ++k) {
        const size_t mi = (k + static_cast<size_t>(round)) % M;
        ConcurrencyLevel& level = res.levels[g + mi];
        auto r = concurrency_once(m, o, level.streams, level.speculative, pm);
        if (!r.ok()) return r.status();
        std::fprintf(stderr, "[concurrency] round %d, %d streams, speculative %s: %.1f tok/s, TPOT %.2f ms, TTFT %.1f ms, %.2f s\n",
                     round + 1, level.streams, engine::speculative_mode_name(level.speculative), r.value().tok_s,
                     r.value().tpot_ms, r.value().ttft_ms, r.value().wall_s);
        level.tok_s.push_back(r.value().tok_s);
        level.tpot_ms.push_back(r.value().tpot_ms);
        level.ttft_ms.push_back(r.value().ttft_ms);
        level.wall_s.push_back(r.value().wall_s);
        add_profile(level.profile, m.backend->take_op_profile());
        if (level.streams == 1) one_stream[mi] = r.value().tok_s;
      }
      for (size_t mi = 0; mi < M; ++mi) {
        vs_first[g + mi].push_back(res.levels[g + mi].tok_s.back() / res.levels[g].tok_s.back());
      }
    }
    for (size_t i = 0; i < res.levels.size(); ++i) {
      if (one_stream[i % M] > 0) ratios[i].push_back(res.levels[i].tok_s.back() / one_stream[i % M]);
    }
  }
  for (size_t i = 0; i < res.levels.size(); ++i) {
    ConcurrencyLevel& l = res.levels[i];
    l.tok_s_summary = summarize(l.tok_s);
    l.tpot_ms_summary = summarize(l.tpot_ms);
    l.ttft_ms_summary = summarize(l.ttft_ms);
    l.ratio_vs_1 = summarize(ratios[i]);
    if (M > 1) l.ratio_vs_first_mode = summarize(vs_first[i]);
  }
  return res;
}

std::string ConcurrencyResult::to_text() const {
  std::string s = fmt::format("backend: {}\n", backend);
  std::string profiles;
  s += fmt::format("{:>7} {:>11} {:>26} {:>22} {:>26} {:>20} {:>22}\n", "streams", "speculative", "output tok/s",
                   "mean TPOT ms", "mean TTFT ms", "tok/s vs 1 stream", "tok/s vs first mode");
  for (const auto& l : levels) {
    s += fmt::format("{:>7} {:>11} {:>26} {:>22} {:>26} {:>20} {:>22}\n", l.streams,
                     engine::speculative_mode_name(l.speculative), l.tok_s_summary.format(1),
                     l.tpot_ms_summary.format(2), l.ttft_ms_summary.format(1),
                     l.ratio_vs_1.n ? l.ratio_vs_1.format(2) : std::string("-"),
                     l.ratio_vs_first_mode.n ? l.ratio_vs_first_mode.format(3) : std::string("-"));
    if (!l.profile.seconds.empty()) {
      profiles += fmt::format("{:>7} {:>11} {}\n", l.streams, engine::speculative_mode_name(l.speculative),
                              profile_text(l.profile));
    }
  }
  if (!profiles.empty()) s += "backend time by operation (share of the steps' time, all rounds):\n" + profiles;
  return s;
}

std::string ConcurrencyResult::to_json(const ConcurrencyOptions& o, const std::string& model_path) const {
  nlohmann::json ls = nlohmann::json::array();
  for (const auto& l : levels) {
    nlohmann::json j{{"streams", l.streams},
                     {"speculative", engine::speculative_mode_name(l.speculative)},
                     {"output_tok_s", summary_json(l.tok_s_summary)},
                     {"mean_tpot_ms", summary_json(l.tpot_ms_summary)},
                     {"mean_ttft_ms", summary_json(l.ttft_ms_summary)},
                     {"per_round_output_tok_s", l.tok_s},
                     {"per_round_wall_s", l.wall_s}};
    if (l.ratio_vs_1.n) j["output_tok_s_vs_1_stream"] = summary_json(l.ratio_vs_1);
    if (l.ratio_vs_first_mode.n) j["output_tok_s_vs_first_mode"] = summary_json(l.ratio_vs_first_mode);
    if (!l.profile.seconds.empty()) j["op_profile"] = profile_json(l.profile);
    ls.push_back(j);
  }
  nlohmann::json j{{"workload", "concurrency"},
                   {"model", model_path},
                   {"backend", backend},
                   {"streams", o.streams},
                   {"prompt_len", o.prompt_len},
                   {"max_tokens", o.max_tokens},
                   {"requests_per_stream", o.requests_per_stream},
                   {"rounds", o.rounds},
                   {"budget", o.budget},
                   {"seed", o.seed},
                   {"levels", ls}};
  return j.dump(2);
}

// ---- shared-prefix ------------------------------------------------------------------------------

int32_t shared_prefix_kv_tokens(const SharedPrefixOptions& o) {
  // Caching keeps finished requests' blocks as evictable cache; one request at a time needs one
  // prompt + output, the rest only keeps more of the cache.
  return round_up(o.prefix_len, 16) +
         (round_up(o.user_len + o.max_tokens, 16) + 32) * std::max(o.requests, 4);
}

Result<SharedPrefixResult> run_shared_prefix(engine::LoadedModel& m, const SharedPrefixOptions& o) {
  SharedPrefixResult res;
  res.backend = m.backend->info().kernels;
  PromptMaker pm(m.tokenizer->vocab_size(), o.seed);
  const std::vector<int32_t> prefix = pm.make(o.prefix_len);
  std::vector<std::vector<int32_t>> prompts;
  for (int32_t i = 0; i < o.requests; ++i) {
    std::vector<int32_t> p = prefix;
    const std::vector<int32_t> user = pm.make(o.user_len);
    p.insert(p.end(), user.begin(), user.end());
    prompts.push_back(std::move(p));
  }
  if (Status s = warm_up(m); !s.ok()) return s;
  for (int32_t round = 0; round < o.rounds; ++round) {
    std::vector<double> on, off;
    for (int k = 0; k < 2; ++k) {
      const bool caching = (round % 2 == 0) ? k == 0 : k == 1;  // ABBA order across rounds
      auto r = shared_prefix_once(m, prompts, o.max_tokens, caching);
      if (!r.ok()) return r.status();
      const SharedPrefixRun& run = r.value();
      std::fprintf(stderr, "[shared-prefix] round %d, caching %s: TTFT median %.1f ms (first %.1f ms)\n", round + 1,
                   caching ? "on" : "off", median_of(run.ttft_ms), run.ttft_ms.front());
      if (caching) {
        res.cold_ttft_ms.push_back(run.ttft_ms.front());
        on.assign(run.ttft_ms.begin() + 1, run.ttft_ms.end());
        res.prefix_hits += run.prefix_hits;
        res.prefix_queries += run.prefix_queries;
        res.cached_prompt_tokens += run.cached_prompt_tokens;
      } else {
        off = run.ttft_ms;
      }
    }
    res.cached_ttft_ms.insert(res.cached_ttft_ms.end(), on.begin(), on.end());
    res.uncached_ttft_ms.insert(res.uncached_ttft_ms.end(), off.begin(), off.end());
    if (!on.empty()) res.round_ratio.push_back(median_of(off) / median_of(on));
  }
  res.cached = summarize(res.cached_ttft_ms);
  res.cold = summarize(res.cold_ttft_ms);
  res.uncached = summarize(res.uncached_ttft_ms);
  res.ratio = summarize(res.round_ratio);
  res.ratio_of_medians = res.cached.median > 0 ? res.uncached.median / res.cached.median : 0;
  return res;
}

std::string SharedPrefixResult::to_text() const {
  std::string s = fmt::format("backend: {}\n", backend);
  s += fmt::format("{:<34} {:>26} {:>5}\n", "TTFT ms", "median (min-max)", "n");
  s += fmt::format("{:<34} {:>26} {:>5}\n", "prefix caching on (warm requests)", cached.format(1), cached.n);
  s += fmt::format("{:<34} {:>26} {:>5}\n", "prefix caching on (cold, 1st req)", cold.format(1), cold.n);
  s += fmt::format("{:<34} {:>26} {:>5}\n", "prefix caching off", uncached.format(1), uncached.n);
  s += fmt::format("off / on (warm): {:.2f} pooled medians; per round {}\n", ratio_of_medians, ratio.format(2));
  s += fmt::format("caching on: {} prompt tokens served from the cache, prefix hits {} / queries {}\n",
                   cached_prompt_tokens, prefix_hits, prefix_queries);
  return s;
}

std::string SharedPrefixResult::to_json(const SharedPrefixOptions& o, const std::string& model_path) const {
  nlohmann::json j{{"workload", "shared-prefix"},
                   {"model", model_path},
                   {"backend", backend},
                   {"prefix_len", o.prefix_len},
                   {"requests", o.requests},
                   {"user_len", o.user_len},
                   {"max_tokens", o.max_tokens},
                   {"rounds", o.rounds},
                   {"seed", o.seed},
                   {"note", "requests one after another; caching-on median excludes each round's first (cold) request"},
                   {"ttft_ms_caching_on_warm", summary_json(cached)},
                   {"ttft_ms_caching_on_cold", summary_json(cold)},
                   {"ttft_ms_caching_off", summary_json(uncached)},
                   {"off_over_on_pooled_medians", ratio_of_medians},
                   {"off_over_on_per_round", summary_json(ratio)},
                   {"cached_prompt_tokens", cached_prompt_tokens},
                   {"prefix_hits", prefix_hits},
                   {"prefix_queries", prefix_queries}};
  return j.dump(2);
}

}  // namespace pagoda::bench
