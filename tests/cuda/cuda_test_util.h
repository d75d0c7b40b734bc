#pragma once
// Helpers for the CUDA suites: skip (with the reason) where no GPU is usable, device vectors, and
// error measures. GPU tests never pass without a GPU: they report SKIPPED and say why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/device_buffer.h"

// PAGODA_REQUIRE_GPU=1 (scripts/gpu_check.sh) turns the skip into a failure: on the GPU machine a
// test that silently skipped would make the check pass having tested nothing.
#define PAGODA_REQUIRE_GPU_OR_SKIP()                                                   \
  do {                                                                                 \
    if (auto n_ = ::pagoda::engine::cuda::cuda_device_count(); !n_.ok()) {             \
      const char* req_ = std::getenv("PAGODA_REQUIRE_GPU");                            \
      if (req_ && std::string(req_) == "1") FAIL() << "no GPU: " << n_.message();      \
      GTEST_SKIP() << "no GPU: " << n_.message();                                      \
    }                                                                                  \
  } while (0)

namespace pagoda::engine::cuda::test {

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> d;
  EXPECT_TRUE(d.allocate(host.size(), "test input").ok());
  EXPECT_EQ(cudaMemcpy(d.get(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

template <class T>
std::vector<T> to_host(const DeviceBuffer<T>& d, size_t n) {
  std::vector<T> h(n);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(h.data(), d.get(), n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

// A device buffer of n elements filled with a NaN pattern, so an element a kernel forgets to write
// shows up as NaN in the comparison.
template <class T>
DeviceBuffer<T> poisoned(size_t n) {
  DeviceBuffer<T> d;
  EXPECT_TRUE(d.allocate(n, "test output").ok());
  EXPECT_EQ(cudaMemset(d.get(), 0xFF, n * sizeof(T)), cudaSuccess);
  return d;
}

inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// ||got - ref|| / ||ref||; NaN anywhere in got makes it infinite.
template <class A, class B>
double rel_l2(const A& got, const B& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = static_cast<double>(got[i]), r = static_cast<double>(ref[i]);
    if (std::isnan(g)) return INFINITY;
    num += (g - r) * (g - r);
    den += r * r;
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace pagoda::engine::cuda::test
