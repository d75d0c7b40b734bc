#pragma once
// The output stage (DESIGN.md; vLLM v1's OutputProcessor): turns a request's token events from the
// engine loop into the events front ends stream. Per choice it
//  - detokenizes incrementally (bytes of an unfinished UTF-8 character are held back),
//  - matches stop strings across token boundaries (held back while they may still match, never sent),
//    and on a match ends the choice with Stop and asks the engine to stop it (stop_choice),
//  - leaves a stop token's own text out, and flushes what is held back when the choice ends,
//  - sends exactly one finish event per choice, dropping what the engine sends after it.
// It runs wherever the engine's sink is called (today the engine thread); it keeps all its state in
// the returned sink, so nothing is shared between requests.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "scheduler/request.h"

namespace pagoda::server {

struct OutputOptions {
  int32_t n = 1;                          // choices
  std::vector<std::string> stop_strings;
  // Called once per choice that matched a stop string (quick; e.g. EngineLoop::stop_choice).
  std::function<void(int32_t index)> stop_choice;
};

// A sink for the engine loop that feeds `downstream` text events. The tokenizer must outlive it.
scheduler::StreamSink make_output_processor(const engine::Tokenizer& tokenizer, OutputOptions options,
                                            scheduler::StreamSink downstream);

}  // namespace pagoda::server
