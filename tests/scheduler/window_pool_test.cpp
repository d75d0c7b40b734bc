// The sliding-window layers' own KV pool, end to end: gemma2's and gemma3's random-weight golden models
// (tests/data/arch_golden.json, llama.cpp's greedy continuations) served by the engine loop with a window
// pool sized for 4 sequences of a 32-token step. Prompts of up to 200 tokens against windows of 40 and
// 48 only fit it because every sequence gives its window blocks back as its window moves on; the
// continuations must still be llama.cpp's, through chunked prefill, waiting, and prefix hits whose last
// window comes from the window pool's cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "engine/loaded_model.h"
#include "engine/model/random_model.h"
#include "scheduler/engine_loop.h"
#include "tests/test_env.h"

namespace pagoda::scheduler {
namespace {

constexpr int32_t kMaxSeqs = 4;
constexpr int32_t kStepTokens = 32;

struct Case {
  std::vector<int32_t> prompt, greedy;
};

// The golden file's model (written again from its preset and seed) and its cases.
std::optional<engine::LoadedModel> load(const std::string& preset, std::vector<Case>* cases,
                                        int32_t window_pool_seqs = kMaxSeqs, int32_t step_tokens = kStepTokens) {
  std::ifstream in(test::data_path("arch_golden.json"));
  const nlohmann::json doc = nlohmann::json::parse(in);
  for (const auto& m : doc.at("models")) {
    if (m.at("preset") != preset || m.at("type") != "q8_0") continue;
    auto spec = engine::random_model_preset(preset);
    if (!spec) return std::nullopt;
    spec->weight_type = engine::GgmlType::Q8_0;
    spec->seed = m.at("seed");
    const std::string path = ::testing::TempDir() + "/pagoda_window_pool_" + preset + ".gguf";
    if (Status w = engine::write_random_llama(*spec, path); !w.ok()) {
      ADD_FAILURE() << w.message();
      return std::nullopt;
    }
    engine::LoadOptions lo;
    lo.kv_tokens = 2048;  // the main pool holds every sequence whole
    lo.window_pool_seqs = window_pool_seqs;
    lo.backend.max_step_tokens = step_tokens;
    auto loaded = engine::load_model(path, lo);
    std::filesystem::remove(path);  // the mapping stays valid
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.message();
      return std::nullopt;
    }
    for (const auto& c : m.at("cases")) {
      const auto tokens = c.at("tokens").get<std::vector<int32_t>>();
      const int32_t n_prompt = c.at("n_prompt");
      cases->push_back({std::vector<int32_t>(tokens.begin(), tokens.begin() + n_prompt),
                        c.at("greedy").get<std::vector<int32_t>>()});
    }
    return std::move(loaded.value());
  }
  ADD_FAILURE() << preset << " q8_0 is not in arch_golden.json";
  return std::nullopt;
}

// What the engine loop's KV pools held, step by step.
struct Peaks {
  int32_t main_blocks = 0;        // the main pool's blocks in use
  int32_t window_blocks = 0;      // the window pool's
  int32_t window_over_bound = 0;  // steps after which the window pool held more than the running windows span
};

// Runs the requests `which` (ids = indices into cases) greedily, all submitted before the first step,
// one step at a time; returns each request's tokens. Between steps, a running sequence holds the window
// blocks of its committed tokens' last window only: ceil((window - 1) / 16) + 1 at most.
std::map<RequestId, std::vector<int32_t>> serve(EngineLoop& loop, const std::vector<Case>& cases,
                                                const std::vector<size_t>& which, int32_t window, Peaks* peaks) {
  std::map<RequestId, std::vector<int32_t>> out;
  for (size_t i : which) {
    Request r;
    r.id = i;
    r.prompt = cases[i].prompt;
    r.stop.max_tokens = static_cast<int32_t>(cases[i].greedy.size());
    r.sink = [&out](const TokenEvent& e) {
      if (e.token >= 0) out[e.request].push_back(e.token);
      EXPECT_NE(e.finish, FinishReason::Error) << e.error;
    };
    Status s = loop.submit(std::move(r));
    EXPECT_TRUE(s.ok()) << s.message();
  }
  const int32_t per_sequence = (window - 1 + 15) / 16 + 1;
  for (int steps = 0; loop.run_step() || loop.stats().running + loop.stats().waiting > 0; ++steps) {
    if (steps > 100'000) {
      ADD_FAILURE() << "the engine loop made no progress";
      break;
    }
    const engine::KvCacheStats st = loop.kv().stats();
    peaks->main_blocks = std::max(peaks->main_blocks, st.used_blocks);
    peaks->window_blocks = std::max(peaks->window_blocks, st.used_window_blocks);
    peaks->window_over_bound += st.used_window_blocks > loop.stats().running * per_sequence;
  }
  return out;
}

class WindowPool : public ::testing::TestWithParam<const char*> {};

TEST_P(WindowPool, ServesLlamaCppsContinuationsHoldingOnlyTheWindows) {
  std::vector<Case> cases;
  auto model = load(GetParam(), &cases);
  ASSERT_TRUE(model.has_value());
  const engine::KvCacheShape shape = model->backend->kv_shape();
  const int32_t window = model->backend->kv_window();
  ASSERT_GT(window, 0);
  // 4 sequences' windows of 40-48 tokens and one 32-token step, in 16-token blocks.
  EXPECT_EQ(shape.num_window_blocks, kMaxSeqs * ((window - 1 + 15) / 16 + 2) + kStepTokens / 16);

  EngineLoopConfig config;
  config.scheduler.max_num_seqs = kMaxSeqs;
  config.scheduler.max_num_batched_tokens = kStepTokens;  // chunked prefill across the window's edge
  EngineLoop loop(*model->backend, *model->tokenizer, config);
  std::vector<size_t> all(cases.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  Peaks peaks;
  auto out = serve(loop, cases, all, window, &peaks);
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(out[i], cases[i].greedy) << "case " << i;
  EXPECT_EQ(peaks.window_over_bound, 0) << "window blocks behind the windows were not released";
  // The windowed layers ran on fewer blocks than the other layers needed at once.
  EXPECT_GT(peaks.main_blocks, shape.num_window_blocks);
  EXPECT_LE(peaks.window_blocks, shape.num_window_blocks);
  EXPECT_EQ(loop.stats().preemptions, 0);
  EXPECT_GT(loop.kv().stats().cached_window_blocks, 0);

  // Every prompt again (new ids): prefix hits, whose last windows come from the window pool's cache.
  const int64_t hits_before = loop.stats().prefix_hits;
  std::vector<size_t> again;
  std::vector<Case> repeated = cases;
  repeated.insert(repeated.end(), cases.begin(), cases.end());
  for (size_t i = cases.size(); i < repeated.size(); ++i) again.push_back(i);
  auto out2 = serve(loop, repeated, again, window, &peaks);
  for (size_t i : again) EXPECT_EQ(out2[i], repeated[i].greedy) << "repeated case " << i - cases.size();
  EXPECT_GT(loop.stats().prefix_hits, hits_before);

  const engine::KvCacheStats st = loop.kv().stats();
  EXPECT_EQ(st.used_blocks, 0);
  EXPECT_EQ(st.used_window_blocks, 0);
  EXPECT_TRUE(loop.kv().check_consistency().ok()) << loop.kv().check_consistency().message();
}

// A window pool sized for one sequence and 16-token steps (6 blocks: 96 tokens), and an engine loop
// asked for 2048-token steps: a 200-token prompt in one step would need 13 window blocks and could never
// be placed, so the loop lowers its step budget to what the pool holds beside one window.
TEST_P(WindowPool, AStepBudgetThePoolCannotHoldIsLowered) {
  std::vector<Case> cases;
  auto model = load(GetParam(), &cases, /*window_pool_seqs=*/1, /*step_tokens=*/16);
  ASSERT_TRUE(model.has_value());
  const int32_t window = model->backend->kv_window();
  ASSERT_EQ(model->backend->kv_shape().num_window_blocks, (window - 1 + 15) / 16 + 2 + 1);
  EngineLoopConfig config;
  config.scheduler.max_num_seqs = 1;
  config.scheduler.max_num_batched_tokens = 2048;
  EngineLoop loop(*model->backend, *model->tokenizer, config);
  size_t longest = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].prompt.size() > cases[longest].prompt.size()) longest = i;
  }
  ASSERT_GT(cases[longest].prompt.size(), 6u * 16);
  Peaks peaks;
  auto out = serve(loop, cases, {longest}, window, &peaks);
  EXPECT_EQ(out[longest], cases[longest].greedy);
  EXPECT_EQ(peaks.window_over_bound, 0);
}

INSTANTIATE_TEST_SUITE_P(Gemma, WindowPool, ::testing::Values("gemma2-tiny", "gemma3-tiny"), [](const auto& info) {
  return std::string(info.param) == "gemma2-tiny" ? "Gemma2" : "Gemma3";
});

}  // namespace
}  // namespace pagoda::scheduler
