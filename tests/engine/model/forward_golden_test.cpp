// The forward pass against llama.cpp on the real model (golden data: tools/golden/make_forward_golden.py).
//  - teacher forcing: top-1 of every position of each sequence (one prefill step: the GEMM path);
//  - greedy generation: the first 32 tokens (prefill then one decode step per token: the GEMV path);
//  - padding-free batching: the same sequences packed into one ragged step give the same logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/loaded_model.h"
#include "engine/sampling/sampler.h"
#include "engine/single_sequence.h"
#include "tests/test_env.h"

namespace pagoda::engine {
namespace {

struct GoldenCase {
  std::string name;
  std::vector<int32_t> tokens, top1, greedy;
  std::vector<double> margin;
  int32_t n_prompt = 0;
};

std::vector<GoldenCase> load_golden() {
  std::ifstream in(test::data_path("forward_golden.json"));
  EXPECT_TRUE(in.good()) << "missing tests/data/forward_golden.json";
  nlohmann::json j = nlohmann::json::parse(in);
  std::vector<GoldenCase> out;
  for (const auto& c : j.at("cases")) {
    GoldenCase g;
    g.name = c.at("name");
    g.tokens = c.at("tokens").get<std::vector<int32_t>>();
    g.top1 = c.at("top1").get<std::vector<int32_t>>();
    g.greedy = c.at("greedy").get<std::vector<int32_t>>();
    g.margin = c.at("margin").get<std::vector<double>>();
    g.n_prompt = c.at("n_prompt");
    out.push_back(std::move(g));
  }
  return out;
}

class ForwardGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::model_path().empty()) return;
    LoadOptions lo;
    lo.kv_tokens = 4096;
    auto m = load_model(test::model_path(), lo);
    ASSERT_TRUE(m.ok()) << m.message();
    model_ = new LoadedModel(std::move(m.value()));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  static LoadedModel* model_;
};
LoadedModel* ForwardGolden::model_ = nullptr;

TEST_F(ForwardGolden, TeacherForcedTop1AgreesWithLlamaCpp) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const auto cases = load_golden();
  ASSERT_GE(cases.size(), 20u);
  const int32_t vocab = model_->config().vocab_size;
  int64_t positions = 0, agree = 0;
  for (const GoldenCase& c : cases) {
    ASSERT_EQ(c.top1.size(), c.tokens.size()) << c.name;
    SingleSequence seq(*model_->backend, vocab, static_cast<int32_t>(c.tokens.size()));
    auto logits = seq.run(c.tokens, /*all_logits=*/true);
    ASSERT_TRUE(logits.ok()) << logits.message();
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      const int32_t top = argmax(logits.value().subspan(i * vocab, vocab));
      ++positions;
      if (top == c.top1[i]) {
        ++agree;
      } else {
        std::printf("  %s position %zu: pagoda %d, llama.cpp %d (llama.cpp top-2 margin %.4f)\n", c.name.c_str(), i, top,
                    c.top1[i], c.margin[i]);
      }
    }
  }
  const double rate = static_cast<double>(agree) / static_cast<double>(positions);
  std::printf("teacher-forced top-1 agreement: %lld / %lld = %.2f%%\n", static_cast<long long>(agree),
              static_cast<long long>(positions), 100 * rate);
  EXPECT_GE(positions, 2000);
  EXPECT_GE(rate, 0.99);
}

TEST_F(ForwardGolden, GreedyFirst32TokensMatchLlamaCpp) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const auto cases = load_golden();
  const int32_t vocab = model_->config().vocab_size;
  int identical = 0;
  for (const GoldenCase& c : cases) {
    SingleSequence seq(*model_->backend, vocab, c.n_prompt + 64);
    auto logits = seq.run(std::span(c.tokens).first(c.n_prompt));
    ASSERT_TRUE(logits.ok()) << logits.message();
    std::vector<int32_t> out;
    while (out.size() < c.greedy.size()) {
      out.push_back(argmax(logits.value()));
      if (out.size() == c.greedy.size()) break;
      logits = seq.run(std::span(&out.back(), 1));
      ASSERT_TRUE(logits.ok()) << logits.message();
    }
    if (out == c.greedy) {
      ++identical;
    } else {
      const size_t first = std::mismatch(out.begin(), out.end(), c.greedy.begin()).first - out.begin();
      std::printf("  %s: greedy output differs from token %zu on\n", c.name.c_str(), first);
    }
  }
  std::printf("greedy 32-token outputs identical: %d / %zu\n", identical, cases.size());
  EXPECT_GE(identical * 10, static_cast<int>(cases.size()) * 9);
}

// Several sequences in one padding-free step (each with positions from 0) give the same logits as
// each alone: attention is per sequence, nothing leaks across the ragged boundaries.
TEST_F(ForwardGolden, RaggedBatchEqualsSequencesRunAlone) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const auto cases = load_golden();
  const int32_t vocab = model_->config().vocab_size;
  const int32_t bs = model_->backend->kv_shape().block_size;
  StepPlanBuilder builder(bs);
  int32_t next_block = 0;
  std::vector<std::vector<float>> alone;
  for (size_t i = 0; i < 4; ++i) {
    const auto prompt = std::span(cases[i].tokens).first(cases[i].n_prompt);
    SingleSequence seq(*model_->backend, vocab, cases[i].n_prompt);
    auto logits = seq.run(prompt);
    ASSERT_TRUE(logits.ok());
    alone.emplace_back(logits.value().begin(), logits.value().end());
    // Place the batched copies after the blocks SingleSequence uses.
    std::vector<int32_t> table;
    for (int32_t b = 0; b < (cases[i].n_prompt + bs - 1) / bs; ++b) table.push_back(200 + next_block++);
    builder.add_sequence(i, prompt, 0, table);
  }
  StepPlan plan = builder.build();
  std::vector<float> logits(plan.logits_indices.size() * vocab);
  ASSERT_TRUE(model_->backend->execute(plan, logits).ok());
  for (size_t i = 0; i < alone.size(); ++i) {
    const std::span<const float> row(logits.data() + i * vocab, vocab);
    EXPECT_EQ(argmax(row), argmax(alone[i]));
    double max_diff = 0;
    for (int32_t v = 0; v < vocab; ++v) max_diff = std::max(max_diff, std::fabs(double(row[v]) - alone[i][v]));
    EXPECT_LT(max_diff, 1e-2) << "sequence " << i;
  }
}

}  // namespace
}  // namespace pagoda::engine
