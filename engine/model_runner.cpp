#include "engine/model_runner.h"

#include <spdlog/fmt/fmt.h>

#include <chrono>

#include "engine/sampling/sampler.h"

namespace pagoda::engine {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

ModelRunner::ModelRunner(Backend& backend, int32_t vocab_size) : backend_(backend), vocab_(vocab_size) {}
ModelRunner::~ModelRunner() = default;

void ModelRunner::open(const SequenceSampling& s) {
  samplers_[s.seq_id] = std::make_unique<Sampler>(s.params, s.prompt);
}

void ModelRunner::close(uint64_t seq_id) { samplers_.erase(seq_id); }

Status ModelRunner::copy_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst,
                                std::span<const std::pair<int32_t, int32_t>> window_src_dst) {
  Status s = src_dst.empty() ? Status{} : backend_.copy_blocks(src_dst);
  if (s.ok() && !window_src_dst.empty()) s = backend_.copy_window_blocks(window_src_dst);
  return s.ok() ? s : Status::error(StatusCode::Internal, s.message());
}

Result<StepResult> ModelRunner::execute(const StepPlan& plan) {
  StepResult result;
  if (Status s = plan.validate_samples(vocab_); !s.ok()) return Status::error(StatusCode::Internal, s.message());
  const size_t vocab = static_cast<size_t>(vocab_);
  logits_.resize(plan.logits_indices.size() * vocab);
  auto t0 = std::chrono::steady_clock::now();
  if (Status s = backend_.execute(plan, logits_); !s.ok()) return Status::error(StatusCode::Internal, s.message());
  result.forward_ms = ms_since(t0);

  t0 = std::chrono::steady_clock::now();
  const size_t words = static_cast<size_t>(token_mask_words(vocab_));
  result.seqs.reserve(plan.sample_seq_ids.size());
  for (size_t i = 0; i < plan.sample_seq_ids.size(); ++i) {
    const uint64_t id = plan.sample_seq_ids[i];
    auto it = samplers_.find(id);
    if (it == samplers_.end()) {
      return Status::error(StatusCode::Internal, fmt::format("step plan samples sequence {}, which has no sampler", id));
    }
    const std::span<const float> row(logits_.data() + static_cast<size_t>(plan.sample_rows[i]) * vocab, vocab);
    const std::span<const uint32_t> mask =
        plan.token_masks.empty() ? std::span<const uint32_t>() : std::span(plan.token_masks).subspan(i * words, words);
    SeqStepOutput out{id, {}, 0, 0};
    const std::span<const int32_t> drafts = plan.drafts(static_cast<int32_t>(i));
    Sampler& sampler = *it->second;
    SampleResult r = sampler.sample(row, mask);
    sampler.accept(r.token);
    out.tokens.push_back(std::move(r));
    // Verification: row j + 1 holds the logits after draft j, valid while every draft so far equals the
    // draw. Each committed token is the sampler's own draw from the target's logits given the tokens
    // before it, so the output (and the generator's stream) is token for token what decoding without
    // drafts produces, under every sampling parameter.
    out.drafted = static_cast<int32_t>(drafts.size());
    for (size_t j = 0; j < drafts.size() && out.tokens.back().token == drafts[j]; ++j) {
      ++out.accepted;
      const std::span<const float> next(logits_.data() + static_cast<size_t>(plan.sample_rows[i] + j + 1) * vocab, vocab);
      SampleResult t = sampler.sample(next);
      sampler.accept(t.token);
      out.tokens.push_back(std::move(t));
    }
    result.seqs.push_back(std::move(out));
  }
  result.sample_ms = ms_since(t0);
  return result;
}

}  // namespace pagoda::engine
