#include "engine/cpu/cpu_features.h"

#include <cstdlib>

namespace pagoda::engine::cpu {

std::string CpuFeatures::describe() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s.push_back(' ');
    s.append(name);
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(avx512, "avx512");
  add(avx512_vnni, "avx512_vnni");
  add(avx512_bf16, "avx512_bf16");
  return s.empty() ? "baseline x86-64" : s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
    c.avx512_vnni = c.avx512 && __builtin_cpu_supports("avx512vnni");
    c.avx512_bf16 = c.avx512 && __builtin_cpu_supports("avx512bf16");
    // PAGODA_CPU_CAP=avx2|scalar lets tests and benchmarks force a narrower path on a wide machine.
    if (const char* cap = std::getenv("PAGODA_CPU_CAP")) {
      const std::string v = cap;
      if (v == "avx2" || v == "scalar") c.avx512 = c.avx512_vnni = c.avx512_bf16 = false;
      if (v == "scalar") c.avx2 = c.fma = false;
    }
    return c;
  }();
  return f;
}

}  // namespace pagoda::engine::cpu
