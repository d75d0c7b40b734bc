#pragma once
// A model's weights in device memory, as the CUDA kernels want them: every matrix dequantized to
// bf16 at load (whatever GGUF type it was stored in), Q|K|V and gate|up stacked into one matrix each
// so a layer runs four GEMMs, norms in f32. The dequantization is the CPU's reference code
// (engine/quant/dequant.h), so both backends start from the same numbers.
#include <cstdint>
#include <vector>

#include "engine/cuda/device_buffer.h"
#include "engine/model/model_weights.h"

namespace pagoda::engine::cuda {

// A [rows][cols] bf16 matrix; `data` is the owned buffer, or another matrix's (a tied LM head).
struct DeviceMatrix {
  DeviceBuffer<uint16_t> owned;
  const uint16_t* data = nullptr;
  int32_t rows = 0, cols = 0;
  int64_t bytes() const { return static_cast<int64_t>(rows) * cols * 2; }
};

struct DeviceLayer {
  DeviceBuffer<float> attn_norm, ffn_norm;
  DeviceMatrix qkv, wo, gate_up, down;
};

struct DeviceWeights {
  DeviceMatrix token_embd;  // [vocab][d_model]
  DeviceMatrix lm_head;     // [vocab][d_model]; token_embd's memory when the embeddings are tied
  DeviceBuffer<float> output_norm;
  DeviceBuffer<float> rope_freq_factors;  // empty = none
  std::vector<DeviceLayer> layers;
  int64_t bytes = 0;  // device memory the weights take
};

// Dequantizes and uploads every weight; errors name the tensor (or the allocation) at fault.
Result<DeviceWeights> upload_weights(const ModelWeights& w);

// Rows of `parts` (2-D tensors of equal column count) stacked into one bf16 matrix, on the host.
Result<std::vector<uint16_t>> stacked_bf16(const std::vector<const GgufTensorInfo*>& parts, int32_t* rows,
                                           int32_t* cols);

}  // namespace pagoda::engine::cuda
