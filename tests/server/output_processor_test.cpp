// The output stage on the real tokenizer: stop strings across token boundaries (held back, never sent,
// the engine asked to stop the choice once), UTF-8 held back until a character is whole, a stop token's
// text left out, length finishes flushing what is held, cancellation mid-stream, one finish per choice.
#include "server/output_processor.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/loaded_model.h"
#include "tests/test_env.h"
#include "tests/test_utf8.h"

namespace pagoda::server {
namespace {

using scheduler::FinishReason;
using scheduler::TokenEvent;

class OutputProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PAGODA_REQUIRE_MODEL_OR_SKIP();
    auto t = engine::load_tokenizer(test::model_path());
    ASSERT_TRUE(t.ok()) << t.status().message();
    tok_ = std::move(t.value());
  }

  // A processor for n choices whose downstream events and stop requests are recorded.
  scheduler::StreamSink make(std::vector<std::string> stops, int32_t n = 1) {
    OutputOptions o;
    o.n = n;
    o.stop_strings = std::move(stops);
    o.stop_choice = [this](int32_t index) { stop_requests_.push_back(index); };
    return make_output_processor(*tok_, std::move(o), [this](const TokenEvent& ev) { got_.push_back(ev); });
  }

  static TokenEvent token(int32_t id, int32_t index = 0) {
    TokenEvent ev;
    ev.index = index;
    ev.token = id;
    return ev;
  }
  static TokenEvent finish(FinishReason r, int32_t id = -1, int32_t index = 0) {
    TokenEvent ev = token(id, index);
    ev.finish = r;
    return ev;
  }

  std::string text_of(int32_t index = 0) const {
    std::string s;
    for (const TokenEvent& ev : got_) s += ev.index == index ? ev.text : "";
    return s;
  }
  int finishes(int32_t index = 0) const {
    int k = 0;
    for (const TokenEvent& ev : got_) k += ev.index == index && ev.finish != FinishReason::None;
    return k;
  }

  std::unique_ptr<engine::Tokenizer> tok_;
  std::vector<TokenEvent> got_;
  std::vector<int32_t> stop_requests_;
};

using test::valid_utf8;

TEST_F(OutputProcessorTest, StopStringAcrossTokenBoundariesEndsTheChoiceOnce) {
  const std::vector<int32_t> ids = tok_->encode("Hello world, the end of it", false, false);
  ASSERT_GE(ids.size(), 6u);
  // "ld, t" starts inside " world" and ends inside " the": it spans token boundaries.
  auto sink = make({"ld, t"});
  for (int32_t id : ids) sink(token(id));
  sink(finish(FinishReason::Stop));  // what the engine sends once it stopped the choice
  EXPECT_EQ(text_of(), "Hello wor");
  ASSERT_EQ(finishes(), 1);
  EXPECT_EQ(got_.back().finish, FinishReason::Stop);
  EXPECT_EQ(stop_requests_, std::vector<int32_t>{0});
  for (const TokenEvent& ev : got_) EXPECT_EQ(ev.text.find("ld, t"), std::string::npos);
}

TEST_F(OutputProcessorTest, PartialStopStringIsHeldBackThenReleased) {
  const std::vector<int32_t> ids = tok_->encode("one two three", false, false);
  auto sink = make({"two four"});
  for (int32_t id : ids) sink(token(id));
  EXPECT_EQ(text_of(), "one two three") << "the prefix 'two' was held while it could match, then released";
  ASSERT_GE(got_.size(), 3u);
  ASSERT_EQ(tok_->token_to_piece(ids[1], false), " two");
  EXPECT_EQ(got_[0].text + got_[1].text, "one ") << "'two' may still start 'two four': held back";
  sink(finish(FinishReason::Length, tok_->encode(" end", false, false).at(0)));
  EXPECT_EQ(text_of(), "one two three end");
  EXPECT_EQ(got_.back().finish, FinishReason::Length);
  EXPECT_TRUE(stop_requests_.empty());
}

TEST_F(OutputProcessorTest, ALastTokenThatCompletesAStopStringFinishesWithStop) {
  const std::vector<int32_t> ids = tok_->encode("go to the end", false, false);
  auto sink = make({"the end"});
  for (size_t i = 0; i + 1 < ids.size(); ++i) sink(token(ids[i]));
  sink(finish(FinishReason::Length, ids.back()));  // max_tokens reached on the token that completes it
  EXPECT_EQ(text_of(), "go to ");
  ASSERT_EQ(finishes(), 1);
  EXPECT_EQ(got_.back().finish, FinishReason::Stop);
  EXPECT_TRUE(stop_requests_.empty()) << "the engine already ended the choice";
}

TEST_F(OutputProcessorTest, Utf8IsHeldBackUntilTheCharacterIsWhole) {
  const std::string text = "a 🦙 b 你好 c";
  const std::vector<int32_t> ids = tok_->encode(text, false, false);
  ASSERT_GT(ids.size(), tok_->encode("a  b  c", false, false).size()) << "the characters take tokens of their own";
  auto sink = make({});
  for (size_t i = 0; i + 1 < ids.size(); ++i) sink(token(ids[i]));
  sink(finish(FinishReason::Length, ids.back()));
  bool held_some = false;
  for (const TokenEvent& ev : got_) {
    EXPECT_TRUE(valid_utf8(ev.text)) << "a chunk ends inside a character: '" << ev.text << "'";
    held_some |= ev.finish == FinishReason::None && ev.text.empty();
  }
  EXPECT_TRUE(held_some) << "some token completed no character and sent nothing";
  EXPECT_EQ(text_of(), text);
}

TEST_F(OutputProcessorTest, StopTokenTextIsLeftOutAndHeldTextFlushed) {
  const std::vector<int32_t> ids = tok_->encode("Done here", false, false);
  auto sink = make({"here!"});  // "here" is held back: it may still become the stop string
  for (int32_t id : ids) sink(token(id));
  EXPECT_EQ(text_of(), "Done ");
  const int32_t eos = tok_->eos_id() >= 0 ? tok_->eos_id() : tok_->end_of_generation_ids().at(0);
  sink(finish(FinishReason::Stop, eos));
  EXPECT_EQ(text_of(), "Done here");
  EXPECT_EQ(got_.back().finish, FinishReason::Stop);
  EXPECT_TRUE(stop_requests_.empty()) << "the engine ended it: nothing to ask";
}

TEST_F(OutputProcessorTest, CancellationMidStreamEndsWithNoMoreText) {
  const std::vector<int32_t> ids = tok_->encode("keep going and going", false, false);
  auto sink = make({"zzz"});
  sink(token(ids[0]));
  sink(token(ids[1]));
  sink(finish(FinishReason::Cancelled));
  sink(token(ids[2]));  // late events of a finished choice are dropped
  ASSERT_EQ(finishes(), 1);
  EXPECT_EQ(got_.back().finish, FinishReason::Cancelled);
  EXPECT_TRUE(got_.back().text.empty());
  EXPECT_EQ(got_.size(), 3u);
}

TEST_F(OutputProcessorTest, ChoicesAreIndependent) {
  const std::vector<int32_t> a = tok_->encode("alpha STOP beta", false, false);
  const std::vector<int32_t> b = tok_->encode("gamma delta", false, false);
  auto sink = make({"STOP"}, 2);
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < a.size()) sink(token(a[i], 0));
    if (i < b.size()) sink(token(b[i], 1));
  }
  sink(finish(FinishReason::Length, -1, 1));
  EXPECT_EQ(text_of(0), "alpha ");
  EXPECT_EQ(text_of(1), "gamma delta");
  EXPECT_EQ(finishes(0), 1);
  EXPECT_EQ(finishes(1), 1);
  EXPECT_EQ(stop_requests_, std::vector<int32_t>{0});
}

}  // namespace
}  // namespace pagoda::server
