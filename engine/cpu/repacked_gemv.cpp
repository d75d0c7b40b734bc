// Q4_0 in ggml's repacked order of summation (QuantKind::Q4_0x8, quant_matrix.h): per output row and
// block, the integer sum of the block's 32 products, then acc = fma(float(sum), d_w * d_a, acc). Rows sit
// in the vector lanes (groups of 16: 16 lanes with VNNI, two halves of 8 with AVX2), so the integer dot
// products and the per-block fma run for many rows at once, as in ggml's q4_0_8x8 kernels. Nibbles are
// unsigned (0..15): each block's sum is sum(u * a) - 8 * sum(a). All kernels give the same bits.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/cpu/quant_matrix.h"
#include "engine/quant/dequant.h"

// GCC 12's AVX-512 headers pass an intentionally undefined vector through masked builtins, which
// -Wmaybe-uninitialized flags at every inlined use (GCC bug 105593), as in quant_gemv.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace pagoda::engine::cpu {

namespace {

constexpr int kGroup = QuantMatrix::kGroup;        // rows per group
constexpr int kRunBytes = QuantMatrix::kRunBytes;  // one run: 16 rows x 4 bytes
constexpr int kMaxTile = 8;                        // activation rows per pass

// Sum of each activation block's 32 int8 values (the zero-point term).
std::vector<int32_t> block_sums(const QuantActs& x) {
  const int64_t nb = x.K / kQBlock;
  std::vector<int32_t> s(static_cast<size_t>(x.M * nb));
  for (int64_t i = 0; i < x.M * nb; ++i) {
    int32_t sum = 0;
    for (int j = 0; j < kQBlock; ++j) sum += x.q[i * kQBlock + j];
    s[static_cast<size_t>(i)] = sum;
  }
  return s;
}

// Reference kernel: one row and activation row at a time, the arithmetic spelled out.
void group_scalar(const QuantMatrix& w, const QuantActs& x, const int32_t*, int64_t g, float* y) {
  const int64_t nb = w.blocks_per_row();
  for (int rr = 0; rr < kGroup && g * kGroup + rr < w.rows; ++rr) {
    const int64_t row = g * kGroup + rr;
    for (int32_t m = 0; m < x.M; ++m) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const int8_t* a = x.q.data() + m * x.K + b * kQBlock;
        int32_t sum = 0;
        for (int t = 0; t < 4; ++t) {
          const uint8_t* run = w.u.data() + ((g * nb + b) * 4 + t) * kRunBytes + rr * 4;
          for (int j = 0; j < 4; ++j) {
            sum += ((run[j] & 0x0F) - 8) * a[4 * t + j] + ((run[j] >> 4) - 8) * a[16 + 4 * t + j];
          }
        }
        const float d = fp16_to_fp32(w.d[(g * nb + b) * kGroup + rr]) * x.d[m * nb + b];
        acc = std::fma(static_cast<float>(sum), d, acc);
      }
      y[m * w.rows + row] = acc;
    }
  }
}

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// AVX2: eight rows (one half of the group) per register; maddubs + madd give each row's 4-byte dots.
template <int MT>
__attribute__((target("avx2,fma,f16c"))) void half_tile_avx2(const QuantMatrix& w, const QuantActs& x,
                                                             const int32_t* asum, int64_t g, int half, int32_t m0,
                                                             float* y) {
  const int64_t nb = w.blocks_per_row();
  const __m256i ones = _mm256_set1_epi16(1), lo4 = _mm256_set1_epi8(0x0F);
  __m256 acc[MT];
  for (int i = 0; i < MT; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256 dw = _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.d.data() + (g * nb + b) * kGroup + 8 * half)));
    __m256i isum[MT];
    for (int i = 0; i < MT; ++i) isum[i] = _mm256_setzero_si256();
    for (int t = 0; t < 4; ++t) {
      const __m256i raw = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(w.u.data() + ((g * nb + b) * 4 + t) * kRunBytes + 32 * half));
      const __m256i lo = _mm256_and_si256(raw, lo4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
      for (int i = 0; i < MT; ++i) {
        const int8_t* a = x.q.data() + (m0 + i) * x.K + b * kQBlock;
        const __m256i dl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi32(load4(a + 4 * t))), ones);
        const __m256i dh = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_set1_epi32(load4(a + 16 + 4 * t))), ones);
        isum[i] = _mm256_add_epi32(isum[i], _mm256_add_epi32(dl, dh));
      }
    }
    for (int i = 0; i < MT; ++i) {
      const __m256i s = _mm256_sub_epi32(isum[i], _mm256_set1_epi32(8 * asum[(m0 + i) * nb + b]));
      const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(x.d[(m0 + i) * nb + b]));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[i]);
    }
  }
  for (int i = 0; i < MT; ++i) {
    float out[8];
    _mm256_storeu_ps(out, acc[i]);
    const int64_t row0 = g * kGroup + 8 * half;
    for (int r = 0; r < 8 && row0 + r < w.rows; ++r) y[(m0 + i) * w.rows + row0 + r] = out[r];
  }
}

// AVX-512 VNNI: the 16 rows of a group in one register; one VPDPBUSD per run and nibble half.
template <int MT>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"))) void group_tile_vnni(
    const QuantMatrix& w, const QuantActs& x, const int32_t* asum, int64_t g, int32_t m0, float* y) {
  const int64_t nb = w.blocks_per_row();
  const __m512i lo4 = _mm512_set1_epi8(0x0F);
  __m512 acc[MT];
  for (int i = 0; i < MT; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 dw = _mm512_cvtph_ps(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.d.data() + (g * nb + b) * kGroup)));
    __m512i isum[MT];
    for (int i = 0; i < MT; ++i) isum[i] = _mm512_setzero_si512();
    for (int t = 0; t < 4; ++t) {
      const __m512i raw = _mm512_loadu_si512(w.u.data() + ((g * nb + b) * 4 + t) * kRunBytes);
      const __m512i lo = _mm512_and_si512(raw, lo4), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4);
      for (int i = 0; i < MT; ++i) {
        const int8_t* a = x.q.data() + (m0 + i) * x.K + b * kQBlock;
        isum[i] = _mm512_dpbusd_epi32(isum[i], lo, _mm512_set1_epi32(load4(a + 4 * t)));
        isum[i] = _mm512_dpbusd_epi32(isum[i], hi, _mm512_set1_epi32(load4(a + 16 + 4 * t)));
      }
    }
    for (int i = 0; i < MT; ++i) {
      const __m512i s = _mm512_sub_epi32(isum[i], _mm512_set1_epi32(8 * asum[(m0 + i) * nb + b]));
      const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(x.d[(m0 + i) * nb + b]));
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[i]);
    }
  }
  for (int i = 0; i < MT; ++i) {
    float out[kGroup];
    _mm512_storeu_ps(out, acc[i]);
    for (int r = 0; r < kGroup && g * kGroup + r < w.rows; ++r) y[(m0 + i) * w.rows + g * kGroup + r] = out[r];
  }
}

template <int MT>
void tile(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, const int32_t* asum, int64_t g, int32_t m0,
          float* y) {
  if (isa == GemvIsa::Vnni) {
    group_tile_vnni<MT>(w, x, asum, g, m0, y);
  } else {
    half_tile_avx2<MT>(w, x, asum, g, 0, m0, y);
    half_tile_avx2<MT>(w, x, asum, g, 1, m0, y);
  }
}

void group_vector(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, const int32_t* asum, int64_t g, float* y) {
  for (int32_t m0 = 0; m0 < x.M; m0 += kMaxTile) {
    switch (std::min(kMaxTile, x.M - m0)) {
      case 1: tile<1>(isa, w, x, asum, g, m0, y); break;
      case 2: tile<2>(isa, w, x, asum, g, m0, y); break;
      case 3: tile<3>(isa, w, x, asum, g, m0, y); break;
      case 4: tile<4>(isa, w, x, asum, g, m0, y); break;
      case 5: tile<5>(isa, w, x, asum, g, m0, y); break;
      case 6: tile<6>(isa, w, x, asum, g, m0, y); break;
      case 7: tile<7>(isa, w, x, asum, g, m0, y); break;
      default: tile<8>(isa, w, x, asum, g, m0, y); break;
    }
  }
}

}  // namespace

void repacked_q4_0_gemv(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y) {
  const std::vector<int32_t> asum = block_sums(x);
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < w.groups(); ++g) {
    if (isa == GemvIsa::Scalar) {
      group_scalar(w, x, asum.data(), g, y);
    } else {
      group_vector(isa, w, x, asum.data(), g, y);
    }
  }
}

}  // namespace pagoda::engine::cpu
