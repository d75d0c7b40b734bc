// Acceptance 2 of the scheduler, end to end: 1,000 randomized requests (shared prefixes, n > 1 forks,
// stop strings, random cancellations) through the engine loop on a tiny random-weight model with a KV
// pool small enough to force preemption. Every choice of every request ends exactly once, and at the
// end every block is back in the pool with the prefix cache consistent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <thread>

#include "engine/loaded_model.h"
#include "engine/model/random_model.h"
#include "scheduler/engine_loop.h"

namespace pagoda::scheduler {
namespace {

// The backend the soak runs on: cpu, or the one PAGODA_TEST_BACKEND names (scripts/gpu_check.sh runs
// these tests again with cuda).
engine::BackendKind test_backend() {
  const char* b = std::getenv("PAGODA_TEST_BACKEND");
  return b && std::string(b) == "cuda" ? engine::BackendKind::Cuda : engine::BackendKind::Cpu;
}

// The tiny random-weight model, written to a temp file and loaded with one compute thread. The file is
// removed once mapped (the mapping outlives the name).
struct TinyModel {
  engine::RandomModelSpec spec;
  engine::LoadedModel model;
};

std::unique_ptr<TinyModel> load_tiny(const std::string& file_name, int32_t kv_tokens) {
  auto spec = engine::random_model_preset("tiny");
  if (!spec) return nullptr;
  const std::string path = ::testing::TempDir() + "/" + file_name;
  if (Status s = engine::write_random_llama(*spec, path); !s.ok()) {
    ADD_FAILURE() << s.message();
    return nullptr;
  }
  engine::LoadOptions lo;
  lo.kv_tokens = kv_tokens;
  lo.backend.cpu.num_threads = 1;
  lo.backend.kind = test_backend();
  auto loaded = engine::load_model(path, lo);
  if (!loaded.ok()) {
    ADD_FAILURE() << loaded.message();
    return nullptr;
  }
  return std::make_unique<TinyModel>(TinyModel{*spec, std::move(loaded.value())});
}

// `total` randomized requests; speculative: prompt-lookup drafting on, and a third of the requests bring
// a predicted output (part of their prompt, so drafts are both right and wrong).
void run_soak(int total, bool speculative) {
  auto tiny = load_tiny(speculative ? "pagoda_soak_spec.gguf" : "pagoda_soak_tiny.gguf", 1024);
  ASSERT_TRUE(tiny);
  const engine::RandomModelSpec* spec = &tiny->spec;
  engine::LoadedModel& m = tiny->model;

  EngineLoopConfig config;
  config.num_kv_blocks = 24;  // 384 tokens for up to 16 sequences of up to ~140 tokens
  config.scheduler.max_num_seqs = 16;
  config.scheduler.max_num_batched_tokens = 96;
  config.scheduler.max_model_len = spec->context_length;
  if (speculative) {
    config.scheduler.speculative.mode = engine::SpeculativeMode::Ngram;
    config.scheduler.speculative.num_tokens = 4;
    config.scheduler.speculative.ngram_min = 1;
  }
  EngineLoop loop(*m.backend, *m.tokenizer, config);

  std::mt19937 rng(42);
  std::vector<std::vector<int32_t>> prefixes(4);
  for (auto& p : prefixes) {
    p.resize(16 + rng() % 40);
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % 256);  // byte tokens: printable text
  }

  struct Expect {
    int32_t n = 1;
    std::set<int32_t> finished;  // choice indices that got their finish event
    std::set<int32_t> stopped;   // choice indices stopped from the sink
  };
  std::map<RequestId, Expect> live;
  std::map<RequestId, Expect> done;
  int64_t cancelled = 0, events_after_finish = 0, stopped_finishes = 0;

  int submitted = 0;
  while (submitted < total || !live.empty()) {
    // Arrivals: about as fast as the 16-sequence steps complete them, so queues rise and fall.
    for (int k = 0; k < (submitted % 3 == 0 ? 2 : 1) && submitted < total; ++k) {
      Request r;
      r.id = static_cast<RequestId>(submitted);
      r.prompt = prefixes[rng() % prefixes.size()];
      const int extra = 1 + static_cast<int>(rng() % 40);
      for (int i = 0; i < extra; ++i) r.prompt.push_back(static_cast<int32_t>(rng() % 256));
      r.stop.max_tokens = 1 + static_cast<int32_t>(rng() % 24);
      r.n = rng() % 5 == 0 ? 2 + static_cast<int32_t>(rng() % 2) : 1;
      r.sampling.temperature = r.n > 1 || rng() % 2 ? 0.9f : 0.0f;
      r.sampling.seed = rng();
      if (speculative && rng() % 3 == 0) r.prediction.assign(r.prompt.begin() + r.prompt.size() / 2, r.prompt.end());
      // As the output stage does on a stop string: the choice is stopped from the sink, mid-flight.
      const bool stops_early = rng() % 6 == 0;
      r.sink = [&, id = r.id, stops_early](const TokenEvent& e) {
        auto it = live.find(id);
        if (it == live.end()) {
          ++events_after_finish;
          return;
        }
        EXPECT_NE(e.finish, FinishReason::Error) << e.error;
        if (e.finish == FinishReason::None) {
          if (stops_early && it->second.stopped.insert(e.index).second) loop.stop_choice(id, e.index);
          return;
        }
        if (it->second.stopped.contains(e.index)) {  // ends by the stop (or a cancel that came first)
          EXPECT_TRUE(e.finish == FinishReason::Stop || e.finish == FinishReason::Cancelled) << e.index;
          EXPECT_EQ(e.token, -1) << "a stopped choice draws no further token";
          ++stopped_finishes;
        }
        EXPECT_TRUE(it->second.finished.insert(e.index).second) << "choice " << e.index << " of " << id << " finished twice";
        if (static_cast<int32_t>(it->second.finished.size()) == it->second.n) {
          done[id] = it->second;
          live.erase(it);
        }
      };
      live[r.id].n = r.n;
      Status s = loop.submit(std::move(r));
      ASSERT_TRUE(s.ok()) << s.message();
      ++submitted;
    }
    loop.run_step();
    // Random cancellations of requests in flight.
    if (!live.empty() && rng() % 10 == 0) {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      loop.cancel(it->first);
      ++cancelled;
    }
    if (submitted % 100 == 0) {
      ASSERT_TRUE(loop.kv().check_consistency().ok()) << loop.kv().check_consistency().message();
    }
  }
  loop.run_until_idle();

  EXPECT_EQ(done.size(), static_cast<size_t>(total));
  EXPECT_EQ(events_after_finish, 0);
  EXPECT_GT(cancelled, 0);
  EXPECT_GT(stopped_finishes, 0) << "choices stopped mid-flight from their sinks";
  EXPECT_EQ(loop.open_samplers(), 0) << "every finished sequence closed its sampler";
  const EngineLoopStats st = loop.stats();
  EXPECT_GT(st.preemptions, 0) << "the pool was sized to force preemption";
  EXPECT_GT(st.prefix_hits, 0) << "requests share prefixes";
  const engine::KvCacheStats kv = loop.kv().stats();
  EXPECT_EQ(kv.used_blocks, 0) << "blocks still referenced after every request ended";
  EXPECT_EQ(loop.kv().num_available_blocks(), kv.num_blocks) << "every block is free or an evictable cached block";
  EXPECT_TRUE(loop.kv().check_consistency().ok()) << loop.kv().check_consistency().message();
  if (speculative) {
    EXPECT_GT(st.spec_drafts, 0);
    EXPECT_GT(st.spec_accepted_tokens, 0);
    EXPECT_LE(st.spec_accepted_tokens, st.spec_draft_tokens);
    int64_t per_position = 0;
    for (size_t j = 0; j < st.spec_accepted_per_position.size(); ++j) {
      per_position += st.spec_accepted_per_position[j];
      if (j > 0) {
        EXPECT_LE(st.spec_accepted_per_position[j], st.spec_accepted_per_position[j - 1]) << j;
      }
    }
    EXPECT_EQ(per_position, st.spec_accepted_tokens) << "kept drafts per position add up to the kept drafts";
  } else {
    EXPECT_EQ(st.spec_drafts, 0);
  }
}

TEST(SchedulerSoak, ThousandRandomRequestsReturnEveryBlock) { run_soak(1000, false); }

// Speculative decoding's acceptance 5: with drafts kept and rejected every step, cancellations and stops
// mid-run and preemption, every block still comes back.
TEST(SchedulerSoak, FiveHundredSpeculativeRequestsReturnEveryBlock) { run_soak(500, true); }


// Several long prompts chunk-prefilling into a pool that cannot hold them all: when no step can run,
// the newest sequence is preempted so the others progress; nothing stalls and every request finishes.
// A request that cannot fit even an empty pool is refused at submit.
TEST(SchedulerSoak, ChunkedPrefillIntoATinyPoolNeverStalls) {
  auto tiny = load_tiny("pagoda_tiny_pool.gguf", 512);
  ASSERT_TRUE(tiny);
  const engine::RandomModelSpec* spec = &tiny->spec;
  engine::LoadedModel& m = tiny->model;

  EngineLoopConfig config;
  config.num_kv_blocks = 12;  // 192 tokens
  config.scheduler.max_num_batched_tokens = 32;
  config.scheduler.max_model_len = spec->context_length;
  EngineLoop loop(*m.backend, *m.tokenizer, config);
  int finished = 0, errors = 0;
  for (int i = 0; i < 6; ++i) {
    Request r;
    r.id = static_cast<RequestId>(i);
    for (int t = 0; t < 150; ++t) r.prompt.push_back((t * 7 + i) % 256);
    r.stop.max_tokens = 8;
    r.stop.ignore_eos = true;
    r.sink = [&](const TokenEvent& e) {
      if (e.finish == FinishReason::None) return;
      ++finished;
      errors += e.finish == FinishReason::Error;
      if (e.finish == FinishReason::Error) ADD_FAILURE() << e.error;
    };
    ASSERT_TRUE(loop.submit(std::move(r)).ok());
  }
  loop.run_until_idle();
  EXPECT_EQ(finished, 6);
  EXPECT_EQ(errors, 0);
  EXPECT_GT(loop.stats().preemptions, 0);
  EXPECT_EQ(loop.kv().stats().used_blocks, 0);

  Request too_big;
  too_big.id = 99;
  too_big.prompt.assign(190, 1);
  too_big.stop.max_tokens = 8;  // 198 tokens > the pool's 192
  too_big.sink = [](const TokenEvent&) {};
  Status s = loop.submit(std::move(too_big));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("192"), std::string::npos) << s.message();

  Request no_sink;  // nowhere to send its tokens: refused at submit, never queued
  no_sink.id = 1001;
  no_sink.prompt = {1, 2};
  s = loop.submit(std::move(no_sink));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no stream sink"), std::string::npos) << s.message();
}


// A stop without draining ends what is running at once: every request gets its Cancelled event and
// run() returns, and a submit after the stop is refused rather than queued and forgotten.
TEST(SchedulerSoak, StopWithoutDrainCancelsRunningRequests) {
  auto tiny = load_tiny("pagoda_tiny_stop.gguf", 1024);
  ASSERT_TRUE(tiny);
  engine::LoadedModel& m = tiny->model;
  EngineLoop loop(*m.backend, *m.tokenizer, EngineLoopConfig{});
  std::atomic<int> cancelled{0}, tokens{0};
  for (int i = 0; i < 4; ++i) {
    Request r;
    r.id = static_cast<RequestId>(i);
    r.prompt = {1, 2, 3, 4};
    r.stop.max_tokens = 200;
    r.stop.ignore_eos = true;
    r.sink = [&](const TokenEvent& e) {
      tokens += e.token >= 0;
      cancelled += e.finish == FinishReason::Cancelled;
    };
    ASSERT_TRUE(loop.submit(std::move(r)).ok());
  }
  Status after = loop.run_with_driver([&]() -> Status {
    while (tokens.load() < 8) std::this_thread::yield();
    loop.request_stop(/*drain=*/false);
    Request late;
    late.id = 100;
    late.prompt = {1};
    late.sink = [](const TokenEvent&) {};
    return loop.submit(std::move(late));
  });
  EXPECT_EQ(after.code(), StatusCode::Unavailable) << after.message();
  EXPECT_EQ(cancelled.load(), 4);
  EXPECT_LT(tokens.load(), 4 * 200);
  EXPECT_EQ(loop.kv().stats().used_blocks, 0);
}

}  // namespace
}  // namespace pagoda::scheduler
