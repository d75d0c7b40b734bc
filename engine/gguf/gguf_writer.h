#pragma once
// GGUF v3 writer: the inverse of GgufFile (gguf_file.h). Metadata of all 13 value types, tensors with
// their data (add_tensor) or declared now and streamed at write time (declare_tensor + write_streaming,
// for files too big to hold in memory). The data section and every tensor are aligned to
// general.alignment (default 32). Setting a key twice replaces its value in place.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "engine/quant/ggml_types.h"
#include "engine/status.h"

namespace pagoda::engine {

class GgufWriter {
 public:
  // Scalars.
  void set_u8(std::string_view key, uint8_t v);
  void set_i8(std::string_view key, int8_t v);
  void set_u16(std::string_view key, uint16_t v);
  void set_i16(std::string_view key, int16_t v);
  void set_u32(std::string_view key, uint32_t v);
  void set_i32(std::string_view key, int32_t v);
  void set_u64(std::string_view key, uint64_t v);
  void set_i64(std::string_view key, int64_t v);
  void set_f32(std::string_view key, float v);
  void set_f64(std::string_view key, double v);
  void set_bool(std::string_view key, bool v);
  void set_string(std::string_view key, std::string_view v);
  // Arrays (GGUF has no arrays of arrays).
  void set_u8_array(std::string_view key, std::span<const uint8_t> v);
  void set_i8_array(std::string_view key, std::span<const int8_t> v);
  void set_u16_array(std::string_view key, std::span<const uint16_t> v);
  void set_i16_array(std::string_view key, std::span<const int16_t> v);
  void set_u32_array(std::string_view key, std::span<const uint32_t> v);
  void set_i32_array(std::string_view key, std::span<const int32_t> v);
  void set_u64_array(std::string_view key, std::span<const uint64_t> v);
  void set_i64_array(std::string_view key, std::span<const int64_t> v);
  void set_f32_array(std::string_view key, std::span<const float> v);
  void set_f64_array(std::string_view key, std::span<const double> v);
  void set_bool_array(std::string_view key, const std::vector<bool>& v);
  void set_string_array(std::string_view key, std::span<const std::string> v);
  // The data alignment (a power of two); also sets general.alignment (UINT32).
  void set_alignment(uint32_t alignment) { set_u32("general.alignment", alignment); }

  bool has_key(std::string_view key) const { return key_index_.count(key) != 0; }
  bool remove_key(std::string_view key);

  // A tensor with its data; dims in ggml order (dims[0] contiguous). Errors (bad dims, a byte count
  // that does not match type and dims, a duplicate name) name the tensor.
  Status add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, std::vector<uint8_t> bytes);
  // A tensor whose data write_streaming() asks for when it gets there.
  Status declare_tensor(std::string name, GgmlType type, std::vector<int64_t> dims);
  bool remove_tensor(std::string_view name);
  size_t tensor_count() const { return tensors_.size(); }
  const std::string& tensor_name(size_t i) const { return tensors_[i].name; }
  const std::vector<int64_t>& tensor_dims(size_t i) const { return tensors_[i].dims; }
  GgmlType tensor_type(size_t i) const { return tensors_[i].type; }
  uint64_t tensor_nbytes(size_t i) const { return tensors_[i].nbytes; }

  // The whole file in memory (every tensor must have its data).
  Result<std::vector<uint8_t>> to_bytes() const;
  // Writes path + ".tmp", then renames it to path. Errors name the path.
  Status write(const std::string& path) const;

  // Streaming write: tensors declared without data are produced by `fill(index, append)`, which must
  // append exactly tensor_nbytes(index) bytes (in any number of pieces). Memory stays bounded by what
  // fill holds at once.
  using Append = std::function<Status(std::span<const uint8_t>)>;
  using Fill = std::function<Status(size_t index, const Append& append)>;
  Status write_streaming(const std::string& path, const Fill& fill) const;

 private:
  struct Entry {
    std::string key;
    std::vector<uint8_t> value;  // u32 type + encoded value
  };
  struct Tensor {
    std::string name;
    GgmlType type = GgmlType::F32;
    std::vector<int64_t> dims;
    uint64_t nbytes = 0;
    std::optional<std::vector<uint8_t>> data;
  };
  void set_raw(std::string_view key, std::vector<uint8_t> value);
  void set_array_raw(std::string_view key, GgufValueType elem, const void* data, uint64_t count, size_t elem_size);
  Status check_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& dims, uint64_t* nbytes) const;
  Result<uint64_t> alignment() const;
  // Header, metadata and tensor infos, padded to the start of the data section.
  Result<std::vector<uint8_t>> header_bytes(std::vector<uint64_t>* offsets, uint64_t* data_size) const;

  std::vector<Entry> entries_;
  std::map<std::string, size_t, std::less<>> key_index_;
  std::vector<Tensor> tensors_;
};

}  // namespace pagoda::engine
