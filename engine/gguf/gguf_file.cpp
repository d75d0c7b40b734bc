// Strict GGUF v2/v3 reader. Layout (all little-endian):
//   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x  { string key | u32 value_type | value }
//   tensor_count x { string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset }
//   padding to general.alignment (default 32) | tensor data
// where a string is u64 length + bytes and an array value is u32 element type + u64 count + elements.
// Every read is bounds-checked against the bytes that remain, before anything is allocated, so a
// hostile file cannot make us read out of bounds or allocate more than it could describe.
#include "engine/gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <new>

namespace pagoda::engine {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;
// The smallest possible encodings, used to bound counts by the bytes that remain.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;               // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, 1 dim, type, offset

struct ParseError {
  std::string message;
};

std::string str(uint64_t v) { return std::to_string(v); }

std::string quoted(std::string_view s) {
  // Keys and names come from the file: show them printable and bounded.
  std::string out = "'";
  size_t n = 0;
  for (char c : s) {
    if (++n > 80) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  return out + "'";
}

bool is_valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::FLOAT64); }

bool is_integer(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16:
    case GgufValueType::INT16: case GgufValueType::UINT32: case GgufValueType::INT32:
    case GgufValueType::UINT64: case GgufValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool is_float(GgufValueType t) { return t == GgufValueType::FLOAT32 || t == GgufValueType::FLOAT64; }

// Size in bytes of a scalar of type t (0 for STRING / ARRAY, which have variable size).
uint64_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    default: return 0;
  }
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Decodes one scalar of type t at p (caller checked the bytes exist) into u/i/f.
void decode_scalar(GgufValueType t, const uint8_t* p, GgufValue& v) {
  auto set_unsigned = [&](uint64_t x) {
    v.u = x;
    v.i = x <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? static_cast<int64_t>(x) : 0;
    v.f = static_cast<double>(x);
  };
  auto set_signed = [&](int64_t x) {
    v.i = x;
    v.u = x >= 0 ? static_cast<uint64_t>(x) : 0;
    v.f = static_cast<double>(x);
  };
  switch (t) {
    case GgufValueType::UINT8: set_unsigned(load<uint8_t>(p)); break;
    case GgufValueType::INT8: set_signed(load<int8_t>(p)); break;
    case GgufValueType::UINT16: set_unsigned(load<uint16_t>(p)); break;
    case GgufValueType::INT16: set_signed(load<int16_t>(p)); break;
    case GgufValueType::UINT32: set_unsigned(load<uint32_t>(p)); break;
    case GgufValueType::INT32: set_signed(load<int32_t>(p)); break;
    case GgufValueType::UINT64: set_unsigned(load<uint64_t>(p)); break;
    case GgufValueType::INT64: set_signed(load<int64_t>(p)); break;
    case GgufValueType::BOOL: set_unsigned(load<uint8_t>(p)); break;
    case GgufValueType::FLOAT32: v.f = load<float>(p); break;
    case GgufValueType::FLOAT64: v.f = load<double>(p); break;
    default: break;
  }
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: return "UINT8";
    case GgufValueType::INT8: return "INT8";
    case GgufValueType::UINT16: return "UINT16";
    case GgufValueType::INT16: return "INT16";
    case GgufValueType::UINT32: return "UINT32";
    case GgufValueType::INT32: return "INT32";
    case GgufValueType::FLOAT32: return "FLOAT32";
    case GgufValueType::BOOL: return "BOOL";
    case GgufValueType::STRING: return "STRING";
    case GgufValueType::ARRAY: return "ARRAY";
    case GgufValueType::UINT64: return "UINT64";
    case GgufValueType::INT64: return "INT64";
    case GgufValueType::FLOAT64: return "FLOAT64";
  }
  return "?";
}

class GgufParser {
 public:
  GgufParser(std::span<const uint8_t> bytes, GgufFile& file)
      : p_(bytes.data()), size_(bytes.size()), f_(file) {}

  void run() {
    read_header();
    for (uint64_t i = 0; i < kv_count_; ++i) read_kv(i);
    apply_alignment();
    f_.tensors_.reserve(tensor_count_);
    info_offsets_.reserve(tensor_count_);
    for (uint64_t i = 0; i < tensor_count_; ++i) read_tensor_info(i);
    place_tensor_data();
  }

 private:
  [[noreturn]] void fail(uint64_t offset, const std::string& what) const {
    throw ParseError{f_.name_ + ": offset " + str(offset) + ": " + what};
  }
  uint64_t remaining() const { return size_ - pos_; }

  // Ensures n bytes remain at pos_ for `what`; returns a pointer to them and advances.
  const uint8_t* take(uint64_t n, const std::string& what) {
    if (n > remaining()) {
      fail(pos_, "truncated: expected " + what + " (" + str(n) + " bytes), but only " + str(remaining()) +
                     " bytes remain (file size " + str(size_) + ")");
    }
    const uint8_t* p = p_ + pos_;
    pos_ += n;
    return p;
  }
  uint32_t read_u32(const std::string& what) { return load<uint32_t>(take(4, what)); }
  uint64_t read_u64(const std::string& what) { return load<uint64_t>(take(8, what)); }

  std::string_view read_string(const std::string& what) {
    const uint64_t len_off = pos_;
    const uint64_t len = read_u64("the length of " + what);
    if (len > remaining()) {
      fail(len_off, what + " has length " + str(len) + ", which exceeds the " + str(remaining()) +
                        " bytes remaining in the file");
    }
    const uint8_t* s = take(len, what);
    return std::string_view(reinterpret_cast<const char*>(s), len);
  }

  void read_header() {
    if (size_ < 4) {
      fail(0, "file is " + str(size_) + " bytes, expected at least 24 bytes of GGUF header");
    }
    const uint8_t* m = take(4, "magic");
    if (std::memcmp(m, "GGUF", 4) != 0) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "expected magic \"GGUF\" (47 47 55 46), found %02x %02x %02x %02x",
                    m[0], m[1], m[2], m[3]);
      fail(0, buf);
    }
    const uint32_t version = read_u32("the format version");
    if (version == 1) fail(4, "GGUF version 1 is not supported (expected version 2 or 3)");
    if (version == 0x02000000u || version == 0x03000000u) {
      fail(4, "found version " + str(version) +
                  ", which looks like a big-endian GGUF; expected a little-endian file of version 2 or 3");
    }
    if (version != 2 && version != 3) {
      fail(4, "unsupported GGUF version " + str(version) + " (expected 2 or 3)");
    }
    f_.version_ = version;
    tensor_count_ = read_u64("the tensor count");
    kv_count_ = read_u64("the metadata key/value count");
    const uint64_t rem = remaining();
    if (tensor_count_ > rem / kMinTensorInfoBytes) {
      fail(8, "tensor count " + str(tensor_count_) + " exceeds what " + str(rem) +
                  " remaining bytes can hold (each tensor info takes at least " + str(kMinTensorInfoBytes) +
                  " bytes)");
    }
    if (kv_count_ > rem / kMinKvBytes) {
      fail(16, "metadata key/value count " + str(kv_count_) + " exceeds what " + str(rem) +
                   " remaining bytes can hold (each key/value takes at least " + str(kMinKvBytes) + " bytes)");
    }
    if (tensor_count_ * kMinTensorInfoBytes + kv_count_ * kMinKvBytes > rem) {
      fail(8, "tensor count " + str(tensor_count_) + " and metadata key/value count " + str(kv_count_) +
                  " together exceed what " + str(rem) + " remaining bytes can hold");
    }
  }

  GgufValueType read_type(const std::string& what) {
    const uint64_t off = pos_;
    const uint32_t t = read_u32("the value type of " + what);
    if (!is_valid_value_type(t)) {
      fail(off, what + ": unknown value type " + str(t) + " (expected 0..12)");
    }
    return static_cast<GgufValueType>(t);
  }

  void check_bool(uint8_t b, uint64_t off, const std::string& what) const {
    if (b > 1) fail(off, what + ": BOOL value " + str(b) + " (expected 0 or 1)");
  }

  void read_value(GgufValueType type, GgufValue& v, const std::string& what) {
    v.type = type;
    if (type == GgufValueType::STRING) {
      v.str = read_string("the string value of " + what);
      return;
    }
    if (type != GgufValueType::ARRAY) {
      const uint64_t off = pos_;
      const uint8_t* p = take(scalar_size(type), std::string("the ") + gguf_value_type_name(type) + " value of " + what);
      if (type == GgufValueType::BOOL) check_bool(*p, off, what);
      decode_scalar(type, p, v);
      return;
    }
    const uint64_t elem_off = pos_;
    const uint32_t et = read_u32("the array element type of " + what);
    if (et == static_cast<uint32_t>(GgufValueType::ARRAY)) {
      fail(elem_off, what + ": arrays of arrays are not supported (element type ARRAY)");
    }
    if (!is_valid_value_type(et)) {
      fail(elem_off, what + ": unknown array element type " + str(et) + " (expected 0..12, not 9)");
    }
    v.elem_type = static_cast<GgufValueType>(et);
    const uint64_t count_off = pos_;
    v.count = read_u64("the array length of " + what);
    if (v.elem_type == GgufValueType::STRING) {
      if (v.count > remaining() / 8) {
        fail(count_off, what + ": array of " + str(v.count) + " strings exceeds what " + str(remaining()) +
                            " remaining bytes can hold (each string takes at least 8 bytes)");
      }
      v.strings.reserve(v.count);
      for (uint64_t k = 0; k < v.count; ++k) {
        v.strings.push_back(read_string("string " + str(k) + " of " + what));
      }
      return;
    }
    const uint64_t es = scalar_size(v.elem_type);
    if (v.count > remaining() / es) {
      fail(count_off, what + ": array of " + str(v.count) + " " + gguf_value_type_name(v.elem_type) +
                          " elements (" + str(es) + " bytes each) exceeds the " + str(remaining()) +
                          " remaining bytes");
    }
    const uint64_t data_off = pos_;
    v.raw = take(v.count * es, "array data");
    if (v.elem_type == GgufValueType::BOOL) {
      for (uint64_t k = 0; k < v.count; ++k) check_bool(v.raw[k], data_off + k, what + " element " + str(k));
    }
  }

  void read_kv(uint64_t index) {
    const uint64_t key_off = pos_;
    const std::string_view key = read_string("the key of metadata entry " + str(index));
    const std::string what = "metadata key " + quoted(key);
    if (auto it = f_.kv_.find(key); it != f_.kv_.end()) {
      fail(key_off, "duplicate " + what + " (already defined with its value at offset " +
                        str(it->second.offset) + "); expected unique keys");
    }
    const GgufValueType type = read_type(what);
    GgufValue v;
    v.offset = pos_;
    read_value(type, v, what);
    f_.kv_.emplace(std::string(key), std::move(v));
  }

  void apply_alignment() {
    f_.alignment_ = kDefaultAlignment;
    auto it = f_.kv_.find("general.alignment");
    if (it == f_.kv_.end()) return;
    const GgufValue& v = it->second;
    if (!is_integer(v.type)) {
      fail(v.offset, std::string("general.alignment: expected an unsigned integer, found ") +
                         gguf_value_type_name(v.type));
    }
    if (v.type == GgufValueType::INT8 || v.type == GgufValueType::INT16 || v.type == GgufValueType::INT32 ||
        v.type == GgufValueType::INT64) {
      if (v.i <= 0) fail(v.offset, "general.alignment is " + std::to_string(v.i) + ", expected a power of two");
    }
    const uint64_t a = v.u;
    if (a == 0 || (a & (a - 1)) != 0 || a > (uint64_t{1} << 30)) {
      fail(v.offset, "general.alignment is " + str(a) + ", expected a power of two (at most 2^30)");
    }
    f_.alignment_ = a;
  }

  void read_tensor_info(uint64_t index) {
    const uint64_t name_off = pos_;
    const std::string_view name = read_string("the name of tensor " + str(index));
    const std::string what = "tensor " + quoted(name);
    if (auto it = f_.tensor_index_.find(name); it != f_.tensor_index_.end()) {
      fail(name_off, "duplicate " + what + " (also tensor " + str(it->second) + "); expected unique names");
    }
    GgufTensorInfo t;
    t.name = std::string(name);
    const uint64_t ndims_off = pos_;
    const uint32_t n_dims = read_u32("the n_dims of " + what);
    if (n_dims < 1 || n_dims > kMaxDims) {
      fail(ndims_off, what + ": n_dims is " + str(n_dims) + ", expected 1 to " + str(kMaxDims));
    }
    int64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_off = pos_;
      const uint64_t dim = read_u64("dimension " + str(d) + " of " + what);
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(dim_off, what + ": dimension " + str(d) + " is " + str(dim) + ", expected a positive value below 2^63");
      }
      const auto di = static_cast<int64_t>(dim);
      if (elements > std::numeric_limits<int64_t>::max() / di) {
        fail(dim_off, what + ": the element count overflows int64 at dimension " + str(d) + " (" + str(dim) + ")");
      }
      elements *= di;
      t.dims.push_back(di);
    }
    const uint64_t type_off = pos_;
    const uint32_t type = read_u32("the ggml type of " + what);
    const GgmlTypeInfo* info = ggml_type_info(type);
    if (info == nullptr) {
      fail(type_off, what + ": unknown ggml tensor type " + str(type) +
                         " (expected one of the types Pagoda knows: f32, f16, bf16, q4_0 ... q8_K, i8 ... f64)");
    }
    t.type = static_cast<GgmlType>(type);
    if (t.dims[0] % info->block_size != 0) {
      fail(ndims_off + 4, what + ": dimension 0 is " + str(static_cast<uint64_t>(t.dims[0])) + ", expected a multiple of the " +
                              info->name + " block size " + str(static_cast<uint64_t>(info->block_size)));
    }
    const int64_t blocks = elements / info->block_size;
    if (blocks > std::numeric_limits<int64_t>::max() / info->type_size) {
      fail(type_off, what + ": byte size of " + str(static_cast<uint64_t>(elements)) + " " + info->name +
                         " elements overflows int64");
    }
    t.nbytes = static_cast<uint64_t>(blocks * info->type_size);
    const uint64_t offset_off = pos_;
    t.offset = read_u64("the data offset of " + what);
    if (t.offset % f_.alignment_ != 0) {
      fail(offset_off, what + ": data offset " + str(t.offset) + " is not a multiple of the alignment " +
                           str(f_.alignment_));
    }
    f_.tensor_index_.emplace(t.name, f_.tensors_.size());
    f_.tensors_.push_back(std::move(t));
    info_offsets_.push_back(offset_off);
  }

  void place_tensor_data() {
    const uint64_t a = f_.alignment_;
    const uint64_t data_start = (pos_ + (a - 1)) / a * a;  // pos_ <= size_ and a <= 2^30: no overflow
    if (f_.tensors_.empty()) return;
    if (data_start > size_) {
      fail(pos_, "the data section starts at " + str(data_start) + " (aligned to " + str(a) +
                     "), past the end of the file (" + str(size_) + " bytes)");
    }
    const uint64_t data_size = size_ - data_start;
    for (size_t k = 0; k < f_.tensors_.size(); ++k) {
      GgufTensorInfo& t = f_.tensors_[k];
      if (t.offset > data_size || t.nbytes > data_size - t.offset) {
        fail(info_offsets_[k], "tensor " + quoted(t.name) + ": " + str(t.nbytes) + " bytes of data at data offset " +
                                   str(t.offset) + " (data section starts at " + str(data_start) +
                                   ") extend past the end of the file (" + str(size_) + " bytes)");
      }
      t.data = p_ + data_start + t.offset;
    }
    // Tensor data must not overlap.
    std::vector<size_t> order(f_.tensors_.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(),
              [&](size_t x, size_t y) { return f_.tensors_[x].offset < f_.tensors_[y].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
      const GgufTensorInfo& prev = f_.tensors_[order[k - 1]];
      const GgufTensorInfo& cur = f_.tensors_[order[k]];
      if (prev.offset + prev.nbytes > cur.offset) {
        fail(info_offsets_[order[k]], "tensor " + quoted(cur.name) + ": data offset " + str(cur.offset) +
                                          " overlaps tensor " + quoted(prev.name) + " (data offsets " +
                                          str(prev.offset) + " to " + str(prev.offset + prev.nbytes) +
                                          "); expected disjoint tensor data");
      }
    }
  }

  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  GgufFile& f_;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  std::vector<uint64_t> info_offsets_;
};

Result<std::unique_ptr<GgufFile>> GgufFile::parse(std::span<const uint8_t> bytes, std::string name) {
  try {
    std::unique_ptr<GgufFile> file(new GgufFile());
    file->name_ = name;
    GgufParser parser(bytes, *file);
    parser.run();
    return file;
  } catch (const ParseError& e) {
    return Status::error(e.message);
  } catch (const std::bad_alloc&) {
    return Status::error(name + ": out of memory while parsing GGUF metadata");
  } catch (const std::exception& e) {
    return Status::error(name + ": error while parsing GGUF: " + e.what());
  }
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::error(path + ": offset 0: cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::error(path + ": offset 0: cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::error(path + ": offset 0: expected a regular file");
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return Status::error(path + ": offset 0: file is empty, expected a GGUF header (at least 24 bytes)");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return Status::error(path + ": offset 0: mmap of " + str(size) + " bytes failed: " + std::strerror(map_err));
  auto parsed = parse(std::span<const uint8_t>(static_cast<const uint8_t*>(map), size), path);
  if (!parsed.ok()) {
    ::munmap(map, size);
    return parsed.status();
  }
  parsed.value()->map_ = map;
  parsed.value()->map_size_ = size;
  return parsed;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ---- typed getters ----

namespace {

std::string type_desc(const GgufValue& v) {
  if (v.type == GgufValueType::ARRAY) return std::string("ARRAY of ") + gguf_value_type_name(v.elem_type);
  return gguf_value_type_name(v.type);
}

Status type_error(const std::string& file, std::string_view key, const GgufValue& v, const char* expected) {
  return Status::error(file + ": offset " + str(v.offset) + ": metadata key " + quoted(key) + ": expected " +
                       expected + ", found " + type_desc(v));
}

GgufValue element(const GgufValue& arr, uint64_t k) {
  GgufValue e;
  e.type = arr.elem_type;
  decode_scalar(arr.elem_type, arr.raw + k * scalar_size(arr.elem_type), e);
  return e;
}

bool is_unsigned_64(GgufValueType t) { return t == GgufValueType::UINT64; }

}  // namespace

Result<std::optional<int64_t>> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<int64_t>();
  if (!is_integer(v->type)) return type_error(name_, key, *v, "an integer");
  if (is_unsigned_64(v->type) && v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Status::error(name_ + ": offset " + str(v->offset) + ": metadata key " + quoted(key) + ": UINT64 value " +
                         str(v->u) + " exceeds the int64 maximum " +
                         str(static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
  }
  return std::optional<int64_t>(v->i);
}

Result<std::optional<double>> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<double>();
  if (!is_float(v->type) && !is_integer(v->type)) return type_error(name_, key, *v, "a float or an integer");
  return std::optional<double>(v->f);
}

Result<std::optional<bool>> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<bool>();
  if (v->type != GgufValueType::BOOL) return type_error(name_, key, *v, "BOOL");
  return std::optional<bool>(v->u != 0);
}

Result<std::optional<std::string>> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->type != GgufValueType::STRING) return type_error(name_, key, *v, "STRING");
  try {
    return std::optional<std::string>(std::string(v->str));
  } catch (const std::exception& e) {
    return Status::error(name_ + ": metadata key " + quoted(key) + ": " + e.what());
  }
}

Result<std::optional<std::vector<std::string_view>>> GgufFile::get_string_array(std::string_view key) const {
  using R = std::optional<std::vector<std::string_view>>;
  const GgufValue* v = find(key);
  if (v == nullptr) return R();
  if (v->type != GgufValueType::ARRAY || v->elem_type != GgufValueType::STRING) {
    return type_error(name_, key, *v, "ARRAY of STRING");
  }
  try {
    return R(v->strings);
  } catch (const std::exception& e) {
    return Status::error(name_ + ": metadata key " + quoted(key) + ": " + e.what());
  }
}

Result<std::optional<std::vector<float>>> GgufFile::get_float_array(std::string_view key) const {
  using R = std::optional<std::vector<float>>;
  const GgufValue* v = find(key);
  if (v == nullptr) return R();
  if (v->type != GgufValueType::ARRAY || !(is_float(v->elem_type) || is_integer(v->elem_type))) {
    return type_error(name_, key, *v, "an ARRAY of FLOAT32, FLOAT64 or integers");
  }
  try {
    std::vector<float> out(v->count);
    if (v->elem_type == GgufValueType::FLOAT32) {
      if (v->count > 0) std::memcpy(out.data(), v->raw, v->count * 4);
    } else {
      for (uint64_t k = 0; k < v->count; ++k) out[k] = static_cast<float>(element(*v, k).f);
    }
    return R(std::move(out));
  } catch (const std::exception& e) {
    return Status::error(name_ + ": metadata key " + quoted(key) + ": " + e.what());
  }
}

Result<std::optional<std::vector<int64_t>>> GgufFile::get_int_array(std::string_view key) const {
  using R = std::optional<std::vector<int64_t>>;
  const GgufValue* v = find(key);
  if (v == nullptr) return R();
  if (v->type != GgufValueType::ARRAY || !is_integer(v->elem_type)) {
    return type_error(name_, key, *v, "an ARRAY of integers");
  }
  try {
    std::vector<int64_t> out(v->count);
    for (uint64_t k = 0; k < v->count; ++k) {
      const GgufValue e = element(*v, k);
      if (is_unsigned_64(v->elem_type) && e.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Status::error(name_ + ": offset " + str(v->offset) + ": metadata key " + quoted(key) + ": element " +
                             str(k) + " (UINT64 " + str(e.u) + ") exceeds the int64 maximum");
      }
      out[k] = e.i;
    }
    return R(std::move(out));
  } catch (const std::exception& e) {
    return Status::error(name_ + ": metadata key " + quoted(key) + ": " + e.what());
  }
}

}  // namespace pagoda::engine
