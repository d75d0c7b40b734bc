// The over-the-wire workloads: the prompt corpus (fortunes parsing, token windows), each workload's
// shape as BENCH.md states it, seeded reproducibility, and the per-point figures.
#include "bench/wire_workloads.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <map>

#include "bench/prompt_corpus.h"
#include "bench/wire_report.h"
#include "engine/loaded_model.h"
#include "engine/tokenizer/unicode_utf8.h"
#include "tests/test_env.h"

namespace pagoda::bench {
namespace {

namespace fs = std::filesystem;

// A folder holding every file fortune_files() names, each with two quotations in fortune's format.
fs::path make_fortunes_dir() {
  const fs::path dir = fs::temp_directory_path() / ("pagoda_fortunes_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const std::string& name : fortune_files()) {
    std::ofstream(dir / name) << "First line of " << name
                              << ",\n\tindented   second _\bl_\bi_\bn_\be.\n\t\t-- Someone\n%\n"
                              << "Second quotation of " << name << ".\n%\n";
  }
  return dir;
}

TEST(PromptCorpusFortunes, JoinsEachQuotationIntoOneParagraph) {
  const fs::path dir = make_fortunes_dir();
  auto text = load_fortunes_text(dir.string());
  ASSERT_TRUE(text.ok()) << text.message();
  const std::string first =
      "First line of literature, indented second line. -- Someone\n\nSecond quotation of literature.";
  EXPECT_EQ(text.value().substr(0, first.size()), first);
  EXPECT_NE(text.value().find("Second quotation of miscellaneous."), std::string::npos);
  EXPECT_EQ(text.value().find('%'), std::string::npos);
  EXPECT_EQ(text.value().find('\t'), std::string::npos);
  fs::remove(dir / "wisdom");
  auto missing = load_fortunes_text(dir.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("wisdom"), std::string::npos);
  EXPECT_NE(missing.message().find("fortunes"), std::string::npos);
  fs::remove_all(dir);
}

class WireWorkloads : public ::testing::Test {
 protected:
  void SetUp() override {
    PAGODA_REQUIRE_MODEL_OR_SKIP();
    auto tok = engine::load_tokenizer(test::model_path());
    ASSERT_TRUE(tok.ok()) << tok.message();
    tok_ = std::move(tok.value());
    // Plain English, long enough that windows rarely overlap.
    std::string text;
    for (int i = 0; i < 400; ++i) {
      text += "Paragraph " + std::to_string(i) +
              ": the harbour town woke slowly in the grey light, and the boats rocked against the quay while "
              "gulls called above the waves. ";
    }
    auto corpus = PromptCorpus::build(text, *tok_);
    ASSERT_TRUE(corpus.ok()) << corpus.message();
    corpus_.emplace(std::move(corpus.value()));
  }

  int32_t tokens(const std::string& s) const { return static_cast<int32_t>(tok_->encode(s, false, false).size()); }

  WireWorkload make(const std::string& name, const WireOptions& o = {}) const {
    auto w = make_wire_workload(name, *corpus_, o);
    EXPECT_TRUE(w.ok()) << w.message();
    return w.ok() ? w.value() : WireWorkload{};
  }

  std::unique_ptr<engine::Tokenizer> tok_;
  std::optional<PromptCorpus> corpus_;
};

TEST_F(WireWorkloads, WindowsHaveTheAskedTokenLength) {
  std::mt19937_64 rng(5);
  for (int32_t n : {1, 8, 200, 1024}) {
    const int32_t got = tokens(corpus_->random_text(n, rng));
    // Re-tokenizing a window may merge or split at its two edges only.
    EXPECT_NEAR(got, n, 2) << n;
  }
  EXPECT_EQ(corpus_->text_at(corpus_->size() - 3, 6),
            corpus_->text_at(corpus_->size() - 3, 3) + corpus_->text_at(0, 3));
}

TEST_F(WireWorkloads, WindowsAreValidUtf8WhereCharactersSpanTokens) {
  // Multi-byte characters that byte-level BPE splits into several tokens, so windows can cut them.
  auto corpus = PromptCorpus::build("Zoë said: über naïve café, 日本語のテキスト 🙂🙃 — ok. ", *tok_);
  ASSERT_TRUE(corpus.ok());
  size_t cut = 0;
  for (size_t off = 0; off < corpus.value().size(); ++off) {
    for (int32_t n = 1; n <= 6; ++n) {
      const std::string w = corpus.value().text_at(off, n);
      EXPECT_EQ(engine::tok::sanitize_utf8(w), w) << off << " " << n;
      if (w.empty()) ++cut;  // a window inside one character has nothing whole to keep
    }
  }
  EXPECT_GT(cut, 0u);  // the corpus does split characters, so the trimming was exercised
}

TEST_F(WireWorkloads, EveryWorkloadIsBuiltAndGreedyFixedLength) {
  for (const std::string& name : wire_workload_names()) {
    const WireWorkload w = make(name);
    EXPECT_EQ(w.name, name);
    EXPECT_FALSE(w.description.empty());
    ASSERT_FALSE(w.points.empty()) << name;
    for (const WirePoint& p : w.points) {
      EXPECT_FALSE(p.requests.empty()) << name;
      EXPECT_GE(p.concurrency, 1) << name;
      for (const LoadRequest& r : p.requests) {
        EXPECT_TRUE(r.ignore_eos) << name;
        EXPECT_GE(r.max_tokens, 1) << name;
        EXPECT_FALSE(r.prompt.empty()) << name;
      }
    }
  }
  EXPECT_FALSE(make_wire_workload("nope", *corpus_, {}).ok());
  WireOptions bad;
  bad.rates = {1, -2};
  EXPECT_FALSE(make_wire_workload("chat", *corpus_, bad).ok());
  bad.rates = {};
  bad.levels = {0};
  EXPECT_FALSE(make_wire_workload("concurrency", *corpus_, bad).ok());
}

TEST_F(WireWorkloads, ShapesFollowBenchMd) {
  const WireWorkload single = make("single");
  ASSERT_EQ(single.points.size(), 1u);
  EXPECT_EQ(single.points[0].concurrency, 1);
  EXPECT_EQ(single.points[0].requests[0].max_tokens, 256);
  EXPECT_NEAR(tokens(single.points[0].requests[0].prompt), 256, 2);

  const WireWorkload mixed = make("mixed-prefill");
  ASSERT_EQ(mixed.points[0].requests.size(), 64u);
  EXPECT_EQ(mixed.points[0].concurrency, 64);
  int32_t shortest = 1 << 30, longest = 0;
  for (const LoadRequest& r : mixed.points[0].requests) {
    EXPECT_EQ(r.max_tokens, 1);
    EXPECT_EQ(r.at_s, 0);
    shortest = std::min(shortest, tokens(r.prompt));
    longest = std::max(longest, tokens(r.prompt));
  }
  EXPECT_GE(shortest, 6);
  EXPECT_LE(longest, 1026);
  EXPECT_GT(longest - shortest, 500);  // uniform in 8..1024: 64 draws spread wide

  WireOptions chat_o;
  chat_o.rates = {1, 4};
  chat_o.requests = 40;
  const WireWorkload chat = make("chat", chat_o);
  ASSERT_EQ(chat.points.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    const WirePoint& p = chat.points[k];
    EXPECT_EQ(p.rate, chat_o.rates[k]);
    ASSERT_EQ(p.requests.size(), 40u);
    std::vector<double> lengths;
    for (size_t i = 0; i < p.requests.size(); ++i) {
      if (i > 0) {
        EXPECT_GE(p.requests[i].at_s, p.requests[i - 1].at_s);
      }
      EXPECT_EQ(p.requests[i].max_tokens, 128);
      lengths.push_back(tokens(p.requests[i].prompt));
    }
    const double med = percentile(lengths, 50);
    EXPECT_GT(med, 100);  // log-normal, median 200, sigma 0.6: 40 draws land well within this
    EXPECT_LT(med, 400);
    // Mean gap ~ 1/rate: 40 exponential gaps average within a factor of two.
    const double mean_gap = p.requests.back().at_s / 40;
    EXPECT_GT(mean_gap, 0.5 / p.rate);
    EXPECT_LT(mean_gap, 2.0 / p.rate);
  }

  const WireWorkload conc = make("concurrency");
  ASSERT_EQ(conc.points.size(), 4u);
  const int32_t levels[] = {1, 4, 16, 64};
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(conc.points[k].concurrency, levels[k]);
    EXPECT_EQ(conc.points[k].requests.size(), static_cast<size_t>(std::max(levels[k], 4)));
    for (const LoadRequest& r : conc.points[k].requests) EXPECT_EQ(r.at_s, 0);
  }

  const WireWorkload shared = make("shared-prefix");
  ASSERT_EQ(shared.points.size(), 2u);
  const std::string prefix = shared.points[0].requests[0].prompt.substr(0, 200);
  std::set<std::string> distinct_heads;
  for (const LoadRequest& r : shared.points[0].requests) EXPECT_EQ(r.prompt.substr(0, 200), prefix);
  for (const LoadRequest& r : shared.points[1].requests) distinct_heads.insert(r.prompt.substr(0, 200));
  EXPECT_GT(distinct_heads.size(), shared.points[1].requests.size() / 2);
  EXPECT_NEAR(tokens(shared.points[0].requests[0].prompt), 512 + 2 + 32, 6);

  WireOptions with_sessions;
  with_sessions.sessions = 5;
  with_sessions.requests = 40;
  with_sessions.prompt_tokens = 64;
  const WireWorkload conversations = make("shared-prefix", with_sessions);
  ASSERT_EQ(conversations.points.size(), 1u);
  const std::vector<LoadRequest>& turns = conversations.points[0].requests;
  ASSERT_EQ(turns.size(), 40u);
  EXPECT_EQ(conversations.points[0].concurrency, 1);
  std::map<std::string, std::set<std::string>> heads;  // session -> the prompt heads it was sent with
  std::map<std::string, int> per_session;
  for (const LoadRequest& r : turns) {
    heads[r.session].insert(r.prompt.substr(0, 100));
    ++per_session[r.session];
  }
  ASSERT_EQ(heads.size(), 5u);
  std::set<std::string> all_heads;
  for (const auto& [session, h] : heads) {
    EXPECT_EQ(h.size(), 1u) << session;  // one prefix per conversation
    EXPECT_EQ(per_session[session], 8) << session;
    all_heads.insert(*h.begin());
  }
  EXPECT_EQ(all_heads.size(), 5u);  // and a different one for each
  int runs = 0;  // the turns are interleaved, not one conversation after another
  for (size_t i = 1; i < turns.size(); ++i) runs += turns[i].session != turns[i - 1].session;
  EXPECT_GT(runs, 20);
  EXPECT_NEAR(tokens(turns[0].prompt), 64 + 2 + 32, 6);
  with_sessions.sessions = -1;
  EXPECT_FALSE(make_wire_workload("shared-prefix", *corpus_, with_sessions).ok());
  with_sessions.sessions = 2;
  EXPECT_FALSE(make_wire_workload("chat", *corpus_, with_sessions).ok());

  const WireWorkload copy = make("copy");
  EXPECT_NE(copy.points[0].requests[0].prompt.find("word for word"), std::string::npos);
}

TEST_F(WireWorkloads, SameSeedSameRequestsOtherSeedOthers) {
  WireOptions a, b;
  b.seed = 2;
  for (const char* name : {"chat", "mixed-prefill"}) {
    const WireWorkload x = make(name, a), y = make(name, a), z = make(name, b);
    ASSERT_EQ(x.points[0].requests.size(), y.points[0].requests.size());
    for (size_t i = 0; i < x.points[0].requests.size(); ++i) {
      EXPECT_EQ(x.points[0].requests[i].prompt, y.points[0].requests[i].prompt);
      EXPECT_EQ(x.points[0].requests[i].at_s, y.points[0].requests[i].at_s);
    }
    EXPECT_NE(x.points[0].requests[0].prompt, z.points[0].requests[0].prompt);
  }
}

RequestSample sample(double submit, std::vector<double> times, double end, int32_t prompt, bool ok = true) {
  RequestSample s;
  s.submit_s = submit;
  s.token_times_s = std::move(times);
  s.first_token_s = s.token_times_s.empty() ? 0 : s.token_times_s.front();
  s.end_s = end;
  s.prompt_tokens = prompt;
  s.output_tokens = static_cast<int32_t>(s.token_times_s.size());
  s.ok = ok;
  return s;
}

TEST(WireReportFigures, PrefillDecodeAndWallFromSamples) {
  // prefill: 100 / 0.5 = 200 and 300 / 1.0 = 300 -> median 250; decode: (3-1)/1 = 2 and (2-1)/0.5 = 2.
  const std::vector<RequestSample> s = {sample(1.0, {1.5, 2.0, 2.5}, 2.5, 100), sample(2.0, {3.0, 3.5}, 3.5, 300),
                                        sample(0.0, {9.0}, 9.0, 50, /*ok=*/false)};
  const PointFigures f = point_figures(s);
  EXPECT_DOUBLE_EQ(f.prefill_tok_s, 250);
  EXPECT_DOUBLE_EQ(f.decode_tok_s, 2);
  EXPECT_DOUBLE_EQ(f.wall_s, 2.5);  // 3.5 - 1.0: the failed request is left out
  EXPECT_EQ(f.prompt_tokens, 400);
  EXPECT_EQ(f.output_tokens, 5);
  const PointFigures none = point_figures({});
  EXPECT_TRUE(std::isnan(none.prefill_tok_s));
  EXPECT_TRUE(std::isnan(none.decode_tok_s));
  EXPECT_TRUE(std::isnan(none.wall_s));
}

TEST(WireReportFigures, JsonAndMarkdownCarryEveryPoint) {
  WireRun run;
  run.server = "pagoda";
  run.target = "http://127.0.0.1:1";
  run.workload.name = "chat";
  run.workload.description = "d";
  run.slo = {1.0, 0.1};
  for (int k = 0; k < 2; ++k) {
    WirePoint wp{"rate " + std::to_string(k + 1), double(k + 1), 8, {}};
    wp.requests.resize(2);
    run.workload.points.push_back(wp);
    PointResult p{wp.label, wp.rate, 8, {sample(0, {0.1, 0.2}, 0.2, 10), sample(0, {}, 5, 0, false)}, {}, {}};
    p.samples[1].error = "boom";
    p.summary = summarize_run(p.samples, run.slo);
    p.figures = point_figures(p.samples);
    run.points.push_back(p);
  }
  const nlohmann::json j = wire_run_json(run);
  ASSERT_EQ(j["points"].size(), 2u);
  EXPECT_EQ(j["points"][1]["label"], "rate 2");
  EXPECT_EQ(j["points"][0]["summary"]["errors"], 1);
  EXPECT_EQ(j["points"][0]["per_request"].size(), 2u);
  EXPECT_EQ(j["points"][0]["per_request"][1]["error"], "boom");
  EXPECT_FALSE(j.contains("roofline"));
  const std::string md = wire_run_markdown(run);
  EXPECT_NE(md.find("| rate 1 | 1/2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| rate 2 | 1/2 |"), std::string::npos) << md;
}

}  // namespace
}  // namespace pagoda::bench
