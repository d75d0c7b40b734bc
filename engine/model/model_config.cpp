#include "engine/model/model_config.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>

#include "engine/gguf/gguf_file.h"
#include "engine/model/architecture.h"

namespace pagoda::engine {

namespace {

// Reads `<arch>.<key>` as an integer; missing -> error naming the key, unless a default is given.
Result<int64_t> int_key(const GgufFile& f, const std::string& key, std::optional<int64_t> fallback = {}) {
  auto v = f.get_int(key);
  if (!v.ok()) return v.status();
  if (!v.value()) {
    if (fallback) return *fallback;
    return Status::error(fmt::format("{}: missing required metadata key '{}'", f.path(), key));
  }
  return *v.value();
}

Result<double> float_key(const GgufFile& f, const std::string& key, double fallback) {
  auto v = f.get_float(key);
  if (!v.ok()) return v.status();
  return v.value() ? *v.value() : fallback;
}

// Which layers have a sliding window, how wide, and their RoPE: as llama.cpp's load_swa_pattern and
// the gemma loaders (attention.sliding_window_pattern is a per-layer bool array or a period).
// trained_scale: 1/rope.scaling.factor whatever the scaling type (llama.cpp's rope_freq_scale_train).
Status read_sliding_window(const GgufFile& f, const Architecture& family, ModelConfig& c, float trained_scale) {
  const std::string a = c.architecture + ".";
  if (family.swa_pattern == 0) return {};
  auto window = int_key(f, a + "attention.sliding_window", family.default_sliding_window);
  if (!window.ok()) return window.status();
  if (window.value() < 0 || window.value() > (1 << 24)) {
    return Status::error(fmt::format("{}: attention.sliding_window {} is out of range", f.path(), window.value()));
  }
  if (window.value() == 0) return {};  // gemma3 without a window: every layer global
  c.sliding_window = static_cast<int32_t>(window.value());
  c.swa_layers.assign(static_cast<size_t>(c.n_layers), 0);
  const GgufValue* pattern = f.find(a + "attention.sliding_window_pattern");
  if (pattern && pattern->type == GgufValueType::ARRAY && pattern->elem_type == GgufValueType::BOOL) {
    if (pattern->count != static_cast<uint64_t>(c.n_layers)) {
      return Status::error(fmt::format("{}: attention.sliding_window_pattern has {} entries for {} layers", f.path(),
                                       pattern->count, c.n_layers));
    }
    for (int32_t l = 0; l < c.n_layers; ++l) c.swa_layers[static_cast<size_t>(l)] = pattern->raw[l] != 0;
  } else {
    auto period = int_key(f, a + "attention.sliding_window_pattern", family.swa_pattern);
    if (!period.ok()) return period.status();
    if (period.value() < 0 || period.value() > (1 << 24)) {
      return Status::error(fmt::format("{}: attention.sliding_window_pattern {} is out of range", f.path(),
                                       period.value()));
    }
    const int64_t n = period.value();  // 0: every layer windowed
    for (int32_t l = 0; l < c.n_layers; ++l) c.swa_layers[static_cast<size_t>(l)] = n == 0 || l % n < n - 1;
  }
  auto base = float_key(f, a + "rope.freq_base_swa",
                        family.default_rope_theta_swa > 0 ? family.default_rope_theta_swa : c.rope_theta);
  if (!base.ok()) return base.status();
  if (!(base.value() > 0 && base.value() < 1e12)) {
    return Status::error(fmt::format("{}: rope.freq_base_swa {} is out of range", f.path(), base.value()));
  }
  c.rope_theta_swa = static_cast<float>(base.value());
  c.rope_freq_scale_swa = family.swa_inherits_rope_scale ? trained_scale : 1.0f;
  return {};
}

}  // namespace

std::string ModelConfig::summary() const {
  return fmt::format("{} '{}': {} layers, d_model {}, heads {} (kv {}), head_dim {}, ffn {}, vocab {}, ctx {}, "
                     "rope theta {}{}, {} embeddings{}",
                     architecture, name, n_layers, d_model, n_heads, n_kv_heads, head_dim, ffn_dim, vocab_size,
                     context_length, rope_theta, rope_scaling.llama3 ? " (llama3 scaling)" : "",
                     tied_embeddings ? "tied" : "separate",
                     ops.moe ? fmt::format(", {} experts ({} per token, ffn {})", n_experts, n_experts_used,
                                           expert_ffn_dim)
                             : std::string()) +
         (swa_layers.empty() ? std::string()
                             : fmt::format(", a {}-token window on {} of {} layers", sliding_window,
                                           std::count(swa_layers.begin(), swa_layers.end(), 1), n_layers)) +
         (attn_softcap > 0 || final_softcap > 0
              ? fmt::format(", soft-capping {} / {}", attn_softcap, final_softcap)
              : std::string());
}

Result<ModelConfig> model_config_from_gguf(const GgufFile& f) {
  ModelConfig c;
  auto arch = f.get_string("general.architecture");
  if (!arch.ok()) return arch.status();
  if (!arch.value()) return Status::error(fmt::format("{}: missing 'general.architecture'", f.path()));
  c.architecture = *arch.value();
  const Architecture* family = find_architecture(c.architecture);
  if (!family) {
    return Status::error(fmt::format("{}: unsupported architecture '{}' (supported: {})", f.path(), c.architecture,
                                     architecture_names()));
  }
  c.ops = family->ops;
  const std::string a = c.architecture + ".";
  if (family->moe_by_expert_count) {
    auto ne = int_key(f, a + "expert_count", 0);
    if (!ne.ok()) return ne.status();
    if (ne.value() < 0) return Status::error(fmt::format("{}: {}expert_count {} is negative", f.path(), a, ne.value()));
    c.ops.moe = ne.value() > 0;
  }
  auto name = f.get_string("general.name");
  if (name.ok() && name.value()) c.name = *name.value();

  struct IntField {
    int32_t* dst;
    const char* key;
    std::optional<int64_t> fallback;
  };
  for (const IntField& fld : {IntField{&c.n_layers, "block_count", {}}, IntField{&c.d_model, "embedding_length", {}},
                              IntField{&c.n_heads, "attention.head_count", {}},
                              IntField{&c.ffn_dim, "feed_forward_length", {}},
                              IntField{&c.context_length, "context_length", 2048}}) {
    auto v = int_key(f, a + fld.key, fld.fallback);
    if (!v.ok()) return v.status();
    if (v.value() <= 0 || v.value() > (1 << 24)) {
      return Status::error(fmt::format("{}: metadata '{}{}' = {} is out of range (1..16777216)", f.path(), a, fld.key,
                                       v.value()));
    }
    *fld.dst = static_cast<int32_t>(v.value());
  }
  auto kv = int_key(f, a + "attention.head_count_kv", c.n_heads);
  if (!kv.ok()) return kv.status();
  c.n_kv_heads = static_cast<int32_t>(kv.value());
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0) {
    return Status::error(fmt::format("{}: head_count {} is not a multiple of head_count_kv {}", f.path(), c.n_heads,
                                     c.n_kv_heads));
  }
  // A head's width is attention.key_length where the file says (qwen3: 128 with d_model 1024 and 16
  // heads), else embedding_length / head_count.
  auto kd = int_key(f, a + "attention.key_length", 0);
  if (!kd.ok()) return kd.status();
  if (kd.value() == 0 && c.d_model % c.n_heads != 0) {
    return Status::error(
        fmt::format("{}: embedding_length {} is not a multiple of head_count {}", f.path(), c.d_model, c.n_heads));
  }
  if (kd.value() < 0 || kd.value() > 4096) {
    return Status::error(fmt::format("{}: attention.key_length {} is out of range", f.path(), kd.value()));
  }
  c.head_dim = kd.value() ? static_cast<int32_t>(kd.value()) : c.d_model / c.n_heads;
  auto vd = int_key(f, a + "attention.value_length", c.head_dim);
  if (!vd.ok()) return vd.status();
  if (vd.value() != c.head_dim) {
    return Status::error(fmt::format("{}: attention.value_length {} != key_length {} (only equal sizes are supported)",
                                     f.path(), vd.value(), c.head_dim));
  }
  if (int64_t{c.n_heads} * c.head_dim > (1 << 24)) {  // q_dim() and kv_dim() are int32 products
    return Status::error(fmt::format("{}: head_count {} x head size {} is out of range (at most 16777216)", f.path(),
                                     c.n_heads, c.head_dim));
  }
  if (c.head_dim < 2 || c.head_dim % 2 != 0 || c.head_dim > 256) {
    return Status::error(fmt::format("{}: head_dim {} must be even and at most 256", f.path(), c.head_dim));
  }
  auto rd = int_key(f, a + "rope.dimension_count", c.head_dim);
  if (!rd.ok()) return rd.status();
  c.rope_dim = static_cast<int32_t>(rd.value());
  if (c.rope_dim != c.head_dim) {
    return Status::error(fmt::format("{}: rope.dimension_count {} != head_dim {} (partial RoPE is not supported)",
                                     f.path(), c.rope_dim, c.head_dim));
  }
  auto theta = float_key(f, a + "rope.freq_base", 10000.0);
  auto eps = float_key(f, a + "attention.layer_norm_rms_epsilon", 1e-5);
  if (!theta.ok()) return theta.status();
  if (!eps.ok()) return eps.status();
  c.rope_theta = static_cast<float>(theta.value());
  c.rms_eps = static_cast<float>(eps.value());

  // llama3 rope scaling: written by convert_hf_to_gguf as rope_freqs.weight (a tensor of per-dimension
  // divisors) and/or as rope.scaling.* keys. We derive the divisors from the keys when present.
  auto scaling_type = f.get_string(a + "rope.scaling.type");
  if (!scaling_type.ok()) return scaling_type.status();
  auto factor = float_key(f, a + "rope.scaling.factor", 1.0);
  if (!factor.ok()) return factor.status();
  const std::string type = scaling_type.value() ? *scaling_type.value() : "linear";
  if (type == "llama3") c.rope_scaling.llama3 = true;
  if (f.find_tensor("rope_freqs.weight") != nullptr) c.rope_scaling.llama3 = true;
  // Linear scaling: llama.cpp reads rope.scaling.factor (or the older rope.scale_linear) whatever the type,
  // and multiplies every angle by 1/factor unless the type is "none" (rope_freqs.weight divisors apply on
  // top). "longrope" is phi3's, whose factors are tensors. YaRN changes RoPE beyond a factor: refused
  // rather than run unscaled. ("llama3" as a type string is Pagoda's: llama.cpp refuses it.)
  const bool longrope_type = type == "longrope" && family->longrope;
  if (type != "linear" && type != "none" && type != "llama3" && !longrope_type) {
    return Status::error(fmt::format("{}: rope.scaling.type '{}' is not supported for '{}' (linear, none{})", f.path(),
                                     type, c.architecture, family->longrope ? ", longrope" : ""));
  }
  auto linear = float_key(f, a + "rope.scale_linear", 0.0);
  if (!linear.ok()) return linear.status();
  const float scale = static_cast<float>(f.find(a + "rope.scaling.factor") ? factor.value() : linear.value());
  if (scale != 0.0f && !(scale > 0.0f && scale < 1e6f)) {
    return Status::error(fmt::format("{}: rope.scaling.factor {} is out of range", f.path(), scale));
  }
  const float trained_scale = scale != 0.0f && type != "llama3" ? 1.0f / scale : 1.0f;  // hparams.rope_freq_scale_train
  if (type != "none") c.rope_freq_scale = trained_scale;
  auto orig = int_key(f, a + "rope.scaling.original_context_length", c.rope_scaling.llama3 ? 8192 : c.context_length);
  auto attn_factor = float_key(f, a + "rope.scaling.attn_factor", 1.0);
  if (!orig.ok()) return orig.status();
  if (!attn_factor.ok()) return attn_factor.status();
  if (orig.value() < 1 || orig.value() > (1 << 24) || !(attn_factor.value() > 0 && attn_factor.value() < 1e3)) {
    return Status::error(fmt::format("{}: rope.scaling.original_context_length {} or attn_factor {} is out of range",
                                     f.path(), orig.value(), attn_factor.value()));
  }
  c.rope_scaling.original_context = static_cast<int32_t>(orig.value());
  c.rope_scaling.attn_factor = static_cast<float>(attn_factor.value());
  if (c.rope_scaling.llama3) {
    // Llama 3.1's factor where the file has none (the key's own default, 1, would undo the scaling).
    const bool has_factor = f.find(a + "rope.scaling.factor") != nullptr && factor.value() > 0;
    c.rope_scaling.factor = static_cast<float>(has_factor ? factor.value() : 8.0);
    auto lo = float_key(f, a + "rope.scaling.low_freq_factor", 1.0);
    auto hi = float_key(f, a + "rope.scaling.high_freq_factor", 4.0);
    if (!lo.ok() || !hi.ok()) return Status::error(fmt::format("{}: bad rope.scaling keys", f.path()));
    c.rope_scaling.low_freq_factor = static_cast<float>(lo.value());
    c.rope_scaling.high_freq_factor = static_cast<float>(hi.value());
  }

  // As llama.cpp's loaders: qwen3moe's experts are expert_feed_forward_length wide (else ffn / used),
  // llama's (Mixtral) feed_forward_length.
  if (c.ops.moe) {
    auto ne = int_key(f, a + "expert_count");
    auto nu = int_key(f, a + "expert_used_count");
    if (!ne.ok()) return ne.status();
    if (!nu.ok()) return nu.status();
    // Released MoE models use at most 16 experts per token (Qwen3, DeepSeek: 8; Mixtral: 2); the bound keeps
    // a step's per-token expert outputs (used x d_model floats) from growing with a file's say-so alone.
    if (ne.value() < 1 || ne.value() > 1024 || nu.value() < 1 || nu.value() > std::min<int64_t>(ne.value(), 64)) {
      return Status::error(fmt::format("{}: expert_count {} and expert_used_count {} must satisfy 1 <= used <= "
                                       "count <= 1024 and used <= 64",
                                       f.path(), ne.value(), nu.value()));
    }
    c.n_experts = static_cast<int32_t>(ne.value());
    c.n_experts_used = static_cast<int32_t>(nu.value());
    auto fe = family->moe_by_expert_count ? Result<int64_t>(c.ffn_dim)
                                          : int_key(f, a + "expert_feed_forward_length", c.ffn_dim / c.n_experts_used);
    if (!fe.ok()) return fe.status();
    if (fe.value() < 1 || fe.value() > (1 << 24)) {
      return Status::error(fmt::format("{}: expert_feed_forward_length {} is out of range", f.path(), fe.value()));
    }
    c.expert_ffn_dim = static_cast<int32_t>(fe.value());
  }

  // What the family adds: Q's scale, soft-capping, sliding windows (architecture.h says where each comes from).
  c.attention_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  if (family->n_layers_scaling_q_by_d_model != 0 && c.n_layers == family->n_layers_scaling_q_by_d_model &&
      c.d_model / c.n_heads > 0) {
    c.attention_scale = 1.0f / std::sqrt(static_cast<float>(c.d_model / c.n_heads));
  }
  auto attn_cap = float_key(f, a + "attn_logit_softcapping", family->default_attn_softcap);
  auto final_cap = float_key(f, a + "final_logit_softcapping", family->default_final_softcap);
  if (!attn_cap.ok()) return attn_cap.status();
  if (!final_cap.ok()) return final_cap.status();
  if (!(attn_cap.value() >= 0 && attn_cap.value() < 1e6) || !(final_cap.value() >= 0 && final_cap.value() < 1e6)) {
    return Status::error(fmt::format("{}: soft-capping values {} / {} are out of range (0 .. 1e6)", f.path(),
                                     attn_cap.value(), final_cap.value()));
  }
  c.attn_softcap = family->attn_softcap ? static_cast<float>(attn_cap.value()) : 0.0f;
  c.final_softcap = family->logit_softcap ? static_cast<float>(final_cap.value()) : 0.0f;
  if (Status s = read_sliding_window(f, *family, c, trained_scale); !s.ok()) return s;

  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb || emb->dims.size() != 2) {
    return Status::error(fmt::format("{}: missing or non-2D tensor 'token_embd.weight'", f.path()));
  }
  c.vocab_size = static_cast<int32_t>(emb->dims[1]);
  auto vs = int_key(f, a + "vocab_size", c.vocab_size);
  if (vs.ok() && vs.value() != c.vocab_size) {
    return Status::error(fmt::format("{}: {}vocab_size {} != token_embd.weight rows {}", f.path(), a, vs.value(),
                                     c.vocab_size));
  }
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  return c;
}

}  // namespace pagoda::engine
