// GgufWriter: every value type and tensor round-trips through the reader (GgufFile), the data section
// honours general.alignment, streaming writes match in-memory ones, and errors name what is wrong.
#include "engine/gguf/gguf_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace pagoda::engine {
namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

template <class T>
std::vector<T> raw_array(const GgufValue& v) {
  std::vector<T> out(v.count);
  if (v.count) std::memcpy(out.data(), v.raw, v.count * sizeof(T));
  return out;
}

// A writer with every scalar type, every array element type and four tensors of different types.
GgufWriter full_writer() {
  GgufWriter w;
  w.set_u8("t.u8", 200);
  w.set_i8("t.i8", -100);
  w.set_u16("t.u16", 60000);
  w.set_i16("t.i16", -30000);
  w.set_u32("t.u32", 4000000000u);
  w.set_i32("t.i32", -2000000000);
  w.set_u64("t.u64", std::numeric_limits<uint64_t>::max());
  w.set_i64("t.i64", std::numeric_limits<int64_t>::min());
  w.set_f32("t.f32", 3.25f);
  w.set_f64("t.f64", -1.0 / 3.0);
  w.set_bool("t.bool_true", true);
  w.set_bool("t.bool_false", false);
  w.set_string("t.string", "hello \xE4\xB8\x96\xE7\x95\x8C");
  w.set_string("t.empty_string", "");
  const std::vector<uint8_t> u8{1, 2, 255};
  const std::vector<int8_t> i8{-128, 0, 127};
  const std::vector<uint16_t> u16{0, 65535};
  const std::vector<int16_t> i16{-32768, 32767, 5};
  const std::vector<uint32_t> u32{7, 4294967295u};
  const std::vector<int32_t> i32{-1, 2, -3, 4};
  const std::vector<uint64_t> u64{1ull << 63, 3};
  const std::vector<int64_t> i64{-(1ll << 62), 9};
  const std::vector<float> f32{0.5f, -2.0f, 1e30f};
  const std::vector<double> f64{1e-300, 2.5};
  w.set_u8_array("a.u8", u8);
  w.set_i8_array("a.i8", i8);
  w.set_u16_array("a.u16", u16);
  w.set_i16_array("a.i16", i16);
  w.set_u32_array("a.u32", u32);
  w.set_i32_array("a.i32", i32);
  w.set_u64_array("a.u64", u64);
  w.set_i64_array("a.i64", i64);
  w.set_f32_array("a.f32", f32);
  w.set_f64_array("a.f64", f64);
  w.set_bool_array("a.bool", {true, false, true});
  w.set_string_array("a.string", std::vector<std::string>{"a", "", "\xC4\xA0the"});
  w.set_f32_array("a.empty", std::vector<float>{});
  EXPECT_TRUE(w.add_tensor("f32", GgmlType::F32, {3}, pattern(12, 1)).ok());
  EXPECT_TRUE(w.add_tensor("f16", GgmlType::F16, {5, 3}, pattern(30, 2)).ok());
  EXPECT_TRUE(w.add_tensor("q8", GgmlType::Q8_0, {64, 2, 1}, pattern(4 * 34, 3)).ok());
  EXPECT_TRUE(w.add_tensor("q4_1", GgmlType::Q4_1, {32, 1, 2, 1}, pattern(2 * 20, 4)).ok());
  return w;
}

void expect_full(const GgufFile& f) {
  EXPECT_EQ(f.version(), 3u);
  auto scalar = [&](const char* key, GgufValueType t) -> const GgufValue& {
    const GgufValue* v = f.find(key);
    EXPECT_NE(v, nullptr) << key;
    static const GgufValue none;
    if (!v) return none;
    EXPECT_EQ(v->type, t) << key;
    return *v;
  };
  EXPECT_EQ(scalar("t.u8", GgufValueType::UINT8).u, 200u);
  EXPECT_EQ(scalar("t.i8", GgufValueType::INT8).i, -100);
  EXPECT_EQ(scalar("t.u16", GgufValueType::UINT16).u, 60000u);
  EXPECT_EQ(scalar("t.i16", GgufValueType::INT16).i, -30000);
  EXPECT_EQ(scalar("t.u32", GgufValueType::UINT32).u, 4000000000u);
  EXPECT_EQ(scalar("t.i32", GgufValueType::INT32).i, -2000000000);
  EXPECT_EQ(scalar("t.u64", GgufValueType::UINT64).u, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(scalar("t.i64", GgufValueType::INT64).i, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(scalar("t.f32", GgufValueType::FLOAT32).f, 3.25);
  EXPECT_EQ(scalar("t.f64", GgufValueType::FLOAT64).f, -1.0 / 3.0);
  EXPECT_EQ(scalar("t.bool_true", GgufValueType::BOOL).u, 1u);
  EXPECT_EQ(scalar("t.bool_false", GgufValueType::BOOL).u, 0u);
  EXPECT_EQ(scalar("t.string", GgufValueType::STRING).str, "hello \xE4\xB8\x96\xE7\x95\x8C");
  EXPECT_EQ(scalar("t.empty_string", GgufValueType::STRING).str, "");

  auto array = [&](const char* key, GgufValueType elem) -> const GgufValue& {
    const GgufValue& v = scalar(key, GgufValueType::ARRAY);
    EXPECT_EQ(v.elem_type, elem) << key;
    return v;
  };
  EXPECT_EQ(raw_array<uint8_t>(array("a.u8", GgufValueType::UINT8)), (std::vector<uint8_t>{1, 2, 255}));
  EXPECT_EQ(raw_array<int8_t>(array("a.i8", GgufValueType::INT8)), (std::vector<int8_t>{-128, 0, 127}));
  EXPECT_EQ(raw_array<uint16_t>(array("a.u16", GgufValueType::UINT16)), (std::vector<uint16_t>{0, 65535}));
  EXPECT_EQ(raw_array<int16_t>(array("a.i16", GgufValueType::INT16)), (std::vector<int16_t>{-32768, 32767, 5}));
  EXPECT_EQ(raw_array<uint32_t>(array("a.u32", GgufValueType::UINT32)), (std::vector<uint32_t>{7, 4294967295u}));
  EXPECT_EQ(raw_array<int32_t>(array("a.i32", GgufValueType::INT32)), (std::vector<int32_t>{-1, 2, -3, 4}));
  EXPECT_EQ(raw_array<uint64_t>(array("a.u64", GgufValueType::UINT64)), (std::vector<uint64_t>{1ull << 63, 3}));
  EXPECT_EQ(raw_array<int64_t>(array("a.i64", GgufValueType::INT64)), (std::vector<int64_t>{-(1ll << 62), 9}));
  EXPECT_EQ(raw_array<float>(array("a.f32", GgufValueType::FLOAT32)), (std::vector<float>{0.5f, -2.0f, 1e30f}));
  EXPECT_EQ(raw_array<double>(array("a.f64", GgufValueType::FLOAT64)), (std::vector<double>{1e-300, 2.5}));
  EXPECT_EQ(raw_array<uint8_t>(array("a.bool", GgufValueType::BOOL)), (std::vector<uint8_t>{1, 0, 1}));
  const GgufValue& strings = array("a.string", GgufValueType::STRING);
  EXPECT_EQ(strings.strings, (std::vector<std::string_view>{"a", "", "\xC4\xA0the"}));
  EXPECT_EQ(array("a.empty", GgufValueType::FLOAT32).count, 0u);
  // The typed getters agree.
  EXPECT_EQ(*f.get_int_array("a.i32").value(), (std::vector<int64_t>{-1, 2, -3, 4}));
  EXPECT_EQ(*f.get_float_array("a.f32").value(), (std::vector<float>{0.5f, -2.0f, 1e30f}));
  EXPECT_EQ(*f.get_string("t.string").value(), "hello \xE4\xB8\x96\xE7\x95\x8C");
  EXPECT_EQ(*f.get_bool("t.bool_true").value(), true);

  struct Want {
    const char* name;
    GgmlType type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> bytes;
  };
  const Want want[] = {{"f32", GgmlType::F32, {3}, pattern(12, 1)},
                       {"f16", GgmlType::F16, {5, 3}, pattern(30, 2)},
                       {"q8", GgmlType::Q8_0, {64, 2, 1}, pattern(4 * 34, 3)},
                       {"q4_1", GgmlType::Q4_1, {32, 1, 2, 1}, pattern(2 * 20, 4)}};
  ASSERT_EQ(f.tensors().size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const GgufTensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, want[i].name);
    EXPECT_EQ(t.type, want[i].type) << t.name;
    EXPECT_EQ(t.dims, want[i].dims) << t.name;
    ASSERT_EQ(t.nbytes, want[i].bytes.size()) << t.name;
    EXPECT_EQ(std::vector<uint8_t>(t.data, t.data + t.nbytes), want[i].bytes) << t.name;
    EXPECT_EQ(t.offset % f.alignment(), 0u) << t.name;
  }
}

TEST(GgufWriter, EveryValueTypeAndTensorRoundTrips) {
  const GgufWriter w = full_writer();
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok()) << bytes.message();
  auto f = GgufFile::parse(bytes.value(), "mem");
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f.value()->alignment(), 32u);
  expect_full(*f.value());
  EXPECT_EQ(f.value()->metadata().size(), 27u);
  // The data section starts aligned too.
  const uint8_t* base = bytes.value().data();
  for (const GgufTensorInfo& t : f.value()->tensors()) EXPECT_EQ((t.data - base) % 32, 0) << t.name;
}

TEST(GgufWriter, HonoursCustomAlignment) {
  for (uint32_t a : {1u, 8u, 64u, 4096u}) {
    GgufWriter w = full_writer();
    w.set_alignment(a);
    auto bytes = w.to_bytes();
    ASSERT_TRUE(bytes.ok()) << bytes.message();
    auto f = GgufFile::parse(bytes.value(), "mem");
    ASSERT_TRUE(f.ok()) << f.message();
    EXPECT_EQ(f.value()->alignment(), a);
    expect_full(*f.value());
    for (const GgufTensorInfo& t : f.value()->tensors()) EXPECT_EQ((t.data - bytes.value().data()) % a, 0) << t.name;
  }
  GgufWriter bad = full_writer();
  bad.set_u32("general.alignment", 48);
  auto r = bad.to_bytes();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("power of two"), std::string::npos) << r.message();
}

TEST(GgufWriter, SettingAKeyTwiceReplacesItAndRemoveWorks) {
  GgufWriter w;
  w.set_u32("k", 1);
  w.set_string("other", "x");
  w.set_string("k", "now a string");
  EXPECT_TRUE(w.remove_key("other"));
  EXPECT_FALSE(w.remove_key("other"));
  ASSERT_TRUE(w.add_tensor("t", GgmlType::F32, {1}, pattern(4, 0)).ok());
  ASSERT_TRUE(w.add_tensor("u", GgmlType::F32, {2}, pattern(8, 0)).ok());
  EXPECT_TRUE(w.remove_tensor("t"));
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok());
  auto f = GgufFile::parse(bytes.value(), "mem");
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f.value()->metadata().size(), 1u);
  EXPECT_EQ(*f.value()->get_string("k").value(), "now a string");
  ASSERT_EQ(f.value()->tensors().size(), 1u);
  EXPECT_EQ(f.value()->tensors()[0].name, "u");
}

TEST(GgufWriter, TensorErrorsNameTheTensor) {
  GgufWriter w;
  Status s = w.add_tensor("w", GgmlType::Q8_0, {64, 2}, pattern(10, 0));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'w'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("136"), std::string::npos) << s.message();  // the expected byte count
  s = w.add_tensor("odd", GgmlType::Q4_0, {48, 1}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("block size 32"), std::string::npos) << s.message();
  s = w.add_tensor("five", GgmlType::F32, {1, 1, 1, 1, 1}, pattern(4, 0));
  EXPECT_FALSE(s.ok());
  ASSERT_TRUE(w.add_tensor("a", GgmlType::F32, {1}, pattern(4, 0)).ok());
  s = w.add_tensor("a", GgmlType::F32, {1}, pattern(4, 0));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("already"), std::string::npos) << s.message();
  ASSERT_TRUE(w.declare_tensor("streamed", GgmlType::F32, {4}).ok());
  auto r = w.to_bytes();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("'streamed'"), std::string::npos) << r.message();
}

TEST(GgufWriter, WriteGoesThroughATempFileAndOpens) {
  const std::string path = ::testing::TempDir() + "/gguf_writer_test.gguf";
  const GgufWriter w = full_writer();
  ASSERT_TRUE(w.write(path).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  expect_full(*f.value());
  // Same bytes as in memory.
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto mem = w.to_bytes();
  ASSERT_TRUE(mem.ok());
  ASSERT_GE(disk.size(), mem.value().size());
  EXPECT_TRUE(std::equal(mem.value().begin(), mem.value().end(), disk.begin()));
  std::filesystem::remove(path);
}

TEST(GgufWriter, WriteToAnUnwritablePathNamesIt) {
  const std::string path = "/nonexistent-dir-for-pagoda/sub/model.gguf";
  Status s = full_writer().write(path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
}

TEST(GgufWriter, StreamingWriteMatchesInMemory) {
  const std::string path = ::testing::TempDir() + "/gguf_writer_stream.gguf";
  GgufWriter w;
  w.set_string("general.name", "stream");
  const std::vector<uint8_t> big = pattern(5 * 2 * 34, 9);  // Q8_0 {64, 5}: 5 rows of 2 blocks
  ASSERT_TRUE(w.declare_tensor("streamed", GgmlType::Q8_0, {64, 5}).ok());
  ASSERT_TRUE(w.add_tensor("given", GgmlType::F32, {3}, pattern(12, 1)).ok());
  ASSERT_TRUE(w.declare_tensor("streamed2", GgmlType::F16, {7}).ok());
  Status s = w.write_streaming(path, [&](size_t i, const GgufWriter::Append& append) -> Status {
    if (w.tensor_name(i) == "streamed") {
      // In pieces of 100 bytes.
      for (size_t off = 0; off < big.size(); off += 100) {
        const size_t end = std::min(big.size(), off + 100);
        if (Status e = append(std::span<const uint8_t>(big.data() + off, end - off)); !e.ok()) return e;
      }
      return {};
    }
    EXPECT_EQ(w.tensor_name(i), "streamed2");
    const std::vector<uint8_t> b = pattern(14, 5);
    return append(b);
  });
  ASSERT_TRUE(s.ok()) << s.message();
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  const GgufTensorInfo* t = f.value()->find_tensor("streamed");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::vector<uint8_t>(t->data, t->data + t->nbytes), big);
  const GgufTensorInfo* g = f.value()->find_tensor("given");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(std::vector<uint8_t>(g->data, g->data + g->nbytes), pattern(12, 1));
  const GgufTensorInfo* t2 = f.value()->find_tensor("streamed2");
  ASSERT_NE(t2, nullptr);
  EXPECT_EQ(std::vector<uint8_t>(t2->data, t2->data + t2->nbytes), pattern(14, 5));

  // A fill that appends too few bytes fails, names the tensor, and leaves no file behind.
  std::filesystem::remove(path);
  s = w.write_streaming(path, [&](size_t, const GgufWriter::Append& append) -> Status {
    const std::vector<uint8_t> b = pattern(2, 0);
    return append(b);
  });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'streamed'"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

}  // namespace
}  // namespace pagoda::engine
