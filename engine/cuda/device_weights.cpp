#include "engine/cuda/device_weights.h"

#include <spdlog/fmt/fmt.h>

#include <mutex>

#include "engine/quant/dequant.h"

namespace pagoda::engine::cuda {

Result<std::vector<uint16_t>> stacked_bf16(const std::vector<const GgufTensorInfo*>& parts, int32_t* rows,
                                           int32_t* cols) {
  int64_t total_rows = 0;
  const int64_t n_cols = parts.at(0)->dims[0];
  for (const GgufTensorInfo* t : parts) {
    if (t->dims[0] != n_cols) {
      return Status::error(fmt::format("tensor '{}' has {} columns, '{}' has {}: they cannot be stacked", t->name,
                                       t->dims[0], parts[0]->name, n_cols));
    }
    total_rows += t->num_elements() / n_cols;
  }
  std::vector<uint16_t> out(static_cast<size_t>(total_rows * n_cols));
  int64_t row0 = 0;
  for (const GgufTensorInfo* t : parts) {
    const int64_t r = t->num_elements() / n_cols;
    std::mutex err_mu;
    Status err;
#pragma omp parallel
    {
      std::vector<float> tmp(static_cast<size_t>(n_cols));
#pragma omp for schedule(static)
      for (int64_t i = 0; i < r; ++i) {
        if (Status s = tensor_row_to_f32(*t, i, tmp.data()); !s.ok()) {
          std::lock_guard lock(err_mu);
          err = s;
          continue;
        }
        uint16_t* dst = &out[static_cast<size_t>((row0 + i) * n_cols)];
        for (int64_t c = 0; c < n_cols; ++c) dst[c] = fp32_to_bf16(tmp[c]);
      }
    }
    if (!err.ok()) return Status::error(fmt::format("tensor '{}': {}", t->name, err.message()));
    row0 += r;
  }
  *rows = static_cast<int32_t>(total_rows);
  *cols = static_cast<int32_t>(n_cols);
  return out;
}

namespace {

Status upload_matrix(const std::vector<const GgufTensorInfo*>& parts, DeviceMatrix& m, int64_t& bytes) {
  auto host = stacked_bf16(parts, &m.rows, &m.cols);
  if (!host.ok()) return host.status();
  if (Status s = m.owned.allocate(host.value().size(), parts[0]->name.c_str()); !s.ok()) return s;
  PAGODA_CUDA_TRY(cudaMemcpy(m.owned.get(), host.value().data(), m.owned.bytes(), cudaMemcpyHostToDevice));
  m.data = m.owned.get();
  bytes += m.bytes();
  return {};
}

Status upload_floats(const std::vector<float>& host, DeviceBuffer<float>& dst, const char* what, int64_t& bytes) {
  if (Status s = dst.allocate(host.size(), what); !s.ok()) return s;
  if (!host.empty()) {
    PAGODA_CUDA_TRY(cudaMemcpy(dst.get(), host.data(), dst.bytes(), cudaMemcpyHostToDevice));
  }
  bytes += static_cast<int64_t>(dst.bytes());
  return {};
}

Status upload_norm(const GgufTensorInfo& t, DeviceBuffer<float>& dst, int64_t& bytes) {
  auto host = tensor_to_f32(t);
  if (!host.ok()) return host.status();
  return upload_floats(host.value(), dst, t.name.c_str(), bytes);
}

}  // namespace

Result<DeviceWeights> upload_weights(const ModelWeights& w) {
  DeviceWeights d;
  if (Status s = upload_matrix({w.token_embd}, d.token_embd, d.bytes); !s.ok()) return s;
  if (w.output == w.token_embd) {
    d.lm_head.data = d.token_embd.data;
    d.lm_head.rows = d.token_embd.rows;
    d.lm_head.cols = d.token_embd.cols;
  } else if (Status s = upload_matrix({w.output}, d.lm_head, d.bytes); !s.ok()) {
    return s;
  }
  if (Status s = upload_norm(*w.output_norm, d.output_norm, d.bytes); !s.ok()) return s;
  if (Status s = upload_floats(w.rope_freq_factors, d.rope_freq_factors, "rope frequency factors", d.bytes); !s.ok()) {
    return s;
  }
  d.layers.resize(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    DeviceLayer& D = d.layers[l];
    for (Status s : {upload_norm(*L.attn_norm, D.attn_norm, d.bytes), upload_norm(*L.ffn_norm, D.ffn_norm, d.bytes),
                     upload_matrix({L.wq, L.wk, L.wv}, D.qkv, d.bytes), upload_matrix({L.wo}, D.wo, d.bytes),
                     upload_matrix({L.w_gate, L.w_up}, D.gate_up, d.bytes), upload_matrix({L.w_down}, D.down, d.bytes)}) {
      if (!s.ok()) return s;
    }
  }
  // cudaMemcpy from pageable memory may return before the copy lands, and on the legacy stream, which
  // the backend's non-blocking stream does not wait for.
  PAGODA_CUDA_TRY(cudaDeviceSynchronize());
  return d;
}

}  // namespace pagoda::engine::cuda
