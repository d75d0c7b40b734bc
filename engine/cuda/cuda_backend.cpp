// The CUDA backend (cuda_backend.h): the decoder forward pass ModelConfig::ops describes, over a
// ragged StepPlan. Per layer:
//   h = rmsnorm(x)                      (fused with the residual add of the previous block)
//   qkv = h Wqkv^T;  rope(q, k);  K, V -> paged pool by slot mapping
//   attn = paged_attention(q)           (causal, over the sequence's blocks, split when long)
//   x += attn Wo^T;  h = rmsnorm(x)     (one kernel)
//   x += (silu(h Wgate^T) * h Wup^T) Wdown^T
// then the LM head on the logits rows only. Every call's error becomes the step's Status.
#include "engine/cuda/cuda_backend.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cmath>
#include <vector>

#include "engine/cuda/attention.h"
#include "engine/cuda/cuda_status.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/kernels.h"
#include "engine/cuda/launch_plan.h"
#include "engine/cuda/step_graphs.h"

namespace pagoda::engine::cuda {

std::string CudaDeviceInfo::describe() const {
  return fmt::format("{} (device {}, sm_{}{}, {} SMs, {:.1f} GiB, {:.1f} GiB free)", name, index, major, minor, sm_count,
                     static_cast<double>(total_bytes) / (1 << 30), static_cast<double>(free_bytes) / (1 << 30));
}

Result<int32_t> cuda_device_count() {
  int n = 0;
  if (cudaError_t err = cudaGetDeviceCount(&n); err != cudaSuccess) {
    (void)cudaGetLastError();
    return Status::error(StatusCode::Unavailable, fmt::format("no usable CUDA device: {} ({})", cudaGetErrorName(err),
                                                              cudaGetErrorString(err)));
  }
  if (n == 0) return Status::error(StatusCode::Unavailable, "no CUDA device is visible");
  return n;
}

Result<CudaDeviceInfo> cuda_device_info(int32_t device) {
  auto n = cuda_device_count();
  if (!n.ok()) return n.status();
  if (device < 0 || device >= n.value()) {
    return Status::error(fmt::format("--device {} does not exist: {} CUDA device(s) visible", device, n.value()));
  }
  cudaDeviceProp prop{};
  PAGODA_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
  PAGODA_CUDA_TRY(cudaSetDevice(device));
  size_t free_b = 0, total_b = 0;
  PAGODA_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
  CudaDeviceInfo info;
  info.index = device;
  info.name = prop.name;
  info.major = prop.major;
  info.minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.total_bytes = static_cast<int64_t>(total_b);
  info.free_bytes = static_cast<int64_t>(free_b);
  return info;
}

namespace {

// Device scratch for one step, grown to the largest step seen.
struct StepBuffers {
  DeviceBuffer<int32_t> ints;  // the PackedStep
  DeviceBuffer<float> x, qkv, attn, out, gate_up, attn_ws, logits;
  DeviceBuffer<uint16_t> h, attn_bf16, act, head_in;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& o) : opts_(o) {}
  ~CudaBackend() override {
    if (!info_.name.empty()) cudaSetDevice(info_.index);
    graphs_.clear();
    weights_ = {};
    kv_.reset();
    buf_ = {};
    gemm_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }
  std::string name() const override { return "cuda"; }

  Status load(std::shared_ptr<const ModelWeights> weights) override {
    auto info = cuda_device_info(opts_.device);
    if (!info.ok()) return info.status();
    info_ = info.value();
    const ModelConfig& c = weights->config;
    if (c.head_dim > kMaxHeadDim || c.head_dim % 2 != 0) {
      return Status::error(fmt::format("the CUDA backend supports head_dim up to {} (even); the model has {}",
                                       kMaxHeadDim, c.head_dim));
    }
    // Layer ops this backend has no kernels for yet: refused by name rather than computed wrongly.
    if (c.ops.moe) {
      return Status::error(fmt::format("the CUDA backend does not implement routed experts ('{}' models{}) yet "
                                       "(use --backend cpu)",
                                       c.architecture, c.architecture == "llama" ? " with experts: Mixtral" : ""));
    }
    if (c.ops.qk_norm) {
      return Status::error(fmt::format("the CUDA backend does not implement the per-head Q/K RMSNorm of '{}' models "
                                       "yet (use --backend cpu)", c.architecture));
    }
    if (c.ops.ffn_activation != FfnActivation::Silu || c.ops.post_norms || c.ops.scale_embeddings ||
        c.attn_softcap > 0 || c.final_softcap > 0 || !c.swa_layers.empty() || c.rope_freq_scale != 1.0f) {
      return Status::error(fmt::format("the CUDA backend does not implement GeGLU, post-norms, embedding scaling, "
                                       "soft-capping, sliding windows or linear RoPE scaling ('{}' models) yet "
                                       "(use --backend cpu)", c.architecture));
    }
    if (c.ops.scale_q_before_attention || c.rope_scaling.attn_factor != 1.0f || !weights->rope_factors_long.empty() ||
        !weights->rope_factors_short.empty()) {
      return Status::error(fmt::format("the CUDA backend does not implement the Q pre-scaling and LongRoPE attn_factor "
                                       "of '{}' models yet (use --backend cpu)", c.architecture));
    }
    for (const LayerWeights& L : weights->layers) {
      if (L.bq) {
        return Status::error(fmt::format("the CUDA backend does not implement attention biases (attn_q/k/v.bias, "
                                         "'{}' models) yet (use --backend cpu)", c.architecture));
      }
    }
    if (!stream_) PAGODA_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (!gemm_) {
      auto g = Gemm::create(opts_.decode_gemv);
      if (!g.ok()) return g.status();
      gemm_ = std::move(g.value());
    }
    auto dw = upload_weights(*weights);
    if (!dw.ok()) return dw.status();
    graphs_.clear();  // they hold the old weights' addresses
    weights_ = std::move(dw.value());
    w_ = std::move(weights);
    rope_.head_dim = c.head_dim;
    rope_.rope_dim = c.head_dim;
    rope_.theta_scale = std::pow(c.rope_theta, -2.0f / static_cast<float>(c.head_dim));
    rope_.freq_factors = weights_.rope_freq_factors.size() ? weights_.rope_freq_factors.get() : nullptr;
    rope_.neox = c.ops.rope == RopeStyle::HalfSplit;
    spdlog::info("cuda: {}; weights {:.2f} GiB in bf16", info_.describe(),
                 static_cast<double>(weights_.bytes) / (1 << 30));
    return {};
  }

  Status allocate_kv(const KvCacheShape& shape) override {
    if (!w_) return Status::error("allocate_kv: load() the model first");
    if (Status s = use_device(); !s.ok()) return s;
    static constexpr KvDtype kSupported[] = {KvDtype::F16};  // the kernels' __half KV
    if (Status s = check_kv_shape(shape, kSupported); !s.ok()) return s;
    if (shape.num_window_blocks > 0) return Status::error("allocate_kv: the CUDA backend has no window pool");
    graphs_.clear();  // they hold the old pool's address
    kv_shape_ = shape;
    layer_elems_ = static_cast<int64_t>(shape.num_blocks) * block_elems();
    if (Status s = kv_.allocate(static_cast<size_t>(layer_elems_ * w_->config.n_layers), "the KV pool"); !s.ok()) {
      kv_shape_ = {};
      return s;
    }
    PAGODA_CUDA_TRY(cudaMemsetAsync(kv_.get(), 0, kv_.bytes(), stream_));
    PAGODA_CUDA_TRY(cudaStreamSynchronize(stream_));
    // The largest step's scratch now, so it cannot fail for memory the pool took.
    const size_t attn_ws = static_cast<size_t>(max_attention_workspace_floats(w_->config, opts_.max_step_tokens));
    if (Status s = reserve_step(opts_.max_step_tokens, opts_.max_step_logits, 0, attn_ws); !s.ok()) return s;
    spdlog::info("cuda: KV pool {} blocks of {} tokens, {:.2f} GiB; step scratch {:.2f} GiB", shape.num_blocks,
                 shape.block_size, static_cast<double>(kv_.bytes()) / (1 << 30),
                 static_cast<double>(scratch_bytes()) / (1 << 30));
    return {};
  }
  KvCacheShape kv_shape() const override { return kv_shape_; }
  int64_t kv_memory_available() const override {
    size_t free_b = 0, total_b = 0;
    if (!w_ || cudaSetDevice(info_.index) != cudaSuccess || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    // The pool and scratch being replaced (load_model sizes the pool after a one-block probe) are free
    // memory too; the largest step's scratch is set aside.
    const int64_t held = static_cast<int64_t>(kv_.bytes()) + scratch_bytes();
    return kv_memory_available_on_device(static_cast<int64_t>(free_b) + held, static_cast<int64_t>(total_b),
                                         step_scratch_bytes(w_->config, opts_.max_step_tokens, opts_.max_step_logits));
  }
  int64_t kv_bytes_per_block() const override {
    return w_ ? block_elems() * w_->config.n_layers * kv_dtype_bytes(kv_shape_.dtype) : 0;
  }

  Status copy_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) override {
    if (src_dst.empty()) return {};
    if (Status s = usable(); !s.ok()) return s;
    std::vector<int32_t> flat;
    flat.reserve(src_dst.size() * 2);
    std::vector<bool> written(static_cast<size_t>(kv_shape_.num_blocks), false);
    bool in_order = false;  // a pair reads or rewrites a block an earlier pair wrote
    for (auto [src, dst] : src_dst) {
      if (src < 0 || dst < 0 || src >= kv_shape_.num_blocks || dst >= kv_shape_.num_blocks) {
        return Status::error(fmt::format("copy_blocks: block pair ({}, {}) outside the pool of {}", src, dst,
                                         kv_shape_.num_blocks));
      }
      in_order = in_order || written[src] || written[dst];
      written[dst] = true;
      flat.push_back(src);
      flat.push_back(dst);
    }
    return check_sticky(copy_pairs(flat, in_order));
  }

  BackendInfo info() const override {
    BackendInfo i;
    i.kernels = fmt::format("cuda: {}; bf16 weights, {} (fp32 accumulate), fp16 paged KV, CUDA graphs {}",
                            info_.describe(),
                            opts_.decode_gemv ? "few-row kernel for <= 8 rows, cuBLASLt above" : "cuBLASLt GEMMs",
                            opts_.graph_max_tokens > 0 ? fmt::format("for steps <= {} tokens", opts_.graph_max_tokens)
                                                       : std::string("off"));
    i.decode_weight_bytes = weights_.lm_head.bytes();
    for (const DeviceLayer& L : weights_.layers) {
      i.decode_weight_bytes += L.qkv.bytes() + L.wo.bytes() + L.gate_up.bytes() + L.down.bytes();
    }
    return i;
  }

  CudaGraphStats graph_stats() const {
    return {graphs_.captures(), graphs_.replays(), static_cast<int64_t>(graphs_.size()), graphs_.enabled()};
  }

  Status execute(const StepPlan& plan, std::span<float> logits) override {
    if (!w_ || kv_.size() == 0) return Status::error("execute: the backend has no model or no KV cache");
    if (Status s = usable(); !s.ok()) return s;
    const ModelConfig& c = w_->config;
    if (Status s = plan.validate(kv_shape_.num_blocks, kv_shape_.block_size, c.vocab_size); !s.ok()) return s;
    const size_t want = plan.logits_indices.size() * static_cast<size_t>(c.vocab_size);
    if (logits.size() < want) {
      return Status::error(fmt::format("execute: logits buffer holds {} floats, the plan needs {}", logits.size(), want));
    }
    if (plan.num_tokens() == 0) return {};
    return check_sticky(run_step(plan, logits.first(want)));
  }

 private:
  // Every call that touches the GPU makes this backend's device current first: the engine loop calls
  // from its own thread, where another device (0) may be current.
  Status use_device() const {
    PAGODA_CUDA_TRY(cudaSetDevice(info_.index));
    return {};
  }
  Status usable() const {
    if (!broken_.empty()) return Status::error(StatusCode::Unavailable, broken_);
    return use_device();
  }
  // A kernel fault (illegal address, a trap ...) leaves the CUDA context unusable: every later call fails
  // the same way. Such an error marks the backend broken: later steps fail at once with Unavailable,
  // naming the first error, instead of each failing obscurely.
  Status check_sticky(Status s) {
    if (s.ok()) return s;
    const cudaError_t err = cudaDeviceSynchronize();
    if (err == cudaErrorIllegalAddress || err == cudaErrorLaunchFailure || err == cudaErrorIllegalInstruction ||
        err == cudaErrorMisalignedAddress || err == cudaErrorHardwareStackError || err == cudaErrorAssert ||
        err == cudaErrorInvalidPc || err == cudaErrorECCUncorrectable || err == cudaErrorInvalidAddressSpace) {
      broken_ = fmt::format("the GPU context is lost ({}: {}); restart the server. First failure: {}",
                            cudaGetErrorName(err), cudaGetErrorString(err), s.message());
      spdlog::error("cuda: {}", broken_);
      return Status::error(StatusCode::Unavailable, broken_);
    }
    (void)cudaGetLastError();
    return s;
  }

  Status run_step(const StepPlan& plan, std::span<float> logits) {
    if (Status s = forward(plan); !s.ok()) return s;
    if (!logits.empty()) {
      PAGODA_CUDA_TRY(cudaMemcpyAsync(logits.data(), buf_.logits.get(), logits.size_bytes(), cudaMemcpyDeviceToHost,
                                      stream_));
    }
    PAGODA_CUDA_TRY(cudaStreamSynchronize(stream_));
    return {};
  }

  // One launch for all pairs, or one per pair (the stream orders them) when a pair depends on an
  // earlier one: the kernel copies its pairs concurrently.
  Status copy_pairs(const std::vector<int32_t>& flat, bool in_order) {
    if (Status s = pairs_.reserve(flat.size(), "copy_blocks pairs"); !s.ok()) return s;
    PAGODA_CUDA_TRY(cudaMemcpyAsync(pairs_.get(), flat.data(), flat.size() * 4, cudaMemcpyHostToDevice, stream_));
    const int32_t n = static_cast<int32_t>(flat.size() / 2);
    for (int32_t p = 0; p < (in_order ? n : 1); ++p) {
      PAGODA_CUDA_TRY(copy_kv_blocks(kv_.get(), layer_elems_, w_->config.n_layers, block_elems(),
                                     pairs_.get() + (in_order ? 2 * p : 0), in_order ? 1 : n, stream_));
    }
    PAGODA_CUDA_TRY(cudaStreamSynchronize(stream_));  // `flat` may go once this returns
    return {};
  }

  int64_t block_elems() const {
    const ModelConfig& c = w_->config;
    return 2LL * c.n_kv_heads * kv_shape_.block_size * c.head_dim;
  }

  // Grows the step buffers to T tokens and R logits rows (and the packed indices and attention
  // partials to the given sizes).
  Status reserve_step(int64_t T, int64_t R, size_t ints, size_t attn_ws) {
    const ModelConfig& c = w_->config;
    const size_t t = static_cast<size_t>(T), r = static_cast<size_t>(R);
    const size_t d = c.d_model, qkv = c.q_dim() + 2 * c.kv_dim(), ff = c.ffn_dim;
    for (Status s : {buf_.ints.reserve(ints, "step indices"), buf_.x.reserve(t * d, "activations"),
                     buf_.qkv.reserve(t * qkv, "q|k|v"), buf_.attn.reserve(t * c.q_dim(), "attention output"),
                     buf_.out.reserve(t * d, "block output"), buf_.gate_up.reserve(t * 2 * ff, "gate|up"),
                     buf_.attn_ws.reserve(attn_ws, "attention splits"), buf_.logits.reserve(r * c.vocab_size, "logits"),
                     buf_.h.reserve(t * d, "normed activations"),
                     buf_.attn_bf16.reserve(t * c.q_dim(), "attention output (bf16)"),
                     buf_.act.reserve(t * ff, "feed-forward activations"), buf_.head_in.reserve(r * d, "LM head input")}) {
      if (!s.ok()) return s;
    }
    return {};
  }
  std::array<const void*, 12> scratch_pointers() const {
    return {buf_.ints.get(), buf_.x.get(),      buf_.qkv.get(),       buf_.attn.get(), buf_.out.get(),
            buf_.gate_up.get(), buf_.attn_ws.get(), buf_.logits.get(), buf_.h.get(), buf_.attn_bf16.get(),
            buf_.act.get(),  buf_.head_in.get()};
  }
  int64_t scratch_bytes() const {
    int64_t n = 0;
    for (size_t b : {buf_.ints.bytes(), buf_.x.bytes(), buf_.qkv.bytes(), buf_.attn.bytes(), buf_.out.bytes(),
                     buf_.gate_up.bytes(), buf_.attn_ws.bytes(), buf_.logits.bytes(), buf_.h.bytes(),
                     buf_.attn_bf16.bytes(), buf_.act.bytes(), buf_.head_in.bytes()}) {
      n += static_cast<int64_t>(b);
    }
    return n;
  }

  // Packs the step's integers, sizes the scratch, uploads the integers, then launches the kernels:
  // through a CUDA graph for steps of at most opts_.graph_max_tokens tokens, else eagerly.
  Status forward(const StepPlan& plan) {
    const ModelConfig& c = w_->config;
    // A member: the upload below may still read it after forward() returns.
    packed_ = pack_step(plan, padded_block_table_width(plan.max_blocks_per_seq));
    const PackedStep& p = packed_;
    const AttentionSplit split =
        choose_attention_split(context_bucket(p.max_context), p.num_tokens, c.n_heads, c.head_dim, kv_shape_.block_size);
    const auto before = scratch_pointers();
    const Status reserved = reserve_step(p.num_tokens, p.num_logits, p.data.size(),
                                         attention_workspace_floats(p.num_tokens, c.n_heads, c.head_dim, split));
    // A buffer that moved (even when a later one then failed to grow) leaves graphs pointing at freed memory.
    if (scratch_pointers() != before) graphs_.clear();
    if (!reserved.ok()) return reserved;
    PAGODA_CUDA_TRY(cudaMemcpyAsync(buf_.ints.get(), p.data.data(), p.data.size() * sizeof(int32_t),
                                    cudaMemcpyHostToDevice, stream_));
    if (p.num_tokens > opts_.graph_max_tokens) return enqueue_step(p, split);
    const StepShape shape{p.num_tokens, p.num_seqs, p.max_blocks_per_seq, p.num_logits, split.num_splits};
    return graphs_.run(shape, stream_, [&] { return enqueue_step(p, split); });
  }

  // The step's kernels on stream_, reading its integers from buf_.ints; nothing else (a graph
  // captures exactly this).
  Status enqueue_step(const PackedStep& p, const AttentionSplit& split) {
    const ModelConfig& c = w_->config;
    const int32_t* ints = buf_.ints.get();
    const int32_t T = p.num_tokens, d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.ffn_dim;
    const int64_t stride = qd + 2 * kvd;
    float* x = buf_.x.get();
    float* qkv = buf_.qkv.get();
    float* out = buf_.out.get();
    uint16_t* h = buf_.h.get();

    PAGODA_CUDA_TRY(embed_tokens(weights_.token_embd.data, ints + p.token_ids, T, d, x, stream_));
    PagedAttentionArgs attn;
    attn.q = qkv;
    attn.q_stride = stride;
    attn.out = buf_.attn.get();
    attn.positions = ints + p.positions;
    attn.token_seq = ints + p.token_seq;
    attn.block_tables = ints + p.block_tables;
    attn.max_blocks_per_seq = p.max_blocks_per_seq;
    attn.num_tokens = T;
    attn.n_heads = c.n_heads;
    attn.n_kv_heads = c.n_kv_heads;
    attn.head_dim = c.head_dim;
    attn.block_size = kv_shape_.block_size;
    attn.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

    for (int l = 0; l < c.n_layers; ++l) {
      const DeviceLayer& L = weights_.layers[l];
      uint16_t* kv_layer = kv_.get() + l * layer_elems_;
      // x += previous block's output (none before layer 0); h = rmsnorm(x) * attn_norm.
      PAGODA_CUDA_TRY(add_rms_norm(x, l == 0 ? nullptr : out, L.attn_norm.get(), nullptr, T, d, c.rms_eps, h, nullptr,
                                   stream_));
      if (Status s = gemm_->run(h, L.qkv.data, qkv, T, L.qkv.rows, d, stream_); !s.ok()) return s;
      PAGODA_CUDA_TRY(rope(qkv, stride, ints + p.positions, T, c.n_heads, rope_, stream_));
      PAGODA_CUDA_TRY(rope(qkv + qd, stride, ints + p.positions, T, c.n_kv_heads, rope_, stream_));
      PAGODA_CUDA_TRY(write_kv(qkv + qd, qkv + qd + kvd, stride, ints + p.slot_mapping, T, kv_layer,
                               kv_shape_.block_size, c.n_kv_heads, c.head_dim, stream_));
      attn.kv = kv_layer;
      PAGODA_CUDA_TRY(paged_attention(attn, split, buf_.attn_ws.get(), stream_));
      PAGODA_CUDA_TRY(f32_to_bf16(buf_.attn.get(), static_cast<int64_t>(T) * qd, buf_.attn_bf16.get(), stream_));
      if (Status s = gemm_->run(buf_.attn_bf16.get(), L.wo.data, out, T, d, qd, stream_); !s.ok()) return s;
      PAGODA_CUDA_TRY(add_rms_norm(x, out, L.ffn_norm.get(), nullptr, T, d, c.rms_eps, h, nullptr, stream_));
      if (Status s = gemm_->run(h, L.gate_up.data, buf_.gate_up.get(), T, 2 * ff, d, stream_); !s.ok()) return s;
      PAGODA_CUDA_TRY(silu_mul(buf_.gate_up.get(), T, ff, buf_.act.get(), stream_));
      if (Status s = gemm_->run(buf_.act.get(), L.down.data, out, T, d, ff, stream_); !s.ok()) return s;
    }
    // The last residual add and the output norm, on the logits rows only; then the LM head.
    // (The add covers every row: a logits index may repeat, and a fused gather would add it twice.)
    if (p.num_logits > 0) {
      PAGODA_CUDA_TRY(add_inplace(x, out, static_cast<int64_t>(T) * d, stream_));
      PAGODA_CUDA_TRY(add_rms_norm(x, nullptr, weights_.output_norm.get(), ints + p.logits_indices, p.num_logits, d,
                                   c.rms_eps, buf_.head_in.get(), nullptr, stream_));
      if (Status s = gemm_->run(buf_.head_in.get(), weights_.lm_head.data, buf_.logits.get(), p.num_logits,
                                c.vocab_size, d, stream_);
          !s.ok()) {
        return s;
      }
    }
    return {};
  }

  CudaBackendOptions opts_;
  CudaDeviceInfo info_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  std::shared_ptr<const ModelWeights> w_;
  DeviceWeights weights_;
  RopeParams rope_;
  KvCacheShape kv_shape_;
  int64_t layer_elems_ = 0;
  DeviceBuffer<uint16_t> kv_;
  DeviceBuffer<int32_t> pairs_;
  StepBuffers buf_;
  PackedStep packed_;
  StepGraphs graphs_;
  std::string broken_;  // set once the CUDA context is lost: every later call fails with it
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

CudaGraphStats cuda_graph_stats(const Backend& backend) {
  const auto* b = dynamic_cast<const CudaBackend*>(&backend);
  return b ? b->graph_stats() : CudaGraphStats{};
}

}  // namespace pagoda::engine::cuda
