// Dequantization of ggml block formats to f32. Each routine follows ggml's reference
// dequantize_row_* (ggml-quants.c) operation for operation, so results are bit-identical: the same
// products in the same order, no fused multiply-add (the project builds for baseline x86-64).
// The inner loops are plain and branch-free so the compiler vectorizes them.
#include "engine/quant/dequant.h"

#include <bit>
#include <cstring>
#include <string>

namespace pagoda::engine {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF data is little-endian");

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Exact f16 -> f32, branch-free (vectorizable). Normal numbers: rebias the exponent by a multiply by
// 2^-112; subnormals: build 0.5 + m*2^-24 and subtract 0.5 (exact). Inf stays inf, NaN stays NaN (a
// signalling NaN comes back quiet, as the F16C instruction does).
inline float half_to_float(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const float normalized = std::bit_cast<float>((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = std::bit_cast<float>((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t bits =
      two_w < (1u << 27) ? std::bit_cast<uint32_t>(denormalized) : std::bit_cast<uint32_t>(normalized);
  return std::bit_cast<float>(sign | bits);
}

// ---- block layouts (byte offsets inside one block) ----
// q4_0: d f16 | qs[16]            q4_1: d f16 | m f16 | qs[16]
// q5_0: d f16 | qh[4] | qs[16]    q5_1: d f16 | m f16 | qh[4] | qs[16]
// q8_0: d f16 | qs[32] int8
// q2_K: scales[16] | qs[64] | d f16 | dmin f16
// q3_K: hmask[32] | qs[64] | scales[12] | d f16
// q4_K: d f16 | dmin f16 | scales[12] | qs[128]
// q5_K: d f16 | dmin f16 | scales[12] | qh[32] | qs[128]
// q6_K: ql[128] | qh[64] | scales[16] int8 | d f16
// q8_K: d f32 | qs[256] int8 | bsums[16] int16

void deq_q4_0(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 18, y += 32) {
    const float d = half_to_float(load_u16(x));
    const uint8_t* qs = x + 2;
    for (int j = 0; j < 16; ++j) {
      const int x0 = (qs[j] & 0x0F) - 8;
      const int x1 = (qs[j] >> 4) - 8;
      y[j] = static_cast<float>(x0) * d;
      y[j + 16] = static_cast<float>(x1) * d;
    }
  }
}

void deq_q4_1(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 20, y += 32) {
    const float d = half_to_float(load_u16(x));
    const float m = half_to_float(load_u16(x + 2));
    const uint8_t* qs = x + 4;
    for (int j = 0; j < 16; ++j) {
      const int x0 = qs[j] & 0x0F;
      const int x1 = qs[j] >> 4;
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    }
  }
}

void deq_q5_0(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 22, y += 32) {
    const float d = half_to_float(load_u16(x));
    uint32_t qh;
    std::memcpy(&qh, x + 2, 4);
    const uint8_t* qs = x + 6;
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>((qh >> j) << 4) & 0x10;
      const int h1 = static_cast<int>(qh >> (j + 12)) & 0x10;
      const int x0 = ((qs[j] & 0x0F) | h0) - 16;
      const int x1 = ((qs[j] >> 4) | h1) - 16;
      y[j] = static_cast<float>(x0) * d;
      y[j + 16] = static_cast<float>(x1) * d;
    }
  }
}

void deq_q5_1(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 24, y += 32) {
    const float d = half_to_float(load_u16(x));
    const float m = half_to_float(load_u16(x + 2));
    uint32_t qh;
    std::memcpy(&qh, x + 4, 4);
    const uint8_t* qs = x + 8;
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>((qh >> j) << 4) & 0x10;
      const int h1 = static_cast<int>(qh >> (j + 12)) & 0x10;
      const int x0 = (qs[j] & 0x0F) | h0;
      const int x1 = (qs[j] >> 4) | h1;
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    }
  }
}

void deq_q8_0(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 34, y += 32) {
    const float d = half_to_float(load_u16(x));
    const int8_t* qs = reinterpret_cast<const int8_t*>(x + 2);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

void deq_q2_K(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 84) {
    const uint8_t* scales = x;
    const uint8_t* q = x + 16;
    const float d = half_to_float(load_u16(x + 80));
    const float min = half_to_float(load_u16(x + 82));
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = min * static_cast<float>(sc >> 4);
          const uint8_t* qq = q + 16 * half;
          for (int l = 0; l < 16; ++l) y[l] = dl * static_cast<float>((qq[l] >> shift) & 3) - ml;
          y += 16;
        }
        shift += 2;
      }
      q += 32;
    }
  }
}

void deq_q3_K(const uint8_t* x, float* y, int64_t nb) {
  constexpr uint32_t kmask1 = 0x03030303;
  constexpr uint32_t kmask2 = 0x0f0f0f0f;
  for (int64_t i = 0; i < nb; ++i, x += 110) {
    const uint8_t* hm = x;
    const uint8_t* q = x + 32;
    const float d_all = half_to_float(load_u16(x + 108));
    // Unpack the 16 6-bit scales (4 low bits in bytes 0..7, 2 high bits in bytes 8..11).
    uint32_t aux[4];
    std::memcpy(aux, x + 96, 12);
    const uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    int8_t scales[16];
    std::memcpy(scales, aux, 16);
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < 256; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * static_cast<float>(scales[is++] - 32);
          const uint8_t* qq = q + 16 * half;
          const uint8_t* hh = hm + 16 * half;
          for (int l = 0; l < 16; ++l) {
            const int v = ((qq[l] >> shift) & 3) - ((hh[l] & m) ? 0 : 4);
            y[l] = dl * static_cast<float>(v);
          }
          y += 16;
        }
        shift += 2;
        m = static_cast<uint8_t>(m << 1);
      }
      q += 32;
    }
  }
}

// The 8 (scale, min) pairs of q4_K / q5_K, 6 bits each, packed in 12 bytes (ggml's get_scale_min_k4).
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

void deq_q4_K(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 144) {
    const float d = half_to_float(load_u16(x));
    const float min = half_to_float(load_u16(x + 2));
    const uint8_t* scales = x + 4;
    const uint8_t* q = x + 16;
    int is = 0;
    for (int j = 0; j < 256; j += 64) {
      uint8_t sc, m;
      scale_min_k4(is + 0, scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = min * static_cast<float>(m);
      scale_min_k4(is + 1, scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[l + 32] = d2 * static_cast<float>(q[l] >> 4) - m2;
      y += 64;
      q += 32;
      is += 2;
    }
  }
}

void deq_q5_K(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 176) {
    const float d = half_to_float(load_u16(x));
    const float min = half_to_float(load_u16(x + 2));
    const uint8_t* scales = x + 4;
    const uint8_t* qh = x + 16;
    const uint8_t* ql = x + 48;
    int is = 0;
    int u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
      uint8_t sc, m;
      scale_min_k4(is + 0, scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = min * static_cast<float>(m);
      scale_min_k4(is + 1, scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        y[l] = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        y[l + 32] = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      }
      y += 64;
      ql += 32;
      is += 2;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

void deq_q6_K(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 210) {
    const uint8_t* ql = x;
    const uint8_t* qh = x + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
    const float d = half_to_float(load_u16(x + 208));
    for (int n = 0; n < 256; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void deq_q8_K(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 292, y += 256) {
    float d;
    std::memcpy(&d, x, 4);
    const int8_t* qs = reinterpret_cast<const int8_t*>(x + 4);
    for (int j = 0; j < 256; ++j) y[j] = d * static_cast<float>(qs[j]);
  }
}

void deq_f16(const uint8_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = half_to_float(load_u16(x + 2 * i));
}

void deq_bf16(const uint8_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(load_u16(x + 2 * i));
}

}  // namespace

Status dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  if (info == nullptr) {
    return Status::error("dequantize_row: unknown ggml type " + std::to_string(static_cast<uint32_t>(type)));
  }
  if (!info->can_dequantize) {
    return Status::error(std::string("dequantize_row: type ") + info->name +
                         " is not supported (no dequantizer for it)");
  }
  if (n < 0 || n % info->block_size != 0) {
    return Status::error(std::string("dequantize_row: ") + info->name + ": n = " + std::to_string(n) +
                         " is not a non-negative multiple of the block size " +
                         std::to_string(info->block_size));
  }
  if (n == 0) return Status();
  if (src == nullptr || dst == nullptr) {
    return Status::error(std::string("dequantize_row: ") + info->name + ": null source or destination");
  }
  const auto* x = static_cast<const uint8_t*>(src);
  const int64_t nb = n / info->block_size;
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, x, static_cast<size_t>(n) * 4); break;
    case GgmlType::F16: deq_f16(x, dst, n); break;
    case GgmlType::BF16: deq_bf16(x, dst, n); break;
    case GgmlType::Q4_0: deq_q4_0(x, dst, nb); break;
    case GgmlType::Q4_1: deq_q4_1(x, dst, nb); break;
    case GgmlType::Q5_0: deq_q5_0(x, dst, nb); break;
    case GgmlType::Q5_1: deq_q5_1(x, dst, nb); break;
    case GgmlType::Q8_0: deq_q8_0(x, dst, nb); break;
    case GgmlType::Q2_K: deq_q2_K(x, dst, nb); break;
    case GgmlType::Q3_K: deq_q3_K(x, dst, nb); break;
    case GgmlType::Q4_K: deq_q4_K(x, dst, nb); break;
    case GgmlType::Q5_K: deq_q5_K(x, dst, nb); break;
    case GgmlType::Q6_K: deq_q6_K(x, dst, nb); break;
    case GgmlType::Q8_K: deq_q8_K(x, dst, nb); break;
    default:
      return Status::error(std::string("dequantize_row: type ") + info->name + " is not supported");
  }
  return Status();
}

float fp16_to_fp32(uint16_t h) { return half_to_float(h); }

// Round to nearest even; overflow goes to inf; results below the f16 range become subnormals or zero;
// NaN stays NaN (quiet, with the top payload bits kept, as the F16C instruction does).
uint16_t fp32_to_fp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // inf or NaN
    if (ax == 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u);
    return static_cast<uint16_t>(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
  }
  if (ax >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520: rounds to inf
  if (ax < 0x38800000u) {  // below 2^-14: f16 subnormal (or zero)
    if (ax < 0x33000000u) return sign;  // below 2^-25 (and 2^-25 itself ties to zero below)
    const uint32_t e = ax >> 23;          // 102..112
    const uint32_t mant = (ax & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;       // value = mant * 2^(e-150); in units of 2^-24: mant >> (126-e)
    uint32_t r = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  // Normal: rebias exponent (127 -> 15), round the 13 dropped mantissa bits to nearest even.
  uint32_t r = ((ax >> 13) - (112u << 10));
  const uint32_t rem = ax & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) ++r;  // may carry into the exponent: still right
  return static_cast<uint16_t>(sign | r);
}

uint16_t fp32_to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7FFFu + ((u >> 16) & 1))) >> 16);
}

}  // namespace pagoda::engine
