#include "engine/cpu/quant_matrix.h"

#include <immintrin.h>
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/cpu/cpu_features.h"
#include "engine/quant/dequant.h"

// GCC 12's AVX-512 headers pass an intentionally undefined vector through masked builtins, which
// -Wuninitialized flags at every inlined use (GCC bug 105593), as in quant_gemv.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

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

// ggml's quantize_row_q8_0 on one block of 32 floats (for formats without an exact int8 form).
BlockQ8_0 requantize_q8_0(const float* x) {
  float amax = 0.0f;
  for (int i = 0; i < kQBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
  BlockQ8_0 b;
  b.d = fp32_to_fp16(d);
  for (int i = 0; i < kQBlock; ++i) b.qs[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  return b;
}

QuantKind kind_of(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_1: return QuantKind::Q4_1;
    case GgmlType::Q4_0: return QuantKind::Q4_0;
    default: return QuantKind::Q8;
  }
}

}  // namespace

void move_into(QuantMatrix& w, const std::shared_ptr<HugePageArena>& arena) {
  w.u = copy_into(w.u, arena);
  w.d = copy_into(w.d, arena);
  w.m = copy_into(w.m, arena);
}

Result<QuantMatrix> make_quant_matrix(const std::vector<const GgufTensorInfo*>& parts) {
  QuantMatrix w;
  w.cols = parts.at(0)->dims[0];
  w.kind = kind_of(parts[0]->type);
  for (const GgufTensorInfo* t : parts) {
    if (t->dims.size() != 2 || t->dims[0] != w.cols || t->dims[0] % kQBlock != 0) {
      return Status::error(fmt::format("tensor '{}': cannot stack into a {}-column matrix", t->name, w.cols));
    }
    w.rows += t->dims[1];
    if (kind_of(t->type) != w.kind) w.kind = QuantKind::Q8;  // mixed formats: one common 8-bit form
  }
  bool all_rows_by_8 = true;
  for (const GgufTensorInfo* t : parts) all_rows_by_8 = all_rows_by_8 && t->dims[1] % 8 == 0;
  if (w.kind == QuantKind::Q4_0 && all_rows_by_8) w.kind = QuantKind::Q4_0x8;
  const int64_t nb = w.blocks_per_row();
  w.u.assign(static_cast<size_t>(w.groups() * nb * w.runs_per_block() * QuantMatrix::kRunBytes),
             w.kind == QuantKind::Q8 ? 0x80 : 0);
  w.d.assign(static_cast<size_t>(w.groups() * nb * QuantMatrix::kGroup), 0);
  if (w.kind == QuantKind::Q4_1) w.m.assign(w.d.size(), 0);

  int64_t row0 = 0;
  for (const GgufTensorInfo* t : parts) {
    const int64_t rows = t->dims[1];
    // The part's own blocks (else its rows are requantized to Q8_0 from floats).
    const bool exact_type = t->type == GgmlType::Q4_0 || t->type == GgmlType::Q4_1 || t->type == GgmlType::Q8_0;
    const bool native = exact_type && (kind_of(t->type) == w.kind || w.kind == QuantKind::Q4_0x8);
#pragma omp parallel
    {
      std::vector<float> tmp(native ? 0 : w.cols);
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = row0 + r, g = row / QuantMatrix::kGroup, in_run = (row % QuantMatrix::kGroup) * 4;
        if (!native) (void)tensor_row_to_f32(*t, r, tmp.data());  // type was validated at indexing
        for (int64_t b = 0; b < nb; ++b) {
          const int64_t s = w.scale_index(row, b);
          if (w.kind == QuantKind::Q8) {  // 8 runs of 4 bytes, u = q ^ 0x80
            BlockQ8_0 blk;
            if (native) {
              std::memcpy(&blk, t->data + (r * nb + b) * sizeof blk, sizeof blk);
            } else {
              blk = requantize_q8_0(tmp.data() + b * kQBlock);
            }
            w.d[s] = blk.d;
            for (int k = 0; k < 8; ++k) {
              uint8_t* run = w.u.data() + w.run_offset(g, b, k) + in_run;
              for (int j = 0; j < 4; ++j) run[j] = static_cast<uint8_t>(blk.qs[4 * k + j] ^ 0x80);
            }
            continue;
          }
          uint8_t qs[16];
          if (t->type == GgmlType::Q4_1) {
            BlockQ4_1 blk;
            std::memcpy(&blk, t->data + (r * nb + b) * sizeof blk, sizeof blk);
            w.d[s] = blk.d;
            w.m[s] = blk.m;
            std::memcpy(qs, blk.qs, 16);
          } else {
            BlockQ4_0 blk;
            std::memcpy(&blk, t->data + (r * nb + b) * sizeof blk, sizeof blk);
            w.d[s] = blk.d;
            std::memcpy(qs, blk.qs, 16);
          }
          for (int k = 0; k < 4; ++k) std::memcpy(w.u.data() + w.run_offset(g, b, k) + in_run, qs + 4 * k, 4);
        }
      }
    }
    row0 += rows;
  }
  return w;
}

namespace {

// ggml's quantize_row_q8_1 on one block (q and d as quantize_row_q8_0 too). Cloned per ISA so the
// loops vectorize and the fp16 roundings use F16C where the CPU has it.
__attribute__((target_clones("arch=x86-64-v3", "default"))) void quantize_block(const float* xb, int8_t* qb,
                                                                              float* d_out, float* s_out) {
  float amax = 0.0f;
#pragma omp simd reduction(max : amax)
  for (int j = 0; j < kQBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
  const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int32_t sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < kQBlock; ++j) {
    const int v = static_cast<int>(std::nearbyint(xb[j] * id));
    qb[j] = static_cast<int8_t>(v);
    sum += v;
  }
  *d_out = static_cast<float>(static_cast<_Float16>(d));
  *s_out = static_cast<float>(static_cast<_Float16>(d * static_cast<float>(sum)));
}

// The same in two 512-bit registers. GCC's x86-64-v4 clone of the loops above stored two 16-byte
// halves and read them back as one 32-byte load, a store-forwarding stall that was 63% of its time.
// The arithmetic is the same: max is exact, rounding is to nearest even, integer sums are exact.
__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) void quantize_block_avx512(const float* xb, int8_t* qb,
                                                                                     float* d_out, float* s_out) {
  const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
  const __m512 scale = _mm512_set1_ps(id);
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, scale), kNearest);
  const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, scale), kNearest);
  // Saturating, as ggml's packs: the same for finite inputs (|q| <= 127), -128 for inf / NaN as ggml.
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qb), _mm512_cvtsepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + 16), _mm512_cvtsepi32_epi8(q1));
  const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  *d_out = static_cast<float>(static_cast<_Float16>(d));
  *s_out = static_cast<float>(static_cast<_Float16>(d * static_cast<float>(sum)));
}

}  // namespace

void quantize_acts(const float* x, int32_t M, int64_t K, QuantActs& out) {
  const int64_t nb = K / kQBlock;
  out.M = M;
  out.K = K;
  out.q.resize(static_cast<size_t>(M * K));
  out.d.resize(static_cast<size_t>(M * nb));
  out.s_q8_1.resize(out.d.size());
  static const auto quantize = cpu_features().avx512 ? quantize_block_avx512 : quantize_block;
#pragma omp parallel for schedule(static) if (M * nb >= 256)
  for (int64_t i = 0; i < M * nb; ++i) {
    quantize(x + i * kQBlock, out.q.data() + i * kQBlock, &out.d[i], &out.s_q8_1[i]);
  }
}

}  // namespace pagoda::engine::cpu
