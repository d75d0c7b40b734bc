#include "bench/in_process_harness.h"

namespace pagoda::bench {

scheduler::Request make_request(scheduler::RequestId id, std::vector<int32_t> prompt, int32_t max_tokens,
                                scheduler::StreamSink sink) {
  scheduler::Request r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0.0f;  // greedy
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;  // every request produces exactly max_tokens tokens
  r.sink = std::move(sink);
  return r;
}

scheduler::EngineLoopConfig loop_config(int32_t budget, int32_t max_seqs, bool prefix_caching) {
  scheduler::EngineLoopConfig c;
  c.scheduler.max_num_batched_tokens = budget;
  c.scheduler.max_num_seqs = max_seqs;
  c.scheduler.chunked_prefill = true;
  c.prefix_caching = prefix_caching;
  return c;
}

Status warm_up(engine::LoadedModel& m) {
  Tracker tr(1);  // outlives the loop: its sinks point here
  scheduler::EngineLoop loop(*m.backend, *m.tokenizer, loop_config(2048, 64, false));
  PromptMaker pm(m.tokenizer->vocab_size(), 99);
  return loop.run_with_driver([&]() -> Status {
    if (Status s = loop.submit(make_request(1, pm.make(64), 4, tr.sink(0))); !s.ok()) return s;
    return tr.wait_next().status();
  });
}

}  // namespace pagoda::bench
