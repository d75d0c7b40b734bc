// The padded-prefill ablation (bench/padded_prefill_backend.h): its plans stay valid, every prefill
// chunk is padded to the step's longest, decode rows are not, and on the real model the outputs are
// token for token the packed run's.
#include "bench/padded_prefill_backend.h"

#include <gtest/gtest.h>

#include <map>

#include "engine/loaded_model.h"
#include "scheduler/engine_loop.h"
#include "tests/golden_prompts.h"
#include "tests/test_env.h"

namespace pagoda::bench {
namespace {

constexpr int32_t kBlockSize = 4, kNumBlocks = 16, kVocab = 100;

// Records the plans it is given and checks them as a backend does.
class RecordingBackend final : public engine::Backend {
 public:
  std::string name() const override { return "recording"; }
  Status load(std::shared_ptr<const engine::ModelWeights>) override { return {}; }
  Status allocate_kv(const engine::KvCacheShape&) override { return {}; }
  engine::KvCacheShape kv_shape() const override { return {kNumBlocks, kBlockSize}; }
  int64_t kv_bytes_per_block() const override { return 1; }
  int64_t kv_memory_available() const override { return 0; }
  Status execute(const engine::StepPlan& plan, std::span<float>) override {
    plans.push_back(plan);
    return plan.validate(kNumBlocks, kBlockSize, kVocab);
  }
  Status copy_blocks(std::span<const std::pair<int32_t, int32_t>>) override { return {}; }
  engine::BackendInfo info() const override { return {}; }

  std::vector<engine::StepPlan> plans;
};

TEST(PaddedPrefillBackend, PadsEveryPrefillChunkToTheLongestAndLeavesDecodeRows) {
  // Sequence 1: a 9-token prompt chunk (blocks 0-2); 2: a 3-token chunk (block 3); 3: one decode token at
  // position 5 (blocks 4-5). Pads go to blocks 8..15.
  engine::StepPlanBuilder b(kBlockSize);
  const std::vector<int32_t> t9(9, 7), t3(3, 7), t1(1, 7);
  b.add_sequence(1, t9, 0, std::vector<int32_t>{0, 1, 2});
  b.set_prompt_len(9);
  b.add_sequence(2, t3, 0, std::vector<int32_t>{3});
  b.set_prompt_len(3);
  b.add_sequence(3, t1, 5, std::vector<int32_t>{4, 5});
  b.set_prompt_len(4);
  const engine::StepPlan plan = b.build();
  ASSERT_TRUE(plan.validate(kNumBlocks, kBlockSize, kVocab).ok());

  RecordingBackend inner;
  PaddedPrefillBackend padded(inner, 8);
  std::vector<float> logits(plan.logits_indices.size() * kVocab);
  Status s = padded.execute(plan, logits);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(inner.plans.size(), 1u);
  const engine::StepPlan& p = inner.plans[0];
  // Only sequence 2 is padded (6 tokens, two blocks); the 9-token one is the longest, the decode row is
  // never padded.
  ASSERT_EQ(p.num_seqs(), 4);
  EXPECT_EQ(p.num_tokens(), 9 + 3 + 1 + 6);
  EXPECT_EQ(padded.pad_tokens, 6);
  EXPECT_EQ(padded.skipped_pad_tokens, 0);
  EXPECT_EQ(p.context_lens[3], 6);
  EXPECT_EQ(p.prompt_lens[3], 6);
  EXPECT_EQ(p.block_table(3)[0], 8);
  EXPECT_EQ(p.block_table(3)[1], 9);
  // The real sequences and their outputs are untouched.
  EXPECT_EQ(p.logits_indices, plan.logits_indices);
  EXPECT_EQ(p.sample_seq_ids, plan.sample_seq_ids);
  for (int32_t seq = 0; seq < 3; ++seq) {
    EXPECT_EQ(std::vector<int32_t>(p.block_table(seq).begin(), p.block_table(seq).end()),
              std::vector<int32_t>(plan.block_table(seq).begin(), plan.block_table(seq).end()));
  }
}

TEST(PaddedPrefillBackend, PadsThatDoNotFitAreCountedNotRun) {
  engine::StepPlanBuilder b(kBlockSize);
  const std::vector<int32_t> t12(12, 7), t2(2, 7);
  b.add_sequence(1, t12, 0, std::vector<int32_t>{0, 1, 2});
  b.add_sequence(2, t2, 0, std::vector<int32_t>{3});
  const engine::StepPlan plan = b.build();
  RecordingBackend inner;
  PaddedPrefillBackend padded(inner, 14);  // two pad blocks = 8 tokens < the 10 needed
  std::vector<float> logits(plan.logits_indices.size() * kVocab);
  ASSERT_TRUE(padded.execute(plan, logits).ok());
  EXPECT_EQ(inner.plans.at(0).num_seqs(), 2);
  EXPECT_EQ(padded.pad_tokens, 0);
  EXPECT_EQ(padded.skipped_pad_tokens, 10);
}

// Greedy outputs of prompts of different lengths, all submitted before the first step.
std::map<uint64_t, std::vector<int32_t>> run_all(engine::Backend& backend, engine::Tokenizer& tok,
                                                 const std::vector<std::vector<int32_t>>& prompts, int32_t blocks) {
  scheduler::EngineLoopConfig c;
  c.num_kv_blocks = blocks;
  c.prefix_caching = false;
  scheduler::EngineLoop loop(backend, tok, c);
  std::map<uint64_t, std::vector<int32_t>> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    scheduler::Request r;
    r.id = i;
    r.prompt = prompts[i];
    r.stop.max_tokens = 8;
    r.sink = [&out](const scheduler::TokenEvent& e) {
      if (e.token >= 0) out[e.request].push_back(e.token);
      EXPECT_NE(e.finish, scheduler::FinishReason::Error) << e.error;
    };
    Status s = loop.submit(std::move(r));
    EXPECT_TRUE(s.ok()) << s.message();
  }
  loop.run_until_idle();
  return out;
}

TEST(PaddedPrefillBackend, OutputsOnTheRealModelAreThePackedOnes) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  engine::LoadOptions lo;
  lo.kv_tokens = 16 * 256;
  auto m = engine::load_model(test::model_path(), lo);
  ASSERT_TRUE(m.ok()) << m.message();
  const std::vector<std::vector<int32_t>> prompts = test::golden_prompts();
  ASSERT_GE(prompts.size(), 4u);
  const int32_t real_blocks = 128;  // the scheduler's; pads use blocks 128..255
  const auto packed = run_all(*m.value().backend, *m.value().tokenizer, prompts, real_blocks);
  PaddedPrefillBackend padded(*m.value().backend, real_blocks);
  const auto got = run_all(padded, *m.value().tokenizer, prompts, real_blocks);
  EXPECT_GT(padded.pad_tokens, 0) << "prompts of different lengths in one step should have been padded";
  EXPECT_EQ(padded.skipped_pad_tokens, 0);
  ASSERT_EQ(got.size(), prompts.size());
  for (const auto& [id, tokens] : packed) EXPECT_EQ(got.at(id), tokens) << "request " << id;
}

}  // namespace
}  // namespace pagoda::bench
