#pragma once
// DeviceBuffer: one cudaMalloc'd allocation, freed with its owner. Sizes are in elements of T.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>

#include "engine/cuda/cuda_status.h"

namespace pagoda::engine::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { reset(); }

  // Allocates n elements (contents undefined); the error names what was being allocated.
  Status allocate(size_t n, const char* what) {
    reset();
    if (n == 0) return {};
    void* p = nullptr;
    if (cudaError_t err = cudaMalloc(&p, n * sizeof(T)); err != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky-free error so later calls are not blamed
      return Status::error(StatusCode::ResourceExhausted,
                           std::string("CUDA: cudaMalloc of ") + std::to_string((n * sizeof(T)) >> 20) + " MiB for " +
                               what + " failed: " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
    }
    ptr_ = static_cast<T*>(p);
    size_ = n;
    return {};
  }
  // Grows to at least n elements, by half again at least so a slowly growing step size does not
  // free and allocate (each a device-wide synchronization) every time. Contents are lost.
  Status reserve(size_t n, const char* what) { return n <= size_ ? Status{} : allocate(std::max(n, size_ + size_ / 2), what); }
  void reset() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }

  T* get() const { return ptr_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pagoda::engine::cuda
