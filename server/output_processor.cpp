#include "server/output_processor.h"

#include <memory>

#include "engine/tokenizer/incremental_detokenizer.h"
#include "server/stop_strings.h"

namespace pagoda::server {

namespace {

using scheduler::FinishReason;
using scheduler::TokenEvent;

struct ChoiceText {
  ChoiceText(const engine::Tokenizer& tok, const std::vector<std::string>& stops) : detok(tok), matcher(stops) {}
  engine::IncrementalDetokenizer detok;
  StopStringMatcher matcher;
  bool done = false;
};

class OutputProcessor {
 public:
  OutputProcessor(const engine::Tokenizer& tok, OutputOptions o, scheduler::StreamSink downstream)
      : opts_(std::move(o)), downstream_(std::move(downstream)) {
    choices_.reserve(static_cast<size_t>(opts_.n));
    for (int32_t i = 0; i < opts_.n; ++i) choices_.emplace_back(tok, opts_.stop_strings);
  }

  void on_event(TokenEvent ev) {
    if (ev.index < 0 || ev.index >= static_cast<int32_t>(choices_.size())) return;
    ChoiceText& c = choices_[ev.index];
    if (c.done) return;  // the engine's events after a stop string
    if (ev.finish == FinishReason::None) {
      on_token(c, std::move(ev));
    } else {
      on_finish(c, std::move(ev));
    }
  }

 private:
  void on_token(ChoiceText& c, TokenEvent ev) {
    auto out = c.matcher.push(c.detok.push(ev.token));
    ev.text = std::move(out.text);
    if (out.stop_index) {
      const int32_t index = ev.index;
      end(c, std::move(ev), FinishReason::Stop);
      if (opts_.stop_choice) opts_.stop_choice(index);
      return;
    }
    downstream_(ev);
  }

  // The engine ended the choice: by length (the last token's text is part of the output), by a stop
  // token (its text is not), or cancelled / failed (what is held back is dropped, as the engine's
  // event has no text).
  void on_finish(ChoiceText& c, TokenEvent ev) {
    if (ev.finish == FinishReason::Length || ev.finish == FinishReason::Stop) {
      std::string text;
      if (ev.finish == FinishReason::Length && ev.token >= 0) {
        auto out = c.matcher.push(c.detok.push(ev.token));
        text = std::move(out.text);
        if (out.stop_index) {
          ev.text = std::move(text);
          return end(c, std::move(ev), FinishReason::Stop);
        }
      }
      auto tail = c.matcher.push(c.detok.flush());
      text += tail.text;
      if (tail.stop_index) {
        ev.text = std::move(text);
        return end(c, std::move(ev), FinishReason::Stop);
      }
      ev.text = text + c.matcher.flush();
    }
    const FinishReason reason = ev.finish;
    end(c, std::move(ev), reason);
  }

  void end(ChoiceText& c, TokenEvent ev, FinishReason reason) {
    c.done = true;
    ev.finish = reason;
    downstream_(ev);
  }

  OutputOptions opts_;
  scheduler::StreamSink downstream_;
  std::vector<ChoiceText> choices_;
};

}  // namespace

scheduler::StreamSink make_output_processor(const engine::Tokenizer& tokenizer, OutputOptions options,
                                            scheduler::StreamSink downstream) {
  auto p = std::make_shared<OutputProcessor>(tokenizer, std::move(options), std::move(downstream));
  return [p](const TokenEvent& ev) { p->on_event(ev); };
}

}  // namespace pagoda::server
