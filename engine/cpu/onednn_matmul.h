#pragma once
// The large-batch (prefill) GEMM path: y[M][N] = x[M][K] . W^T with bf16 inputs and f32 output
// through one oneDNN matmul primitive per weight, created once with a run-time M, weights reordered
// once at load into the layout the primitive prefers.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/model/model_weights.h"
#include "engine/status.h"

namespace pagoda::engine::cpu {

class OnednnMatmul {
 public:
  // Row-stacks the parts (e.g. gate and up) into one [N][K] weight.
  static Result<std::unique_ptr<OnednnMatmul>> create(const std::vector<const GgufTensorInfo*>& parts);
  ~OnednnMatmul();
  // x: [M][K] bf16, y: [M][N] f32.
  void run(const uint16_t* x, int64_t M, float* y) const;
  int64_t rows() const { return n_; }
  int64_t cols() const { return k_; }
  int64_t weight_bytes() const { return n_ * k_ * 2; }
  std::string impl_name() const;

 private:
  OnednnMatmul() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t n_ = 0, k_ = 0;
};

}  // namespace pagoda::engine::cpu
