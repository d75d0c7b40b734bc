// The CPU backend: the decoder forward pass ModelConfig::ops describes (engine/model/architecture.h)
// over a ragged StepPlan, with a paged fp16 KV cache.
// Matmuls run on the GGUF's own 4/8-bit blocks with int8 activations (quant_matrix.h), or on its F16 /
// F32 values in ggml's order of summation (float_matrix.h): a decode step reads as few bytes as
// llama.cpp's, and every rounding is ggml's, so the logits are llama.cpp's bit for bit. Optionally (CpuBackendOptions::prefill_matmul) large steps use oneDNN's
// bf16 matmul instead.
#include <omp.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>

#include "engine/backend.h"
#include "engine/cpu/cpu_features.h"
#include "engine/cpu/float_matrix.h"
#include "engine/cpu/moe_routing.h"
#include "engine/cpu/onednn_matmul.h"
#include "engine/cpu/paged_attention.h"
#include "engine/cpu/quant_matrix.h"
#include "engine/cpu/vec_kernels.h"

namespace pagoda::engine {

namespace {

using cpu::FloatMatrix;
using cpu::OnednnMatmul;
using cpu::QuantActs;
using cpu::QuantMatrix;

// MemAvailable of /proc/meminfo: what the host can give a KV pool without swapping.
int64_t host_memory_available() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kib = 0;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

// The kinds of operation profile_ops times (take_op_profile), in the order of a layer.
enum ProfiledOp {
  kEmbed,         // token embedding rows (and gemma's scaling)
  kNorms,         // RMS norms, post-norms, residual adds
  kAttnMatmuls,   // QKV and output projections
  kAttention,     // biases, Q/K norms, RoPE, the KV write, scores, softmax, values
  kFfn,           // a dense FFN: gate/up, activation, down
  kMoeRouting,    // the router's matmul, softmax and top-k, grouping tokens by expert
  kMoeDispatch,   // gathering each expert's rows, weighting and combining the k outputs per token
  kMoeExperts,    // the experts' matmuls and activations
  kLmHead,        // final norm, LM head, logit soft-cap
  kNumProfiledOps
};
constexpr std::array<const char*, kNumProfiledOps> kProfiledOpNames = {
    "embed", "norms", "attn_matmuls", "attention", "ffn", "moe_routing", "moe_dispatch", "moe_experts", "lm_head"};

// One linear layer: F16 / F32 weights in their own type (float_matrix.h), any other in the int8 form
// (quant_matrix.h); plus the oneDNN bf16 form when that prefill path is on.
struct Linear {
  QuantMatrix quant;
  FloatMatrix flt;
  bool is_float = false;
  std::unique_ptr<OnednnMatmul> gemm;

  // `tinyblas`: F16/F32 weights may take tinyBLAS's order for multi-row steps (false for experts:
  // ggml's MUL_MAT_ID always uses vec_dot).
  // The weights end up in `arena` (huge pages, packed with the model's other matrices).
  static Result<Linear> create(const std::vector<const GgufTensorInfo*>& parts,
                               const std::shared_ptr<cpu::HugePageArena>& arena, bool with_bf16,
                               bool tinyblas = true) {
    Linear lin;
    if (cpu::is_float_matrix(parts)) {
      auto f = cpu::make_float_matrix(parts, tinyblas);
      if (!f.ok()) return f.status();
      lin.flt = std::move(f.value());
      cpu::move_into(lin.flt, arena);
      lin.is_float = true;
    } else {
      auto q = cpu::make_quant_matrix(parts);
      if (!q.ok()) return q.status();
      lin.quant = std::move(q.value());
      cpu::move_into(lin.quant, arena);
    }
    if (with_bf16) {
      auto g = OnednnMatmul::create(parts);
      if (!g.ok()) return g.status();
      lin.gemm = std::move(g.value());
    }
    return lin;
  }
  int64_t rows() const { return is_float ? flt.rows : quant.rows; }
  int64_t weight_bytes() const { return is_float ? flt.weight_bytes() : quant.weight_bytes(); }
};

struct Layer {
  std::vector<float> attn_norm, ffn_norm;
  std::vector<float> attn_post_norm, ffn_post_norm;  // LayerOps::post_norms; empty = none
  std::vector<float> qkv_bias;        // Q, K, V biases stacked as the qkv rows are; empty = none
  std::vector<float> q_norm, k_norm;  // per-head RMSNorm weights (LayerOps::qk_norm); empty = none
  Linear qkv;      // Q, K, V stacked: one matmul
  Linear wo;
  Linear gate_up;  // gate and up stacked (dense FFN)
  Linear down;
  // Routed experts (LayerOps::moe): the router, and per expert its gate and up stacked, and down.
  Linear router;
  std::vector<Linear> exp_gate_up, exp_down;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& o) : opts_(o) {
    if (opts_.num_threads > 0) omp_set_num_threads(opts_.num_threads);
  }
  std::string name() const override { return "cpu"; }

  Status load(std::shared_ptr<const ModelWeights> weights) override {
    if (bf16_enabled() && !cpu::cpu_features().avx512) {
      // oneDNN 2.6 has bf16 matmul kernels for AVX-512 only; on AVX2 it finds no implementation.
      return Status::error(fmt::format("the oneDNN bf16 prefill matmul is not available on this CPU: oneDNN needs "
                                       "AVX-512 for it, this CPU has {} (use the int8 path)",
                                       cpu::cpu_features().describe()));
    }
    w_ = std::move(weights);
    const ModelConfig& c = w_->config;
    layers_.clear();
    weight_arena_ = cpu::HugePageArena::create();
    layers_.resize(c.n_layers);
    for (int l = 0; l < c.n_layers; ++l) {
      const LayerWeights& L = w_->layers[l];
      Layer& dst = layers_[l];
      auto an = tensor_to_f32(*L.attn_norm);
      auto fn = tensor_to_f32(*L.ffn_norm);
      if (!an.ok()) return an.status();
      if (!fn.ok()) return fn.status();
      dst.attn_norm = std::move(an.value());
      dst.ffn_norm = std::move(fn.value());
      for (const GgufTensorInfo* b : {L.bq, L.bk, L.bv}) {
        if (!b) continue;
        auto v = tensor_to_f32(*b);
        if (!v.ok()) return v.status();
        dst.qkv_bias.insert(dst.qkv_bias.end(), v.value().begin(), v.value().end());
      }
      for (auto [norm, t] : {std::pair{&dst.q_norm, L.q_norm}, std::pair{&dst.k_norm, L.k_norm},
                             std::pair{&dst.attn_post_norm, L.attn_post_norm},
                             std::pair{&dst.ffn_post_norm, L.ffn_post_norm}}) {
        if (!t) continue;
        auto v = tensor_to_f32(*t);
        if (!v.ok()) return v.status();
        *norm = std::move(v.value());
      }
      // A fused file's matrix as it is (ggml decides repacking and tinyBLAS on the whole of it), else ours.
      const auto qkv = L.wqkv ? std::vector{L.wqkv} : std::vector{L.wq, L.wk, L.wv};
      const auto gate_up = L.w_gate_up ? std::vector{L.w_gate_up} : std::vector{L.w_gate, L.w_up};
      for (auto [lin, parts] : {std::pair{&dst.qkv, qkv}, std::pair{&dst.wo, std::vector{L.wo}},
                                std::pair{&dst.gate_up, gate_up},
                                std::pair{&dst.down, std::vector{L.w_down}}}) {
        if (parts[0] == nullptr) continue;  // no dense FFN in a MoE layer
        auto r = Linear::create(parts, weight_arena_, bf16_enabled());
        if (!r.ok()) return r.status();
        *lin = std::move(r.value());
      }
      if (c.ops.moe) {
        if (Status s = load_experts(L, dst); !s.ok()) return s;
      }
    }
    auto on = tensor_to_f32(*w_->output_norm);
    if (!on.ok()) return on.status();
    output_norm_ = std::move(on.value());
    // The LM head stays on the exact path (int8, or its F16/F32 values): it only ever sees the few rows
    // that want logits.
    auto head = Linear::create({w_->output}, weight_arena_, false);
    if (!head.ok()) return head.status();
    lm_head_ = std::move(head.value());

    rope_theta_scale_ = std::pow(c.rope_theta, -2.0f / static_cast<float>(c.head_dim));
    rope_theta_scale_swa_ = std::pow(c.rope_theta_swa, -2.0f / static_cast<float>(c.head_dim));
    spdlog::debug("{}", info().kernels);
    return {};
  }

  Status allocate_kv(const KvCacheShape& shape) override {
    if (!w_) return Status::error("allocate_kv: load() the model first");
    static constexpr KvDtype kSupported[] = {KvDtype::F16};  // cpu::KvScalar
    static_assert(sizeof(cpu::KvScalar) == 2);
    if (Status s = check_kv_shape(shape, kSupported); !s.ok()) return s;
    if (shape.num_window_blocks > 0 && kv_window() == 0) {
      return Status::error("allocate_kv: a window pool, but the model has no sliding-window layers");
    }
    // Each layer's slice: the main pool's blocks, or the window pool's for a windowed layer when there
    // is one. The backend keeps its old pool and shape if the new one cannot be had.
    const KvCacheShape old_shape = kv_shape_;
    kv_shape_ = shape;  // (in_window_pool and block_elems read it)
    std::vector<int64_t> offsets(static_cast<size_t>(w_->config.n_layers), 0);
    int64_t total = 0;
    for (int l = 0; l < w_->config.n_layers; ++l) {
      offsets[l] = total;
      total += static_cast<int64_t>(in_window_pool(l) ? shape.num_window_blocks : shape.num_blocks) * block_elems();
    }
    try {
      // A pool of its own (an arena never frees: a new shape replaces the old pool whole).
      kv_ = cpu::ArenaVector<cpu::KvScalar>(static_cast<size_t>(total), cpu::KvScalar(0),
                                            cpu::ArenaAllocator<cpu::KvScalar>(cpu::HugePageArena::create()));
    } catch (const std::bad_alloc&) {
      kv_shape_ = old_shape;
      return Status::error(fmt::format("allocate_kv: cannot allocate {} MiB for {} KV blocks and {} window blocks",
                                       total * kv_dtype_bytes(shape.dtype) >> 20, shape.num_blocks,
                                       shape.num_window_blocks));
    }
    layer_offset_ = std::move(offsets);
    return {};
  }
  KvCacheShape kv_shape() const override { return kv_shape_; }
  int64_t kv_memory_available() const override { return host_memory_available(); }
  int64_t kv_bytes_per_block() const override {
    return w_ ? pool_layers(false) * block_elems() * kv_dtype_bytes(kv_shape_.dtype) : 0;
  }
  int32_t kv_window() const override {
    if (!w_) return 0;
    for (int l = 0; l < w_->config.n_layers; ++l) {
      if (w_->config.is_swa(l)) return w_->config.sliding_window;
    }
    return 0;
  }
  int64_t kv_bytes_per_window_block() const override {
    return w_ ? pool_layers(true) * block_elems() * kv_dtype_bytes(kv_shape_.dtype) : 0;
  }

  Status copy_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) override {
    return copy_pool_blocks(src_dst, false);
  }
  Status copy_window_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst) override {
    return copy_pool_blocks(src_dst, true);
  }

  BackendInfo info() const override {
    BackendInfo i;
    i.kernels = fmt::format("cpu: {} threads, {}; int8 matmul {} (F16/F32 weights: ggml's own float order), oneDNN "
                            "bf16 prefill {}",
                            omp_get_max_threads(),
                            cpu::cpu_features().describe(), cpu::quant_gemv_kernel_name(),
                            layers_.empty() || !layers_[0].qkv.gemm ? "off" : layers_[0].qkv.gemm->impl_name());
    // A decode step reads every matrix in the form its kernel uses (int8 blocks, or F16/F32 values);
    // the embedding only a row.
    i.decode_weight_bytes = lm_head_.weight_bytes();
    for (const Layer& L : layers_) {
      i.decode_weight_bytes += L.qkv.weight_bytes() + L.wo.weight_bytes() + L.gate_up.weight_bytes() +
                               L.down.weight_bytes() + L.router.weight_bytes();
      // A decode step reads the k experts its token is routed to.
      if (!L.exp_gate_up.empty()) {
        i.decode_weight_bytes += w_->config.n_experts_used *
                                 (L.exp_gate_up[0].weight_bytes() + L.exp_down[0].weight_bytes());
      }
    }
    return i;
  }

  Status execute(const StepPlan& plan, std::span<float> logits) override {
    if (!w_ || kv_.empty()) return Status::error("execute: the backend has no model or no KV cache");
    // OpenMP's thread count is per calling thread, and steps run on the engine loop's thread, not
    // the one that built this backend.
    if (opts_.num_threads > 0 && omp_get_max_threads() != opts_.num_threads) omp_set_num_threads(opts_.num_threads);
    const ModelConfig& c = w_->config;
    if (Status s = plan.validate(kv_shape_.num_blocks, kv_shape_.block_size, c.vocab_size, kv_shape_.num_window_blocks,
                                 kv_shape_.num_window_blocks > 0 ? kv_window() : 0);
        !s.ok()) {
      return s;
    }
    const size_t want = plan.logits_indices.size() * static_cast<size_t>(c.vocab_size);
    if (logits.size() < want) {
      return Status::error(fmt::format("execute: logits buffer holds {} floats, the plan needs {}", logits.size(), want));
    }
    try {
      forward(plan, logits.data());
      if (opts_.profile_ops) ++prof_steps_;
    } catch (const std::bad_alloc&) {  // step scratch: a step (or a model's shape) too large for this host
      return Status::error(fmt::format("execute: out of memory for the step's scratch buffers ({} tokens)",
                                       plan.num_tokens()));
    }
    return {};
  }

  OpProfile take_op_profile() override {
    OpProfile p;
    if (!opts_.profile_ops) return p;
    p.steps = prof_steps_;
    for (int k = 0; k < kNumProfiledOps; ++k) p.seconds.emplace_back(kProfiledOpNames[k], prof_s_[k]);
    prof_s_.fill(0.0);
    prof_steps_ = 0;
    return p;
  }

 private:
  // Whether layer l's K/V live in the window pool (only when there is one).
  bool in_window_pool(int l) const { return kv_shape_.num_window_blocks > 0 && w_->config.is_swa(l); }
  // Layers in the window pool (window) or the main pool.
  int64_t pool_layers(bool window) const {
    int64_t n = 0;
    for (int l = 0; l < w_->config.n_layers; ++l) n += in_window_pool(l) == window;
    return n;
  }

  Status copy_pool_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst, bool window) {
    const int32_t blocks = window ? kv_shape_.num_window_blocks : kv_shape_.num_blocks;
    for (auto [src, dst] : src_dst) {
      if (src < 0 || dst < 0 || src >= blocks || dst >= blocks) {
        return Status::error(fmt::format("copy_blocks: block pair ({}, {}) outside the {}pool of {}", src, dst,
                                         window ? "window " : "", blocks));
      }
      for (int l = 0; l < w_->config.n_layers; ++l) {
        if (in_window_pool(l) != window) continue;
        cpu::KvScalar* base = kv_.data() + layer_offset_[l];
        std::memcpy(base + dst * block_elems(), base + src * block_elems(), block_elems() * sizeof(cpu::KvScalar));
      }
    }
    return {};
  }

  int64_t block_elems() const {
    const ModelConfig& c = w_->config;
    return 2LL * c.n_kv_heads * kv_shape_.block_size * c.head_dim;
  }

  bool bf16_enabled() const { return opts_.prefill_matmul == PrefillMatmul::OnednnBf16; }

  // The router and each expert's matrices (slices of the 3-D expert tensors). They stay on the exact
  // int8 / float paths: an expert sees few rows per step.
  Status load_experts(const LayerWeights& L, Layer& dst) {
    const ModelConfig& c = w_->config;
    if (c.n_experts > cpu::kMaxExperts) {
      return Status::error(fmt::format("{} experts: the CPU backend routes at most {}", c.n_experts, cpu::kMaxExperts));
    }
    auto router = Linear::create({L.router}, weight_arena_, false);
    if (!router.ok()) return router.status();
    dst.router = std::move(router.value());
    dst.exp_gate_up.clear();
    dst.exp_down.clear();
    for (int e = 0; e < c.n_experts; ++e) {
      const GgufTensorInfo gate = tensor_slice(*L.exp_gate, e), up = tensor_slice(*L.exp_up, e),
                           down = tensor_slice(*L.exp_down, e);
      auto gu = Linear::create({&gate, &up}, weight_arena_, false, /*tinyblas=*/false);
      if (!gu.ok()) return gu.status();
      auto dn = Linear::create({&down}, weight_arena_, false, /*tinyblas=*/false);
      if (!dn.ok()) return dn.status();
      dst.exp_gate_up.push_back(std::move(gu.value()));
      dst.exp_down.push_back(std::move(dn.value()));
    }
    return {};
  }

  // x += the experts' output for every token, h = ffn_norm(x) (llama.cpp's build_moe_ffn): route each
  // token to its k experts, run each expert once over the tokens routed to it, then per token weight
  // the k outputs and add them up in routing order.
  void moe_ffn(const Layer& L, int64_t T) {
    const ModelConfig& c = w_->config;
    const int64_t d = c.d_model, E = c.n_experts, K = c.n_experts_used, fe = c.expert_ffn_dim;
    const bool many = T > 4;
    router_.resize(static_cast<size_t>(T * E));
    linear(L.router, h_.data(), T, router_.data());
    chosen_.resize(static_cast<size_t>(T * K));
    chosen_w_.resize(chosen_.size());
#pragma omp parallel for if (many)
    for (int64_t t = 0; t < T; ++t) {
      cpu::moe_route(&router_[t * E], static_cast<int>(E), static_cast<int>(K), &chosen_[t * K], &chosen_w_[t * K]);
    }
    // The slots (token * k + rank) routed to each expert, ascending: expert e's are
    // expert_slots_[expert_start_[e] .. expert_start_[e + 1]) (a counting sort).
    expert_start_.assign(static_cast<size_t>(E + 1), 0);
    for (int64_t slot = 0; slot < T * K; ++slot) ++expert_start_[chosen_[slot] + 1];
    for (int64_t e = 0; e < E; ++e) expert_start_[e + 1] += expert_start_[e];
    expert_slots_.resize(static_cast<size_t>(T * K));
    expert_fill_.assign(expert_start_.begin(), expert_start_.end() - 1);
    for (int64_t slot = 0; slot < T * K; ++slot) {
      expert_slots_[expert_fill_[chosen_[slot]]++] = static_cast<int32_t>(slot);
    }
    expert_out_.resize(static_cast<size_t>(T * K * d));
    lap(kMoeRouting);
    // Expert by expert, on this thread apart from the matmuls: an expert sees a few rows per decode step
    // (64 streams x 8 of 128 experts: 4), and a parallel region per expert costs more than it saves.
    for (int64_t e = 0; e < E; ++e) {
      const int32_t* slots = expert_slots_.data() + expert_start_[e];
      const int64_t n = expert_start_[e + 1] - expert_start_[e];
      if (n == 0) continue;
      xe_.resize(static_cast<size_t>(n * d));
      gue_.resize(static_cast<size_t>(n * 2 * fe));
      acte_.resize(static_cast<size_t>(n * fe));
      oute_.resize(static_cast<size_t>(n * d));
      for (int64_t i = 0; i < n; ++i) std::memcpy(&xe_[i * d], &h_[(slots[i] / K) * d], d * sizeof(float));
      lap(kMoeDispatch);
      linear(L.exp_gate_up[e], xe_.data(), n, gue_.data());
      for (int64_t i = 0; i < n; ++i) cpu::silu_mul(&gue_[i * 2 * fe], &gue_[i * 2 * fe + fe], &acte_[i * fe], fe);
      linear(L.exp_down[e], acte_.data(), n, oute_.data());
      lap(kMoeExperts);
      for (int64_t i = 0; i < n; ++i) {
        const float w = chosen_w_[slots[i]];
        float* out = &expert_out_[slots[i] * d];
        for (int64_t j = 0; j < d; ++j) out[j] = oute_[i * d + j] * w;
      }
    }
#pragma omp parallel for if (many)
    for (int64_t t = 0; t < T; ++t) {
      float* x = &x_[t * d];
      const float* first = &expert_out_[t * K * d];
      for (int64_t j = 0; j < d; ++j) {
        float sum = first[j];
        for (int64_t k = 1; k < K; ++k) sum += expert_out_[(t * K + k) * d + j];
        x[j] = sum + x[j];
      }
    }
    lap(kMoeDispatch);
  }

  // y = x W^T for M rows.
  void linear(const Linear& lin, const float* x, int64_t M, float* y) {
    if (lin.is_float && (!lin.gemm || M < opts_.bf16_min_tokens)) {
      cpu::float_gemv(lin.flt, x, static_cast<int32_t>(M), y, x_f16_);
    } else if (!lin.gemm || M < opts_.bf16_min_tokens) {
      cpu::quantize_acts(x, static_cast<int32_t>(M), lin.quant.cols, acts_);
      cpu::quant_gemv(lin.quant, acts_, y);
    } else {
      x_bf16_.resize(static_cast<size_t>(M * lin.gemm->cols()));
      cpu::f32_to_bf16(x, x_bf16_.data(), M * lin.gemm->cols());
      lin.gemm->run(x_bf16_.data(), M, y);
    }
  }

  void forward(const StepPlan& plan, float* logits) {
    const ModelConfig& c = w_->config;
    const int64_t T = plan.num_tokens(), d = c.d_model, qd = c.q_dim(), kvd = c.kv_dim(), ff = c.ffn_dim;
    const bool many = T > 4;  // parallelize per-token loops only when there is enough work
    x_.resize(T * d);
    h_.resize(T * d);
    qkv_.resize(T * (qd + 2 * kvd));
    q_.resize(T * qd);
    k_.resize(T * kvd);
    v_.resize(T * kvd);
    attn_.resize(T * qd);
    if (!c.ops.moe) {  // a MoE model has no dense FFN (its experts have scratch of their own)
      gu_.resize(T * 2 * ff);
      act_.resize(T * ff);
    }

    if (opts_.profile_ops) prof_t_ = ProfClock::now();
    for (int64_t t = 0; t < T; ++t) (void)tensor_row_to_f32(*w_->token_embd, plan.token_ids[t], &x_[t * d]);
    if (c.ops.scale_embeddings) cpu::scale_inplace(x_.data(), std::sqrt(static_cast<float>(d)), T * d);
    lap(kEmbed);

    const auto rope = c.ops.rope == RopeStyle::HalfSplit ? cpu::rope_apply_half_split : cpu::rope_apply;
    for (int l = 0; l < c.n_layers; ++l) {
      const Layer& L = layers_[l];
      const cpu::PagedKvLayer kv{kv_.data() + layer_offset_[l], kv_shape_.block_size, c.n_kv_heads, c.head_dim,
                                 in_window_pool(l)};
      const bool swa = c.is_swa(l);
      const float theta_scale = swa ? rope_theta_scale_swa_ : rope_theta_scale_;
      const float freq_scale = swa ? c.rope_freq_scale_swa : c.rope_freq_scale;
      // Q's scale goes into the softmax, or onto Q itself as a step of its own (then the softmax's is 1).
      const cpu::AttentionParams attn{.scale = c.ops.scale_q_before_attention ? 1.0f : c.q_scale(),
                                      .softcap = c.attn_softcap,
                                      .window = swa ? c.sliding_window : 0};

      // Attention block: x += Wo . attn(rope(norm(Wq h + bq)), rope(norm(Wk h + bk)), Wv h + bv), h = rmsnorm(x)
      // (the biases and the per-head norms where the model has them).
#pragma omp parallel for if (many)
      for (int64_t t = 0; t < T; ++t) cpu::rms_norm(&x_[t * d], L.attn_norm.data(), &h_[t * d], d, c.rms_eps);
      lap(kNorms);
      linear(L.qkv, h_.data(), T, qkv_.data());
      lap(kAttnMatmuls);
#pragma omp parallel for if (many)
      for (int64_t t = 0; t < T; ++t) {
        float* row = &qkv_[t * (qd + 2 * kvd)];
        if (!L.qkv_bias.empty()) cpu::add_inplace(row, L.qkv_bias.data(), qd + 2 * kvd);
        std::memcpy(&q_[t * qd], row, qd * sizeof(float));
        std::memcpy(&k_[t * kvd], row + qd, kvd * sizeof(float));
        std::memcpy(&v_[t * kvd], row + qd + kvd, kvd * sizeof(float));
        if (!L.q_norm.empty()) {  // qwen3: each head of Q and of K normalized on its own, before RoPE
          for (int h = 0; h < c.n_heads; ++h) {
            float* qh = &q_[t * qd + h * c.head_dim];
            cpu::rms_norm(qh, L.q_norm.data(), qh, c.head_dim, c.rms_eps);
          }
          for (int h = 0; h < c.n_kv_heads; ++h) {
            float* kh = &k_[t * kvd + h * c.head_dim];
            cpu::rms_norm(kh, L.k_norm.data(), kh, c.head_dim, c.rms_eps);
          }
        }
        float cos_sin[256];  // head_dim <= 256 (checked at load)
        cpu::rope_cache(plan.positions[t], c.head_dim, theta_scale,
                        w_->rope_freq_factors.empty() ? nullptr : w_->rope_freq_factors.data(), cos_sin,
                        c.rope_scaling.attn_factor, freq_scale);
        rope(&q_[t * qd], c.n_heads, c.head_dim, cos_sin);
        rope(&k_[t * kvd], c.n_kv_heads, c.head_dim, cos_sin);
        if (c.ops.scale_q_before_attention) cpu::scale_inplace(&q_[t * qd], c.q_scale(), qd);
      }
      cpu::write_kv(plan, k_.data(), v_.data(), kv);
      cpu::paged_attention(plan, q_.data(), kv, c.n_heads, attn, attn_.data());
      lap(kAttention);
      linear(L.wo, attn_.data(), T, h_.data());
      lap(kAttnMatmuls);
      post_norm(L.attn_post_norm, T);
      cpu::add_inplace(x_.data(), h_.data(), T * d);

      // Feed-forward block: x += Wdown . (silu(Wgate h) * Wup h), h = rmsnorm(x) (or the routed experts).
#pragma omp parallel for if (many)
      for (int64_t t = 0; t < T; ++t) cpu::rms_norm(&x_[t * d], L.ffn_norm.data(), &h_[t * d], d, c.rms_eps);
      lap(kNorms);
      if (c.ops.moe) {
        moe_ffn(L, T);
        continue;
      }
      linear(L.gate_up, h_.data(), T, gu_.data());
      const auto act = c.ops.ffn_activation == FfnActivation::GeluTanh ? cpu::gelu_mul : cpu::silu_mul;
#pragma omp parallel for if (many)
      for (int64_t t = 0; t < T; ++t) act(&gu_[t * 2 * ff], &gu_[t * 2 * ff + ff], &act_[t * ff], ff);
      linear(L.down, act_.data(), T, h_.data());
      lap(kFfn);
      post_norm(L.ffn_post_norm, T);
      cpu::add_inplace(x_.data(), h_.data(), T * d);
      lap(kNorms);
    }

    // LM head on the rows that want logits only.
    const int64_t R = static_cast<int64_t>(plan.logits_indices.size());
    for (int64_t r = 0; r < R; ++r) {
      cpu::rms_norm(&x_[plan.logits_indices[r] * d], output_norm_.data(), &h_[r * d], d, c.rms_eps);
    }
    linear(lm_head_, h_.data(), R, logits);
    if (c.final_softcap > 0) cpu::softcap_inplace(logits, c.final_softcap, R * c.vocab_size);
    lap(kLmHead);
  }

  // profile_ops: the time since the previous lap goes to `op`.
  void lap(ProfiledOp op) {
    if (!opts_.profile_ops) return;
    const ProfClock::time_point now = ProfClock::now();
    prof_s_[op] += std::chrono::duration<double>(now - prof_t_).count();
    prof_t_ = now;
  }

  // h = rmsnorm(h) with a post-norm's weights (gemma2/3), before h is added to the residual; none: h as is.
  void post_norm(const std::vector<float>& weight, int64_t T) {
    if (weight.empty()) return;
    const int64_t d = w_->config.d_model;
#pragma omp parallel for if (T > 4)
    for (int64_t t = 0; t < T; ++t) cpu::rms_norm(&h_[t * d], weight.data(), &h_[t * d], static_cast<int>(d), w_->config.rms_eps);
  }

  CpuBackendOptions opts_;
  std::shared_ptr<const ModelWeights> w_;
  std::shared_ptr<cpu::HugePageArena> weight_arena_;  // every Linear's weights (declared before their users)
  std::vector<Layer> layers_;
  std::vector<float> output_norm_;
  Linear lm_head_;
  float rope_theta_scale_ = 1.0f;      // base^(-2/head_dim)
  float rope_theta_scale_swa_ = 1.0f;  // the same for the sliding-window layers' base
  KvCacheShape kv_shape_;
  std::vector<int64_t> layer_offset_;   // [layer]: where its slice of kv_ starts
  cpu::ArenaVector<cpu::KvScalar> kv_;  // in an arena of its own: huge pages
  // Step scratch, reused across steps.
  std::vector<float> x_, h_, qkv_, q_, k_, v_, attn_, gu_, act_;
  // Mixture-of-experts scratch: router logits, each token's chosen experts and weights, the slots
  // (token * k + rank) grouped by expert, one expert's rows, and every slot's weighted output.
  std::vector<float> router_, chosen_w_, xe_, gue_, acte_, oute_, expert_out_;
  std::vector<int32_t> chosen_, expert_slots_;
  std::vector<int64_t> expert_start_, expert_fill_;
  std::vector<uint16_t> x_bf16_;
  std::vector<float> x_f16_;  // activations rounded to fp16 for F16 weights
  QuantActs acts_;
  // profile_ops: seconds per ProfiledOp and steps since the last take, and the last lap's time.
  using ProfClock = std::chrono::steady_clock;
  std::array<double, kNumProfiledOps> prof_s_{};
  int64_t prof_steps_ = 0;
  ProfClock::time_point prof_t_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace pagoda::engine
