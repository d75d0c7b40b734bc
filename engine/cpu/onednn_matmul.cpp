#include "engine/cpu/onednn_matmul.h"

#include <spdlog/fmt/fmt.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "engine/cpu/vec_kernels.h"

namespace pagoda::engine::cpu {

namespace {
// One CPU engine and one in-order stream for the process; oneDNN runs its own OpenMP threads.
dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& cpu_stream() {
  static dnnl::stream s(cpu_engine());
  return s;
}
}  // namespace

struct OnednnMatmul::Impl {
  dnnl::matmul prim;
  dnnl::matmul::primitive_desc pd;
  dnnl::memory weights;  // reordered, owned by oneDNN
};

OnednnMatmul::~OnednnMatmul() = default;

Result<std::unique_ptr<OnednnMatmul>> OnednnMatmul::create(const std::vector<const GgufTensorInfo*>& parts) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  std::unique_ptr<OnednnMatmul> mm(new OnednnMatmul());
  mm->k_ = parts.at(0)->dims[0];
  for (const GgufTensorInfo* t : parts) mm->n_ += t->dims[1];
  const int64_t K = mm->k_, N = mm->n_;

  // Dequantize to f32 row by row, then bf16, in the plain [N][K] layout (== a K x N matrix, tag ba).
  std::vector<uint16_t> plain(static_cast<size_t>(N * K));
  int64_t row0 = 0;
  for (const GgufTensorInfo* t : parts) {
    const int64_t rows = t->dims[1];
    Status err;
#pragma omp parallel
    {
      std::vector<float> tmp(K);
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        Status s = tensor_row_to_f32(*t, r, tmp.data());
        if (!s.ok()) {
#pragma omp critical
          err = s;
        }
        f32_to_bf16(tmp.data(), plain.data() + (row0 + r) * K, K);
      }
    }
    if (!err.ok()) return err;
    row0 += rows;
  }

  try {
    auto& eng = cpu_engine();
    const dnnl::memory::dim rt = DNNL_RUNTIME_DIM_VAL;
    dnnl::memory::desc src_md({rt, K}, dt::bf16, tag::ab);
    dnnl::memory::desc w_any({K, N}, dt::bf16, tag::any);
    dnnl::memory::desc dst_md({rt, N}, dt::f32, tag::ab);
    auto impl = std::make_unique<Impl>();
    impl->pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_any, dst_md), eng);
    impl->prim = dnnl::matmul(impl->pd);
    dnnl::memory w_plain({{K, N}, dt::bf16, tag::ba}, eng, plain.data());
    impl->weights = dnnl::memory(impl->pd.weights_desc(), eng);
    dnnl::reorder(w_plain, impl->weights).execute(cpu_stream(), w_plain, impl->weights);
    cpu_stream().wait();
    mm->impl_ = std::move(impl);
  } catch (const dnnl::error& e) {
    return Status::error(fmt::format("oneDNN matmul for '{}' ({}x{}): {}", parts[0]->name, N, K, e.what()));
  }
  return mm;
}

void OnednnMatmul::run(const uint16_t* x, int64_t M, float* y) const {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto& eng = cpu_engine();
  dnnl::memory src({{M, k_}, dt::bf16, tag::ab}, eng, const_cast<uint16_t*>(x));
  dnnl::memory dst({{M, n_}, dt::f32, tag::ab}, eng, y);
  impl_->prim.execute(cpu_stream(),
                      {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, impl_->weights}, {DNNL_ARG_DST, dst}});
  cpu_stream().wait();
}

std::string OnednnMatmul::impl_name() const { return impl_->pd.impl_info_str(); }

}  // namespace pagoda::engine::cpu
