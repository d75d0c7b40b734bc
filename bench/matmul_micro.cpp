// pagoda_matmul_bench: the CPU backend's matmul kernels alone, per weight format and activation rows M
// (1 = a decode step; more = batched decode, drafts, prefill chunks). Random weights of a real layer's
// shape (default 4096 x 4096, Llama-3-8B's Q/O projections); reports microseconds per call (the best
// of five batches) and the weight bytes streamed per second. Not a test: timings vary with the machine
// and its load.
//   build/bench/pagoda_matmul_bench [rows cols]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/cpu/float_matrix.h"
#include "engine/cpu/quant_matrix.h"
#include "engine/quant/dequant.h"

using namespace pagoda::engine;

namespace {

struct Weights {
  std::vector<uint8_t> bytes;
  GgufTensorInfo info;
};

Weights random_weights(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  Weights w;
  const GgmlTypeInfo* ti = ggml_type_info(static_cast<uint32_t>(type));
  w.bytes.resize(static_cast<size_t>(rows * ggml_row_bytes(*ti, cols)));
  std::mt19937 rng(seed);
  for (auto& b : w.bytes) b = static_cast<uint8_t>(rng());
  if (type == GgmlType::F16) {
    for (size_t i = 0; i < w.bytes.size(); i += 2) {
      const uint16_t h = fp32_to_fp16(std::normal_distribution<float>(0.0f, 0.02f)(rng));
      std::memcpy(&w.bytes[i], &h, 2);
    }
  } else {  // block types: a sane fp16 scale (and Q4_1 minimum) at the start of each block
    const int header = type == GgmlType::Q4_1 ? 2 : 1;
    for (size_t off = 0; off < w.bytes.size(); off += ti->type_size) {
      for (int h = 0; h < header; ++h) {
        const uint16_t v = fp32_to_fp16(h == 0 ? 0.01f : -0.08f);
        std::memcpy(&w.bytes[off + 2 * h], &v, 2);
      }
    }
  }
  w.info.name = std::string(1, 'w');  // (= "w" trips GCC 12's -Wrestrict false positive at -O3)
  w.info.dims = {cols, rows};
  w.info.type = type;
  w.info.data = w.bytes.data();
  w.info.nbytes = w.bytes.size();
  return w;
}

// The best of five batches' mean: on a shared VM a batch's time swings with the neighbours' load, and
// the fastest batch is the one closest to what the kernel itself costs.
template <class Fn>
double micros_per_call(int32_t M, Fn&& fn) {
  for (int i = 0; i < 3; ++i) fn();
  const int iters = std::max(5, 400 / M);
  double best = 0;
  for (int batch = 0; batch < 5; ++batch) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) fn();
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;
    best = batch == 0 ? us : std::min(best, us);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 2 ? std::atoll(argv[1]) : 4096, cols = argc > 2 ? std::atoll(argv[2]) : 4096;
  std::printf("matmul %lld x %lld (rows x cols); %s\n", static_cast<long long>(rows), static_cast<long long>(cols),
              cpu::quant_gemv_kernel_name().c_str());
  std::printf("%-28s %6s %12s %10s\n", "weights", "M", "us/call", "GB/s");
  std::mt19937 rng(7);
  struct Case {
    const char* name;
    GgmlType type;
    int64_t rows;
  };
  // Q4_0 twice: rows % 8 == 0 is ggml's repacked order (QuantKind::Q4_0x8); one row fewer keeps the lanes.
  const Case cases[] = {{"Q4_0 (repacked, rows%8==0)", GgmlType::Q4_0, rows},
                        {"Q4_0 (lanes, rows%8!=0)", GgmlType::Q4_0, rows - 1},
                        {"Q4_1", GgmlType::Q4_1, rows},
                        {"Q8_0", GgmlType::Q8_0, rows},
                        {"F16", GgmlType::F16, rows}};
  for (const Case& c : cases) {
    Weights w = random_weights(c.type, c.rows, cols, 1);
    const bool is_float = c.type == GgmlType::F16;
    cpu::QuantMatrix qm;
    cpu::FloatMatrix fm;
    if (is_float) {
      fm = cpu::make_float_matrix({&w.info}).value();
    } else {
      qm = cpu::make_quant_matrix({&w.info}).value();
    }
    for (int32_t M : {1, 4, 16, 64}) {
      std::vector<float> x(static_cast<size_t>(M * cols)), y(static_cast<size_t>(M * c.rows)), scratch;
      for (float& v : x) v = std::normal_distribution<float>()(rng);
      cpu::QuantActs qa;
      const double us = micros_per_call(M, [&] {
        if (is_float) {
          cpu::float_gemv(fm, x.data(), M, y.data(), scratch);
        } else {
          cpu::quantize_acts(x.data(), M, cols, qa);
          cpu::quant_gemv(qm, qa, y.data());
        }
      });
      std::printf("%-28s %6d %12.1f %10.1f\n", c.name, M, us, static_cast<double>(w.bytes.size()) / us / 1e3);
    }
  }
  return 0;
}
