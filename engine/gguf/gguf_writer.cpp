// GGUF v3 writer. Layout (little-endian), as the reader in gguf_file.cpp expects it:
//   magic "GGUF" | u32 3 | u64 tensor_count | u64 kv_count | kvs | tensor infos | pad | tensor data
// Each tensor's data starts at a multiple of the alignment (from the data section start) and is
// followed by zero padding to the next multiple.
#include "engine/gguf/gguf_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace pagoda::engine {

static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a little-endian host");

namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxDims = 4;

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t n = out.size();
  out.resize(n + sizeof(T));
  std::memcpy(out.data() + n, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void put_type(std::vector<uint8_t>& out, GgufValueType t) { put<uint32_t>(out, static_cast<uint32_t>(t)); }

template <class T>
std::vector<uint8_t> scalar(GgufValueType t, T v) {
  std::vector<uint8_t> out;
  put_type(out, t);
  put<T>(out, v);
  return out;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "{";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "}";
}

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};

}  // namespace

// ---- metadata ----

void GgufWriter::set_raw(std::string_view key, std::vector<uint8_t> value) {
  if (auto it = key_index_.find(key); it != key_index_.end()) {
    entries_[it->second].value = std::move(value);
    return;
  }
  key_index_.emplace(std::string(key), entries_.size());
  entries_.push_back({std::string(key), std::move(value)});
}

bool GgufWriter::remove_key(std::string_view key) {
  auto it = key_index_.find(key);
  if (it == key_index_.end()) return false;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
  key_index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) key_index_.emplace(entries_[i].key, i);
  return true;
}

void GgufWriter::set_u8(std::string_view key, uint8_t v) { set_raw(key, scalar(GgufValueType::UINT8, v)); }
void GgufWriter::set_i8(std::string_view key, int8_t v) { set_raw(key, scalar(GgufValueType::INT8, v)); }
void GgufWriter::set_u16(std::string_view key, uint16_t v) { set_raw(key, scalar(GgufValueType::UINT16, v)); }
void GgufWriter::set_i16(std::string_view key, int16_t v) { set_raw(key, scalar(GgufValueType::INT16, v)); }
void GgufWriter::set_u32(std::string_view key, uint32_t v) { set_raw(key, scalar(GgufValueType::UINT32, v)); }
void GgufWriter::set_i32(std::string_view key, int32_t v) { set_raw(key, scalar(GgufValueType::INT32, v)); }
void GgufWriter::set_u64(std::string_view key, uint64_t v) { set_raw(key, scalar(GgufValueType::UINT64, v)); }
void GgufWriter::set_i64(std::string_view key, int64_t v) { set_raw(key, scalar(GgufValueType::INT64, v)); }
void GgufWriter::set_f32(std::string_view key, float v) { set_raw(key, scalar(GgufValueType::FLOAT32, v)); }
void GgufWriter::set_f64(std::string_view key, double v) { set_raw(key, scalar(GgufValueType::FLOAT64, v)); }
void GgufWriter::set_bool(std::string_view key, bool v) {
  set_raw(key, scalar<uint8_t>(GgufValueType::BOOL, v ? 1 : 0));
}
void GgufWriter::set_string(std::string_view key, std::string_view v) {
  std::vector<uint8_t> out;
  put_type(out, GgufValueType::STRING);
  put_string(out, v);
  set_raw(key, std::move(out));
}

void GgufWriter::set_array_raw(std::string_view key, GgufValueType elem, const void* data, uint64_t count,
                               size_t elem_size) {
  std::vector<uint8_t> out;
  put_type(out, GgufValueType::ARRAY);
  put_type(out, elem);
  put<uint64_t>(out, count);
  const auto* p = static_cast<const uint8_t*>(data);
  if (count > 0) out.insert(out.end(), p, p + count * elem_size);
  set_raw(key, std::move(out));
}

void GgufWriter::set_u8_array(std::string_view key, std::span<const uint8_t> v) {
  set_array_raw(key, GgufValueType::UINT8, v.data(), v.size(), 1);
}
void GgufWriter::set_i8_array(std::string_view key, std::span<const int8_t> v) {
  set_array_raw(key, GgufValueType::INT8, v.data(), v.size(), 1);
}
void GgufWriter::set_u16_array(std::string_view key, std::span<const uint16_t> v) {
  set_array_raw(key, GgufValueType::UINT16, v.data(), v.size(), 2);
}
void GgufWriter::set_i16_array(std::string_view key, std::span<const int16_t> v) {
  set_array_raw(key, GgufValueType::INT16, v.data(), v.size(), 2);
}
void GgufWriter::set_u32_array(std::string_view key, std::span<const uint32_t> v) {
  set_array_raw(key, GgufValueType::UINT32, v.data(), v.size(), 4);
}
void GgufWriter::set_i32_array(std::string_view key, std::span<const int32_t> v) {
  set_array_raw(key, GgufValueType::INT32, v.data(), v.size(), 4);
}
void GgufWriter::set_u64_array(std::string_view key, std::span<const uint64_t> v) {
  set_array_raw(key, GgufValueType::UINT64, v.data(), v.size(), 8);
}
void GgufWriter::set_i64_array(std::string_view key, std::span<const int64_t> v) {
  set_array_raw(key, GgufValueType::INT64, v.data(), v.size(), 8);
}
void GgufWriter::set_f32_array(std::string_view key, std::span<const float> v) {
  set_array_raw(key, GgufValueType::FLOAT32, v.data(), v.size(), 4);
}
void GgufWriter::set_f64_array(std::string_view key, std::span<const double> v) {
  set_array_raw(key, GgufValueType::FLOAT64, v.data(), v.size(), 8);
}
void GgufWriter::set_bool_array(std::string_view key, const std::vector<bool>& v) {
  std::vector<uint8_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = v[i] ? 1 : 0;
  set_array_raw(key, GgufValueType::BOOL, b.data(), b.size(), 1);
}
void GgufWriter::set_string_array(std::string_view key, std::span<const std::string> v) {
  std::vector<uint8_t> out;
  put_type(out, GgufValueType::ARRAY);
  put_type(out, GgufValueType::STRING);
  put<uint64_t>(out, v.size());
  for (const std::string& s : v) put_string(out, s);
  set_raw(key, std::move(out));
}

Result<uint64_t> GgufWriter::alignment() const {
  auto it = key_index_.find("general.alignment");
  if (it == key_index_.end()) return kDefaultAlignment;
  const std::vector<uint8_t>& v = entries_[it->second].value;
  uint32_t type = 0;
  std::memcpy(&type, v.data(), 4);
  uint64_t a = 0;
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::UINT8: a = v[4]; break;
    case GgufValueType::UINT16: { uint16_t x; std::memcpy(&x, v.data() + 4, 2); a = x; break; }
    case GgufValueType::UINT32: { uint32_t x; std::memcpy(&x, v.data() + 4, 4); a = x; break; }
    case GgufValueType::UINT64: { uint64_t x; std::memcpy(&x, v.data() + 4, 8); a = x; break; }
    default:
      return Status::error("general.alignment must be an unsigned integer (found value type " +
                           std::string(gguf_value_type_name(static_cast<GgufValueType>(type))) + ")");
  }
  if (a == 0 || (a & (a - 1)) != 0 || a > (uint64_t{1} << 30)) {
    return Status::error("general.alignment is " + std::to_string(a) + ", expected a power of two (at most 2^30)");
  }
  return a;
}

// ---- tensors ----

Status GgufWriter::check_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& dims,
                                uint64_t* nbytes) const {
  for (const Tensor& t : tensors_) {
    if (t.name == name) return Status::error("tensor '" + name + "' was already added");
  }
  if (dims.empty() || dims.size() > kMaxDims) {
    return Status::error("tensor '" + name + "': " + std::to_string(dims.size()) + " dims, expected 1 to 4");
  }
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  if (!info) {
    return Status::error("tensor '" + name + "': unknown ggml type " + std::to_string(static_cast<uint32_t>(type)));
  }
  int64_t elements = 1;
  for (int64_t d : dims) {
    if (d <= 0) return Status::error("tensor '" + name + "': dims " + dims_str(dims) + " must all be positive");
    elements *= d;
  }
  if (dims[0] % info->block_size != 0) {
    return Status::error("tensor '" + name + "': dims[0] = " + std::to_string(dims[0]) + " is not a multiple of the " +
                         info->name + " block size " + std::to_string(info->block_size));
  }
  *nbytes = static_cast<uint64_t>(elements / info->block_size * info->type_size);
  return {};
}

Status GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, std::vector<uint8_t> bytes) {
  uint64_t nbytes = 0;
  if (Status s = check_tensor(name, type, dims, &nbytes); !s.ok()) return s;
  if (bytes.size() != nbytes) {
    return Status::error("tensor '" + name + "': " + std::to_string(bytes.size()) + " bytes of data, expected " +
                         std::to_string(nbytes) + " for " + ggml_type_name(static_cast<uint32_t>(type)) + " " +
                         dims_str(dims));
  }
  tensors_.push_back({std::move(name), type, std::move(dims), nbytes, std::move(bytes)});
  return {};
}

Status GgufWriter::declare_tensor(std::string name, GgmlType type, std::vector<int64_t> dims) {
  uint64_t nbytes = 0;
  if (Status s = check_tensor(name, type, dims, &nbytes); !s.ok()) return s;
  tensors_.push_back({std::move(name), type, std::move(dims), nbytes, std::nullopt});
  return {};
}

bool GgufWriter::remove_tensor(std::string_view name) {
  for (auto it = tensors_.begin(); it != tensors_.end(); ++it) {
    if (it->name == name) {
      tensors_.erase(it);
      return true;
    }
  }
  return false;
}

// ---- serialization ----

Result<std::vector<uint8_t>> GgufWriter::header_bytes(std::vector<uint64_t>* offsets, uint64_t* data_size) const {
  auto a = alignment();
  if (!a.ok()) return a.status();
  const uint64_t align = a.value();
  std::vector<uint8_t> out;
  out.insert(out.end(), {'G', 'G', 'U', 'F'});
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, entries_.size());
  for (const Entry& e : entries_) {
    put_string(out, e.key);
    out.insert(out.end(), e.value.begin(), e.value.end());
  }
  uint64_t offset = 0;
  offsets->clear();
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offsets->push_back(offset);
    offset = align_up(offset + t.nbytes, align);
  }
  *data_size = offset;
  out.resize(align_up(out.size(), align), 0);
  return out;
}

Result<std::vector<uint8_t>> GgufWriter::to_bytes() const {
  std::vector<uint64_t> offsets;
  uint64_t data_size = 0;
  auto head = header_bytes(&offsets, &data_size);
  if (!head.ok()) return head.status();
  std::vector<uint8_t> out = std::move(head.value());
  const size_t data_start = out.size();
  out.resize(data_start + data_size, 0);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (!t.data) return Status::error("tensor '" + t.name + "' was declared without data; use write_streaming()");
    if (t.nbytes > 0) std::memcpy(out.data() + data_start + offsets[i], t.data->data(), t.nbytes);
  }
  return out;
}

Status GgufWriter::write(const std::string& path) const { return write_streaming(path, Fill()); }

Status GgufWriter::write_streaming(const std::string& path, const Fill& fill) const {
  std::vector<uint64_t> offsets;
  uint64_t data_size = 0;
  auto head = header_bytes(&offsets, &data_size);
  if (!head.ok()) return Status::error(path + ": " + head.message());
  const uint64_t align = alignment().value();

  const std::string tmp = path + ".tmp";
  std::vector<char> buffer(size_t{4} << 20);  // declared first: outlives the FILE that uses it
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  if (!f) return Status::error(path + ": cannot create '" + tmp + "': " + std::strerror(errno));
  std::setvbuf(f.get(), buffer.data(), _IOFBF, buffer.size());

  uint64_t written = 0;  // bytes of the data section written so far
  auto fail = [&](const std::string& what) {
    f.reset();
    std::remove(tmp.c_str());
    return Status::error(path + ": " + what);
  };
  auto raw_write = [&](const void* p, size_t n) -> bool {
    return n == 0 || std::fwrite(p, 1, n, f.get()) == n;
  };
  if (!raw_write(head.value().data(), head.value().size())) {
    return fail(std::string("write failed: ") + std::strerror(errno));
  }

  static const uint8_t zeros[4096] = {};
  auto pad_to = [&](uint64_t target) -> bool {
    while (written < target) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(target - written, sizeof zeros));
      if (!raw_write(zeros, n)) return false;
      written += n;
    }
    return true;
  };

  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (!pad_to(offsets[i])) return fail(std::string("write failed: ") + std::strerror(errno));
    if (t.data) {
      if (!raw_write(t.data->data(), t.data->size())) return fail(std::string("write failed: ") + std::strerror(errno));
      written += t.nbytes;
    } else {
      if (!fill) return fail("tensor '" + t.name + "' was declared without data and no fill function was given");
      uint64_t got = 0;
      bool io_error = false;
      const Append append = [&](std::span<const uint8_t> bytes) -> Status {
        if (got + bytes.size() > t.nbytes) {
          return Status::error("tensor '" + t.name + "': more than its " + std::to_string(t.nbytes) +
                               " bytes appended");
        }
        if (!raw_write(bytes.data(), bytes.size())) {
          io_error = true;
          return Status::error(std::string("write failed: ") + std::strerror(errno));
        }
        got += bytes.size();
        return {};
      };
      Status s = fill(i, append);
      if (!s.ok()) return fail(s.message());
      if (io_error) return fail("write failed");
      if (got != t.nbytes) {
        return fail("tensor '" + t.name + "': " + std::to_string(got) + " bytes appended, expected " +
                    std::to_string(t.nbytes));
      }
      written += t.nbytes;
    }
    if (!pad_to(align_up(written, align))) return fail(std::string("write failed: ") + std::strerror(errno));
  }
  if (std::fflush(f.get()) != 0) return fail(std::string("write failed: ") + std::strerror(errno));
  std::FILE* raw = f.release();
  if (std::fclose(raw) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return Status::error(path + ": close failed: " + std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return Status::error(path + ": cannot rename '" + tmp + "' to it: " + std::strerror(err));
  }
  return {};
}

}  // namespace pagoda::engine
