// Kernels of the int8 matmul path for the eight-lane kinds, Q4_0, Q4_1 and Q8 (quant_matrix.h has the
// arithmetic they share with ggml; Q4_0x8 is repacked_gemv.cpp). Rows sit in the vector lanes: for a
// group of 16 rows and one block, ggml's lane k of all 16 rows is one VPDPBUSD of run k (4-bit: the
// low or high nibbles of run k % 4) with activation bytes 4k..4k+3 broadcast, then
// acc_k = fma(d_w * d_a, float(lane), acc_k) for the 16 rows at once; a row's result is ggml's
// hsum_float_8 of its eight acc_k, done across the rows with vector adds. AVX2 holds half a group (8
// rows) per register and forms the lanes with maddubs + madd; it runs two activation rows per pass,
// four lanes at a time, and one row in one pass where a single row is left. quant_gemv() picks the
// widest instruction set the CPU has and splits the groups across OpenMP threads. Every kernel
// produces the same bits.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/cpu/cpu_features.h"
#include "engine/cpu/quant_matrix.h"
#include "engine/quant/dequant.h"

// GCC 12's AVX-512 headers pass an intentionally undefined vector through masked builtins, which
// -Wuninitialized flags at every inlined use (GCC bug 105593); the warning says nothing about our code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define PAGODA_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define PAGODA_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace pagoda::engine::cpu {

namespace {

constexpr int kGroup = QuantMatrix::kGroup, kRunBytes = QuantMatrix::kRunBytes;
// VNNI: activation rows per pass. Each holds 8 accumulators of 16 rows; two rows' 16 leave registers
// for the weights and scales.
constexpr int32_t kTileRows = 2;
// With at least this many activation rows, a 4-bit group's nibbles are unpacked once into a buffer
// that every pass reads, instead of once per pass.
constexpr int32_t kUnpackMinRows = 3;
constexpr size_t kKeepBytes = size_t{4} << 20;  // per-call buffers kept between calls

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ggml's hsum_float_8 on eight lanes.
inline float hsum8(const float* a) {
  const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
  return (r0 + r2) + (r1 + r3);
}

constexpr int zero_point(QuantKind k) { return k == QuantKind::Q4_0 ? 8 : k == QuantKind::Q8 ? 128 : 0; }

// Weight e (0..31) of group row rr in block b, from the lane layout (quant_matrix.h).
template <QuantKind K>
int weight_at(const QuantMatrix& w, int64_t g, int64_t b, int rr, int e) {
  if constexpr (K == QuantKind::Q8) {
    return static_cast<int8_t>(w.u[w.run_offset(g, b, e / 4) + rr * 4 + e % 4] ^ 0x80);
  } else {
    const uint8_t byte = w.u[w.run_offset(g, b, (e % 16) / 4) + rr * 4 + e % 4];
    const int nib = e < 16 ? byte & 0x0F : byte >> 4;
    return K == QuantKind::Q4_0 ? nib - 8 : nib;
  }
}

// Reference kernel: one row and activation row at a time, the arithmetic spelled out.
template <QuantKind K>
void group_scalar(const QuantMatrix& w, const QuantActs& x, int64_t g, float* y) {
  const int64_t nb = w.blocks_per_row();
  for (int rr = 0; rr < kGroup && g * kGroup + rr < w.rows; ++rr) {
    const int64_t row = g * kGroup + rr;
    for (int32_t m = 0; m < x.M; ++m) {
      float acc[8] = {};
      float summs = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const int8_t* a = x.q.data() + m * x.K + b * kQBlock;
        int32_t lanes[8] = {};
        for (int e = 0; e < kQBlock; ++e) lanes[e / 4] += weight_at<K>(w, g, b, rr, e) * a[e];
        const int64_t s = w.scale_index(row, b);
        const float d = fp16_to_fp32(w.d[s]) * x.d[m * nb + b];
        for (int k = 0; k < 8; ++k) acc[k] = std::fma(d, static_cast<float>(lanes[k]), acc[k]);
        if constexpr (K == QuantKind::Q4_1) summs = std::fma(fp16_to_fp32(w.m[s]), x.s_q8_1[m * nb + b], summs);
      }
      y[m * w.rows + row] = K == QuantKind::Q4_1 ? hsum8(acc) + summs : hsum8(acc);
    }
  }
}

// Per (activation row, block, lane k): -(zero point * the lane's 4 activations), the start of the
// lane's integer sum, so the unsigned weights u = w + zero point give ggml's signed lanes. Indexed like
// the activations / 4.
void lane_starts(QuantKind kind, const QuantActs& x, std::vector<int32_t>& out) {
  const int zp = zero_point(kind);
  out.resize(static_cast<size_t>(x.M * x.K / 4));
  const auto n = static_cast<int64_t>(out.size());
#pragma omp parallel for schedule(static) if (n >= (int64_t{1} << 14))
  for (int64_t i = 0; i < n; ++i) {
    const int8_t* a = x.q.data() + 4 * i;
    out[i] = -zp * (a[0] + a[1] + a[2] + a[3]);
  }
}

// A 4-bit group's nibbles as lane bytes, [block][lane 8][64], the layout of Q8's runs.
PAGODA_TARGET_VNNI void unpack_group(const QuantMatrix& w, int64_t g, std::vector<uint8_t>& out) {
  const int64_t nb = w.blocks_per_row();
  out.resize(static_cast<size_t>(nb * 8 * kRunBytes));
  const uint8_t* src = w.u.data() + w.run_offset(g, 0, 0);
  const __m512i lo4 = _mm512_set1_epi8(0x0F);
  for (int64_t r = 0; r < nb * 4; ++r) {
    const __m512i raw = _mm512_loadu_si512(src + r * kRunBytes);
    uint8_t* dst = out.data() + ((r / 4) * 8 + r % 4) * kRunBytes;
    _mm512_storeu_si512(dst, _mm512_and_si512(raw, lo4));
    _mm512_storeu_si512(dst + 4 * kRunBytes, _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4));
  }
}

// AVX-512 VNNI: group g's 16 rows in one register, for MT activation rows from m0. wu is the group's
// weights: packed nibbles [block][run 4][64] (kNibbles) or lane bytes [block][lane 8][64].
template <QuantKind K, int MT, bool kNibbles>
PAGODA_TARGET_VNNI void tile_vnni(const QuantMatrix& w, const uint8_t* wu, const QuantActs& x, const int32_t* starts,
                                  int64_t g, int32_t m0, float* y) {
  constexpr int kRuns = kNibbles ? 4 : 8;
  const int64_t nb = w.blocks_per_row();
  const __m512i lo4 = _mm512_set1_epi8(0x0F);
  __m512 acc[MT][8], summs[MT];
  for (int i = 0; i < MT; ++i) {
    for (int k = 0; k < 8; ++k) acc[i][k] = _mm512_setzero_ps();
    summs[i] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t sb = (g * nb + b) * kGroup;
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.d.data() + sb)));
    __m512 dd[MT];
    for (int i = 0; i < MT; ++i) dd[i] = _mm512_mul_ps(dw, _mm512_set1_ps(x.d[(m0 + i) * nb + b]));
    if constexpr (K == QuantKind::Q4_1) {  // ggml's scalar summs += m * s, per row in the lanes
      const __m512 mw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.m.data() + sb)));
      for (int i = 0; i < MT; ++i) summs[i] = _mm512_fmadd_ps(mw, _mm512_set1_ps(x.s_q8_1[(m0 + i) * nb + b]), summs[i]);
    }
    for (int t = 0; t < kRuns; ++t) {
      __m512i wk[2];
      const __m512i raw = _mm512_loadu_si512(wu + (b * kRuns + t) * kRunBytes);
      if constexpr (kNibbles) {
        wk[0] = _mm512_and_si512(raw, lo4);
        wk[1] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4);
      } else {
        wk[0] = raw;
      }
      for (int h = 0; h < (kNibbles ? 2 : 1); ++h) {
        const int k = t + 4 * h;
        for (int i = 0; i < MT; ++i) {
          const int64_t a0 = (m0 + i) * x.K + b * kQBlock;
          const __m512i start = K == QuantKind::Q4_1 ? _mm512_setzero_si512() : _mm512_set1_epi32(starts[a0 / 4 + k]);
          const __m512i lanes = _mm512_dpbusd_epi32(start, wk[h], _mm512_set1_epi32(load4(x.q.data() + a0 + 4 * k)));
          acc[i][k] = _mm512_fmadd_ps(dd[i], _mm512_cvtepi32_ps(lanes), acc[i][k]);
        }
      }
    }
  }
  const int64_t row0 = g * kGroup;
  const auto mask = static_cast<__mmask16>((1u << std::min<int64_t>(kGroup, w.rows - row0)) - 1);
  for (int i = 0; i < MT; ++i) {
    const __m512 r0 = _mm512_add_ps(acc[i][4], acc[i][0]), r1 = _mm512_add_ps(acc[i][5], acc[i][1]);
    const __m512 r2 = _mm512_add_ps(acc[i][6], acc[i][2]), r3 = _mm512_add_ps(acc[i][7], acc[i][3]);
    __m512 sum = _mm512_add_ps(_mm512_add_ps(r0, r2), _mm512_add_ps(r1, r3));
    if constexpr (K == QuantKind::Q4_1) sum = _mm512_add_ps(sum, summs[i]);
    _mm512_mask_storeu_ps(y + static_cast<int64_t>(m0 + i) * w.rows + row0, mask, sum);
  }
}

template <QuantKind K, bool kNibbles>
void group_vnni(const QuantMatrix& w, const uint8_t* wu, const QuantActs& x, const int32_t* starts, int64_t g, float* y) {
  int32_t m0 = 0;
  for (; m0 + kTileRows <= x.M; m0 += kTileRows) tile_vnni<K, kTileRows, kNibbles>(w, wu, x, starts, g, m0, y);
  if (m0 < x.M) tile_vnni<K, 1, kNibbles>(w, wu, x, starts, g, m0, y);
}

// AVX2: eight rows (half a group) per register. maddubs + madd give each row's 4-byte dots; Q8's signed
// weights take ggml's |w| x sign(a, w) so maddubs cannot saturate. wk: lane k's weight bytes of the eight
// rows (unsigned); a: the activation row's bytes 4k..4k+3 in every lane; start: Q4_0's lane start.
template <QuantKind K>
PAGODA_TARGET_AVX2 inline __m256i lane_dots_avx2(__m256i wk, __m256i a, int32_t start) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (K == QuantKind::Q8) {
    const __m256i q = _mm256_xor_si256(wk, _mm256_set1_epi8(-128));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q)), ones);
  } else {
    const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wk, a), ones);
    return K == QuantKind::Q4_0 ? _mm256_add_epi32(dot, _mm256_set1_epi32(start)) : dot;
  }
}

// Q4_1's summs (ggml's scalar m * s per block, in block order) of the half's eight rows for activation row m.
template <QuantKind K>
PAGODA_TARGET_AVX2 inline __m256 summs_avx2(const QuantMatrix& w, const QuantActs& x, int64_t g, int half, int32_t m) {
  __m256 summs = _mm256_setzero_ps();
  if constexpr (K == QuantKind::Q4_1) {
    const int64_t nb = w.blocks_per_row();
    for (int64_t b = 0; b < nb; ++b) {
      const __m256 mw = _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.m.data() + (g * nb + b) * kGroup + 8 * half)));
      summs = _mm256_fmadd_ps(mw, _mm256_set1_ps(x.s_q8_1[m * nb + b]), summs);
    }
  }
  return summs;
}

// A row's result from its eight lanes: ggml's hsum_float_8 (Q4_1: + summs), stored for the half's rows.
template <QuantKind K>
PAGODA_TARGET_AVX2 inline void store_half_avx2(const QuantMatrix& w, const __m256 acc[8], __m256 summs, int64_t g,
                                               int half, int32_t m, float* y) {
  const __m256 r0 = _mm256_add_ps(acc[4], acc[0]), r1 = _mm256_add_ps(acc[5], acc[1]);
  const __m256 r2 = _mm256_add_ps(acc[6], acc[2]), r3 = _mm256_add_ps(acc[7], acc[3]);
  __m256 sum = _mm256_add_ps(_mm256_add_ps(r0, r2), _mm256_add_ps(r1, r3));
  if constexpr (K == QuantKind::Q4_1) sum = _mm256_add_ps(sum, summs);
  float out[8];
  _mm256_storeu_ps(out, sum);
  const int64_t row0 = g * kGroup + 8 * half;
  for (int r = 0; r < 8 && row0 + r < w.rows; ++r) y[m * w.rows + row0 + r] = out[r];
}

// One activation row m, in one pass: its eight lane accumulators take half the sixteen registers, the
// weights, activations and temporaries the rest.
template <QuantKind K>
PAGODA_TARGET_AVX2 void half_avx2(const QuantMatrix& w, const uint8_t* wu, const QuantActs& x, const int32_t* starts,
                                  int64_t g, int half, int32_t m, float* y) {
  constexpr bool kNibbles = K != QuantKind::Q8;
  constexpr int kRuns = kNibbles ? 4 : 8;
  const int64_t nb = w.blocks_per_row();
  const __m256i lo4 = _mm256_set1_epi8(0x0F);
  __m256 acc[8];
  for (int k = 0; k < 8; ++k) acc[k] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t sb = (g * nb + b) * kGroup + 8 * half, a0 = m * x.K + b * kQBlock;
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.d.data() + sb)));
    const __m256 dd = _mm256_mul_ps(dw, _mm256_set1_ps(x.d[m * nb + b]));
    for (int t = 0; t < kRuns; ++t) {
      __m256i wk[2];
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wu + (b * kRuns + t) * kRunBytes + 32 * half));
      if constexpr (kNibbles) {
        wk[0] = _mm256_and_si256(raw, lo4);
        wk[1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
      } else {
        wk[0] = raw;
      }
      for (int h = 0; h < (kNibbles ? 2 : 1); ++h) {
        const int k = t + 4 * h;
        const __m256i a = _mm256_set1_epi32(load4(x.q.data() + a0 + 4 * k));
        const __m256i dot = lane_dots_avx2<K>(wk[h], a, K == QuantKind::Q4_0 ? starts[a0 / 4 + k] : 0);
        acc[k] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(dot), acc[k]);
      }
    }
  }
  store_half_avx2<K>(w, acc, summs_avx2<K>(w, x, g, half, m), g, half, m, y);
}

// Lanes 4p..4p+3 of activation rows m and m + 1 (p = 0: 4-bit kinds' low nibbles, Q8's runs 0-3; p = 1:
// the high nibbles, runs 4-7), over every block: each accumulator still takes the blocks in ggml's order.
template <QuantKind K, int kPass>
PAGODA_TARGET_AVX2 inline void pair_pass_avx2(const QuantMatrix& w, const uint8_t* wu, const QuantActs& x,
                                              const int32_t* starts, int64_t g, int half, int32_t m, __m256 acc[2][8]) {
  constexpr bool kNibbles = K != QuantKind::Q8;
  constexpr int kRuns = kNibbles ? 4 : 8;
  const int64_t nb = w.blocks_per_row();
  const __m256i lo4 = _mm256_set1_epi8(0x0F);
  __m256 lanes[2][4];
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) lanes[i][j] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t sb = (g * nb + b) * kGroup + 8 * half;
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.d.data() + sb)));
    const __m256 dd[2] = {_mm256_mul_ps(dw, _mm256_set1_ps(x.d[m * nb + b])),
                          _mm256_mul_ps(dw, _mm256_set1_ps(x.d[(m + 1) * nb + b]))};
    for (int j = 0; j < 4; ++j) {
      const int k = 4 * kPass + j;
      const __m256i raw = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(wu + (b * kRuns + (kNibbles ? j : k)) * kRunBytes + 32 * half));
      __m256i wk = raw;
      if constexpr (kNibbles) wk = _mm256_and_si256(kPass == 0 ? raw : _mm256_srli_epi16(raw, 4), lo4);
      for (int i = 0; i < 2; ++i) {
        const int64_t a0 = (m + i) * x.K + b * kQBlock;
        const __m256i a = _mm256_set1_epi32(load4(x.q.data() + a0 + 4 * k));
        const __m256i dot = lane_dots_avx2<K>(wk, a, K == QuantKind::Q4_0 ? starts[a0 / 4 + k] : 0);
        lanes[i][j] = _mm256_fmadd_ps(dd[i], _mm256_cvtepi32_ps(dot), lanes[i][j]);
      }
    }
  }
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) acc[i][4 * kPass + j] = lanes[i][j];
  }
}

// Two activation rows m, m + 1: two rows' sixteen accumulators would leave no register for anything
// else, so the blocks are walked twice, four lanes at a time. Each weight byte is unpacked once for
// both rows: about one vector ALU op in eight fewer in the block loop than two single-row passes.
template <QuantKind K>
PAGODA_TARGET_AVX2 void half_pair_avx2(const QuantMatrix& w, const uint8_t* wu, const QuantActs& x,
                                       const int32_t* starts, int64_t g, int half, int32_t m, float* y) {
  __m256 acc[2][8];
  pair_pass_avx2<K, 0>(w, wu, x, starts, g, half, m, acc);
  pair_pass_avx2<K, 1>(w, wu, x, starts, g, half, m, acc);
  for (int i = 0; i < 2; ++i) store_half_avx2<K>(w, acc[i], summs_avx2<K>(w, x, g, half, m + i), g, half, m + i, y);
}

template <QuantKind K>
void group_avx2(const QuantMatrix& w, const QuantActs& x, const int32_t* starts, int64_t g, float* y) {
  const uint8_t* wu = w.u.data() + w.run_offset(g, 0, 0);
  const int halves = g * kGroup + 8 < w.rows ? 2 : 1;  // a last group of 8 rows or fewer: no second half
  for (int half = 0; half < halves; ++half) {
    int32_t m = 0;
    for (; m + 2 <= x.M; m += 2) half_pair_avx2<K>(w, wu, x, starts, g, half, m, y);
    if (m < x.M) half_avx2<K>(w, wu, x, starts, g, half, m, y);
  }
}

GemvIsa pick_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512_vnni) return GemvIsa::Vnni;
  if (f.avx2 && f.fma) return GemvIsa::Avx2;
  return GemvIsa::Scalar;
}

template <QuantKind K>
void run_kind(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y) {
  // Reused across calls, and shared with the parallel region below (the caller's, not each worker's).
  static thread_local std::vector<int32_t> caller_starts;
  std::vector<int32_t>& starts = caller_starts;
  // Q4_1 is unsigned and needs none; AVX2's Q8 takes ggml's sign trick instead.
  if (K == QuantKind::Q4_0 ? isa != GemvIsa::Scalar : K == QuantKind::Q8 && isa == GemvIsa::Vnni) lane_starts(K, x, starts);
  const bool unpack = K != QuantKind::Q8 && isa == GemvIsa::Vnni && x.M >= kUnpackMinRows;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < w.groups(); ++g) {
    if (isa == GemvIsa::Scalar) {
      group_scalar<K>(w, x, g, y);
    } else if (isa == GemvIsa::Avx2) {
      group_avx2<K>(w, x, starts.data(), g, y);
    } else if (unpack) {
      static thread_local std::vector<uint8_t> lanes;  // this worker's: 512 bytes per block
      unpack_group(w, g, lanes);
      group_vnni<K, false>(w, lanes.data(), x, starts.data(), g, y);
    } else {
      group_vnni<K, K != QuantKind::Q8>(w, w.u.data() + w.run_offset(g, 0, 0), x, starts.data(), g, y);
    }
  }
  // A long prefill step's starts (tens of MiB at 2,048 rows) are not kept for the decode steps after it.
  if (starts.capacity() * sizeof(int32_t) > kKeepBytes) std::vector<int32_t>().swap(starts);
}

}  // namespace

std::string quant_gemv_kernel_name() {
  switch (pick_isa()) {
    case GemvIsa::Vnni: return "avx512_vnni";
    case GemvIsa::Avx2: return "avx2";
    default: return "scalar";
  }
}

void quant_gemv(const QuantMatrix& w, const QuantActs& x, float* y) {
  static const GemvIsa isa = pick_isa();
  quant_gemv_with(isa, w, x, y);
}

void quant_gemv_with(GemvIsa isa, const QuantMatrix& w, const QuantActs& x, float* y) {
  switch (w.kind) {
    case QuantKind::Q4_1: run_kind<QuantKind::Q4_1>(isa, w, x, y); break;
    case QuantKind::Q4_0: run_kind<QuantKind::Q4_0>(isa, w, x, y); break;
    case QuantKind::Q4_0x8: repacked_q4_0_gemv(isa, w, x, y); break;
    case QuantKind::Q8: run_kind<QuantKind::Q8>(isa, w, x, y); break;
  }
}

}  // namespace pagoda::engine::cpu
