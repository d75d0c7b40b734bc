#pragma once
// A backend that forwards every call to another one: the base of the benchmark's wrappers, which
// override execute() alone (counting what runs, padding prefills for the ablation).
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "engine/backend.h"

namespace pagoda::bench {

class ForwardingBackend : public engine::Backend {
 public:
  explicit ForwardingBackend(engine::Backend& inner) : inner_(inner) {}
  std::string name() const override { return inner_.name(); }
  Status load(std::shared_ptr<const engine::ModelWeights> w) override { return inner_.load(std::move(w)); }
  Status allocate_kv(const engine::KvCacheShape& shape) override { return inner_.allocate_kv(shape); }
  engine::KvCacheShape kv_shape() const override { return inner_.kv_shape(); }
  int64_t kv_bytes_per_block() const override { return inner_.kv_bytes_per_block(); }
  int64_t kv_memory_available() const override { return inner_.kv_memory_available(); }
  int32_t kv_window() const override { return inner_.kv_window(); }
  int64_t kv_bytes_per_window_block() const override { return inner_.kv_bytes_per_window_block(); }
  Status execute(const engine::StepPlan& plan, std::span<float> logits) override {
    return inner_.execute(plan, logits);
  }
  Status copy_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) override {
    return inner_.copy_blocks(src_dst);
  }
  Status copy_window_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) override {
    return inner_.copy_window_blocks(src_dst);
  }
  engine::BackendInfo info() const override { return inner_.info(); }
  engine::OpProfile take_op_profile() override { return inner_.take_op_profile(); }

 protected:
  engine::Backend& inner_;
};

}  // namespace pagoda::bench
