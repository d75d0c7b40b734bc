#include "engine/model/architecture.h"

namespace pagoda::engine {

namespace {

// Families whose GGUF tensors and math are the llama graph. (Mistral's sliding window is not applied:
// its GGUFs of 7B v0.2 and later set none.)
constexpr Architecture kArchitectures[] = {
    {"llama", {RopeStyle::Interleaved}},
    {"mistral", {RopeStyle::Interleaved}},
};

}  // namespace

const Architecture* find_architecture(std::string_view name) {
  for (const Architecture& a : kArchitectures) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

std::string architecture_names() {
  std::string names;
  for (const Architecture& a : kArchitectures) names += (names.empty() ? "" : ", ") + std::string(a.name);
  return names;
}

}  // namespace pagoda::engine
