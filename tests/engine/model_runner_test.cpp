// ModelRunner (engine/model_runner.h): one draw per sample, and speculative verification — a draft is
// kept while it equals the sampler's own draw, the first draw that differs (or the one after the last
// draft) ends the run — so a sequence's tokens are those of decoding one token per step, sampled or not.
#include "engine/model_runner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace pagoda::engine {
namespace {

constexpr int32_t kVocab = 16, kBlockSize = 4, kBlocks = 64;

// Logits that depend only on the row's token: a fixed random Markov chain over the vocabulary. Greedy
// follows next(t); sampling draws from the row's softmax.
class MarkovBackend final : public Backend {
 public:
  MarkovBackend() {
    std::mt19937 rng(5);
    std::normal_distribution<float> n(0.0f, 2.0f);
    for (float& v : table_) v = n(rng);
  }
  int32_t greedy_next(int32_t t) const {
    int32_t best = 0;
    for (int32_t v = 1; v < kVocab; ++v) best = table_[t * kVocab + v] > table_[t * kVocab + best] ? v : best;
    return best;
  }
  std::string name() const override { return "markov"; }
  Status load(std::shared_ptr<const ModelWeights>) override { return {}; }
  Status allocate_kv(const KvCacheShape&) override { return {}; }
  KvCacheShape kv_shape() const override { return {kBlocks, kBlockSize}; }
  int64_t kv_bytes_per_block() const override { return 1; }
  int64_t kv_memory_available() const override { return 0; }
  Status execute(const StepPlan& plan, std::span<float> logits) override {
    if (Status s = plan.validate(kBlocks, kBlockSize, kVocab); !s.ok()) return s;
    for (size_t r = 0; r < plan.logits_indices.size(); ++r) {
      const int32_t t = plan.token_ids[plan.logits_indices[r]];
      std::copy_n(table_.begin() + t * kVocab, kVocab, logits.begin() + r * kVocab);
    }
    ++steps;
    return {};
  }
  Status copy_blocks(std::span<const std::pair<int32_t, int32_t>>) override { return {}; }
  BackendInfo info() const override { return {}; }
  int steps = 0;

 private:
  std::vector<float> table_ = std::vector<float>(kVocab * kVocab);
};

const std::vector<int32_t> kTable = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

// One step of sequence 1: its last token at position pos, then the drafts.
StepPlan verify_step(int32_t last, int32_t pos, const std::vector<int32_t>& drafts) {
  StepPlanBuilder b(kBlockSize);
  std::vector<int32_t> run{last};
  run.insert(run.end(), drafts.begin(), drafts.end());
  b.add_verification(1, run, pos, kTable);
  return b.build();
}

TEST(ModelRunnerVerify, GreedyKeepsTheMatchingPrefixThenTheTargetsToken) {
  MarkovBackend backend;
  ModelRunner runner(backend, kVocab);
  runner.open({1, SamplingParams{}, {}});
  const int32_t a = backend.greedy_next(3), b = backend.greedy_next(a), c = backend.greedy_next(b);
  const int32_t wrong = (c + 1) % kVocab;
  auto r = runner.execute(verify_step(3, 5, {a, b, wrong}));
  ASSERT_TRUE(r.ok()) << r.message();
  ASSERT_EQ(r.value().seqs.size(), 1u);
  const SeqStepOutput& out = r.value().seqs[0];
  EXPECT_EQ(out.drafted, 3);
  EXPECT_EQ(out.accepted, 2);
  ASSERT_EQ(out.tokens.size(), 3u);
  EXPECT_EQ(out.tokens[0].token, a);
  EXPECT_EQ(out.tokens[1].token, b);
  EXPECT_EQ(out.tokens[2].token, c) << "the target's own token replaces the rejected draft";

  // Every draft right: all kept, plus the token after the last one.
  auto all = runner.execute(verify_step(c, 8, {backend.greedy_next(c)}));
  ASSERT_TRUE(all.ok()) << all.message();
  EXPECT_EQ(all.value().seqs[0].accepted, 1);
  ASSERT_EQ(all.value().seqs[0].tokens.size(), 2u);
  EXPECT_EQ(all.value().seqs[0].tokens[1].token, backend.greedy_next(backend.greedy_next(c)));
}

// Decoding one token per step, and with drafts that are right half of the time, give the same seeded
// samples: each kept draft is the draw itself, and a rejected one costs no random number.
TEST(ModelRunnerVerify, SeededSamplingIsTheSameWithAndWithoutDrafts) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.95f;
  p.presence_penalty = 0.5f;
  p.seed = 77;
  MarkovBackend backend;
  const int32_t n = 40;
  std::vector<int32_t> plain{2};
  {
    ModelRunner runner(backend, kVocab);
    runner.open({1, p, {2}});
    while (static_cast<int32_t>(plain.size()) < n) {
      auto r = runner.execute(verify_step(plain.back(), static_cast<int32_t>(plain.size()) - 1, {}));
      ASSERT_TRUE(r.ok()) << r.message();
      plain.push_back(r.value().seqs[0].tokens.at(0).token);
    }
  }
  std::vector<int32_t> spec{2};
  int32_t kept = 0, drafted = 0;
  {
    ModelRunner runner(backend, kVocab);
    runner.open({1, p, {2}});
    std::mt19937 coin(3);
    while (static_cast<int32_t>(spec.size()) < n) {
      // Drafts: the right continuation (known from `plain`) with a wrong token mixed in at random.
      std::vector<int32_t> drafts;
      for (size_t j = spec.size(); j < std::min<size_t>(plain.size() - 1, spec.size() + 3); ++j) {
        drafts.push_back(coin() % 2 ? plain[j] : (plain[j] + 1) % kVocab);
      }
      auto r = runner.execute(verify_step(spec.back(), static_cast<int32_t>(spec.size()) - 1, drafts));
      ASSERT_TRUE(r.ok()) << r.message();
      kept += r.value().seqs[0].accepted;
      drafted += r.value().seqs[0].drafted;
      for (const SampleResult& t : r.value().seqs[0].tokens) spec.push_back(t.token);
    }
  }
  spec.resize(n);
  EXPECT_EQ(spec, plain);
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, drafted);
}

}  // namespace
}  // namespace pagoda::engine
