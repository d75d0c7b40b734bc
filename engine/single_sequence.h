#pragma once
// Runs one sequence through a Backend step by step: prefill (optionally in chunks), then one token
// per decode step, with a contiguous block table. The CLI, the `single` benchmark and the model tests
// use it; the scheduler (many sequences, a shared block pool) replaces it in the daemon.
#include <cstdint>
#include <span>
#include <vector>

#include "engine/backend.h"

namespace pagoda::engine {

class SingleSequence {
 public:
  // Claims blocks 0.. of the backend's pool for up to max_tokens tokens.
  SingleSequence(Backend& backend, int32_t vocab_size, int32_t max_tokens);
  Status check_capacity(int32_t extra_tokens) const;

  // Runs `tokens` after the current context. all_logits: logits for every token (teacher forcing),
  // else only for the last one. Returns the logits, [n or 1][vocab].
  Result<std::span<const float>> run(std::span<const int32_t> tokens, bool all_logits = false);
  int32_t length() const { return length_; }
  void reset() { length_ = 0; }

 private:
  Backend& backend_;
  int32_t vocab_;
  int32_t block_size_;
  std::vector<int32_t> table_;
  int32_t length_ = 0;
  std::vector<float> logits_;
};

}  // namespace pagoda::engine
