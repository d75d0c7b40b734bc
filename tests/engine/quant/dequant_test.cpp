// Dequantization tests: hand-built blocks whose expected values are computed here from the format's
// definition (scale, min, packed quants), never by calling the code under test; f16/bf16 edge values.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/quant/dequant.h"
#include "engine/quant/ggml_types.h"

namespace pagoda::engine {
namespace {

// f16 bit patterns of a few exact values.
constexpr uint16_t kHalfQuarter = 0x3400;  // 0.25
constexpr uint16_t kHalfHalf = 0x3800;     // 0.5
constexpr uint16_t kHalfOne = 0x3C00;      // 1.0
constexpr uint16_t kHalfTwo = 0x4000;      // 2.0
constexpr uint16_t kHalfMinusOne = 0xBC00; // -1.0

void put16(std::vector<uint8_t>& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v & 0xFF);
  b[off + 1] = static_cast<uint8_t>(v >> 8);
}

std::vector<float> run(GgmlType type, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), -12345.0f);
  Status s = dequantize_row(type, bytes.data(), out.data(), n);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

void expect_same(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
        << "element " << i << ": got " << got[i] << ", want " << want[i];
  }
}

// ---------------------------------------------------------------- type table

TEST(DequantTypes, GeometryMatchesGgml) {
  struct Row { GgmlType t; const char* name; int64_t bs, ts; bool deq; };
  const Row rows[] = {
      {GgmlType::F32, "f32", 1, 4, true},       {GgmlType::F16, "f16", 1, 2, true},
      {GgmlType::BF16, "bf16", 1, 2, true},     {GgmlType::Q4_0, "q4_0", 32, 18, true},
      {GgmlType::Q4_1, "q4_1", 32, 20, true},   {GgmlType::Q5_0, "q5_0", 32, 22, true},
      {GgmlType::Q5_1, "q5_1", 32, 24, true},   {GgmlType::Q8_0, "q8_0", 32, 34, true},
      {GgmlType::Q8_1, "q8_1", 32, 36, false},  {GgmlType::Q2_K, "q2_K", 256, 84, true},
      {GgmlType::Q3_K, "q3_K", 256, 110, true}, {GgmlType::Q4_K, "q4_K", 256, 144, true},
      {GgmlType::Q5_K, "q5_K", 256, 176, true}, {GgmlType::Q6_K, "q6_K", 256, 210, true},
      {GgmlType::Q8_K, "q8_K", 256, 292, true}, {GgmlType::I8, "i8", 1, 1, false},
      {GgmlType::I16, "i16", 1, 2, false},      {GgmlType::I32, "i32", 1, 4, false},
      {GgmlType::I64, "i64", 1, 8, false},      {GgmlType::F64, "f64", 1, 8, false},
  };
  for (const Row& r : rows) {
    const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(r.t));
    ASSERT_NE(info, nullptr) << r.name;
    EXPECT_STREQ(info->name, r.name);
    EXPECT_EQ(info->block_size, r.bs) << r.name;
    EXPECT_EQ(info->type_size, r.ts) << r.name;
    EXPECT_EQ(info->can_dequantize, r.deq) << r.name;
    EXPECT_STREQ(ggml_type_name(static_cast<uint32_t>(r.t)), r.name);
  }
  for (uint32_t unknown : {4u, 5u, 16u, 23u, 29u, 31u, 39u, 1000u, 0xFFFFFFFFu}) {
    EXPECT_EQ(ggml_type_info(unknown), nullptr) << unknown;
    EXPECT_STREQ(ggml_type_name(unknown), "?");
  }
  EXPECT_EQ(ggml_row_bytes(*ggml_type_info(static_cast<uint32_t>(GgmlType::Q4_K)), 512), 288);
}

// ---------------------------------------------------------------- f16 / bf16

// Independent f16 decoding from the IEEE definition.
float half_reference(uint16_t h) {
  const int sign = (h >> 15) & 1;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  double v;
  if (exp == 0) {
    v = std::ldexp(static_cast<double>(mant), -24);
  } else if (exp == 31) {
    v = mant == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else {
    v = std::ldexp(static_cast<double>(1024 + mant), exp - 25);
  }
  return static_cast<float>(sign ? -v : v);
}

TEST(DequantFp16, EdgeValues) {
  EXPECT_EQ(std::bit_cast<uint32_t>(fp16_to_fp32(0x0000)), 0u);
  EXPECT_EQ(std::bit_cast<uint32_t>(fp16_to_fp32(0x8000)), 0x80000000u);  // -0
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x3555), 0x1.554p-2f);
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);                 // largest finite
  EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));    // smallest normal
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));    // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03FF), std::ldexp(1023.0f, -24)); // largest subnormal
  EXPECT_EQ(fp16_to_fp32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(fp16_to_fp32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7C01)));  // signalling NaN stays NaN
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0xFE00)));
}

TEST(DequantFp16, AllValuesMatchDefinitionAndRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float want = half_reference(static_cast<uint16_t>(h));
    const float got = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << h;
      ASSERT_EQ(std::signbit(got), std::signbit(want)) << std::hex << h;
      ASSERT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(got)))) << std::hex << h;
      continue;
    }
    ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want)) << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(got), h) << std::hex << h;  // every f16 round-trips exactly
  }
}

TEST(DequantFp16, RoundsToNearestEven) {
  const float one = 1.0f;
  const float ulp = std::ldexp(1.0f, -10);  // f16 ulp at 1.0
  EXPECT_EQ(fp32_to_fp16(one + ulp / 2), 0x3C00);              // tie -> even (down)
  EXPECT_EQ(fp32_to_fp16(one + 3 * ulp / 2), 0x3C02);          // tie -> even (up)
  EXPECT_EQ(fp32_to_fp16(std::nextafter(one + ulp / 2, 2.0f)), 0x3C01);
  EXPECT_EQ(fp32_to_fp16(std::nextafter(one + ulp / 2, 0.0f)), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7BFF);                   // below the midpoint to 65536
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);                   // midpoint rounds to even = inf
  EXPECT_EQ(fp32_to_fp16(1e10f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-1e10f), 0xFC00);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);      // tie -> even (zero)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);      // 1.5 * 2^-24: tie -> even (2)
  EXPECT_EQ(fp32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-std::ldexp(1.0f, -30)), 0x8000);     // keeps the sign
  EXPECT_EQ(fp32_to_fp16(std::ldexp(2047.0f, -25)), 0x0400);   // rounds up from subnormal to normal
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  const uint16_t nan = fp32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
}

TEST(DequantBf16, Conversions) {
  EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0xC040), -3.0f);
  EXPECT_EQ(bf16_to_fp32(0x0001), std::bit_cast<float>(0x00010000u));  // subnormal
  EXPECT_EQ(bf16_to_fp32(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(bf16_to_fp32(0x7FC0)));
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie -> even (down)
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7F7FFFFFu)), 0x7F80);  // FLT_MAX rounds to inf
  EXPECT_EQ(fp32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  const uint16_t snan = fp32_to_bf16(std::bit_cast<float>(0x7F800001u));  // NaN with payload only low
  EXPECT_TRUE(std::isnan(bf16_to_fp32(snan)));
  EXPECT_EQ(snan, 0x7FC0);
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_bf16(f), h);
  }
}

TEST(DequantRow, F32F16Bf16) {
  std::vector<uint8_t> f32(12);
  const float vals[3] = {1.5f, -0.0f, 3e38f};
  std::memcpy(f32.data(), vals, 12);
  expect_same(run(GgmlType::F32, f32, 3), {1.5f, -0.0f, 3e38f});

  std::vector<uint8_t> f16(10);
  const uint16_t hs[5] = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x7C00};
  for (int i = 0; i < 5; ++i) put16(f16, 2 * i, hs[i]);
  expect_same(run(GgmlType::F16, f16, 5),
              {1.0f, -2.0f, std::ldexp(1.0f, -24), 65504.0f, std::numeric_limits<float>::infinity()});

  std::vector<uint8_t> bf(6);
  put16(bf, 0, 0x3F80);
  put16(bf, 2, 0xC040);
  put16(bf, 4, 0x4049);  // 3.140625
  expect_same(run(GgmlType::BF16, bf, 3), {1.0f, -3.0f, 3.140625f});
}

// ---------------------------------------------------------------- 32-element block formats

// Two blocks, so that the block stride is exercised too (the second block has other scales).
TEST(DequantQ4_0, HandBuiltBlocks) {
  std::vector<uint8_t> b(2 * 18);
  std::vector<float> want(64);
  const uint16_t ds[2] = {kHalfHalf, kHalfTwo};
  const float df[2] = {0.5f, 2.0f};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = blk * 18;
    put16(b, o, ds[blk]);
    for (int j = 0; j < 16; ++j) {
      const int lo = (j + blk) & 0xF, hi = (15 - j) & 0xF;
      b[o + 2 + j] = static_cast<uint8_t>(lo | (hi << 4));
      want[blk * 32 + j] = static_cast<float>(lo - 8) * df[blk];
      want[blk * 32 + j + 16] = static_cast<float>(hi - 8) * df[blk];
    }
  }
  expect_same(run(GgmlType::Q4_0, b, 64), want);
  EXPECT_EQ(want[0], -4.0f);   // lo 0 -> -8 * 0.5
  EXPECT_EQ(want[16], 3.5f);   // hi 15 -> 7 * 0.5
}

TEST(DequantQ4_1, HandBuiltBlocks) {
  std::vector<uint8_t> b(2 * 20);
  std::vector<float> want(64);
  const uint16_t ds[2] = {kHalfQuarter, kHalfOne};
  const uint16_t ms[2] = {kHalfMinusOne, kHalfHalf};
  const float df[2] = {0.25f, 1.0f}, mf[2] = {-1.0f, 0.5f};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = blk * 20;
    put16(b, o, ds[blk]);
    put16(b, o + 2, ms[blk]);
    for (int j = 0; j < 16; ++j) {
      const int lo = (3 * j) & 0xF, hi = (j * 5 + 1) & 0xF;
      b[o + 4 + j] = static_cast<uint8_t>(lo | (hi << 4));
      want[blk * 32 + j] = static_cast<float>(lo) * df[blk] + mf[blk];
      want[blk * 32 + j + 16] = static_cast<float>(hi) * df[blk] + mf[blk];
    }
  }
  expect_same(run(GgmlType::Q4_1, b, 64), want);
  EXPECT_EQ(want[0], -1.0f);
}

// q5: the 5th bit of element j (0..31) is bit j of the 32-bit qh.
TEST(DequantQ5_0, HandBuiltBlocks) {
  std::vector<uint8_t> b(2 * 22);
  std::vector<float> want(64);
  const uint32_t qhs[2] = {0xA5A5F00Fu, 0x0F0F00FFu};
  const uint16_t ds[2] = {kHalfTwo, kHalfQuarter};
  const float df[2] = {2.0f, 0.25f};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = blk * 22;
    put16(b, o, ds[blk]);
    std::memcpy(&b[o + 2], &qhs[blk], 4);
    for (int j = 0; j < 16; ++j) {
      const int lo = (j * 7) & 0xF, hi = (j + 9) & 0xF;
      b[o + 6 + j] = static_cast<uint8_t>(lo | (hi << 4));
      const int q0 = lo | static_cast<int>(((qhs[blk] >> j) & 1) << 4);
      const int q1 = hi | static_cast<int>(((qhs[blk] >> (j + 16)) & 1) << 4);
      want[blk * 32 + j] = static_cast<float>(q0 - 16) * df[blk];
      want[blk * 32 + j + 16] = static_cast<float>(q1 - 16) * df[blk];
    }
  }
  expect_same(run(GgmlType::Q5_0, b, 64), want);
  EXPECT_EQ(want[0], 2.0f * (16 - 16));  // lo 0, high bit 1 -> 16 - 16
}

TEST(DequantQ5_1, HandBuiltBlocks) {
  std::vector<uint8_t> b(2 * 24);
  std::vector<float> want(64);
  const uint32_t qhs[2] = {0x12345678u, 0xFFFF0000u};
  const uint16_t ds[2] = {kHalfHalf, kHalfTwo};
  const uint16_t ms[2] = {kHalfQuarter, kHalfMinusOne};
  const float df[2] = {0.5f, 2.0f}, mf[2] = {0.25f, -1.0f};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = blk * 24;
    put16(b, o, ds[blk]);
    put16(b, o + 2, ms[blk]);
    std::memcpy(&b[o + 4], &qhs[blk], 4);
    for (int j = 0; j < 16; ++j) {
      const int lo = 15 - j, hi = (j * 3) & 0xF;
      b[o + 8 + j] = static_cast<uint8_t>(lo | (hi << 4));
      const int q0 = lo | static_cast<int>(((qhs[blk] >> j) & 1) << 4);
      const int q1 = hi | static_cast<int>(((qhs[blk] >> (j + 16)) & 1) << 4);
      want[blk * 32 + j] = static_cast<float>(q0) * df[blk] + mf[blk];
      want[blk * 32 + j + 16] = static_cast<float>(q1) * df[blk] + mf[blk];
    }
  }
  expect_same(run(GgmlType::Q5_1, b, 64), want);
  EXPECT_EQ(want[63], 29 * 2.0f - 1.0f);  // block 1, j = 15: hi nibble (15*3)&15 = 13, bit 31 set -> 29
}

TEST(DequantQ8_0, HandBuiltBlocks) {
  std::vector<uint8_t> b(2 * 34);
  std::vector<float> want(64);
  const uint16_t ds[2] = {kHalfQuarter, kHalfMinusOne};
  const float df[2] = {0.25f, -1.0f};
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = blk * 34;
    put16(b, o, ds[blk]);
    for (int j = 0; j < 32; ++j) {
      const int q = j * 8 - 128 + blk;  // -128 .. 121
      b[o + 2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
      want[blk * 32 + j] = static_cast<float>(q) * df[blk];
    }
  }
  expect_same(run(GgmlType::Q8_0, b, 64), want);
  EXPECT_EQ(want[0], -32.0f);
}

// ---------------------------------------------------------------- K-quants (256-element super-blocks)

// q4_K / q5_K pack 8 (scale, min) pairs of 6 bits into 12 bytes:
//   bytes 0..3:  scale[0..3] low 6 bits, bits 6..7 = scale[4..7] >> 4
//   bytes 4..7:  min[0..3]   low 6 bits, bits 6..7 = min[4..7] >> 4
//   bytes 8..11: low nibble = scale[4..7] & 15, high nibble = min[4..7] & 15
std::vector<uint8_t> pack_k4_scales(const int sc[8], const int mn[8]) {
  std::vector<uint8_t> s(12);
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
  return s;
}

TEST(DequantQ4_K, ScalePackingAndValues) {
  const int sc[2][8] = {{1, 63, 17, 32, 5, 48, 60, 33}, {0, 2, 4, 8, 16, 31, 62, 63}};
  const int mn[2][8] = {{0, 62, 3, 40, 63, 9, 21, 7}, {63, 1, 0, 33, 47, 18, 16, 15}};
  const uint16_t ds[2] = {kHalfHalf, kHalfTwo}, dmins[2] = {kHalfQuarter, kHalfOne};
  const float df[2] = {0.5f, 2.0f}, dminf[2] = {0.25f, 1.0f};
  std::vector<uint8_t> b(2 * 144);
  std::vector<float> want(512);
  for (int blk = 0; blk < 2; ++blk) {
    const size_t o = blk * 144;
    put16(b, o, ds[blk]);
    put16(b, o + 2, dmins[blk]);
    const auto s = pack_k4_scales(sc[blk], mn[blk]);
    std::copy(s.begin(), s.end(), b.begin() + o + 4);
    // Element e is in sub-block e/32; sub-blocks 2k and 2k+1 share bytes 32k..32k+31 (low, high nibble).
    for (int e = 0; e < 256; ++e) {
      const int sub = e / 32, l = e % 32;
      const int q = (e * 7 + 3 + blk) & 0xF;
      uint8_t& byte = b[o + 16 + (sub / 2) * 32 + l];
      byte = static_cast<uint8_t>(sub % 2 == 0 ? ((byte & 0xF0) | q) : ((byte & 0x0F) | (q << 4)));
      want[blk * 256 + e] = df[blk] * static_cast<float>(sc[blk][sub]) * static_cast<float>(q) -
                            dminf[blk] * static_cast<float>(mn[blk][sub]);
    }
  }
  expect_same(run(GgmlType::Q4_K, b, 512), want);
}

TEST(DequantQ5_K, ScalePackingAndValues) {
  const int sc[8] = {63, 1, 2, 3, 44, 55, 16, 17};
  const int mn[8] = {5, 0, 63, 12, 19, 32, 48, 1};
  std::vector<uint8_t> b(176);
  std::vector<float> want(256);
  put16(b, 0, kHalfQuarter);
  put16(b, 2, kHalfHalf);
  const auto s = pack_k4_scales(sc, mn);
  std::copy(s.begin(), s.end(), b.begin() + 4);
  // Layout: d, dmin, scales[12], qh[32], qs[128]. The 5th bit of element e (sub-block sub, lane l) is
  // bit `sub` of qh[l].
  for (int e = 0; e < 256; ++e) {
    const int sub = e / 32, l = e % 32;
    const int lo = (e * 5 + 1) & 0xF;
    const int hi = ((e * 3) >> 2) & 1;
    uint8_t& byte = b[48 + (sub / 2) * 32 + l];
    byte = static_cast<uint8_t>(sub % 2 == 0 ? ((byte & 0xF0) | lo) : ((byte & 0x0F) | (lo << 4)));
    if (hi) b[16 + l] = static_cast<uint8_t>(b[16 + l] | (1 << sub));
    const int q = lo + 16 * hi;
    want[e] = 0.25f * static_cast<float>(sc[sub]) * static_cast<float>(q) - 0.5f * static_cast<float>(mn[sub]);
  }
  expect_same(run(GgmlType::Q5_K, b, 256), want);
}

TEST(DequantQ6_K, HandBuiltBlock) {
  // Layout: ql[128] | qh[64] | scales[16] int8 | d. For element e: half n = e/128, quarter k = (e%128)/32,
  // lane l = e%32. Low 4 bits: ql[64n + l + 32(k&1)], low nibble for k < 2 else high nibble. High 2 bits:
  // qh[32n + l] >> 2k. Scale: scales[8n + l/16 + 2k]. Value = d * scale * (q - 32).
  const int8_t scales[16] = {1, -1, 127, -128, 3, -7, 20, 0, 64, -64, 5, 9, -33, 100, 2, -2};
  std::vector<uint8_t> b(210);
  std::vector<float> want(256);
  std::memcpy(&b[192], scales, 16);
  put16(b, 208, kHalfHalf);
  for (int e = 0; e < 256; ++e) {
    const int n = e / 128, k = (e % 128) / 32, l = e % 32;
    const int q = (e * 13 + 5) % 64;
    uint8_t& lo = b[64 * n + l + 32 * (k & 1)];
    lo = static_cast<uint8_t>(k < 2 ? ((lo & 0xF0) | (q & 0xF)) : ((lo & 0x0F) | ((q & 0xF) << 4)));
    b[128 + 32 * n + l] = static_cast<uint8_t>(b[128 + 32 * n + l] | ((q >> 4) << (2 * k)));
    want[e] = 0.5f * static_cast<float>(scales[8 * n + l / 16 + 2 * k]) * static_cast<float>(q - 32);
  }
  expect_same(run(GgmlType::Q6_K, b, 256), want);
}

TEST(DequantQ2_K, HandBuiltBlock) {
  // Layout: scales[16] (low nibble scale, high nibble min) | qs[64] | d | dmin. Element e: half n = e/128,
  // shift group j = (e%128)/32, sixteenth h = (e%32)/16, lane l = e%16: 2 bits at qs[32n + 16h + l] >> 2j,
  // scale byte 8n + 2j + h. Value = d * sc * q - dmin * m.
  std::vector<uint8_t> b(84);
  std::vector<float> want(256);
  for (int i = 0; i < 16; ++i) b[i] = static_cast<uint8_t>(((i * 5) & 0xF) | (((15 - i) & 0xF) << 4));
  put16(b, 80, kHalfTwo);
  put16(b, 82, kHalfQuarter);
  for (int e = 0; e < 256; ++e) {
    const int n = e / 128, j = (e % 128) / 32, h = (e % 32) / 16, l = e % 16;
    const int q = (e * 3 + 1) & 3;
    b[16 + 32 * n + 16 * h + l] = static_cast<uint8_t>(b[16 + 32 * n + 16 * h + l] | (q << (2 * j)));
    const uint8_t s = b[8 * n + 2 * j + h];
    want[e] = 2.0f * static_cast<float>(s & 0xF) * static_cast<float>(q) - 0.25f * static_cast<float>(s >> 4);
  }
  expect_same(run(GgmlType::Q2_K, b, 256), want);
}

TEST(DequantQ3_K, HandBuiltBlock) {
  // Layout: hmask[32] | qs[64] | scales[12] | d. Element e as in q2_K (n, j, h, l); the 3rd bit is bit
  // (4n + j) of hmask[16h + l], and a clear bit subtracts 4. 16 scales of 6 bits, biased by 32: scale i
  // has its low nibble in byte i (i < 8) or the high nibble of byte i-8, and its top 2 bits in byte
  // 8 + i%4 at bit 2*(i/4).
  int scales6[16];
  for (int i = 0; i < 16; ++i) scales6[i] = (i * 11 + 7) % 64;
  scales6[0] = 0;   // -> -32
  scales6[1] = 63;  // -> 31
  std::vector<uint8_t> b(110);
  for (int i = 0; i < 16; ++i) {
    const int low = scales6[i] & 0xF, top = scales6[i] >> 4;
    if (i < 8) b[96 + i] = static_cast<uint8_t>(b[96 + i] | low);
    else b[96 + i - 8] = static_cast<uint8_t>(b[96 + i - 8] | (low << 4));
    b[96 + 8 + i % 4] = static_cast<uint8_t>(b[96 + 8 + i % 4] | (top << (2 * (i / 4))));
  }
  put16(b, 108, kHalfHalf);
  std::vector<float> want(256);
  for (int e = 0; e < 256; ++e) {
    const int n = e / 128, j = (e % 128) / 32, h = (e % 32) / 16, l = e % 16;
    const int q = (e * 5 + 2) & 3;
    const int hbit = ((e * 7) >> 3) & 1;
    b[32 + 32 * n + 16 * h + l] = static_cast<uint8_t>(b[32 + 32 * n + 16 * h + l] | (q << (2 * j)));
    if (hbit) b[16 * h + l] = static_cast<uint8_t>(b[16 * h + l] | (1 << (4 * n + j)));
    const int v = q - (hbit ? 0 : 4);
    want[e] = 0.5f * static_cast<float>(scales6[8 * n + 2 * j + h] - 32) * static_cast<float>(v);
  }
  expect_same(run(GgmlType::Q3_K, b, 256), want);
}

TEST(DequantQ8_K, HandBuiltBlock) {
  std::vector<uint8_t> b(292);
  const float d = -0.125f;
  std::memcpy(b.data(), &d, 4);
  std::vector<float> want(256);
  for (int j = 0; j < 256; ++j) {
    const int q = j - 128;
    b[4 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
    want[j] = d * static_cast<float>(q);
  }
  expect_same(run(GgmlType::Q8_K, b, 256), want);
}

// ---------------------------------------------------------------- errors

TEST(DequantRow, Errors) {
  std::vector<uint8_t> b(1024);
  std::vector<float> out(1024);
  Status s = dequantize_row(GgmlType::Q8_1, b.data(), out.data(), 32);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("q8_1"), std::string::npos) << s.message();
  s = dequantize_row(GgmlType::I32, b.data(), out.data(), 4);
  EXPECT_FALSE(s.ok());
  s = dequantize_row(static_cast<GgmlType>(4), b.data(), out.data(), 32);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("4"), std::string::npos) << s.message();
  s = dequantize_row(GgmlType::Q4_K, b.data(), out.data(), 100);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("256"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("100"), std::string::npos) << s.message();
  s = dequantize_row(GgmlType::Q4_0, b.data(), out.data(), -32);
  EXPECT_FALSE(s.ok());
  s = dequantize_row(GgmlType::Q4_0, nullptr, out.data(), 32);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(dequantize_row(GgmlType::Q4_0, nullptr, nullptr, 0).ok());
}

}  // namespace
}  // namespace pagoda::engine
