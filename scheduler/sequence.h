#pragma once
// What the scheduler tracks per request and per choice (sequence): token ids and KV progress only.
// Sampling state lives with the engine (engine/model_runner.h), text with the output stage. Owned by
// the Scheduler, touched only on the engine thread.
#include <cstdint>
#include <memory>
#include <vector>

#include "scheduler/request.h"

namespace pagoda::scheduler {

struct RequestState;

enum class SeqStatus { Waiting, Running, Finished };

struct Sequence {
  Sequence(uint64_t id, RequestState* owner, int32_t index, const std::vector<int32_t>& prompt)
      : id(id), owner(owner), index(index), tokens(prompt), prompt_len(static_cast<int32_t>(prompt.size())) {}

  uint64_t id;            // unique across the scheduler's lifetime (also the KV manager's key)
  RequestState* owner;
  int32_t index;          // choice index within the request
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int32_t prompt_len;
  int32_t num_computed = 0;     // tokens whose KV is in the cache
  int32_t cached_tokens = 0;    // of the prompt, found in the prefix cache at (first) admission
  SeqStatus status = SeqStatus::Waiting;
  int32_t waited_steps = 0;     // runnable steps without being scheduled (the packer's age rule)
  int32_t preemptions = 0;
  bool kv_started = false;      // registered with the KV manager
  bool awaits_fork = false;     // choice 1..n-1: starts when choice 0's prompt is computed
  int32_t draft_tokens = 0;     // speculative decoding: tokens drafted for this sequence so far
  int32_t accepted_draft_tokens = 0;
  // Evidence for P(a draft is kept), --speculative auto: kept drafts and trials (a run of a kept drafts
  // ending in a rejection is a + 1 trials), decayed so that it follows the text.
  double draft_kept = 0, draft_trials = 0;
  std::vector<int32_t> guess;  // this step's proposal, when auto chose not to verify it

  int32_t output_len() const { return static_cast<int32_t>(tokens.size()) - prompt_len; }
  int32_t remaining() const { return static_cast<int32_t>(tokens.size()) - num_computed; }
};

struct RequestState {
  Request request;
  int64_t arrival = 0;  // admission order (FCFS within a priority)
  std::vector<std::unique_ptr<Sequence>> seqs;  // seqs[0] prefills; n > 1 forks the others from it
  bool forked = false;
  bool cancelled = false;
  int32_t finished = 0;
};

}  // namespace pagoda::scheduler
