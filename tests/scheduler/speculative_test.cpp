// Speculative decoding on the real model (issue acceptance 1-3): with prompt lookup, a perfect drafter
// and a deliberately bad one, at batch 1 and 16, with chunked prefill and forced preemption, greedy and
// seeded sampled outputs are token for token those of decoding without drafts. The model runner keeps a
// draft only when it equals the sampler's own draw from the target's logits, and the CPU backend's
// numbers do not depend on how a step was packed, so "lossless" here means identical, not merely the
// same distribution.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "engine/loaded_model.h"
#include "engine/spec/draft_model_drafter.h"
#include "engine/tokenizer/chat_template.h"
#include "scheduler/engine_loop.h"
#include "tests/golden_prompts.h"
#include "tests/test_env.h"

namespace pagoda::scheduler {
namespace {

using Outputs = std::map<RequestId, std::vector<int32_t>>;

// Proposes what a reference run produced: under greedy every draft must be kept.
class OracleDrafter final : public engine::Drafter {
 public:
  explicit OracleDrafter(std::map<std::vector<int32_t>, std::vector<int32_t>> by_prompt) : by_prompt_(std::move(by_prompt)) {}
  const char* name() const override { return "oracle"; }
  void propose(const engine::DraftQuery& q, std::vector<int32_t>& out) override {
    const std::vector<int32_t> prompt(q.tokens.begin(), q.tokens.begin() + q.prompt_len);
    auto it = by_prompt_.find(prompt);
    if (it == by_prompt_.end()) return;
    const size_t done = q.tokens.size() - q.prompt_len;
    for (size_t j = done; j < it->second.size() && out.size() < static_cast<size_t>(q.max_tokens); ++j) {
      out.push_back(it->second[j]);
    }
  }

 private:
  std::map<std::vector<int32_t>, std::vector<int32_t>> by_prompt_;
};

// Proposes random tokens: almost every draft is rejected.
class RandomDrafter final : public engine::Drafter {
 public:
  explicit RandomDrafter(int32_t vocab) : vocab_(vocab) {}
  const char* name() const override { return "random"; }
  void propose(const engine::DraftQuery& q, std::vector<int32_t>& out) override {
    for (int32_t j = 0; j < q.max_tokens; ++j) out.push_back(static_cast<int32_t>(rng_() % vocab_));
  }

 private:
  int32_t vocab_;
  std::mt19937 rng_{7};
};

class Speculative : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::model_path().empty()) return;
    engine::LoadOptions lo;
    lo.kv_tokens = 16 * 512;
    auto m = engine::load_model(test::model_path(), lo);
    ASSERT_TRUE(m.ok()) << m.message();
    model_ = new engine::LoadedModel(std::move(m.value()));
    prompts_ = new std::vector<std::vector<int32_t>>(make_prompts());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete prompts_;
  }

  // 16 prompts: 8 from the golden file, 8 chat requests that copy or edit a passage (prompt lookup's
  // home ground).
  static std::vector<std::vector<int32_t>> make_prompts() {
    std::vector<std::vector<int32_t>> prompts = test::golden_prompts();
    prompts.resize(8);
    const char* passages[] = {
        "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun all afternoon.",
        "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n",
        "Name: Alice Smith\nAge: 34\nCity: Paris\nJob: engineer\n",
        "Rain fell on the old town. The streets were empty and the lamps were lit early.",
    };
    const char* asks[] = {"Repeat this text exactly:\n", "Rewrite this text, changing nothing:\n"};
    const engine::Tokenizer& tok = *model_->tokenizer;
    for (const char* ask : asks) {
      for (const char* passage : passages) {
        auto text = engine::render_user_turn(tok, std::string(ask) + passage);
        EXPECT_TRUE(text.ok()) << text.message();
        prompts.push_back(engine::encode_rendered_chat(tok, text.value()));
      }
    }
    return prompts;
  }

  struct Run {
    Outputs out;
    EngineLoopStats stats;
  };

  // The prompts `which` through a fresh engine loop, all submitted before the first step.
  static Run run(EngineLoopConfig config, const std::vector<size_t>& which, const engine::SamplingParams& sampling,
                 std::unique_ptr<engine::Drafter> drafter = nullptr) {
    EngineLoop loop(*model_->backend, *model_->tokenizer, config);
    if (drafter) loop.set_drafter(std::move(drafter));
    Run r;
    for (size_t i : which) {
      Request q;
      q.id = i;
      q.prompt = (*prompts_)[i];
      q.sampling = sampling;
      q.sampling.seed = 1000 + i;
      q.stop.max_tokens = 40;
      q.sink = [&r](const TokenEvent& e) {
        if (e.token >= 0) r.out[e.request].push_back(e.token);
        EXPECT_NE(e.finish, FinishReason::Error) << e.error;
      };
      Status s = loop.submit(std::move(q));
      EXPECT_TRUE(s.ok()) << s.message();
    }
    loop.run_until_idle();
    r.stats = loop.stats();
    EXPECT_EQ(loop.kv().stats().used_blocks, 0) << "blocks still referenced after every request finished";
    EXPECT_TRUE(loop.kv().check_consistency().ok()) << loop.kv().check_consistency().message();
    EXPECT_EQ(loop.open_samplers(), 0);
    return r;
  }

  static std::vector<size_t> all_ids() {
    std::vector<size_t> ids(prompts_->size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
    return ids;
  }
  // Each prompt alone, one engine loop per prompt.
  static Outputs one_by_one(const EngineLoopConfig& config, const engine::SamplingParams& sampling) {
    Outputs all;
    for (size_t i = 0; i < prompts_->size(); ++i) all[i] = run(config, {i}, sampling).out[i];
    return all;
  }

  static EngineLoopConfig ngram() {
    EngineLoopConfig c;
    c.scheduler.speculative.mode = engine::SpeculativeMode::Ngram;
    return c;
  }
  static EngineLoopConfig draft_mode() {
    EngineLoopConfig c;
    c.scheduler.speculative.mode = engine::SpeculativeMode::Draft;
    return c;
  }
  // The target itself as its draft model (loaded once): under greedy it proposes exactly what the target
  // will draw, so every draft must be kept.
  static engine::DraftModelDrafter* same_model_drafter() {
    static std::unique_ptr<engine::DraftModelDrafter> d = [] {
      engine::LoadOptions lo;
      lo.kv_tokens = 16 * 512;
      auto r = engine::DraftModelDrafter::load(test::model_path(), lo, *model_->tokenizer, model_->config().vocab_size,
                                               2048);
      EXPECT_TRUE(r.ok()) << r.message();
      return r.ok() ? std::move(r.value()) : nullptr;
    }();
    return d.get();
  }
  static std::unique_ptr<engine::Drafter> borrow(engine::Drafter& d) {
    return std::make_unique<engine::BorrowedDrafter>(d);
  }
  static engine::SamplingParams greedy() { return {}; }
  static engine::SamplingParams sampled() {
    engine::SamplingParams p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.9f;
    p.min_p = 0.02f;
    p.repetition_penalty = 1.1f;
    p.presence_penalty = 0.3f;
    p.frequency_penalty = 0.2f;
    return p;
  }
  static const Outputs& reference(bool sampling) {
    static const Outputs greedy_ref = run(EngineLoopConfig{}, all_ids(), greedy()).out;
    static const Outputs sampled_ref = run(EngineLoopConfig{}, all_ids(), sampled()).out;
    return sampling ? sampled_ref : greedy_ref;
  }
  static void expect_same(const Outputs& got, const Outputs& want, const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (const auto& [id, tokens] : want) EXPECT_EQ(got.at(id), tokens) << what << ": request " << id;
  }

  static engine::LoadedModel* model_;
  static std::vector<std::vector<int32_t>>* prompts_;
};
engine::LoadedModel* Speculative::model_ = nullptr;
std::vector<std::vector<int32_t>>* Speculative::prompts_ = nullptr;

TEST_F(Speculative, PromptLookupGreedyIsIdenticalAloneAndAtBatch16) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  expect_same(one_by_one(ngram(), greedy()), reference(false), "prompt lookup, batch 1");
  const Run all = run(ngram(), all_ids(), greedy());
  expect_same(all.out, reference(false), "prompt lookup, batch 16");
  EXPECT_GT(all.stats.spec_draft_tokens, 0);
  EXPECT_GT(all.stats.spec_accepted_tokens, all.stats.spec_draft_tokens / 10)
      << "copy prompts should keep a fair share of prompt-lookup drafts";
  // The net-benefit estimate covers the drafting steps (their plain size was measured by other steps).
  EXPECT_GT(all.stats.spec_step_ms, 0.0);
  EXPECT_GT(all.stats.spec_plain_estimate_ms, 0.0);
}

// What auto drafts depends on this machine's measured step times (draft_policy_test.cpp checks the
// choice itself); whatever it drafts, the output is the same.
TEST_F(Speculative, AutoIsIdentical) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  EngineLoopConfig c;
  c.scheduler.speculative.mode = engine::SpeculativeMode::Auto;
  expect_same(run(c, all_ids(), greedy()).out, reference(false), "auto, batch 16");
  expect_same(one_by_one(c, sampled()), reference(true), "auto, batch 1, sampled");
}

TEST_F(Speculative, ChunkedPrefillAndPreemptionStayIdentical) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  for (engine::SpeculativeMode mode : {engine::SpeculativeMode::Ngram, engine::SpeculativeMode::Suffix}) {
    EngineLoopConfig c;
    c.scheduler.speculative.mode = mode;
    c.scheduler.max_num_batched_tokens = 48;  // prompts run in chunks; drafts compete for the budget
    c.num_kv_blocks = 40;                     // 640 tokens for 16 requests of ~60-300: preemption
    const Run r = run(c, all_ids(), greedy());
    const char* name = engine::speculative_mode_name(mode);
    expect_same(r.out, reference(false), name);
    EXPECT_GT(r.stats.preemptions, 0) << name << ": the pool was meant to force preemption";
    EXPECT_GT(r.stats.spec_accepted_tokens, 0) << name;
  }
}

TEST_F(Speculative, PerfectDrafterIsAlwaysKeptUnderGreedy) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  std::map<std::vector<int32_t>, std::vector<int32_t>> by_prompt;
  for (const auto& [id, tokens] : reference(false)) by_prompt[(*prompts_)[id]] = tokens;
  const Run r = run(ngram(), all_ids(), greedy(), std::make_unique<OracleDrafter>(by_prompt));
  expect_same(r.out, reference(false), "perfect drafter");
  EXPECT_GT(r.stats.spec_draft_tokens, 0);
  EXPECT_EQ(r.stats.spec_accepted_tokens, r.stats.spec_draft_tokens) << "a draft of the target's own output was rejected";
}

TEST_F(Speculative, SeededSamplingIsIdenticalWithGoodAndBadDrafters) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const Run lookup = run(ngram(), all_ids(), sampled());
  expect_same(lookup.out, reference(true), "prompt lookup, sampled");
  const Run bad = run(ngram(), all_ids(), sampled(), std::make_unique<RandomDrafter>(model_->tokenizer->vocab_size()));
  expect_same(bad.out, reference(true), "random drafter, sampled");
  EXPECT_GT(bad.stats.spec_draft_tokens, 0);
  EXPECT_LT(bad.stats.spec_accepted_tokens, bad.stats.spec_draft_tokens / 10) << "random drafts are mostly rejected";
}

TEST_F(Speculative, DraftModelEqualToTheTargetIsAlwaysKeptAndIdentical) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  ASSERT_NE(same_model_drafter(), nullptr);
  engine::DraftModelDrafter& d = *same_model_drafter();
  const Run batch = run(draft_mode(), all_ids(), greedy(), borrow(d));
  expect_same(batch.out, reference(false), "draft model, batch 16");
  EXPECT_GT(batch.stats.spec_draft_tokens, 0);
  EXPECT_EQ(batch.stats.spec_accepted_tokens, batch.stats.spec_draft_tokens)
      << "a draft model equal to the target proposed a token the target did not draw";
  EXPECT_EQ(d.num_sequences(), 0) << "finished sequences keep draft state";
  EXPECT_EQ(d.kv_stats().used_blocks, 0);
  for (size_t i : {size_t{0}, size_t{9}}) {
    const Run one = run(draft_mode(), {i}, greedy(), borrow(d));
    EXPECT_EQ(one.out.at(i), reference(false).at(i)) << "draft model, batch 1, request " << i;
    EXPECT_EQ(one.stats.spec_accepted_tokens, one.stats.spec_draft_tokens);
  }
}

TEST_F(Speculative, DraftModelWithChunkedPrefillPreemptionAndSamplingStaysIdentical) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  ASSERT_NE(same_model_drafter(), nullptr);
  engine::DraftModelDrafter& d = *same_model_drafter();
  EngineLoopConfig c = draft_mode();
  c.scheduler.max_num_batched_tokens = 48;
  c.num_kv_blocks = 40;
  const Run r = run(c, all_ids(), greedy(), borrow(d));
  expect_same(r.out, reference(false), "draft model, chunked prefill + small pool");
  EXPECT_GT(r.stats.preemptions, 0) << "the pool was meant to force preemption";
  EXPECT_EQ(r.stats.spec_accepted_tokens, r.stats.spec_draft_tokens);
  const Run sampled_run = run(draft_mode(), all_ids(), sampled(), borrow(d));
  expect_same(sampled_run.out, reference(true), "draft model, sampled");
  EXPECT_GT(sampled_run.stats.spec_accepted_tokens, 0);
  EXPECT_EQ(d.kv_stats().used_blocks, 0);
}

TEST_F(Speculative, DraftModelWithAnotherVocabularyIsRefused) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const engine::Tokenizer& tok = *model_->tokenizer;
  EXPECT_TRUE(engine::check_draft_vocabulary(tok, model_->config().vocab_size, tok, model_->config().vocab_size).ok());
  const int32_t vocab = model_->config().vocab_size;
  const Status wider = engine::check_draft_vocabulary(tok, vocab, tok, vocab + 1);
  EXPECT_FALSE(wider.ok());
  EXPECT_NE(wider.message().find("tokens"), std::string::npos) << wider.message();
  engine::TokenizerSpec other = tok.spec();
  other.tokens[100] = "something else";
  auto changed = engine::Tokenizer::create(other);
  ASSERT_TRUE(changed.ok()) << changed.message();
  const Status differs =
      engine::check_draft_vocabulary(tok, model_->config().vocab_size, *changed.value(), model_->config().vocab_size);
  EXPECT_FALSE(differs.ok());
  EXPECT_NE(differs.message().find("token 100"), std::string::npos) << differs.message();
  engine::LoadOptions lo;
  EXPECT_FALSE(engine::DraftModelDrafter::load("/nonexistent.gguf", lo, tok, model_->config().vocab_size, 64).ok());
}

// Suffix drafting: the request's own tokens plus outputs of finished requests. Run twice through one
// loop, the second pass drafts from the first pass's outputs.
TEST_F(Speculative, SuffixDraftingIsIdenticalAndDraftsFromEarlierOutputs) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  EngineLoopConfig c;
  c.scheduler.speculative.mode = engine::SpeculativeMode::Suffix;
  const Run first = run(c, all_ids(), greedy());
  expect_same(first.out, reference(false), "suffix, batch 16");
  EngineLoop loop(*model_->backend, *model_->tokenizer, c);
  Outputs out;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i : {size_t{0}, size_t{1}, size_t{2}}) {
      Request q;
      q.id = pass * 100 + i;
      q.prompt = (*prompts_)[i];
      q.stop.max_tokens = 40;
      q.sink = [&out](const TokenEvent& e) {
        if (e.token >= 0) out[e.request].push_back(e.token);
      };
      ASSERT_TRUE(loop.submit(std::move(q)).ok());
      loop.run_until_idle();
    }
  }
  const EngineLoopStats st = loop.stats();
  for (size_t i : {size_t{0}, size_t{1}, size_t{2}}) {
    EXPECT_EQ(out.at(i), reference(false).at(i));
    EXPECT_EQ(out.at(100 + i), reference(false).at(i));
  }
  // The golden prompts have little copy structure; a repeated request is drafted from its first answer.
  EXPECT_GT(st.spec_accepted_tokens, 60) << "the second pass should draft most of its tokens from the first";
}

// n > 1 choices fork from the prompt's last row. A chunked prefill that leaves exactly one prompt token
// makes that token look like a decode; it must sample (and fork) as usual, not verify drafts.
TEST_F(Speculative, ForkedChoicesWithAPredictionAfterAChunkedPrefill) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  const size_t id = 9;
  const std::vector<int32_t>& prompt = (*prompts_)[id];
  EngineLoopConfig c = ngram();
  c.scheduler.max_num_batched_tokens = static_cast<int32_t>(prompt.size()) - 1;
  auto run_n2 = [&](bool with_prediction) {
    EngineLoop loop(*model_->backend, *model_->tokenizer, c);
    std::map<int32_t, std::vector<int32_t>> out;
    int finished = 0;
    Request q;
    q.id = 1;
    q.prompt = prompt;
    q.n = 2;
    q.sampling = sampled();
    q.sampling.seed = 5;
    q.stop.max_tokens = 24;
    if (with_prediction) q.prediction = reference(false).at(id);
    q.sink = [&](const TokenEvent& e) {
      if (e.token >= 0) out[e.index].push_back(e.token);
      EXPECT_NE(e.finish, FinishReason::Error) << e.error;
      finished += e.finish != FinishReason::None;
    };
    EXPECT_TRUE(loop.submit(std::move(q)).ok());
    loop.run_until_idle();
    EXPECT_EQ(finished, 2);
    EXPECT_EQ(loop.kv().stats().used_blocks, 0);
    return out;
  };
  const auto plain = run_n2(false);
  const auto predicted = run_n2(true);
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_EQ(predicted, plain);
}

TEST_F(Speculative, PredictedOutputOnAServerThatDraftsNothing) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  // The prediction is the reference output itself with one token changed in the middle: drafts follow
  // it, diverge once, and re-synchronise.
  EngineLoop loop(*model_->backend, *model_->tokenizer, EngineLoopConfig{});
  const size_t id = 8;  // a copy prompt
  std::vector<int32_t> predicted = reference(false).at(id);
  ASSERT_GT(predicted.size(), 10u);
  predicted[predicted.size() / 2] = (predicted[predicted.size() / 2] + 1) % model_->tokenizer->vocab_size();
  Request q;
  q.id = id;
  q.prompt = (*prompts_)[id];
  q.stop.max_tokens = 40;
  q.prediction = predicted;
  std::vector<int32_t> got;
  TokenEvent last;
  q.sink = [&](const TokenEvent& e) {
    if (e.token >= 0) got.push_back(e.token);
    if (e.finish != FinishReason::None) last = e;
  };
  ASSERT_TRUE(loop.submit(std::move(q)).ok());
  loop.run_until_idle();
  EXPECT_EQ(got, reference(false).at(id));
  EXPECT_GT(last.accepted_draft_tokens, static_cast<int32_t>(got.size()) / 2) << "most of the prediction is right";
  EXPECT_GT(last.draft_tokens, last.accepted_draft_tokens) << "the changed token must have been rejected";
}

}  // namespace
}  // namespace pagoda::scheduler
