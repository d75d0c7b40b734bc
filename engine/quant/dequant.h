#pragma once
// Dequantization of GGUF tensor data to f32 (reference-exact with ggml's dequantize_row_*),
// and f32 <-> f16 / bf16 conversions.
#include <cstdint>

#include "engine/quant/ggml_types.h"
#include "engine/status.h"

namespace pagoda::engine {

// Dequantizes n elements of `type` at src into dst. n must be a multiple of the type's block size.
// Errors name the type and the constraint that failed (unsupported type, bad n).
Status dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
// Round-to-nearest-even, NaN preserved (as ggml_compute_fp32_to_bf16).
uint16_t fp32_to_bf16(float f);

}  // namespace pagoda::engine
