// Acceptance 1 of the scheduler: greedy outputs of 32 requests of different lengths are identical run
// alone, all together, with chunked prefill, without prefix caching, and with a KV pool small enough
// to force preemption (the padded-prefill ablation: tests/bench/padded_prefill_backend_test.cpp). The
// engine's numbers depend only on each token's role, never on how a step was packed, so "identical"
// means token for token.
#include <gtest/gtest.h>

#include <map>

#include "engine/loaded_model.h"
#include "scheduler/engine_loop.h"
#include "tests/golden_prompts.h"
#include "tests/test_env.h"

namespace pagoda::scheduler {
namespace {

using Outputs = std::map<RequestId, std::vector<int32_t>>;

std::vector<std::vector<int32_t>> prompts_from_golden() {
  std::vector<std::vector<int32_t>> prompts = test::golden_prompts();
  // Longer ones, and ones that share a prefix with others (prefix-cache hits).
  const size_t base = prompts.size();
  for (size_t i = 0; prompts.size() < 32; ++i) {
    std::vector<int32_t> p = prompts[i % base];
    const auto& q = prompts[(i * 7 + 3) % base];
    p.insert(p.end(), q.begin(), q.end());
    prompts.push_back(p);
  }
  return prompts;
}

class BatchInvariance : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::model_path().empty()) return;
    engine::LoadOptions lo;
    lo.kv_tokens = 16 * 512;
    auto m = engine::load_model(test::model_path(), lo);
    ASSERT_TRUE(m.ok()) << m.message();
    model_ = new engine::LoadedModel(std::move(m.value()));
    prompts_ = new std::vector<std::vector<int32_t>>(prompts_from_golden());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete prompts_;
  }

  // Runs the prompts (ids = indices) through a fresh engine loop, all submitted before the first step.
  static Outputs run(const EngineLoopConfig& config, const std::vector<size_t>& which, EngineLoopStats* stats = nullptr) {
    EngineLoop loop(*model_->backend, *model_->tokenizer, config);
    Outputs out;
    for (size_t i : which) {
      Request r;
      r.id = i;
      r.prompt = (*prompts_)[i];
      r.stop.max_tokens = 16;
      r.sink = [&out](const TokenEvent& e) {
        if (e.token >= 0) out[e.request].push_back(e.token);
        EXPECT_NE(e.finish, FinishReason::Error) << e.error;
      };
      Status s = loop.submit(std::move(r));
      EXPECT_TRUE(s.ok()) << s.message();
    }
    loop.run_until_idle();
    if (stats) *stats = loop.stats();
    EXPECT_EQ(loop.kv().stats().used_blocks, 0) << "blocks still referenced after every request finished";
    EXPECT_TRUE(loop.kv().check_consistency().ok()) << loop.kv().check_consistency().message();
    return out;
  }

  static const Outputs& alone() {
    static const Outputs outputs = [] {
      Outputs all;
      for (size_t i = 0; i < prompts_->size(); ++i) {
        Outputs one = run(EngineLoopConfig{}, {i});
        all[i] = one[i];
      }
      return all;
    }();
    return outputs;
  }

  static std::vector<size_t> all_ids() {
    std::vector<size_t> ids(prompts_->size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
    return ids;
  }

  static void expect_same_as_alone(const Outputs& got, const char* what) {
    ASSERT_EQ(got.size(), alone().size()) << what;
    for (const auto& [id, tokens] : alone()) {
      EXPECT_EQ(got.at(id), tokens) << what << ": request " << id << " differs from its run alone";
    }
  }

  static engine::LoadedModel* model_;
  static std::vector<std::vector<int32_t>>* prompts_;
};
engine::LoadedModel* BatchInvariance::model_ = nullptr;
std::vector<std::vector<int32_t>>* BatchInvariance::prompts_ = nullptr;

TEST_F(BatchInvariance, AllTogether) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  ASSERT_EQ(prompts_->size(), 32u);
  expect_same_as_alone(run(EngineLoopConfig{}, all_ids()), "all together");
}

TEST_F(BatchInvariance, ChunkedPrefillWithASmallTokenBudget) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  EngineLoopConfig c;
  c.scheduler.max_num_batched_tokens = 48;  // most prompts are longer: they run in chunks
  expect_same_as_alone(run(c, all_ids()), "chunked prefill, 48-token steps");
}

TEST_F(BatchInvariance, PrefixCachingOff) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  EngineLoopConfig c;
  c.prefix_caching = false;
  expect_same_as_alone(run(c, all_ids()), "prefix caching off");
}

TEST_F(BatchInvariance, SmallPoolForcesPreemption) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  EngineLoopConfig c;
  c.num_kv_blocks = 48;  // ~770 tokens for 32 requests of ~50-250 tokens each
  EngineLoopStats stats;
  expect_same_as_alone(run(c, all_ids(), &stats), "small KV pool");
  EXPECT_GT(stats.preemptions, 0) << "the pool was meant to be too small for all requests at once";
}

}  // namespace
}  // namespace pagoda::scheduler
