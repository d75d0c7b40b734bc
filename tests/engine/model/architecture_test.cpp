// The family registry (engine/model/architecture.h): what a GGUF's general.architecture may name, and
// the layer ops each family brings to the backends.
#include "engine/model/architecture.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>

#include "engine/model/model_weights.h"
#include "engine/model/random_model.h"

namespace pagoda::engine {
namespace {

// A preset written in memory and loaded (the weights view the writer's bytes, kept alive alongside).
struct LoadedPreset {
  std::vector<uint8_t> bytes;
  std::shared_ptr<ModelWeights> weights;
};
LoadedPreset load_preset(const char* preset) {
  LoadedPreset out;
  auto w = random_llama_writer(*random_model_preset(preset));
  EXPECT_TRUE(w.ok()) << w.message();
  auto bytes = w.value().to_bytes();
  EXPECT_TRUE(bytes.ok());
  out.bytes = std::move(bytes.value());
  auto f = GgufFile::parse(out.bytes, std::string(preset) + ".gguf");
  EXPECT_TRUE(f.ok());
  auto m = model_weights_from_gguf(std::move(f.value()));
  EXPECT_TRUE(m.ok()) << m.message();
  if (m.ok()) out.weights = std::move(m.value());
  return out;
}

TEST(Architecture, RegisteredFamiliesAndTheirOps) {
  for (const char* name : {"llama", "mistral"}) {
    const Architecture* a = find_architecture(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_STREQ(a->name, name);
    EXPECT_EQ(a->ops.rope, RopeStyle::Interleaved) << name;
  }
  for (const char* name : {"qwen2", "qwen3"}) {
    const Architecture* a = find_architecture(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_EQ(a->ops.rope, RopeStyle::HalfSplit) << name << ": llama.cpp's LLAMA_ROPE_TYPE_NEOX";
  }
  EXPECT_FALSE(find_architecture("llama")->ops.qk_norm);
  EXPECT_FALSE(find_architecture("qwen2")->ops.qk_norm);
  EXPECT_TRUE(find_architecture("qwen2")->qkv_bias);
  EXPECT_TRUE(find_architecture("qwen3")->ops.qk_norm);
  EXPECT_FALSE(find_architecture("qwen3")->ops.moe);
  EXPECT_TRUE(find_architecture("qwen3moe")->ops.moe);
  EXPECT_TRUE(find_architecture("qwen3moe")->ops.qk_norm);
  EXPECT_FALSE(find_architecture("qwen3")->qkv_bias);
  EXPECT_EQ(find_architecture("gpt2"), nullptr);
  EXPECT_EQ(find_architecture(""), nullptr);
  EXPECT_EQ(find_architecture("Llama"), nullptr) << "names are matched exactly, as ggml does";
  EXPECT_TRUE(find_architecture("phi3")->ops.scale_q_before_attention);
  EXPECT_TRUE(find_architecture("phi3")->fused_qkv && find_architecture("phi3")->fused_gate_up);
  EXPECT_FALSE(find_architecture("llama")->ops.scale_q_before_attention);
  EXPECT_FALSE(find_architecture("qwen2")->fused_gate_up);
  EXPECT_EQ(architecture_names(), "llama, mistral, qwen2, qwen3, qwen3moe, phi3, gemma2, gemma3");
  for (const char* name : {"gemma2", "gemma3"}) {
    const LayerOps& ops = find_architecture(name)->ops;
    EXPECT_EQ(ops.ffn_activation, FfnActivation::GeluTanh) << name;
    EXPECT_TRUE(ops.post_norms && ops.scale_embeddings && ops.scale_q_before_attention) << name;
  }
  EXPECT_TRUE(find_architecture("gemma3")->ops.qk_norm);
  EXPECT_FALSE(find_architecture("gemma2")->ops.qk_norm);
  EXPECT_EQ(find_architecture("llama")->ops.ffn_activation, FfnActivation::Silu);
}

TEST(Architecture, TheLoadedConfigCarriesTheFamilysOps) {
  auto w = random_llama_writer(*random_model_preset("tiny"));
  ASSERT_TRUE(w.ok()) << w.message();
  auto bytes = w.value().to_bytes();
  ASSERT_TRUE(bytes.ok());
  auto f = GgufFile::parse(bytes.value(), "tiny.gguf");
  ASSERT_TRUE(f.ok());
  auto c = model_config_from_gguf(*f.value());
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c.value().architecture, "llama");
  EXPECT_EQ(c.value().ops.rope, RopeStyle::Interleaved);

  w.value().set_string("general.architecture", "mixtral");
  auto other = w.value().to_bytes();
  ASSERT_TRUE(other.ok());
  auto g = GgufFile::parse(other.value(), "moe.gguf");
  ASSERT_TRUE(g.ok());
  auto bad = model_config_from_gguf(*g.value());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("unsupported architecture 'mixtral' (supported: llama, mistral, qwen2, qwen3, qwen3moe, phi3, gemma2, gemma3)"), std::string::npos)
      << bad.message();
}

// Each Qwen preset writes its family's keys and tensors, and the loader finds them: qwen2's biases,
// qwen3's per-head norms and heads wider than d_model / heads (attention.key_length).
TEST(Architecture, QwenPresetsLoadWithTheirExtraTensors) {
  for (const char* preset : {"qwen2-tiny", "qwen3-tiny"}) {
    SCOPED_TRACE(preset);
    const LoadedPreset m = load_preset(preset);
    ASSERT_NE(m.weights, nullptr);
    const ModelConfig& c = m.weights->config;
    EXPECT_EQ(c.architecture, std::string(preset).substr(0, 5));
    EXPECT_EQ(c.ops.rope, RopeStyle::HalfSplit);
    EXPECT_TRUE(c.tied_embeddings);
    const LayerWeights& L = m.weights->layers[0];
    if (c.architecture == "qwen2") {
      EXPECT_EQ(c.head_dim, 16);
      ASSERT_NE(L.bq, nullptr);
      EXPECT_EQ(L.bq->dims, std::vector<int64_t>{c.q_dim()});
      ASSERT_NE(L.bk, nullptr);
      EXPECT_EQ(L.bv->dims, std::vector<int64_t>{c.kv_dim()});
      EXPECT_EQ(L.q_norm, nullptr);
    } else {
      EXPECT_EQ(c.head_dim, 32);
      EXPECT_EQ(c.q_dim(), 128) << "wider than d_model 64";
      EXPECT_EQ(L.bq, nullptr);
      ASSERT_NE(L.q_norm, nullptr);
      EXPECT_EQ(L.k_norm->dims, std::vector<int64_t>{32});
      EXPECT_EQ(L.wo->dims, (std::vector<int64_t>{128, 64}));
    }
  }
}

// qwen3moe: no dense FFN; a router and three 3-D expert tensors whose slices are the experts' matrices.
TEST(Architecture, Qwen3MoePresetLoadsItsExperts) {
  const LoadedPreset m = load_preset("qwen3moe-tiny");
  ASSERT_NE(m.weights, nullptr);
  const ModelConfig& c = m.weights->config;
  EXPECT_TRUE(c.ops.moe);
  EXPECT_EQ(c.n_experts, 8);
  EXPECT_EQ(c.n_experts_used, 2);
  EXPECT_EQ(c.expert_ffn_dim, 64);
  const LayerWeights& L = m.weights->layers[1];
  EXPECT_EQ(L.w_gate, nullptr);
  ASSERT_NE(L.router, nullptr);
  EXPECT_EQ(L.router->type, GgmlType::F32);
  EXPECT_EQ(L.exp_down->dims, (std::vector<int64_t>{64, 64, 8}));
  const GgufTensorInfo third = tensor_slice(*L.exp_up, 3);
  EXPECT_EQ(third.dims, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(third.data, L.exp_up->data + 3 * third.nbytes);
  EXPECT_EQ(third.nbytes * 8, L.exp_up->nbytes);
  EXPECT_NE(c.summary().find("8 experts (2 per token, ffn 64)"), std::string::npos) << c.summary();
}

// phi3: Q/K/V and gate/up are row ranges of the file's fused matrices, and LongRoPE's factor set follows
// the per-sequence context (long past rope.scaling.original_context_length), cos/sin scaled by attn_factor.
TEST(Architecture, Phi3FusedMatricesAndLongRope) {
  const LoadedPreset m = load_preset("phi3-tiny");
  ASSERT_NE(m.weights, nullptr);
  ModelWeights& mw = *m.weights;
  const ModelConfig& c = mw.config;
  EXPECT_EQ(c.ops.rope, RopeStyle::HalfSplit);
  EXPECT_FALSE(c.tied_embeddings);
  const LayerWeights& L = mw.layers[1];
  ASSERT_NE(L.wqkv, nullptr);
  EXPECT_EQ(L.wqkv->dims, (std::vector<int64_t>{64, c.q_dim() + 2 * c.kv_dim()}));
  const int64_t row = static_cast<int64_t>(L.wqkv->nbytes) / (c.q_dim() + 2 * c.kv_dim());
  EXPECT_EQ(L.wq->data, L.wqkv->data);
  EXPECT_EQ(L.wk->data, L.wqkv->data + c.q_dim() * row);
  EXPECT_EQ(L.wv->data, L.wqkv->data + (c.q_dim() + c.kv_dim()) * row);
  EXPECT_EQ(L.wv->dims, (std::vector<int64_t>{64, c.kv_dim()}));
  ASSERT_NE(L.w_gate_up, nullptr);
  EXPECT_EQ(L.w_gate->data, L.w_gate_up->data);
  EXPECT_EQ(L.w_up->data, L.w_gate_up->data + L.w_gate->nbytes);
  EXPECT_EQ(L.w_up->dims, (std::vector<int64_t>{64, c.ffn_dim}));

  EXPECT_EQ(c.rope_scaling.original_context, 64);
  EXPECT_FLOAT_EQ(c.rope_scaling.attn_factor, 1.19f);
  ASSERT_EQ(mw.rope_factors_long.size(), 8u);
  ASSERT_EQ(mw.rope_factors_short.size(), 8u);
  EXPECT_NE(mw.rope_factors_long, mw.rope_factors_short);
  EXPECT_EQ(mw.rope_freq_factors, mw.rope_factors_long) << "the whole 256-token context is past 64";
  select_rope_factors(mw, 64);
  EXPECT_EQ(mw.rope_freq_factors, mw.rope_factors_short);
  select_rope_factors(mw, 65);
  EXPECT_EQ(mw.rope_freq_factors, mw.rope_factors_long);
}

ModelConfig config_of(const RandomModelSpec& spec, const std::function<void(GgufWriter&)>& edit = {}) {
  auto w = random_llama_writer(spec);
  EXPECT_TRUE(w.ok()) << w.message();
  if (edit) edit(w.value());
  auto bytes = w.value().to_bytes();
  EXPECT_TRUE(bytes.ok());
  auto f = GgufFile::parse(bytes.value(), spec.name + ".gguf");
  EXPECT_TRUE(f.ok());
  auto c = model_config_from_gguf(*f.value());
  EXPECT_TRUE(c.ok()) << c.message();
  return c.ok() ? c.value() : ModelConfig{};
}

// gemma2/3: which layers are windowed (the family's pattern, or the file's period or per-layer list), the
// windowed layers' RoPE, the soft-caps, and Q's scale (1/sqrt(d_model / heads) at the 27B layer counts).
TEST(Architecture, GemmaWindowsCapsAndScales) {
  const ModelConfig g2 = config_of(*random_model_preset("gemma2-tiny"));
  EXPECT_EQ(g2.sliding_window, 40);
  EXPECT_EQ(g2.swa_layers, (std::vector<uint8_t>{1, 0}));
  EXPECT_FLOAT_EQ(g2.attn_softcap, 8.0f);
  EXPECT_FLOAT_EQ(g2.final_softcap, 4.0f);
  EXPECT_FLOAT_EQ(g2.attention_scale, 1.0f / std::sqrt(32.0f));
  EXPECT_FLOAT_EQ(g2.rope_theta_swa, g2.rope_theta);
  EXPECT_NE(g2.summary().find("a 40-token window on 1 of 2 layers, soft-capping 8 / 4"), std::string::npos)
      << g2.summary();

  const ModelConfig g3 = config_of(*random_model_preset("gemma3-tiny"));
  EXPECT_EQ(g3.swa_layers, (std::vector<uint8_t>{1, 1, 1, 1, 1, 0}));
  EXPECT_EQ(g3.attn_softcap, 0.0f);
  EXPECT_EQ(g3.final_softcap, 0.0f);
  EXPECT_FLOAT_EQ(g3.rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(g3.rope_theta_swa, 10000.0f);
  EXPECT_FLOAT_EQ(g3.rope_freq_scale, 0.125f) << "linear scaling 8 on the global layers";
  EXPECT_FLOAT_EQ(g3.rope_freq_scale_swa, 1.0f);

  // Defaults where the file is silent: gemma2's 4096 window and caps 50 / 30; gemma3 without a window.
  RandomModelSpec bare = *random_model_preset("gemma2-tiny");
  bare.sliding_window = 0, bare.attn_softcap = 0, bare.final_softcap = 0;
  const ModelConfig d2 = config_of(bare);
  EXPECT_EQ(d2.sliding_window, 4096);
  EXPECT_FLOAT_EQ(d2.attn_softcap, 50.0f);
  EXPECT_FLOAT_EQ(d2.final_softcap, 30.0f);
  RandomModelSpec no_window = *random_model_preset("gemma3-tiny");
  no_window.sliding_window = 0;
  EXPECT_TRUE(config_of(no_window).swa_layers.empty());

  // A period of 3, and an explicit per-layer list, from the file.
  EXPECT_EQ(config_of(*random_model_preset("gemma3-tiny"),
                      [](GgufWriter& w) { w.set_u32("gemma3.attention.sliding_window_pattern", 3); })
                .swa_layers,
            (std::vector<uint8_t>{1, 1, 0, 1, 1, 0}));
  EXPECT_EQ(config_of(*random_model_preset("gemma3-tiny"),
                      [](GgufWriter& w) {
                        w.set_bool_array("gemma3.attention.sliding_window_pattern",
                                         std::vector<bool>{false, true, false, true, true, false});
                      })
                .swa_layers,
            (std::vector<uint8_t>{0, 1, 0, 1, 1, 0}));

  // RoPE of the windowed layers: the file's base; gemma2's take the model's linear scale, gemma3's none;
  // type "none" leaves the global layers unscaled.
  RandomModelSpec scaled2 = *random_model_preset("gemma2-tiny");
  scaled2.rope_linear_factor = 4.0f;
  const ModelConfig s2 = config_of(scaled2, [](GgufWriter& w) { w.set_f32("gemma2.rope.freq_base_swa", 500.0f); });
  EXPECT_FLOAT_EQ(s2.rope_freq_scale, 0.25f);
  EXPECT_FLOAT_EQ(s2.rope_freq_scale_swa, 0.25f);
  EXPECT_FLOAT_EQ(s2.rope_theta_swa, 500.0f);
  EXPECT_FLOAT_EQ(config_of(*random_model_preset("gemma3-tiny"),
                            [](GgufWriter& w) { w.set_string("gemma3.rope.scaling.type", "none"); })
                      .rope_freq_scale,
                  1.0f);
  // Logit soft-capping is a gemma key: a llama file's is ignored, as llama.cpp does.
  EXPECT_EQ(config_of(*random_model_preset("tiny"),
                      [](GgufWriter& w) { w.set_f32("llama.final_logit_softcapping", 30.0f); })
                .final_softcap,
            0.0f);
  // llama3 scaling without a factor key takes Llama 3.1's 8 (the divisors are derived from it), with one
  // the file's; neither changes the linear scale.
  const ModelConfig l3 = config_of(*random_model_preset("tiny"),
                                   [](GgufWriter& w) { w.set_string("llama.rope.scaling.type", "llama3"); });
  EXPECT_TRUE(l3.rope_scaling.llama3);
  EXPECT_FLOAT_EQ(l3.rope_scaling.factor, 8.0f);
  EXPECT_FLOAT_EQ(l3.rope_freq_scale, 1.0f);
  EXPECT_FLOAT_EQ(config_of(*random_model_preset("tiny"),
                            [](GgufWriter& w) {
                              w.set_string("llama.rope.scaling.type", "llama3");
                              w.set_f32("llama.rope.scaling.factor", 32.0f);
                            })
                      .rope_scaling.factor,
                  32.0f);
  // LongRoPE's scaling type is phi3's.
  EXPECT_EQ(config_of(*random_model_preset("phi3-tiny"),
                      [](GgufWriter& w) { w.set_string("phi3.rope.scaling.type", "longrope"); })
                .rope_freq_scale,
            1.0f);

  RandomModelSpec big = *random_model_preset("gemma2-tiny");  // Gemma 2 27B's layer count
  big.n_layers = 46;
  EXPECT_FLOAT_EQ(config_of(big).attention_scale, 1.0f / std::sqrt(16.0f)) << "d_model 64 / 4 heads";
}

// llama with experts is Mixtral: the file's expert_count turns the experts on, each feed_forward_length wide
// (an expert_feed_forward_length key changes nothing: llama.cpp's llama loader ignores it); without, dense.
TEST(Architecture, LlamaWithExpertsIsMixtral) {
  const LoadedPreset m = load_preset("mixtral-tiny");
  ASSERT_NE(m.weights, nullptr);
  const ModelConfig& c = m.weights->config;
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_TRUE(c.ops.moe);
  EXPECT_FALSE(c.ops.qk_norm);
  EXPECT_EQ(c.ops.rope, RopeStyle::Interleaved);
  EXPECT_EQ(c.n_experts, 8);
  EXPECT_EQ(c.n_experts_used, 2);
  EXPECT_EQ(c.expert_ffn_dim, c.ffn_dim);
  EXPECT_EQ(m.weights->layers[0].w_gate, nullptr);
  ASSERT_NE(m.weights->layers[0].exp_gate, nullptr);
  EXPECT_EQ(m.weights->layers[0].exp_gate->dims, (std::vector<int64_t>{64, 128, 8}));
  EXPECT_EQ(config_of(*random_model_preset("mixtral-tiny"),
                      [](GgufWriter& w) { w.set_u32("llama.expert_feed_forward_length", 64); })
                .expert_ffn_dim,
            128);
  EXPECT_FALSE(config_of(*random_model_preset("tiny")).ops.moe);
  RandomModelSpec wrong = *random_model_preset("mixtral-tiny");
  wrong.expert_ffn_dim = 64;
  EXPECT_FALSE(validate_random_model_spec(wrong).ok());
}

// Broken Qwen files: a bias missing from the three, a missing qwen3 norm, a value_length unlike the key's.
TEST(Architecture, BrokenQwenFilesNameWhatIsWrong) {
  auto load = [](const char* preset, const std::function<void(GgufWriter&)>& edit) {
    auto w = random_llama_writer(*random_model_preset(preset));
    EXPECT_TRUE(w.ok());
    edit(w.value());
    auto bytes = w.value().to_bytes();
    EXPECT_TRUE(bytes.ok());
    auto f = GgufFile::parse(bytes.value(), "broken.gguf");
    EXPECT_TRUE(f.ok());
    auto m = model_weights_from_gguf(std::move(f.value()));
    return m.ok() ? std::string("loaded") : m.message();
  };
  EXPECT_NE(load("qwen2-tiny", [](GgufWriter& w) { w.remove_tensor("blk.1.attn_k.bias"); })
                .find("'blk.1.' has 2 of the three attention biases"),
            std::string::npos);
  EXPECT_NE(load("qwen3-tiny", [](GgufWriter& w) { w.remove_tensor("blk.0.attn_k_norm.weight"); })
                .find("missing tensor 'blk.0.attn_k_norm.weight'"),
            std::string::npos);
  EXPECT_NE(load("qwen3-tiny", [](GgufWriter& w) { w.set_u32("qwen3.attention.value_length", 16); })
                .find("value_length 16 != key_length 32"),
            std::string::npos);
  EXPECT_NE(load("qwen3moe-tiny", [](GgufWriter& w) { w.set_u32("qwen3moe.expert_used_count", 9); })
                .find("expert_count 8 and expert_used_count 9"),
            std::string::npos);
  EXPECT_NE(load("qwen3moe-tiny", [](GgufWriter& w) { w.remove_tensor("blk.0.ffn_gate_inp.weight"); })
                .find("missing tensor 'blk.0.ffn_gate_inp.weight'"),
            std::string::npos);
  EXPECT_NE(load("mixtral-tiny", [](GgufWriter& w) { w.remove_tensor("blk.1.ffn_gate_exps.weight"); })
                .find("missing tensor 'blk.1.ffn_gate_exps.weight'"),
            std::string::npos);
  // Mixtral's experts are feed_forward_length wide: experts of another width do not fit.
  EXPECT_NE(load("mixtral-tiny", [](GgufWriter& w) { w.set_u32("llama.feed_forward_length", 64); })
                .find("'blk.0.ffn_gate_exps.weight' has dims {64, 128, 8}, expected {64, 64, 8}"),
            std::string::npos);
  EXPECT_NE(load("mixtral-tiny", [](GgufWriter& w) { w.remove_key("llama.expert_used_count"); })
                .find("llama.expert_used_count"),
            std::string::npos);
  EXPECT_NE(load("tiny", [](GgufWriter& w) { w.set_i32("llama.expert_count", -2); })
                .find("llama.expert_count -2 is negative"),
            std::string::npos);
  // phi3: ffn_up must hold the gate's rows too; a LongRoPE factor tensor of the wrong size.
  EXPECT_NE(load("phi3-tiny", [](GgufWriter& w) { w.remove_tensor("blk.1.ffn_up.weight"); })
                .find("missing tensor 'blk.1.ffn_up.weight'"),
            std::string::npos);
  EXPECT_NE(load("phi3-tiny", [](GgufWriter& w) { w.set_u32("phi3.feed_forward_length", 64); })
                .find("tensor 'blk.0.ffn_up.weight' has dims {64, 256}, expected {64, 128}"),
            std::string::npos);
  // A fused QKV with a fused bias (llama.cpp adds it; Pagoda does not read it) is refused, not run without.
  EXPECT_NE(load("phi3-tiny",
                 [](GgufWriter& w) {
                   (void)w.add_tensor("blk.0.attn_qkv.bias", GgmlType::F32, {128}, std::vector<uint8_t>(128 * 4));
                 })
                .find("has attn_qkv.bias next to attn_qkv.weight"),
            std::string::npos);
  // gemma: a per-layer window list of the wrong length, a missing post-norm; YaRN RoPE is refused.
  EXPECT_NE(load("gemma3-tiny",
                 [](GgufWriter& w) {
                   w.set_bool_array("gemma3.attention.sliding_window_pattern", std::vector<bool>{true, false});
                 })
                .find("sliding_window_pattern has 2 entries for 6 layers"),
            std::string::npos);
  EXPECT_NE(load("gemma2-tiny", [](GgufWriter& w) { w.remove_tensor("blk.1.post_ffw_norm.weight"); })
                .find("missing tensor 'blk.1.post_ffw_norm.weight'"),
            std::string::npos);
  EXPECT_NE(load("tiny", [](GgufWriter& w) { w.set_string("llama.rope.scaling.type", "yarn"); })
                .find("rope.scaling.type 'yarn' is not supported for 'llama'"),
            std::string::npos);
  EXPECT_NE(load("tiny", [](GgufWriter& w) { w.set_string("llama.rope.scaling.type", "longrope"); })
                .find("rope.scaling.type 'longrope' is not supported for 'llama' (linear, none)"),
            std::string::npos);
  EXPECT_NE(load("tiny", [](GgufWriter& w) { w.set_u32("llama.rope.scaling.type", 1); }).find("rope.scaling.type"),
            std::string::npos);
  EXPECT_NE(load("phi3-tiny", [](GgufWriter& w) { w.set_u32("phi3.rope.scaling.original_context_length", 0); })
                .find("original_context_length 0"),
            std::string::npos);
}

}  // namespace
}  // namespace pagoda::engine
