// GGUF reader tests: a valid file built byte by byte in memory, every value read back; then the error
// paths (each message must name the file, the byte offset and what was expected), every truncation of a
// valid file, and (when PAGODA_MODEL is set) the real model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "engine/quant/dequant.h"
#include "tests/test_env.h"

namespace pagoda::engine {
namespace {

using VT = GgufValueType;

// Little-endian byte writer.
struct Bytes {
  std::vector<uint8_t> b;
  size_t size() const { return b.size(); }
  void u8(uint8_t v) { b.push_back(v); }
  void u16(uint16_t v) { raw(&v, 2); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void f32(float v) { raw(&v, 4); }
  void f64(double v) { raw(&v, 8); }
  void str(std::string_view s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  void raw(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  }
  void pad_to(uint64_t align) {
    while (b.size() % align != 0) b.push_back(0);
  }
  void patch_u32(size_t off, uint32_t v) { std::memcpy(&b[off], &v, 4); }
  void patch_u64(size_t off, uint64_t v) { std::memcpy(&b[off], &v, 8); }
};

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type = 0;
  std::optional<uint64_t> offset;      // default: packed after the previous tensor, aligned
  std::optional<uint64_t> data_bytes;  // default: from the type geometry
};

// Builds a GGUF file; records where things are so tests can check the offsets in error messages.
class GgufBuilder {
 public:
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count_override, kv_count_override;
  uint64_t alignment = 32;  // used for layout; write general.alignment yourself to change the file's

  // Adds a key with a value written by `write` (the value bytes only, after the type).
  void kv(std::string key, uint32_t type, std::function<void(Bytes&)> write) {
    kvs_.push_back({std::move(key), type, std::move(write)});
  }
  void kv_u32(std::string key, uint32_t v) { kv(std::move(key), 4, [v](Bytes& b) { b.u32(v); }); }
  void kv_str(std::string key, std::string v) { kv(std::move(key), 8, [v](Bytes& b) { b.str(v); }); }
  void tensor(TensorSpec t) { tensors_.push_back(std::move(t)); }

  std::vector<uint8_t> build() {
    Bytes b;
    b.raw("GGUF", 4);
    b.u32(version);
    b.u64(tensor_count_override.value_or(tensors_.size()));
    b.u64(kv_count_override.value_or(kvs_.size()));
    for (const auto& k : kvs_) {
      key_offset[k.key] = b.size();
      b.str(k.key);
      b.u32(k.type);
      value_offset[k.key] = b.size();
      k.write(b);
    }
    uint64_t next = 0;
    std::vector<uint64_t> offsets, sizes;
    for (const auto& t : tensors_) {
      tensor_info_offset[t.name] = b.size();
      b.str(t.name);
      b.u32(static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) b.u64(d);
      b.u32(t.type);
      uint64_t nbytes = 0;
      if (t.data_bytes) {
        nbytes = *t.data_bytes;
      } else if (const GgmlTypeInfo* info = ggml_type_info(t.type)) {
        uint64_t n = 1;
        for (uint64_t d : t.dims) n *= d;
        nbytes = n / info->block_size * info->type_size;
      }
      const uint64_t off = t.offset.value_or((next + alignment - 1) / alignment * alignment);
      tensor_offset_field[t.name] = b.size();
      b.u64(off);
      offsets.push_back(off);
      sizes.push_back(nbytes);
      next = off + nbytes;
    }
    if (!tensors_.empty()) {
      b.pad_to(alignment);
      data_start = b.size();
      // Data: byte k of the data section is (k * 7 + 1) & 0xFF, except tensor bytes written below.
      // The file ends exactly at the end of the last tensor's data (no trailing padding).
      uint64_t end = 0;
      for (size_t i = 0; i < offsets.size(); ++i) end = std::max(end, offsets[i] + sizes[i]);
      if (end < (uint64_t{1} << 24)) {
        for (uint64_t k = 0; k < end; ++k) b.u8(static_cast<uint8_t>(k * 7 + 1));
      }
      for (auto& [name, bytes] : tensor_data) {
        for (size_t i = 0; i < tensors_.size(); ++i) {
          if (tensors_[i].name == name) std::memcpy(&b.b[data_start + offsets[i]], bytes.data(), bytes.size());
        }
      }
    }
    return b.b;
  }

  std::map<std::string, std::vector<uint8_t>> tensor_data;
  std::map<std::string, size_t> key_offset, value_offset, tensor_info_offset, tensor_offset_field;
  size_t data_start = 0;

 private:
  struct Kv {
    std::string key;
    uint32_t type;
    std::function<void(Bytes&)> write;
  };
  std::vector<Kv> kvs_;
  std::vector<TensorSpec> tensors_;
};

const float kTensorA[8] = {0.0f, 1.0f, -2.5f, 3.25f, 4.0f, 5.5f, -6.0f, 7.75f};

// A valid small file: keys of every value type (and arrays), and two tensors.
GgufBuilder valid_builder(bool with_alignment_key = true) {
  GgufBuilder g;
  g.kv_str("general.architecture", "llama");
  g.kv("t.u8", 0, [](Bytes& b) { b.u8(200); });
  g.kv("t.i8", 1, [](Bytes& b) { b.u8(static_cast<uint8_t>(-100)); });
  g.kv("t.u16", 2, [](Bytes& b) { b.u16(60000); });
  g.kv("t.i16", 3, [](Bytes& b) { b.u16(static_cast<uint16_t>(-30000)); });
  g.kv_u32("t.u32", 4000000000u);
  g.kv("t.i32", 5, [](Bytes& b) { b.u32(static_cast<uint32_t>(-2000000000)); });
  g.kv("t.f32", 6, [](Bytes& b) { b.f32(1.5f); });
  g.kv("t.bool", 7, [](Bytes& b) { b.u8(1); });
  g.kv("t.bool0", 7, [](Bytes& b) { b.u8(0); });
  g.kv("t.u64", 10, [](Bytes& b) { b.u64(uint64_t{1} << 40); });
  g.kv("t.i64", 11, [](Bytes& b) { b.u64(static_cast<uint64_t>(-(int64_t{1} << 40))); });
  g.kv("t.f64", 12, [](Bytes& b) { b.f64(-2.25); });
  g.kv("t.u64max", 10, [](Bytes& b) { b.u64(std::numeric_limits<uint64_t>::max()); });
  g.kv_str("t.empty", "");
  g.kv("t.arr_str", 9, [](Bytes& b) {
    b.u32(8);
    b.u64(3);
    b.str("a");
    b.str("");
    b.str("hello");
  });
  g.kv("t.arr_i32", 9, [](Bytes& b) {
    b.u32(5);
    b.u64(3);
    for (int32_t v : {1, -2, 3}) b.u32(static_cast<uint32_t>(v));
  });
  g.kv("t.arr_f32", 9, [](Bytes& b) {
    b.u32(6);
    b.u64(3);
    for (float v : {0.5f, -1.0f, 2.0f}) b.f32(v);
  });
  g.kv("t.arr_f64", 9, [](Bytes& b) {
    b.u32(12);
    b.u64(2);
    b.f64(0.25);
    b.f64(-8.0);
  });
  g.kv("t.arr_u8", 9, [](Bytes& b) {
    b.u32(0);
    b.u64(3);
    for (uint8_t v : {1, 2, 255}) b.u8(v);
  });
  g.kv("t.arr_u64", 9, [](Bytes& b) {
    b.u32(10);
    b.u64(2);
    b.u64(7);
    b.u64(std::numeric_limits<uint64_t>::max());
  });
  g.kv("t.arr_bool", 9, [](Bytes& b) {
    b.u32(7);
    b.u64(2);
    b.u8(1);
    b.u8(0);
  });
  g.kv("t.arr_empty", 9, [](Bytes& b) {
    b.u32(5);
    b.u64(0);
  });
  if (with_alignment_key) {
    g.kv_u32("general.alignment", 64);
    g.alignment = 64;
  }
  g.tensor({"a", {4, 2}, 0, std::nullopt, std::nullopt});              // F32, 32 bytes
  g.tensor({"blk.0.b", {64, 2}, 8, std::nullopt, std::nullopt});       // Q8_0, 4 blocks = 136 bytes
  std::vector<uint8_t> a(32);
  std::memcpy(a.data(), kTensorA, 32);
  g.tensor_data["a"] = a;
  return g;
}

Result<std::unique_ptr<GgufFile>> parse(const std::vector<uint8_t>& bytes, const std::string& name = "test.gguf") {
  return GgufFile::parse(std::span<const uint8_t>(bytes.data(), bytes.size()), name);
}

// Parses, expects an error mentioning the file name, "offset N" and every fragment.
void expect_error(const std::vector<uint8_t>& bytes, uint64_t offset, std::vector<std::string> fragments) {
  auto r = parse(bytes, "bad.gguf");
  ASSERT_FALSE(r.ok()) << "expected an error";
  const std::string& m = r.message();
  EXPECT_EQ(m.rfind("bad.gguf: ", 0), 0u) << m;
  EXPECT_NE(m.find("offset " + std::to_string(offset) + ":"), std::string::npos) << m;
  for (const auto& f : fragments) EXPECT_NE(m.find(f), std::string::npos) << "missing '" << f << "' in: " << m;
}

// ---------------------------------------------------------------- the valid file

TEST(GgufParse, ValidFileEveryValue) {
  GgufBuilder g = valid_builder();
  const auto bytes = g.build();
  auto r = parse(bytes);
  ASSERT_TRUE(r.ok()) << r.message();
  const GgufFile& f = *r.value();
  EXPECT_EQ(f.path(), "test.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.metadata().size(), 24u);

  EXPECT_EQ(f.get_string("general.architecture").value(), std::optional<std::string>("llama"));
  EXPECT_EQ(f.get_string("t.empty").value(), std::optional<std::string>(""));
  EXPECT_EQ(f.get_int("t.u8").value(), 200);
  EXPECT_EQ(f.get_int("t.i8").value(), -100);
  EXPECT_EQ(f.get_int("t.u16").value(), 60000);
  EXPECT_EQ(f.get_int("t.i16").value(), -30000);
  EXPECT_EQ(f.get_int("t.u32").value(), 4000000000LL);
  EXPECT_EQ(f.get_int("t.i32").value(), -2000000000LL);
  EXPECT_EQ(f.get_int("t.u64").value(), int64_t{1} << 40);
  EXPECT_EQ(f.get_int("t.i64").value(), -(int64_t{1} << 40));
  EXPECT_EQ(f.get_float("t.f32").value(), 1.5);
  EXPECT_EQ(f.get_float("t.f64").value(), -2.25);
  EXPECT_EQ(f.get_float("t.i16").value(), -30000.0);  // ints convert to float
  EXPECT_EQ(f.get_bool("t.bool").value(), true);
  EXPECT_EQ(f.get_bool("t.bool0").value(), false);

  const GgufValue* v = f.find("t.u32");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->type, VT::UINT32);
  EXPECT_EQ(v->u, 4000000000u);
  EXPECT_EQ(v->i, 4000000000LL);
  EXPECT_EQ(v->offset, g.value_offset["t.u32"]);
  v = f.find("t.u64max");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->u, std::numeric_limits<uint64_t>::max());

  auto strs = f.get_string_array("t.arr_str");
  ASSERT_TRUE(strs.ok()) << strs.message();
  ASSERT_TRUE(strs.value().has_value());
  EXPECT_EQ(*strs.value(), (std::vector<std::string_view>{"a", "", "hello"}));
  EXPECT_EQ(f.get_int_array("t.arr_i32").value(), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_int_array("t.arr_u8").value(), (std::vector<int64_t>{1, 2, 255}));
  EXPECT_EQ(f.get_int_array("t.arr_empty").value(), (std::vector<int64_t>{}));
  EXPECT_EQ(f.get_float_array("t.arr_f32").value(), (std::vector<float>{0.5f, -1.0f, 2.0f}));
  EXPECT_EQ(f.get_float_array("t.arr_f64").value(), (std::vector<float>{0.25f, -8.0f}));
  EXPECT_EQ(f.get_float_array("t.arr_i32").value(), (std::vector<float>{1.0f, -2.0f, 3.0f}));
  const GgufValue* ab = f.find("t.arr_bool");
  ASSERT_NE(ab, nullptr);
  EXPECT_EQ(ab->type, VT::ARRAY);
  EXPECT_EQ(ab->elem_type, VT::BOOL);
  EXPECT_EQ(ab->count, 2u);
  EXPECT_EQ(ab->raw[0], 1);
  EXPECT_EQ(ab->raw[1], 0);

  // Absent keys are nullopt, not errors.
  auto missing = f.get_int("no.such.key");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing.value().has_value());
  EXPECT_FALSE(f.get_string_array("no.such.key").value().has_value());
  EXPECT_EQ(f.find("no.such.key"), nullptr);

  ASSERT_EQ(f.tensors().size(), 2u);
  const GgufTensorInfo* a = f.find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, GgmlType::F32);
  EXPECT_EQ(a->dims, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(a->num_elements(), 8);
  EXPECT_EQ(a->offset, 0u);
  EXPECT_EQ(a->nbytes, 32u);
  EXPECT_EQ(a->data, bytes.data() + g.data_start);
  EXPECT_EQ(g.data_start % 64, 0u);
  EXPECT_EQ(std::memcmp(a->data, kTensorA, 32), 0);
  const GgufTensorInfo* b = f.find_tensor("blk.0.b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, GgmlType::Q8_0);
  EXPECT_EQ(b->dims, (std::vector<int64_t>{64, 2}));
  EXPECT_EQ(b->offset, 64u);  // 32 bytes of "a", aligned up to 64
  EXPECT_EQ(b->nbytes, 136u);
  EXPECT_EQ(b->data + b->nbytes, bytes.data() + bytes.size());
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  EXPECT_EQ(&f.tensors()[1], b);
}

TEST(GgufParse, DefaultAlignmentAndVersion2) {
  GgufBuilder g = valid_builder(/*with_alignment_key=*/false);
  g.version = 2;
  const auto bytes = g.build();
  auto r = parse(bytes);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r.value()->version(), 2u);
  EXPECT_EQ(r.value()->alignment(), 32u);
  EXPECT_EQ(r.value()->find_tensor("blk.0.b")->offset, 32u);
  EXPECT_EQ(g.data_start % 32, 0u);
}

TEST(GgufParse, EmptyFileWithNoTensorsOrKeys) {
  GgufBuilder g;
  auto r = parse(g.build());
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_TRUE(r.value()->tensors().empty());
  EXPECT_TRUE(r.value()->metadata().empty());
}

TEST(GgufGetters, TypeMismatchesAreErrorsNamingFileOffsetAndKey) {
  GgufBuilder g = valid_builder();
  const auto bytes = g.build();
  auto r = parse(bytes, "m.gguf");
  ASSERT_TRUE(r.ok()) << r.message();
  const GgufFile& f = *r.value();
  auto check = [&](const std::string& msg, const std::string& key, const std::string& found) {
    EXPECT_EQ(msg.rfind("m.gguf: offset " + std::to_string(g.value_offset[key]) + ":", 0), 0u) << msg;
    EXPECT_NE(msg.find(key), std::string::npos) << msg;
    EXPECT_NE(msg.find(found), std::string::npos) << msg;
  };
  auto i = f.get_int("general.architecture");
  ASSERT_FALSE(i.ok());
  check(i.message(), "general.architecture", "STRING");
  i = f.get_int("t.u64max");
  ASSERT_FALSE(i.ok());
  check(i.message(), "t.u64max", "18446744073709551615");
  EXPECT_FALSE(f.get_int("t.f32").ok());
  EXPECT_FALSE(f.get_int("t.bool").ok());
  EXPECT_FALSE(f.get_int("t.arr_i32").ok());
  auto fl = f.get_float("t.arr_f32");
  ASSERT_FALSE(fl.ok());
  check(fl.message(), "t.arr_f32", "ARRAY of FLOAT32");
  EXPECT_FALSE(f.get_float("general.architecture").ok());
  EXPECT_FALSE(f.get_bool("t.u8").ok());
  auto s = f.get_string("t.u8");
  ASSERT_FALSE(s.ok());
  check(s.message(), "t.u8", "UINT8");
  auto sa = f.get_string_array("t.arr_i32");
  ASSERT_FALSE(sa.ok());
  check(sa.message(), "t.arr_i32", "ARRAY of INT32");
  EXPECT_FALSE(f.get_string_array("general.architecture").ok());
  EXPECT_FALSE(f.get_float_array("t.arr_str").ok());
  EXPECT_FALSE(f.get_float_array("t.arr_bool").ok());
  EXPECT_FALSE(f.get_float_array("t.f32").ok());
  auto ia = f.get_int_array("t.arr_f32");
  ASSERT_FALSE(ia.ok());
  check(ia.message(), "t.arr_f32", "ARRAY of FLOAT32");
  auto ov = f.get_int_array("t.arr_u64");
  ASSERT_FALSE(ov.ok());
  check(ov.message(), "t.arr_u64", "element 1");
}

TEST(GgufOpen, MapsAFileAndReportsMissingOnes) {
  GgufBuilder g = valid_builder();
  const auto bytes = g.build();
  const auto path = std::filesystem::temp_directory_path() / ("pagoda_gguf_test_" + std::to_string(::getpid()) + ".gguf");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  {
    auto r = GgufFile::open(path.string());
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r.value()->path(), path.string());
    const GgufTensorInfo* a = r.value()->find_tensor("a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(std::memcmp(a->data, kTensorA, 32), 0);
    EXPECT_EQ(r.value()->get_string("general.architecture").value(), std::optional<std::string>("llama"));
  }
  // A corrupt file on disk: the error names the path.
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write("GGUF\x01\0\0\0", 8);
  }
  auto bad = GgufFile::open(path.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find(path.string() + ": offset 4:"), std::string::npos) << bad.message();
  { std::ofstream out(path, std::ios::binary | std::ios::trunc); }
  auto empty = GgufFile::open(path.string());
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.message().find(path.string()), std::string::npos) << empty.message();
  std::filesystem::remove(path);
  auto missing = GgufFile::open(path.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find(path.string()), std::string::npos) << missing.message();
  auto dir = GgufFile::open(std::filesystem::temp_directory_path().string());
  EXPECT_FALSE(dir.ok());
}

// ---------------------------------------------------------------- error paths

TEST(GgufErrors, BadMagic) {
  auto bytes = valid_builder().build();
  bytes[0] = 'G';
  bytes[3] = 'G';
  expect_error(bytes, 0, {"expected magic \"GGUF\"", "found 47 47 55 47"});
  expect_error({'G', 'G'}, 0, {"2 bytes"});
  expect_error({}, 0, {"0 bytes"});
}

TEST(GgufErrors, UnsupportedVersions) {
  GgufBuilder g = valid_builder();
  g.version = 1;
  {
    const auto built = g.build();
    expect_error(built, 4, {"version 1", "expected version 2 or 3"});
  }
  g.version = 4;
  {
    const auto built = g.build();
    expect_error(built, 4, {"version 4", "expected 2 or 3"});
  }
  g.version = 0x03000000u;
  {
    const auto built = g.build();
    expect_error(built, 4, {"big-endian"});
  }
}

TEST(GgufErrors, EveryTruncationIsAnError) {
  GgufBuilder g = valid_builder();
  const auto full = g.build();
  ASSERT_TRUE(parse(full).ok());
  for (size_t len = 0; len < full.size(); ++len) {
    // A fresh allocation of exactly len bytes, so reading past it would be caught by sanitizers.
    std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    auto r = parse(prefix, "cut.gguf");
    ASSERT_FALSE(r.ok()) << "prefix of " << len << " bytes parsed";
    ASSERT_EQ(r.message().rfind("cut.gguf: offset ", 0), 0u) << r.message();
  }
}

TEST(GgufErrors, HugeCounts) {
  GgufBuilder g = valid_builder();
  g.tensor_count_override = std::numeric_limits<uint64_t>::max();
  auto bytes = g.build();
  expect_error(bytes, 8, {"tensor count 18446744073709551615 exceeds what " + std::to_string(bytes.size() - 24) +
                              " remaining bytes can hold"});
  g.tensor_count_override.reset();
  g.kv_count_override = uint64_t{1} << 40;
  {
    const auto built = g.build();
    expect_error(built, 16, {"key/value count 1099511627776 exceeds"});
  }
  g.kv_count_override = 1000;  // plausible but more than present: runs into the end of the file
  auto r = parse(g.build());
  EXPECT_FALSE(r.ok());
}

TEST(GgufErrors, StringLengthPastEof) {
  GgufBuilder g = valid_builder();
  auto bytes = g.build();
  Bytes b{bytes};
  b.patch_u64(24, uint64_t{1} << 50);  // length of the first key
  expect_error(b.b, 24, {"length 1125899906842624", "exceeds the " + std::to_string(bytes.size() - 32) + " bytes"});
  // A string value.
  b.b = bytes;
  b.patch_u64(g.value_offset["general.architecture"], 1000000);
  expect_error(b.b, g.value_offset["general.architecture"], {"general.architecture", "length 1000000"});
  // A string inside an array.
  b.b = bytes;
  b.patch_u64(g.value_offset["t.arr_str"] + 4 + 8, 999999);
  expect_error(b.b, g.value_offset["t.arr_str"] + 12, {"string 0 of metadata key 't.arr_str'", "999999"});
}

TEST(GgufErrors, BadArrays) {
  GgufBuilder g;
  g.kv("nested", 9, [](Bytes& b) {
    b.u32(9);
    b.u64(1);
  });
  const size_t at = 24 + 8 + 6 + 4;
  {
    const auto built = g.build();
    expect_error(built, at, {"arrays of arrays are not supported", "'nested'"});
  }
  GgufBuilder h;
  h.kv("big", 9, [](Bytes& b) {
    b.u32(5);
    b.u64(uint64_t{1} << 61);
  });
  {
    const auto built = h.build();
    expect_error(built, 24 + 8 + 3 + 4 + 4, {"array of 2305843009213693952 INT32", "'big'"});
  }
  GgufBuilder s;
  s.kv("strs", 9, [](Bytes& b) {
    b.u32(8);
    b.u64(uint64_t{1} << 40);
  });
  {
    const auto built = s.build();
    expect_error(built, 24 + 8 + 4 + 4 + 4, {"array of 1099511627776 strings"});
  }
  GgufBuilder u;
  u.kv("weird", 9, [](Bytes& b) {
    b.u32(77);
    b.u64(0);
  });
  {
    const auto built = u.build();
    expect_error(built, 24 + 8 + 5 + 4, {"unknown array element type 77"});
  }
}

TEST(GgufErrors, UnknownValueType) {
  GgufBuilder g = valid_builder();
  auto bytes = g.build();
  const size_t type_off = g.value_offset["t.u8"] - 4;
  Bytes b{bytes};
  b.patch_u32(type_off, 13);
  expect_error(b.b, type_off, {"'t.u8'", "unknown value type 13", "expected 0..12"});
}

TEST(GgufErrors, BoolMustBeZeroOrOne) {
  GgufBuilder g = valid_builder();
  auto bytes = g.build();
  bytes[g.value_offset["t.bool"]] = 2;
  expect_error(bytes, g.value_offset["t.bool"], {"BOOL value 2", "expected 0 or 1"});
}

TEST(GgufErrors, UnknownTensorType) {
  GgufBuilder g = valid_builder();
  g.tensor({"weird", {32}, 99, std::nullopt, 0});
  auto bytes = g.build();
  expect_error(bytes, g.tensor_offset_field["weird"] - 4, {"tensor 'weird'", "unknown ggml tensor type 99"});
}

TEST(GgufErrors, TooManyDims) {
  GgufBuilder g = valid_builder();
  g.tensor({"five", {1, 1, 1, 1, 1}, 0, std::nullopt, std::nullopt});
  const auto bytes = g.build();
  const size_t ndims_off = g.tensor_info_offset["five"] + 8 + 4;
  expect_error(bytes, ndims_off, {"tensor 'five'", "n_dims is 5", "expected 1 to 4"});
  GgufBuilder z = valid_builder();
  z.tensor({"zero", {}, 0, std::nullopt, 0});
  {
    const auto built = z.build();
    expect_error(built, z.tensor_info_offset["zero"] + 8 + 4, {"n_dims is 0"});
  }
}

TEST(GgufErrors, BadDims) {
  GgufBuilder g = valid_builder();
  g.tensor({"z", {4, 0}, 0, std::nullopt, 0});
  {
    const auto built = g.build();
    expect_error(built, g.tensor_info_offset["z"] + 8 + 1 + 4 + 8, {"dimension 1 is 0", "expected a positive"});
  }
  GgufBuilder q = valid_builder();
  q.tensor({"q", {33, 2}, 8, std::nullopt, 0});
  {
    const auto built = q.build();
    expect_error(built, q.tensor_info_offset["q"] + 8 + 1 + 4, {"dimension 0 is 33", "multiple of the q8_0 block size 32"});
  }
  GgufBuilder o = valid_builder();
  o.tensor({"o", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, std::nullopt, 0});
  {
    const auto built = o.build();
    expect_error(built, o.tensor_info_offset["o"] + 8 + 1 + 4 + 8, {"overflows int64"});
  }
  GgufBuilder n = valid_builder();
  n.tensor({"n", {std::numeric_limits<uint64_t>::max()}, 0, std::nullopt, 0});
  {
    const auto built = n.build();
    expect_error(built, n.tensor_info_offset["n"] + 8 + 1 + 4, {"dimension 0 is 18446744073709551615"});
  }
  GgufBuilder s = valid_builder();
  s.tensor({"s", {uint64_t{1} << 62}, 0, std::nullopt, 0});  // 2^62 f32 elements: 2^64 bytes
  {
    const auto built = s.build();
    expect_error(built, s.tensor_offset_field["s"] - 4, {"byte size", "overflows"});
  }
}

TEST(GgufErrors, TensorDataPastEof) {
  GgufBuilder g = valid_builder();
  const auto bytes = g.build();
  // Drop the last byte of the last tensor's data: detected at that tensor's offset field.
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 1);
  expect_error(cut, g.tensor_offset_field["blk.0.b"], {"tensor 'blk.0.b'", "136 bytes", "past the end of the file"});
  // An offset far beyond the file.
  Bytes b{bytes};
  b.patch_u64(g.tensor_offset_field["a"], uint64_t{1} << 62);
  expect_error(b.b, g.tensor_offset_field["a"], {"tensor 'a'", "past the end of the file"});
  b.b = bytes;
  b.patch_u64(g.tensor_offset_field["a"], std::numeric_limits<uint64_t>::max() - 63);  // aligned, huge
  expect_error(b.b, g.tensor_offset_field["a"], {"tensor 'a'", "past the end of the file"});
}

TEST(GgufErrors, MisalignedOffset) {
  GgufBuilder g = valid_builder();
  auto bytes = g.build();
  Bytes b{bytes};
  b.patch_u64(g.tensor_offset_field["blk.0.b"], 40);
  expect_error(b.b, g.tensor_offset_field["blk.0.b"],
               {"tensor 'blk.0.b'", "data offset 40 is not a multiple of the alignment 64"});
}

TEST(GgufErrors, OverlappingTensors) {
  GgufBuilder g = valid_builder();
  g.tensor({"c", {8}, 0, 0, 0});  // F32 at offset 0, on top of "a"
  auto bytes = g.build();
  auto r = parse(bytes, "bad.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("overlaps"), std::string::npos) << r.message();
}

TEST(GgufErrors, NonPowerOfTwoAlignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    GgufBuilder g;
    g.kv_u32("general.alignment", a);
    const auto bytes = g.build();
    expect_error(bytes, g.value_offset["general.alignment"],
                 {"general.alignment is " + std::to_string(a), "power of two"});
  }
  GgufBuilder s;
  s.kv_str("general.alignment", "32");
  {
    const auto built = s.build();
    expect_error(built, s.value_offset["general.alignment"], {"general.alignment", "STRING"});
  }
}

TEST(GgufErrors, DuplicateKey) {
  GgufBuilder g = valid_builder();
  g.kv_u32("t.u8", 5);
  auto bytes = g.build();
  // key_offset records the last write of "t.u8", i.e. the duplicate.
  expect_error(bytes, g.key_offset["t.u8"], {"duplicate metadata key 't.u8'"});
}

TEST(GgufErrors, DuplicateTensor) {
  GgufBuilder g = valid_builder();
  g.tensor({"a", {4}, 0, std::nullopt, std::nullopt});
  auto bytes = g.build();
  expect_error(bytes, g.tensor_info_offset["a"], {"duplicate tensor 'a'"});
}

TEST(GgufErrors, GarbageNeverCrashes) {
  // Random mutations of a valid file: parse must return (ok or error), never crash or hang.
  const auto full = valid_builder().build();
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int errors = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto bytes = full;
    const int flips = 1 + static_cast<int>(next() % 4);
    for (int k = 0; k < flips; ++k) bytes[next() % bytes.size()] = static_cast<uint8_t>(next());
    auto r = parse(bytes, "fuzz.gguf");
    if (!r.ok()) {
      ++errors;
      ASSERT_EQ(r.message().rfind("fuzz.gguf: offset ", 0), 0u) << r.message();
    }
  }
  EXPECT_GT(errors, 0);
}

// ---------------------------------------------------------------- the real model

TEST(GgufModel, SmolLM2) {
  PAGODA_REQUIRE_MODEL_OR_SKIP();
  auto r = GgufFile::open(test::model_path());
  ASSERT_TRUE(r.ok()) << r.message();
  const GgufFile& f = *r.value();
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture").value(), std::optional<std::string>("llama"));
  EXPECT_EQ(f.tensors().size(), 272u);
  EXPECT_EQ(f.get_int("llama.block_count").value(), 30);
  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, GgmlType::Q8_0);
  EXPECT_EQ(emb->dims, (std::vector<int64_t>{576, 49152}));
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.message();
  ASSERT_TRUE(tokens.value().has_value());
  EXPECT_EQ(tokens.value()->size(), 49152u);

  const GgufTensorInfo* q = f.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(q->type));
  ASSERT_NE(info, nullptr);
  std::vector<float> row(static_cast<size_t>(q->dims[0]));
  Status s = dequantize_row(q->type, q->data, row.data(), q->dims[0]);
  ASSERT_TRUE(s.ok()) << s.message();
  bool nonzero = false;
  for (float x : row) {
    ASSERT_TRUE(std::isfinite(x));
    nonzero |= x != 0.0f;
  }
  EXPECT_TRUE(nonzero);

  // Every tensor of the model dequantizes to finite values (row by row).
  int64_t total = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    const GgmlTypeInfo* ti = ggml_type_info(static_cast<uint32_t>(t.type));
    ASSERT_NE(ti, nullptr);
    ASSERT_TRUE(ti->can_dequantize) << t.name << " " << ti->name;
    const int64_t n = t.dims[0];
    const int64_t rows = t.num_elements() / n;
    const int64_t rb = ggml_row_bytes(*ti, n);
    ASSERT_EQ(static_cast<uint64_t>(rows * rb), t.nbytes) << t.name;
    std::vector<float> buf(static_cast<size_t>(n));
    for (int64_t i = 0; i < rows; ++i) {
      ASSERT_TRUE(dequantize_row(t.type, t.data + i * rb, buf.data(), n).ok());
      for (float x : buf) ASSERT_TRUE(std::isfinite(x)) << t.name << " row " << i;
    }
    total += t.num_elements();
  }
  EXPECT_GT(total, 130'000'000);
}

}  // namespace
}  // namespace pagoda::engine
