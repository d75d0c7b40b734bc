#include "bench/speculative_workload.h"

#include <spdlog/fmt/fmt.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "bench/in_process_harness.h"
#include "engine/spec/draft_model_drafter.h"
#include "engine/tokenizer/chat_template.h"
#include "scheduler/engine_loop.h"

namespace pagoda::bench {

namespace {

// A task: what the user asks, and the source text (the prediction a client would send).
struct CopyTask {
  const char* ask;
  const char* source;
};

const CopyTask kTasks[] = {
    {"Rewrite this paragraph, replacing \"cat\" with \"dog\" and changing nothing else:\n",
     "The cat sat by the window every morning. The cat watched the birds in the garden, and when the sun "
     "rose over the roofs the cat stretched, yawned and went back to sleep on the warm stone sill."},
    {"Rename the function `add` to `plus` in this code and change nothing else:\n",
     "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n\n\ndef total(values):\n"
     "    result = 0\n    for v in values:\n        result = add(result, v)\n    return result\n"},
    {"Extract the name, age, city and job from this record as lines of \"key: value\":\n",
     "Record 17. Name: Alice Smith. Age: 34. City: Paris. Job: engineer. Notes: prefers email, "
     "works remotely on Fridays."},
    {"Fix the spelling in this text and change nothing else:\n",
     "Teh meeting is on Monday at ten. Please bring teh report and the budjet for next year, and "
     "remember to send the agenda to everyone before the meeting starts."},
};

struct TaskRun {
  std::vector<int32_t> tokens;
  double decode_s = 0;
};

struct ModeSpec {
  const char* name;
  engine::SpeculativeMode server;  // --speculative
  bool prediction;                 // the request sends its source text as `prediction`
};
const ModeSpec kModes[] = {{"off", engine::SpeculativeMode::Off, false},
                           {"ngram", engine::SpeculativeMode::Ngram, false},
                           {"auto", engine::SpeculativeMode::Auto, false},
                           {"prediction", engine::SpeculativeMode::Off, true},
                           {"suffix", engine::SpeculativeMode::Suffix, false},
                           {"draft", engine::SpeculativeMode::Draft, false}};

}  // namespace

double SpeculativeModeResult::mean_accepted_length() const {
  return verifications > 0 ? 1.0 + static_cast<double>(accepted_tokens) / static_cast<double>(verifications) : 1.0;
}

int32_t speculative_kv_tokens(const SpeculativeOptions& o) { return 1024 + o.max_tokens + 64; }

Result<SpeculativeResult> run_speculative(engine::LoadedModel& m, const SpeculativeOptions& o) {
  SpeculativeResult res;
  res.backend = m.backend->info().kernels;
  const engine::Tokenizer& tok = *m.tokenizer;
  std::vector<std::vector<int32_t>> prompts, predictions;
  for (const CopyTask& t : kTasks) {
    auto text = engine::render_user_turn(tok, std::string(t.ask) + t.source);
    if (!text.ok()) return text.status();
    prompts.push_back(engine::encode_rendered_chat(tok, text.value()));
    predictions.push_back(tok.encode(t.source, false, false));
  }
  res.tasks = static_cast<int32_t>(prompts.size());
  if (Status s = warm_up(m); !s.ok()) return s;
  std::unique_ptr<engine::DraftModelDrafter> draft;
  if (!o.draft_model.empty()) {
    engine::LoadOptions lo;
    lo.kv_tokens = speculative_kv_tokens(o);
    // On the target's backend.
    lo.backend.kind = m.backend->name() == "cuda" ? engine::BackendKind::Cuda : engine::BackendKind::Cpu;
    auto d = engine::DraftModelDrafter::load(o.draft_model, lo, tok, m.config().vocab_size, 2048);
    if (!d.ok()) return d.status();
    draft = std::move(d.value());
  }

  const size_t M = std::size(kModes) - (draft ? 0 : 1);  // draft is the last mode
  res.modes.resize(M);
  std::vector<std::vector<double>> tok_s(M), speedup(M), est_speedup(M);
  std::map<size_t, std::vector<int32_t>> reference;  // task -> the off run's tokens
  for (int32_t rep = 0; rep < o.repeats; ++rep) {
    std::vector<double> rate(M), estimated(M);
    for (size_t k = 0; k < M; ++k) {
      const size_t mi = (k + static_cast<size_t>(rep)) % M;  // rotate which mode goes first
      const ModeSpec& mode = kModes[mi];
      scheduler::EngineLoopConfig config = loop_config(2048, 64, false);
      config.scheduler.speculative.mode = mode.server;
      config.scheduler.speculative.num_tokens = o.num_tokens;
      config.profile_step_costs = true;  // for the engine's estimate
      scheduler::EngineLoop loop(*m.backend, tok, config);
      if (mode.server == engine::SpeculativeMode::Draft) {
        loop.set_drafter(std::make_unique<engine::BorrowedDrafter>(*draft));
      }
      double decode_s = 0;
      int64_t tokens = 0;
      for (size_t t = 0; t < prompts.size(); ++t) {
        TaskRun run;
        Clock::time_point first{}, last{};
        bool failed = false;
        std::string error;
        scheduler::Request r;
        r.id = t + 1;
        r.prompt = prompts[t];
        r.stop.max_tokens = o.max_tokens;
        if (mode.prediction) r.prediction = predictions[t];
        r.sink = [&](const scheduler::TokenEvent& e) {
          const Clock::time_point now = Clock::now();
          if (e.token >= 0) {
            if (run.tokens.empty()) first = now;
            last = now;
            run.tokens.push_back(e.token);
          }
          if (e.finish == scheduler::FinishReason::Error) {
            failed = true;
            error = e.error;
          }
        };
        if (Status s = loop.submit(std::move(r)); !s.ok()) return s;
        loop.run_until_idle();
        if (failed) return Status::error(fmt::format("speculative: task {} failed: {}", t, error));
        decode_s += std::chrono::duration<double>(last - first).count();
        tokens += static_cast<int64_t>(run.tokens.size()) - 1;  // the first token is the prompt's
        auto [it, fresh] = reference.emplace(t, run.tokens);
        if (!fresh && it->second != run.tokens) res.outputs_identical = false;
      }
      const scheduler::EngineLoopStats st = loop.stats();
      SpeculativeModeResult& mr = res.modes[mi];
      mr.mode = mode.name;
      mr.completion_tokens = tokens + static_cast<int64_t>(prompts.size());
      mr.verifications += st.spec_drafts;
      mr.draft_tokens += st.spec_draft_tokens;
      mr.accepted_tokens += st.spec_accepted_tokens;
      rate[mi] = decode_s > 0 ? static_cast<double>(tokens) / decode_s : 0;
      estimated[mi] = st.spec_step_ms > 0 ? st.spec_plain_estimate_ms / st.spec_step_ms : 1.0;
      std::fprintf(stderr, "[speculative] repeat %d %-10s %.1f tok/s decode, %lld drafts kept of %lld\n", rep + 1,
                   mode.name, rate[mi], static_cast<long long>(st.spec_accepted_tokens),
                   static_cast<long long>(st.spec_draft_tokens));
    }
    for (size_t mi = 0; mi < M; ++mi) {
      tok_s[mi].push_back(rate[mi]);
      speedup[mi].push_back(rate[0] > 0 ? rate[mi] / rate[0] : 0);
      est_speedup[mi].push_back(estimated[mi]);
    }
  }
  for (size_t mi = 0; mi < M; ++mi) {
    res.modes[mi].decode_tok_s = summarize(tok_s[mi]);
    res.modes[mi].speedup = summarize(speedup[mi]);
    res.modes[mi].estimated_speedup = summarize(est_speedup[mi]);
  }
  return res;
}

std::string SpeculativeResult::to_text() const {
  std::string s = fmt::format("backend: {}\n{} copy/edit tasks at batch 1, greedy; outputs identical across modes: {}\n",
                              backend, tasks, outputs_identical ? "yes" : "NO");
  s += fmt::format("{:<11} {:>24} {:>20} {:>18} {:>14} {:>20}\n", "mode", "decode tok/s", "speed-up vs off",
                   "mean accepted len", "drafts kept", "engine's estimate");
  for (const SpeculativeModeResult& m : modes) {
    s += fmt::format("{:<11} {:>24} {:>20} {:>18.2f} {:>14} {:>20}\n", m.mode, m.decode_tok_s.format(1),
                     m.speedup.format(2), m.mean_accepted_length(),
                     m.draft_tokens > 0 ? fmt::format("{:.0f}%", 100.0 * m.accepted_tokens / m.draft_tokens) : "-",
                     m.draft_tokens > 0 ? m.estimated_speedup.format(2) : "-");
  }
  s += "engine's estimate: the speed-up of the drafting steps alone, from the step-cost profile "
       "(pagoda_spec_decode_estimated_speedup)\n";
  return s;
}

std::string SpeculativeResult::to_json(const SpeculativeOptions& o, const std::string& model_path) const {
  nlohmann::json j;
  j["workload"] = "speculative";
  j["model"] = model_path;
  j["backend"] = backend;
  j["max_tokens"] = o.max_tokens;
  j["repeats"] = o.repeats;
  j["num_speculative_tokens"] = o.num_tokens;
  j["draft_model"] = o.draft_model;
  j["outputs_identical"] = outputs_identical;
  for (const SpeculativeModeResult& m : modes) {
    j["modes"].push_back({{"mode", m.mode},
                          {"decode_tok_s", {{"median", m.decode_tok_s.median}, {"min", m.decode_tok_s.min}, {"max", m.decode_tok_s.max}}},
                          {"speedup", {{"median", m.speedup.median}, {"min", m.speedup.min}, {"max", m.speedup.max}}},
                          {"completion_tokens", m.completion_tokens},
                          {"verifications", m.verifications},
                          {"draft_tokens", m.draft_tokens},
                          {"accepted_tokens", m.accepted_tokens},
                          {"mean_accepted_length", m.mean_accepted_length()},
                          {"estimated_speedup",
                           {{"median", m.estimated_speedup.median},
                            {"min", m.estimated_speedup.min},
                            {"max", m.estimated_speedup.max}}}});
  }
  return j.dump(2);
}

}  // namespace pagoda::bench
