#pragma once
// Which x86 vector extensions this machine has, read once at start-up (cpuid via GCC builtins).
#include <string>

namespace pagoda::engine::cpu {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512 = false;       // F + BW + VL (what our AVX-512 kernels use)
  bool avx512_vnni = false;  // VPDPBUSD on 512/256-bit registers
  bool avx512_bf16 = false;
  std::string describe() const;
};

const CpuFeatures& cpu_features();

}  // namespace pagoda::engine::cpu
