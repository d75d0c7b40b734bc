// Block geometry of the ggml tensor types (numbers and sizes as in ggml.h / ggml.c type_traits).
#include "engine/quant/ggml_types.h"

namespace pagoda::engine {
namespace {

struct Entry {
  uint32_t type;
  GgmlTypeInfo info;
};

constexpr Entry kTypes[] = {
    {0, {"f32", 1, 4, true}},
    {1, {"f16", 1, 2, true}},
    {2, {"q4_0", 32, 18, true}},
    {3, {"q4_1", 32, 20, true}},
    {6, {"q5_0", 32, 22, true}},
    {7, {"q5_1", 32, 24, true}},
    {8, {"q8_0", 32, 34, true}},
    {9, {"q8_1", 32, 36, false}},
    {10, {"q2_K", 256, 84, true}},
    {11, {"q3_K", 256, 110, true}},
    {12, {"q4_K", 256, 144, true}},
    {13, {"q5_K", 256, 176, true}},
    {14, {"q6_K", 256, 210, true}},
    {15, {"q8_K", 256, 292, true}},
    {24, {"i8", 1, 1, false}},
    {25, {"i16", 1, 2, false}},
    {26, {"i32", 1, 4, false}},
    {27, {"i64", 1, 8, false}},
    {28, {"f64", 1, 8, false}},
    {30, {"bf16", 1, 2, true}},
};

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  for (const Entry& e : kTypes) {
    if (e.type == type) return &e.info;
  }
  return nullptr;
}

const char* ggml_type_name(uint32_t type) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  return info ? info->name : "?";
}

}  // namespace pagoda::engine
