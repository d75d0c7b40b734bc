#pragma once
// The tensor element types a GGUF file may hold, with the numbering of ggml.h (the file format
// stores these numbers), and their block geometry.
#include <cstddef>
#include <cstdint>

namespace pagoda::engine {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct GgmlTypeInfo {
  const char* name;
  int64_t block_size;  // elements per block (1 for plain types)
  int64_t type_size;   // bytes per block
  bool can_dequantize; // Pagoda has a dequantizer for it
};

// Geometry of a type known to the GGUF format, or nullptr for a number ggml never assigned.
const GgmlTypeInfo* ggml_type_info(uint32_t type);
const char* ggml_type_name(uint32_t type);  // "unknown(N)" style names are not returned: "?" instead

// Bytes of a row of n elements; n must be a multiple of the block size (checked by callers).
inline int64_t ggml_row_bytes(const GgmlTypeInfo& info, int64_t n) { return n / info.block_size * info.type_size; }

}  // namespace pagoda::engine
