#include "engine/cpu/quant_matrix.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/quant/dequant.h"

namespace pagoda::engine::cpu {

namespace {

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ8_0) == 34);

// Symmetric 8-bit requantization of one f32 block, for formats without a direct affine form.
void requantize_block(const float* x, uint8_t* u, float* d, float* c) {
  float amax = 0.0f;
  for (int i = 0; i < kQBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float scale = amax / 127.0f, inv = scale > 0 ? 1.0f / scale : 0.0f;
  for (int i = 0; i < kQBlock; ++i) u[i] = static_cast<uint8_t>(static_cast<int>(std::lround(x[i] * inv)) + 128);
  *d = scale;
  *c = -128.0f * scale;
}

}  // namespace

Result<QuantMatrix> make_quant_matrix(const std::vector<const GgufTensorInfo*>& parts) {
  QuantMatrix w;
  w.cols = parts.at(0)->dims[0];
  bool all_4bit = true;
  for (const GgufTensorInfo* t : parts) {
    if (t->dims.size() != 2 || t->dims[0] != w.cols || t->dims[0] % kQBlock != 0) {
      return Status::error(fmt::format("tensor '{}': cannot stack into a {}-column matrix", t->name, w.cols));
    }
    w.rows += t->dims[1];
    all_4bit = all_4bit && (t->type == GgmlType::Q4_0 || t->type == GgmlType::Q4_1);
  }
  w.bits = all_4bit ? 4 : 8;
  const int64_t nb = w.blocks_per_row();
  w.u.resize(static_cast<size_t>(w.rows * nb * w.bytes_per_block()));
  w.d.resize(static_cast<size_t>(w.rows * nb));
  w.c.resize(w.d.size());
  w.c_uses_q8_1_sum.resize(static_cast<size_t>(w.rows));

  int64_t row0 = 0;
  std::vector<float> tmp(w.cols);
  for (const GgufTensorInfo* t : parts) {
    const int64_t rows = t->dims[1];
    std::fill_n(w.c_uses_q8_1_sum.begin() + row0, rows, t->type == GgmlType::Q4_1 ? 1 : 0);
#pragma omp parallel for schedule(static) firstprivate(tmp)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t blk0 = (row0 + r) * nb;
      uint8_t* u = w.u.data() + blk0 * w.bytes_per_block();
      float* d = w.d.data() + blk0;
      float* c = w.c.data() + blk0;
      if (t->type == GgmlType::Q4_1 || t->type == GgmlType::Q4_0) {
        for (int64_t b = 0; b < nb; ++b) {
          if (t->type == GgmlType::Q4_1) {
            BlockQ4_1 blk;
            std::memcpy(&blk, t->data + (r * nb + b) * sizeof(BlockQ4_1), sizeof blk);
            d[b] = fp16_to_fp32(blk.d);
            c[b] = fp16_to_fp32(blk.m);
            std::memcpy(u + b * 16, blk.qs, 16);
          } else {
            BlockQ4_0 blk;
            std::memcpy(&blk, t->data + (r * nb + b) * sizeof(BlockQ4_0), sizeof blk);
            d[b] = fp16_to_fp32(blk.d);
            c[b] = -8.0f * d[b];
            std::memcpy(u + b * 16, blk.qs, 16);
          }
        }
      } else if (t->type == GgmlType::Q8_0) {
        for (int64_t b = 0; b < nb; ++b) {
          BlockQ8_0 blk;
          std::memcpy(&blk, t->data + (r * nb + b) * sizeof(BlockQ8_0), sizeof blk);
          d[b] = fp16_to_fp32(blk.d);
          c[b] = -128.0f * d[b];
          for (int i = 0; i < kQBlock; ++i) u[b * 32 + i] = static_cast<uint8_t>(blk.qs[i] ^ 0x80);
        }
      } else {
        (void)tensor_row_to_f32(*t, r, tmp.data());  // type validated when the weights were indexed
        for (int64_t b = 0; b < nb; ++b) requantize_block(tmp.data() + b * kQBlock, u + b * 32, d + b, c + b);
      }
    }
    row0 += rows;
  }
  return w;
}

void quantize_acts(const float* x, int32_t M, int64_t K, QuantActs& out) {
  const int64_t nb = K / kQBlock;
  out.M = M;
  out.K = K;
  out.q.resize(static_cast<size_t>(M * K));
  out.d.resize(static_cast<size_t>(M * nb));
  out.s_q8_1.resize(out.d.size());
  out.s_exact.resize(out.d.size());
  out.qsum.resize(out.d.size());
  // As ggml's quantize_row_q8_1: q = round(x * 127 / amax), d = amax / 127 stored as fp16,
  // s = d * sum(q) stored as fp16.
  for (int64_t i = 0; i < M * nb; ++i) {
    const float* xb = x + i * kQBlock;
    int8_t* qb = out.q.data() + i * kQBlock;
    float amax = 0.0f;
    for (int j = 0; j < kQBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < kQBlock; ++j) {
      const int v = static_cast<int>(std::nearbyint(xb[j] * id));
      qb[j] = static_cast<int8_t>(v);
      sum += v;
    }
    out.d[i] = fp16_to_fp32(fp32_to_fp16(d));
    out.qsum[i] = sum;
    out.s_q8_1[i] = fp16_to_fp32(fp32_to_fp16(d * static_cast<float>(sum)));
    out.s_exact[i] = out.d[i] * static_cast<float>(sum);
  }
}

}  // namespace pagoda::engine::cpu
