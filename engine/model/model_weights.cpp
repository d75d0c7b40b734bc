#include "engine/model/model_weights.h"

#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <numbers>

#include "engine/quant/dequant.h"

namespace pagoda::engine {

namespace {

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "{";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "}";
}

// Finds a tensor and checks its ggml dims exactly.
Status find(const GgufFile& f, const std::string& name, std::vector<int64_t> dims, const GgufTensorInfo** out) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t) return Status::error(fmt::format("{}: missing tensor '{}'", f.path(), name));
  if (t->dims != dims) {
    return Status::error(fmt::format("{}: tensor '{}' has dims {}, expected {}", f.path(), name, dims_str(t->dims),
                                     dims_str(dims)));
  }
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(t->type));
  if (!info || !info->can_dequantize) {
    return Status::error(fmt::format("{}: tensor '{}' has type {} which Pagoda cannot read", f.path(), name,
                                     ggml_type_name(static_cast<uint32_t>(t->type))));
  }
  *out = t;
  return {};
}

// attn_{q,k,v}.bias: optional for every family, as in llama.cpp's loader, but all three or none (a file
// with only some is broken, not a variant).
Status find_biases(const GgufFile& f, const std::string& prefix, int64_t q, int64_t kv, LayerWeights& L) {
  const int present = (f.find_tensor(prefix + "attn_q.bias") != nullptr) +
                      (f.find_tensor(prefix + "attn_k.bias") != nullptr) +
                      (f.find_tensor(prefix + "attn_v.bias") != nullptr);
  if (present == 0) return {};
  if (present != 3) {
    return Status::error(fmt::format("{}: '{}' has {} of the three attention biases attn_q/k/v.bias (all or none)",
                                     f.path(), prefix, present));
  }
  Status s = find(f, prefix + "attn_q.bias", {q}, &L.bq);
  if (s.ok()) s = find(f, prefix + "attn_k.bias", {kv}, &L.bk);
  if (s.ok()) s = find(f, prefix + "attn_v.bias", {kv}, &L.bv);
  return s;
}

// HF's llama3 rope scaling as per-pair divisors of the base frequency (what convert_hf_to_gguf stores
// in rope_freqs.weight).
std::vector<float> llama3_freq_factors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_context / s.low_freq_factor;
  const double high_wavelen = s.original_context / s.high_freq_factor;
  std::vector<float> out(c.head_dim / 2);
  for (int i = 0; i < c.head_dim / 2; ++i) {
    const double freq = 1.0 / std::pow(c.rope_theta, 2.0 * i / c.head_dim);
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < high_wavelen) {
      out[i] = 1.0f;
    } else if (wavelen > low_wavelen) {
      out[i] = s.factor;
    } else {
      const double smooth = (s.original_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      out[i] = static_cast<float>(1.0 / ((1 - smooth) / s.factor + smooth));
    }
  }
  return out;
}

}  // namespace

GgufTensorInfo tensor_slice(const GgufTensorInfo& t, int64_t index) {
  // Matrix `index` of a 3-D tensor: its rows [index * dims[1], (index + 1) * dims[1]).
  GgufTensorInfo s = tensor_rows(t, index * t.dims[1], t.dims[1]);
  s.name = fmt::format("{}[{}]", t.name, index);
  return s;
}

GgufTensorInfo tensor_rows(const GgufTensorInfo& t, int64_t first, int64_t count) {
  GgufTensorInfo s;
  s.name = fmt::format("{}[rows {}..{}]", t.name, first, first + count);
  s.dims = {t.dims[0], count};
  s.type = t.type;
  const int64_t row_bytes = ggml_row_bytes(*ggml_type_info(static_cast<uint32_t>(t.type)), t.dims[0]);
  s.offset = t.offset + static_cast<uint64_t>(first * row_bytes);
  s.data = t.data + first * row_bytes;
  s.nbytes = static_cast<uint64_t>(count * row_bytes);
  return s;
}

void select_rope_factors(ModelWeights& w, int64_t context_per_sequence) {
  if (w.rope_factors_long.empty() && w.rope_factors_short.empty()) return;
  w.rope_freq_factors =
      context_per_sequence > w.config.rope_scaling.original_context ? w.rope_factors_long : w.rope_factors_short;
}

Status tensor_row_to_f32(const GgufTensorInfo& t, int64_t row, float* dst) {
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(t.type));
  if (!info) return Status::error(fmt::format("tensor '{}': unknown type", t.name));
  const int64_t cols = t.dims[0];
  const int64_t rows = t.num_elements() / cols;
  if (row < 0 || row >= rows) {
    return Status::error(fmt::format("tensor '{}': row {} out of range 0..{}", t.name, row, rows - 1));
  }
  const int64_t row_bytes = ggml_row_bytes(*info, cols);
  return dequantize_row(t.type, t.data + row * row_bytes, dst, cols);
}

Result<std::vector<float>> tensor_to_f32(const GgufTensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.num_elements()));
  Status s = dequantize_row(t.type, t.data, out.data(), t.num_elements());
  if (!s.ok()) return Status::error(fmt::format("tensor '{}': {}", t.name, s.message()));
  return out;
}

Result<std::shared_ptr<ModelWeights>> model_weights_from_gguf(std::unique_ptr<GgufFile> file) {
  auto cfg = model_config_from_gguf(*file);
  if (!cfg.ok()) return cfg.status();
  auto w = std::make_shared<ModelWeights>();
  w->config = cfg.value();
  const ModelConfig& c = w->config;
  const GgufFile& f = *file;
  const int64_t d = c.d_model, q = c.q_dim(), kv = c.kv_dim(), ff = c.ffn_dim, vocab = c.vocab_size;

  Status s = find(f, "token_embd.weight", {d, vocab}, &w->token_embd);
  if (s.ok()) s = find(f, "output_norm.weight", {d}, &w->output_norm);
  if (s.ok()) s = c.tied_embeddings ? Status() : find(f, "output.weight", {d, vocab}, &w->output);
  if (!s.ok()) return s;
  if (c.tied_embeddings) w->output = w->token_embd;

  // Every layer has at least its two norms, its attention matrices and its FFN's (six tensors, fused or
  // not): a block_count beyond what the tensors can hold is an error before anything is sized by it.
  if (static_cast<uint64_t>(c.n_layers) * 6 > f.tensors().size()) {
    return Status::error(fmt::format("{}: block_count {} but only {} tensors in the file", f.path(), c.n_layers,
                                     f.tensors().size()));
  }
  w->layers.resize(c.n_layers);
  const Architecture& family = *find_architecture(c.architecture);  // registered: the config checked
  for (int l = 0; l < c.n_layers && s.ok(); ++l) {
    LayerWeights& L = w->layers[l];
    const std::string p = fmt::format("blk.{}.", l);
    s = find(f, p + "attn_norm.weight", {d}, &L.attn_norm);
    if (s.ok() && f.find_tensor(p + "attn_qkv.weight")) {  // fused: Q, K and V views of its row ranges
      if (f.find_tensor(p + "attn_qkv.bias") || f.find_tensor(p + "attn_q.weight")) {
        return Status::error(fmt::format("{}: '{}' has {} next to attn_qkv.weight, which Pagoda does not read",
                                         f.path(), p, f.find_tensor(p + "attn_qkv.bias") ? "attn_qkv.bias" : "attn_q.weight"));
      }
      s = find(f, p + "attn_qkv.weight", {d, q + 2 * kv}, &L.wqkv);
      if (s.ok()) {
        L.wq = &w->row_views.emplace_back(tensor_rows(*L.wqkv, 0, q));
        L.wk = &w->row_views.emplace_back(tensor_rows(*L.wqkv, q, kv));
        L.wv = &w->row_views.emplace_back(tensor_rows(*L.wqkv, q + kv, kv));
      }
    } else {
      if (s.ok()) s = find(f, p + "attn_q.weight", {d, q}, &L.wq);
      if (s.ok()) s = find(f, p + "attn_k.weight", {d, kv}, &L.wk);
      if (s.ok()) s = find(f, p + "attn_v.weight", {d, kv}, &L.wv);
    }
    if (s.ok()) s = find(f, p + "attn_output.weight", {q, d}, &L.wo);
    if (s.ok()) s = find_biases(f, p, q, kv, L);
    if (s.ok() && c.ops.qk_norm) s = find(f, p + "attn_q_norm.weight", {c.head_dim}, &L.q_norm);
    if (s.ok() && c.ops.qk_norm) s = find(f, p + "attn_k_norm.weight", {c.head_dim}, &L.k_norm);
    if (s.ok()) s = find(f, p + "ffn_norm.weight", {d}, &L.ffn_norm);
    if (s.ok() && c.ops.post_norms) s = find(f, p + "post_attention_norm.weight", {d}, &L.attn_post_norm);
    if (s.ok() && c.ops.post_norms) s = find(f, p + "post_ffw_norm.weight", {d}, &L.ffn_post_norm);
    if (c.ops.moe) {
      const int64_t ne = c.n_experts, fe = c.expert_ffn_dim;
      if (s.ok()) s = find(f, p + "ffn_gate_inp.weight", {d, ne}, &L.router);
      if (s.ok()) s = find(f, p + "ffn_gate_exps.weight", {d, fe, ne}, &L.exp_gate);
      if (s.ok()) s = find(f, p + "ffn_up_exps.weight", {d, fe, ne}, &L.exp_up);
      if (s.ok()) s = find(f, p + "ffn_down_exps.weight", {fe, d, ne}, &L.exp_down);
      continue;
    }
    if (family.fused_gate_up) {  // phi3: one ffn_up of 2 x ffn rows, the gate's first
      if (s.ok()) s = find(f, p + "ffn_up.weight", {d, 2 * ff}, &L.w_gate_up);
      if (s.ok()) {
        L.w_gate = &w->row_views.emplace_back(tensor_rows(*L.w_gate_up, 0, ff));
        L.w_up = &w->row_views.emplace_back(tensor_rows(*L.w_gate_up, ff, ff));
      }
    } else {
      if (s.ok()) s = find(f, p + "ffn_gate.weight", {d, ff}, &L.w_gate);
      if (s.ok()) s = find(f, p + "ffn_up.weight", {d, ff}, &L.w_up);
    }
    if (s.ok()) s = find(f, p + "ffn_down.weight", {ff, d}, &L.w_down);
  }
  if (!s.ok()) return s;

  if (const GgufTensorInfo* rf = f.find_tensor("rope_freqs.weight")) {
    if (rf->dims != std::vector<int64_t>{c.head_dim / 2}) {
      return Status::error(fmt::format("{}: tensor 'rope_freqs.weight' has dims {}, expected {{{}}}", f.path(),
                                       dims_str(rf->dims), c.head_dim / 2));
    }
    auto v = tensor_to_f32(*rf);
    if (!v.ok()) return v.status();
    w->rope_freq_factors = std::move(v.value());
  } else if (c.rope_scaling.llama3) {
    w->rope_freq_factors = llama3_freq_factors(c);
  } else if (family.longrope) {  // LongRoPE: one tensor each, shared by every layer
    for (auto [name, dst] : {std::pair{"rope_factors_long.weight", &w->rope_factors_long},
                             std::pair{"rope_factors_short.weight", &w->rope_factors_short}}) {
      const GgufTensorInfo* t = nullptr;
      if (!f.find_tensor(name)) continue;
      if (Status st = find(f, name, {c.head_dim / 2}, &t); !st.ok()) return st;
      auto v = tensor_to_f32(*t);
      if (!v.ok()) return v.status();
      for (float x : v.value()) {  // divisors of the frequencies
        if (!(std::isfinite(x) && x > 0.0f)) {
          return Status::error(fmt::format("{}: tensor '{}' holds {}: frequency factors must be positive", f.path(),
                                           name, x));
        }
      }
      *dst = std::move(v.value());
    }
    select_rope_factors(*w, c.context_length);
  }
  w->file = std::move(file);
  return w;
}

Result<std::shared_ptr<ModelWeights>> load_model_weights(const std::string& path) {
  auto file = GgufFile::open(path);
  if (!file.ok()) return file.status();
  return model_weights_from_gguf(std::move(file.value()));
}

}  // namespace pagoda::engine
