#pragma once
// Strict GGUF v2/v3 reader over a read-only mmap (or a caller-owned byte span, for tests and fuzzing).
// Every read is bounds-checked: a corrupt, truncated or unsupported file gives an error that names the
// file, the byte offset and what was expected, never a crash or an out-of-bounds read.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/quant/ggml_types.h"
#include "engine/status.h"

namespace pagoda::engine {

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// One metadata value. Scalars are widened into u/i/f; strings and array elements point into the file.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  uint64_t u = 0;    // unsigned integer types and BOOL
  int64_t i = 0;     // signed integer types (also set for unsigned ones that fit)
  double f = 0.0;    // FLOAT32 / FLOAT64 (also set for integer types, for convenience)
  std::string_view str;  // STRING
  // ARRAY: element type, count, and either the raw little-endian element bytes (numeric/bool) or the
  // strings (STRING). Arrays of arrays are rejected as unsupported.
  GgufValueType elem_type = GgufValueType::UINT8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;
  std::vector<std::string_view> strings;
  uint64_t offset = 0;  // byte offset of the value (after the key) in the file, for error messages
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the contiguous (row) dimension
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;        // from the start of the data section
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  int64_t num_elements() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

class GgufFile {
 public:
  // Maps and parses a file. The returned object owns the mapping.
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Parses bytes the caller keeps alive for the lifetime of the returned object.
  static Result<std::unique_ptr<GgufFile>> parse(std::span<const uint8_t> bytes, std::string name);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  const GgufValue* find(std::string_view key) const;
  const GgufTensorInfo* find_tensor(std::string_view name) const;

  // Typed getters: nullopt when the key is absent; an error Status (via Result) when present with a
  // type that cannot be converted (e.g. a string where an integer is expected).
  Result<std::optional<int64_t>> get_int(std::string_view key) const;
  Result<std::optional<double>> get_float(std::string_view key) const;
  Result<std::optional<bool>> get_bool(std::string_view key) const;
  Result<std::optional<std::string>> get_string(std::string_view key) const;
  Result<std::optional<std::vector<std::string_view>>> get_string_array(std::string_view key) const;
  Result<std::optional<std::vector<float>>> get_float_array(std::string_view key) const;
  Result<std::optional<std::vector<int64_t>>> get_int_array(std::string_view key) const;

 private:
  GgufFile() = default;
  friend class GgufParser;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  void* map_ = nullptr;  // owned mmap (open()), or nullptr (parse())
  size_t map_size_ = 0;
};

}  // namespace pagoda::engine
