// Random models of the registered families: metadata as convert_hf_to_gguf writes it, tensors named and shaped
// as llama.cpp (and model_weights.cpp) expect, weights generated row by row from a per-row seed (so
// rows can be generated in parallel and the result does not depend on the thread count) and quantized
// with ggml's reference quantizers.
#include "engine/model/random_model.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "engine/gguf/gguf_file.h"
#include "engine/model/architecture.h"
#include "engine/quant/dequant.h"
#include "engine/tokenizer/unicode_utf8.h"

namespace pagoda::engine {

namespace {

constexpr int kBlock = 32;
constexpr int kByteTokens = 256;

// ---- ggml reference quantizers (ggml-quants.c quantize_row_*_ref) ----

void quantize_q8_0(const float* x, uint8_t* out) {
  float amax = 0.0f;
  for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t dh = fp32_to_fp16(d);
  std::memcpy(out, &dh, 2);
  for (int j = 0; j < kBlock; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
}

void quantize_q4_0(const float* x, uint8_t* out) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t dh = fp32_to_fp16(d);
  std::memcpy(out, &dh, 2);
  for (int j = 0; j < kBlock / 2; ++j) {
    const int xi0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
    const int xi1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[kBlock / 2 + j] * id + 8.5f)));
    out[2 + j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
  }
}

void quantize_q4_1(const float* x, uint8_t* out) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < kBlock; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t dh = fp32_to_fp16(d), mh = fp32_to_fp16(min);
  std::memcpy(out, &dh, 2);
  std::memcpy(out + 2, &mh, 2);
  for (int j = 0; j < kBlock / 2; ++j) {
    const int xi0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
    const int xi1 = std::min(15, static_cast<int>(static_cast<int8_t>((x[kBlock / 2 + j] - min) * id + 0.5f)));
    out[4 + j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
  }
}

// Encodes n floats (n a multiple of 32 for the block types) as `type` into out.
void encode_row(GgmlType type, const float* x, int64_t n, uint8_t* out) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, x, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_fp16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q8_0:
      for (int64_t b = 0; b < n / kBlock; ++b) quantize_q8_0(x + b * kBlock, out + b * 34);
      return;
    case GgmlType::Q4_0:
      for (int64_t b = 0; b < n / kBlock; ++b) quantize_q4_0(x + b * kBlock, out + b * 18);
      return;
    case GgmlType::Q4_1:
      for (int64_t b = 0; b < n / kBlock; ++b) quantize_q4_1(x + b * kBlock, out + b * 20);
      return;
    default:
      return;  // validate_random_model_spec rejects other types
  }
}

// ---- deterministic random numbers ----

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001B3ull;
  }
  return h;
}

// xoshiro256+ seeded from (seed, tensor, row) through splitmix64.
class RowRng {
 public:
  RowRng(uint64_t seed, uint64_t tensor_hash, uint64_t row) {
    uint64_t s = seed ^ (tensor_hash * 0xD1B54A32D192ED03ull) ^ (row * 0x9E3779B97F4A7C15ull);
    for (uint64_t& x : s_) x = splitmix64(s);
  }
  // Fills x[0..n) with approximately N(mean, std^2) values: the Irwin-Hall sum of four 16-bit uniforms
  // (one 64-bit draw per value, no transcendentals: an 8B model's weights take minutes otherwise),
  // centred and scaled to unit variance; bounded by +-2*sqrt(3) std.
  void normal(float* x, int64_t n, float mean, float std) {
    constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(12 / 4) per 16-bit unit
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t r = next();
      const int32_t sum = static_cast<int32_t>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
      x[i] = mean + std * (static_cast<float>(sum - 2 * 65535) * kScale);
    }
  }

 private:
  uint64_t next() {
    const uint64_t result = s_[0] + s_[3];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = (s_[3] << 45) | (s_[3] >> 19);
    return result;
  }
  uint64_t s_[4];
};

// ---- the tensor list ----

struct TensorPlan {
  std::string name;
  GgmlType type;
  std::vector<int64_t> dims;  // {cols, rows} or {cols}
  float mean;
  float std;
};

// Whether the spec's layers route to experts: the family always does (qwen3moe), or llama with experts (Mixtral).
bool spec_has_experts(const RandomModelSpec& s, const Architecture& arch) {
  return arch.ops.moe || (arch.moe_by_expert_count && s.n_experts > 0);
}

std::vector<TensorPlan> tensor_plan(const RandomModelSpec& s) {
  const int64_t d = s.d_model, hd = random_model_head_dim(s), q = hd * s.n_heads, kv = hd * s.n_kv_heads;
  const Architecture* arch = find_architecture(s.architecture);  // validated: registered
  const int64_t ff = s.ffn_dim, vocab = s.vocab_size;
  const GgmlType w = s.weight_type;
  // Matrices: std 1/sqrt(fan_in) keeps activations and logits of order 1 at every size (0.016 at
  // d 4096, 0.125 at d 64). Norm weights: around 1.
  const float sd = 1.0f / std::sqrt(static_cast<float>(d)), sq = 1.0f / std::sqrt(static_cast<float>(q));
  const float sf = 1.0f / std::sqrt(static_cast<float>(ff));
  std::vector<TensorPlan> out;
  out.push_back({"token_embd.weight", w, {d, vocab}, 0.0f, sd});
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    out.push_back({p + "attn_norm.weight", GgmlType::F32, {d}, 1.0f, 0.1f});
    if (arch->fused_qkv) {
      out.push_back({p + "attn_qkv.weight", w, {d, q + 2 * kv}, 0.0f, sd});
    } else {
      out.push_back({p + "attn_q.weight", w, {d, q}, 0.0f, sd});
      out.push_back({p + "attn_k.weight", w, {d, kv}, 0.0f, sd});
      out.push_back({p + "attn_v.weight", w, {d, kv}, 0.0f, sd});
    }
    if (arch->qkv_bias) {  // large, as trained Qwen2 biases are (their K bias most of all)
      out.push_back({p + "attn_q.bias", GgmlType::F32, {q}, 0.0f, 0.5f});
      out.push_back({p + "attn_k.bias", GgmlType::F32, {kv}, 0.0f, 0.5f});
      out.push_back({p + "attn_v.bias", GgmlType::F32, {kv}, 0.0f, 0.5f});
    }
    if (arch->ops.qk_norm) {
      out.push_back({p + "attn_q_norm.weight", GgmlType::F32, {hd}, 1.0f, 0.1f});
      out.push_back({p + "attn_k_norm.weight", GgmlType::F32, {hd}, 1.0f, 0.1f});
    }
    out.push_back({p + "attn_output.weight", w, {q, d}, 0.0f, sq});
    if (arch->ops.post_norms) out.push_back({p + "post_attention_norm.weight", GgmlType::F32, {d}, 1.0f, 0.1f});
    out.push_back({p + "ffn_norm.weight", GgmlType::F32, {d}, 1.0f, 0.1f});
    if (arch->ops.post_norms) out.push_back({p + "post_ffw_norm.weight", GgmlType::F32, {d}, 1.0f, 0.1f});
    if (spec_has_experts(s, *arch)) {  // the router stays F32, as llama.cpp's quantizer leaves it
      const int64_t ne = s.n_experts, fe = s.expert_ffn_dim;
      const float se = 1.0f / std::sqrt(static_cast<float>(fe));
      out.push_back({p + "ffn_gate_inp.weight", GgmlType::F32, {d, ne}, 0.0f, 4.0f * sd});
      out.push_back({p + "ffn_gate_exps.weight", w, {d, fe, ne}, 0.0f, sd});
      out.push_back({p + "ffn_up_exps.weight", w, {d, fe, ne}, 0.0f, sd});
      out.push_back({p + "ffn_down_exps.weight", w, {fe, d, ne}, 0.0f, se});
      continue;
    }
    if (arch->fused_gate_up) {
      out.push_back({p + "ffn_up.weight", w, {d, 2 * ff}, 0.0f, sd});
    } else {
      out.push_back({p + "ffn_gate.weight", w, {d, ff}, 0.0f, sd});
      out.push_back({p + "ffn_up.weight", w, {d, ff}, 0.0f, sd});
    }
    out.push_back({p + "ffn_down.weight", w, {ff, d}, 0.0f, sf});
  }
  if (s.longrope_original_context > 0) {  // positive divisors: long ones around 2 (0.3..3.7), short around 1
    out.push_back({"rope_factors_long.weight", GgmlType::F32, {hd / 2}, 2.0f, 0.5f});
    out.push_back({"rope_factors_short.weight", GgmlType::F32, {hd / 2}, 1.0f, 0.05f});
  }
  out.push_back({"output_norm.weight", GgmlType::F32, {d}, 1.0f, 0.1f});
  if (!s.tied_embeddings) out.push_back({"output.weight", w, {d, vocab}, 0.0f, sd});
  return out;
}

// Generates a tensor a chunk of rows at a time (rows in parallel) and appends the encoded bytes.
Status generate_tensor(const RandomModelSpec& spec, const TensorPlan& t, const GgufWriter::Append& append) {
  const int64_t cols = t.dims[0];
  int64_t rows = 1;  // every dimension after the first (3-D expert tensors: rows of all experts)
  for (size_t i = 1; i < t.dims.size(); ++i) rows *= t.dims[i];
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(t.type));
  const int64_t row_bytes = ggml_row_bytes(*info, cols);
  const int64_t chunk_rows = std::max<int64_t>(1, (int64_t{8} << 20) / row_bytes);
  const uint64_t hash = fnv1a(t.name);
  std::vector<uint8_t> buf(static_cast<size_t>(std::min(rows, chunk_rows) * row_bytes));
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t n = std::min(chunk_rows, rows - r0);
#pragma omp parallel if (n > 16)
    {
      std::vector<float> x(static_cast<size_t>(cols));
#pragma omp for schedule(static)
      for (int64_t r = 0; r < n; ++r) {
        RowRng rng(spec.seed, hash, static_cast<uint64_t>(r0 + r));
        rng.normal(x.data(), cols, t.mean, t.std);
        encode_row(t.type, x.data(), cols, buf.data() + r * row_bytes);
      }
    }
    if (Status s = append(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n * row_bytes))); !s.ok()) return s;
  }
  return {};
}

const char* kChatMlTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

uint32_t file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q4_1: return 3;
    case GgmlType::Q8_0: return 7;
    default: return 0;
  }
}

// Metadata and tokenizer; tensors are added by the callers.
// One metadata value copied as it is (type included).
void copy_value(GgufWriter& w, const std::string& key, const GgufValue& v) {
  auto numbers = [&]<class T>(void (GgufWriter::*set)(std::string_view, std::span<const T>)) {
    std::vector<T> xs(static_cast<size_t>(v.count));
    if (!xs.empty()) std::memcpy(xs.data(), v.raw, xs.size() * sizeof(T));
    (w.*set)(key, std::span<const T>(xs));
  };
  switch (v.type) {
    case GgufValueType::UINT8: w.set_u8(key, static_cast<uint8_t>(v.u)); return;
    case GgufValueType::INT8: w.set_i8(key, static_cast<int8_t>(v.i)); return;
    case GgufValueType::UINT16: w.set_u16(key, static_cast<uint16_t>(v.u)); return;
    case GgufValueType::INT16: w.set_i16(key, static_cast<int16_t>(v.i)); return;
    case GgufValueType::UINT32: w.set_u32(key, static_cast<uint32_t>(v.u)); return;
    case GgufValueType::INT32: w.set_i32(key, static_cast<int32_t>(v.i)); return;
    case GgufValueType::UINT64: w.set_u64(key, v.u); return;
    case GgufValueType::INT64: w.set_i64(key, v.i); return;
    case GgufValueType::FLOAT32: w.set_f32(key, static_cast<float>(v.f)); return;
    case GgufValueType::FLOAT64: w.set_f64(key, v.f); return;
    case GgufValueType::BOOL: w.set_bool(key, v.u != 0); return;
    case GgufValueType::STRING: w.set_string(key, v.str); return;
    case GgufValueType::ARRAY: break;
  }
  switch (v.elem_type) {
    case GgufValueType::UINT8: numbers(&GgufWriter::set_u8_array); return;
    case GgufValueType::INT8: numbers(&GgufWriter::set_i8_array); return;
    case GgufValueType::UINT16: numbers(&GgufWriter::set_u16_array); return;
    case GgufValueType::INT16: numbers(&GgufWriter::set_i16_array); return;
    case GgufValueType::UINT32: numbers(&GgufWriter::set_u32_array); return;
    case GgufValueType::INT32: numbers(&GgufWriter::set_i32_array); return;
    case GgufValueType::UINT64: numbers(&GgufWriter::set_u64_array); return;
    case GgufValueType::INT64: numbers(&GgufWriter::set_i64_array); return;
    case GgufValueType::FLOAT32: numbers(&GgufWriter::set_f32_array); return;
    case GgufValueType::FLOAT64: numbers(&GgufWriter::set_f64_array); return;
    case GgufValueType::BOOL: {
      std::vector<bool> bs(static_cast<size_t>(v.count));
      for (size_t i = 0; i < bs.size(); ++i) bs[i] = v.raw[i] != 0;
      w.set_bool_array(key, bs);
      return;
    }
    case GgufValueType::STRING: {
      std::vector<std::string> ss(v.strings.begin(), v.strings.end());
      w.set_string_array(key, ss);
      return;
    }
    case GgufValueType::ARRAY: return;  // GgufFile rejects arrays of arrays
  }
}

Status set_metadata(const RandomModelSpec& s, GgufWriter& w) {
  const uint32_t hd = static_cast<uint32_t>(random_model_head_dim(s));
  const std::string a = s.architecture + ".";
  w.set_string("general.architecture", s.architecture);
  w.set_string("general.name", s.name);
  w.set_u32("general.file_type", file_type(s.weight_type));
  w.set_u32("general.quantization_version", 2);
  w.set_u32(a + "context_length", static_cast<uint32_t>(s.context_length));
  w.set_u32(a + "embedding_length", static_cast<uint32_t>(s.d_model));
  w.set_u32(a + "block_count", static_cast<uint32_t>(s.n_layers));
  w.set_u32(a + "feed_forward_length", static_cast<uint32_t>(s.ffn_dim));
  w.set_u32(a + "attention.head_count", static_cast<uint32_t>(s.n_heads));
  w.set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(s.n_kv_heads));
  w.set_u32(a + "attention.key_length", hd);
  w.set_u32(a + "attention.value_length", hd);
  w.set_f32(a + "attention.layer_norm_rms_epsilon", s.rms_eps);
  w.set_f32(a + "rope.freq_base", s.rope_theta);
  w.set_u32(a + "rope.dimension_count", hd);
  w.set_u32(a + "vocab_size", static_cast<uint32_t>(s.vocab_size));
  if (s.rope_linear_factor > 0) {
    w.set_string(a + "rope.scaling.type", "linear");
    w.set_f32(a + "rope.scaling.factor", s.rope_linear_factor);
  }
  if (s.sliding_window > 0) w.set_u32(a + "attention.sliding_window", static_cast<uint32_t>(s.sliding_window));
  if (s.attn_softcap > 0) w.set_f32(a + "attn_logit_softcapping", s.attn_softcap);
  if (s.final_softcap > 0) w.set_f32(a + "final_logit_softcapping", s.final_softcap);
  if (s.longrope_original_context > 0) {
    w.set_u32(a + "rope.scaling.original_context_length", static_cast<uint32_t>(s.longrope_original_context));
    w.set_f32(a + "rope.scaling.attn_factor", s.rope_attn_factor);
  }
  if (s.n_experts > 0) {
    w.set_u32(a + "expert_count", static_cast<uint32_t>(s.n_experts));
    w.set_u32(a + "expert_used_count", static_cast<uint32_t>(s.n_experts_used));
    // llama's experts (Mixtral) are feed_forward_length wide: the key is the other families'.
    if (!find_architecture(s.architecture)->moe_by_expert_count) {
      w.set_u32(a + "expert_feed_forward_length", static_cast<uint32_t>(s.expert_ffn_dim));
    }
  }
  if (!s.vocab_path.empty()) {  // the tokenizer of another file, every tokenizer.* key as it is there
    auto f = GgufFile::open(s.vocab_path);
    if (!f.ok()) return f.status();
    for (const auto& [key, value] : f.value()->metadata()) {
      if (key.starts_with("tokenizer.")) copy_value(w, key, value);
    }
    if (!w.has_key("tokenizer.chat_template")) w.set_string("tokenizer.chat_template", kChatMlTemplate);
    return {};
  }
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  tokens.reserve(static_cast<size_t>(s.vocab_size));
  for (int b = 0; b < kByteTokens; ++b) tokens.push_back(tok::byte_to_unicode(static_cast<uint8_t>(b)));
  for (int i = kByteTokens; i < s.vocab_size - 2; ++i) tokens.push_back(fmt::format("<tok_{}>", i));
  tokens.push_back("<|im_start|>");
  tokens.push_back("<|im_end|>");
  types.assign(tokens.size(), 1);  // normal
  types[tokens.size() - 2] = 3;    // control
  types[tokens.size() - 1] = 3;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "default");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", std::vector<std::string>());
  w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(s.vocab_size - 2));
  w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(s.vocab_size - 1));
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  w.set_string("tokenizer.chat_template", kChatMlTemplate);
  return {};
}

}  // namespace

std::optional<RandomModelSpec> random_model_preset(std::string_view name) {
  RandomModelSpec s;
  s.name = std::string(name);
  if (name == "tiny") {
    return s;  // the defaults
  }
  if (name == "smollm2-135m") {
    s.n_layers = 30, s.d_model = 576, s.n_heads = 9, s.n_kv_heads = 3, s.ffn_dim = 1536, s.vocab_size = 49152;
    s.context_length = 8192, s.rope_theta = 100000.0f, s.tied_embeddings = true, s.weight_type = GgmlType::Q8_0;
    return s;
  }
  if (name == "llama3-8b") {
    s.n_layers = 32, s.d_model = 4096, s.n_heads = 32, s.n_kv_heads = 8, s.ffn_dim = 14336, s.vocab_size = 128256;
    s.context_length = 8192, s.rope_theta = 500000.0f, s.tied_embeddings = false, s.weight_type = GgmlType::Q4_0;
    return s;
  }
  if (name == "llama2-7b") {
    s.n_layers = 32, s.d_model = 4096, s.n_heads = 32, s.n_kv_heads = 32, s.ffn_dim = 11008, s.vocab_size = 32000;
    s.context_length = 4096, s.rope_theta = 10000.0f, s.tied_embeddings = false, s.weight_type = GgmlType::Q4_0;
    return s;
  }
  // Qwen: the tiny shapes for tests (qwen3's heads wider than d_model / heads, as in every Qwen3), then
  // the real ones (Qwen2.5-0.5B-Instruct's and Qwen3-0.6B's config.json).
  if (name == "qwen2-tiny" || name == "qwen3-tiny") {
    s.architecture = name.substr(0, 5);
    s.rope_theta = 1000000.0f, s.rms_eps = 1e-6f, s.tied_embeddings = true;
    if (name == "qwen3-tiny") s.head_dim = 32;
    return s;
  }
  // qwen3moe: eight experts, two per token (Qwen3-30B-A3B has 128 and 8), tiny shapes for tests.
  if (name == "qwen3moe-tiny") {
    s.architecture = "qwen3moe";
    s.rope_theta = 1000000.0f, s.rms_eps = 1e-6f, s.tied_embeddings = true, s.head_dim = 32;
    s.n_experts = 8, s.n_experts_used = 2, s.expert_ffn_dim = 64;
    return s;
  }
  // The same family in awkward shapes, for the golden test: a 328-row LM head (Q4_0 groups of 16 end half
  // full), K = 96 and 160 (F16/F32 tails after 64-element steps), 18 experts (a 16-lane softmax chunk plus
  // a tail; a router tinyBLAS declines, 18 % 4 != 0), 4 per token.
  if (name == "qwen3moe-shapes") {
    s.architecture = "qwen3moe";
    s.d_model = 96, s.n_heads = 4, s.n_kv_heads = 2, s.head_dim = 40, s.vocab_size = 328;
    s.rope_theta = 1000000.0f, s.rms_eps = 1e-6f, s.tied_embeddings = true;
    s.n_experts = 18, s.n_experts_used = 4, s.expert_ffn_dim = 96;
    return s;
  }
  // Mixtral: a llama file with experts (eight, two per token, as Mixtral 8x7B), each feed_forward_length wide.
  if (name == "mixtral-tiny") {
    s.n_experts = 8, s.n_experts_used = 2, s.expert_ffn_dim = s.ffn_dim;
    return s;
  }
  // phi3: fused QKV and gate/up, Q scaled before attention; LongRoPE past 64 positions (Phi-3.5-mini's
  // 128k scheme: attn_factor 1.19 there), so a 256-token context runs on the long factors.
  if (name == "phi3-tiny") {
    s.architecture = "phi3";
    s.longrope_original_context = 64, s.rope_attn_factor = 1.19f;
    return s;
  }
  // Gemma 2: heads wider than d_model / heads as in every Gemma, a 40-token window on layer 0 (not a
  // multiple of the 16-key softmax chunks; the test sequences run to 256), caps low enough that tanh bends.
  if (name == "gemma2-tiny") {
    s.architecture = "gemma2";
    s.head_dim = 32, s.rms_eps = 1e-6f, s.tied_embeddings = true;
    s.sliding_window = 40, s.attn_softcap = 8.0f, s.final_softcap = 4.0f;
    return s;
  }
  // Gemma 3: six layers, so the default pattern gives five windowed ones (48 tokens, RoPE base 10000)
  // and one global (base 1e6, linear scaling 8 as Gemma 3 4B and up); 64-wide heads, so the attention
  // runs the vector kernel where the CPU has one (gemma2-tiny's 32 run the portable loops).
  if (name == "gemma3-tiny") {
    s.architecture = "gemma3";
    s.n_layers = 6, s.head_dim = 64, s.rms_eps = 1e-6f, s.tied_embeddings = true;
    s.rope_theta = 1000000.0f, s.rope_linear_factor = 8.0f, s.sliding_window = 48;
    return s;
  }
  if (name == "qwen2.5-0.5b") {
    s.architecture = "qwen2";
    s.n_layers = 24, s.d_model = 896, s.n_heads = 14, s.n_kv_heads = 2, s.ffn_dim = 4864, s.vocab_size = 151936;
    s.context_length = 32768, s.rope_theta = 1000000.0f, s.rms_eps = 1e-6f, s.tied_embeddings = true;
    return s;
  }
  if (name == "qwen3-0.6b") {
    s.architecture = "qwen3";
    s.n_layers = 28, s.d_model = 1024, s.n_heads = 16, s.n_kv_heads = 8, s.head_dim = 128, s.ffn_dim = 3072;
    s.vocab_size = 151936, s.context_length = 40960, s.rope_theta = 1000000.0f, s.rms_eps = 1e-6f;
    s.tied_embeddings = true;
    return s;
  }
  if (name == "gemma2-2b") {  // gemma-2-2b-it's config.json
    s.architecture = "gemma2";
    s.n_layers = 26, s.d_model = 2304, s.n_heads = 8, s.n_kv_heads = 4, s.head_dim = 256, s.ffn_dim = 9216;
    s.vocab_size = 256000, s.context_length = 8192, s.rms_eps = 1e-6f, s.tied_embeddings = true;
    s.sliding_window = 4096, s.attn_softcap = 50.0f, s.final_softcap = 30.0f, s.weight_type = GgmlType::Q4_0;
    return s;
  }
  if (name == "gemma3-1b") {  // gemma-3-1b-it's config.json
    s.architecture = "gemma3";
    s.n_layers = 26, s.d_model = 1152, s.n_heads = 4, s.n_kv_heads = 1, s.head_dim = 256, s.ffn_dim = 6912;
    s.vocab_size = 262144, s.context_length = 32768, s.rope_theta = 1000000.0f, s.rms_eps = 1e-6f;
    s.tied_embeddings = true, s.sliding_window = 512, s.weight_type = GgmlType::Q4_0;
    return s;
  }
  if (name == "qwen3-30b-a3b") {  // Qwen3-30B-A3B's config.json (the MoE benchmark cuts it to a few layers)
    s.architecture = "qwen3moe";
    s.n_layers = 48, s.d_model = 2048, s.n_heads = 32, s.n_kv_heads = 4, s.head_dim = 128, s.ffn_dim = 6144;
    s.n_experts = 128, s.n_experts_used = 8, s.expert_ffn_dim = 768;
    s.vocab_size = 151936, s.context_length = 40960, s.rope_theta = 1000000.0f, s.rms_eps = 1e-6f;
    s.weight_type = GgmlType::Q4_0;
    return s;
  }
  if (name == "phi3-mini") {  // Phi-3-mini-4k-instruct's config.json
    s.architecture = "phi3";
    s.n_layers = 32, s.d_model = 3072, s.n_heads = 32, s.n_kv_heads = 32, s.ffn_dim = 8192, s.vocab_size = 32064;
    s.context_length = 4096, s.rope_theta = 10000.0f, s.weight_type = GgmlType::Q4_0;
    return s;
  }
  return std::nullopt;
}

std::vector<std::string> random_model_preset_names() {
  return {"tiny",         "smollm2-135m", "llama3-8b",     "llama2-7b",       "qwen2-tiny",   "qwen3-tiny",
          "qwen3moe-tiny", "qwen3moe-shapes", "mixtral-tiny", "phi3-tiny",      "gemma2-tiny",  "gemma3-tiny",
          "qwen2.5-0.5b", "qwen3-0.6b",   "phi3-mini",     "gemma2-2b",       "gemma3-1b",    "qwen3-30b-a3b"};
}

Status use_vocabulary(RandomModelSpec& spec, const std::string& path) {
  auto f = GgufFile::open(path);
  if (!f.ok()) return f.status();
  auto tokens = f.value()->get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.status();
  if (!tokens.value() || tokens.value()->empty()) {
    return Status::error(fmt::format("{}: no tokenizer.ggml.tokens: not a vocabulary to take", path));
  }
  spec.vocab_path = path;
  spec.vocab_size = static_cast<int>(tokens.value()->size());
  return {};
}

int random_model_head_dim(const RandomModelSpec& s) {
  return s.head_dim > 0 ? s.head_dim : (s.n_heads > 0 ? s.d_model / s.n_heads : 0);
}

Status validate_random_model_spec(const RandomModelSpec& s) {
  if (!find_architecture(s.architecture)) {
    return Status::error(fmt::format("random model '{}': unknown architecture '{}' (known: {})", s.name,
                                     s.architecture, architecture_names()));
  }
  switch (s.weight_type) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q8_0: case GgmlType::F16: case GgmlType::F32:
      break;
    default:
      return Status::error(fmt::format("random model '{}': weight type {} is not supported (q4_0, q4_1, q8_0, f16, f32)",
                                       s.name, ggml_type_name(static_cast<uint32_t>(s.weight_type))));
  }
  if (s.n_layers < 1 || s.d_model < 1 || s.n_heads < 1 || s.n_kv_heads < 1 || s.ffn_dim < 1 || s.context_length < 1) {
    return Status::error(fmt::format("random model '{}': layers, d_model, heads, kv heads, ffn and context must be "
                                     "positive", s.name));
  }
  if ((s.head_dim == 0 && s.d_model % s.n_heads != 0) || s.n_heads % s.n_kv_heads != 0) {
    return Status::error(fmt::format("random model '{}': d_model {} must be a multiple of heads {} (or head_dim "
                                     "given), and heads a multiple of kv heads {}", s.name, s.d_model, s.n_heads,
                                     s.n_kv_heads));
  }
  if (s.head_dim < 0) return Status::error(fmt::format("random model '{}': head_dim {} is negative", s.name, s.head_dim));
  const int hd = random_model_head_dim(s);
  if (hd % 2 != 0 || hd > 256) {
    return Status::error(fmt::format("random model '{}': head_dim {} must be even and at most 256", s.name, hd));
  }
  const Architecture* arch = find_architecture(s.architecture);
  if (spec_has_experts(s, *arch) && (s.n_experts < 1 || s.n_experts_used < 1 || s.n_experts_used > s.n_experts ||
                                     s.expert_ffn_dim < 1 || s.expert_ffn_dim % kBlock != 0)) {
    return Status::error(fmt::format("random model '{}': {} needs experts (count {}, used {} <= count) of a hidden "
                                     "size that is a multiple of 32 (got {})",
                                     s.name, s.architecture, s.n_experts, s.n_experts_used, s.expert_ffn_dim));
  }
  if (arch->moe_by_expert_count && s.n_experts > 0 && s.expert_ffn_dim != s.ffn_dim) {
    return Status::error(fmt::format("random model '{}': {}'s experts are ffn_dim ({}) wide, not {}", s.name,
                                     s.architecture, s.ffn_dim, s.expert_ffn_dim));
  }
  if (s.d_model % kBlock != 0 || s.ffn_dim % kBlock != 0) {
    return Status::error(fmt::format("random model '{}': d_model {} and ffn {} must be multiples of 32", s.name,
                                     s.d_model, s.ffn_dim));
  }
  if (s.sliding_window < 0 || s.attn_softcap < 0 || s.final_softcap < 0 || s.rope_linear_factor < 0) {
    return Status::error(fmt::format("random model '{}': sliding window, soft-caps and RoPE factor must be >= 0",
                                     s.name));
  }
  if (s.longrope_original_context < 0 || !(s.rope_attn_factor > 0.0f)) {
    return Status::error(fmt::format("random model '{}': LongRoPE original context {} must be >= 0 and attn_factor {} "
                                     "positive", s.name, s.longrope_original_context, s.rope_attn_factor));
  }
  if (s.vocab_path.empty() && s.vocab_size < kByteTokens + 2) {
    return Status::error(fmt::format("random model '{}': vocab_size {} is below the {} byte and control tokens",
                                     s.name, s.vocab_size, kByteTokens + 2));
  }
  return {};
}

int64_t random_model_param_count(const RandomModelSpec& s) {
  int64_t n = 0;
  for (const TensorPlan& t : tensor_plan(s)) {
    int64_t e = 1;
    for (int64_t d : t.dims) e *= d;
    n += e;
  }
  return n;
}

Result<GgufWriter> random_llama_writer(const RandomModelSpec& spec) {
  if (Status s = validate_random_model_spec(spec); !s.ok()) return s;
  GgufWriter w;
  if (Status s = set_metadata(spec, w); !s.ok()) return s;
  for (const TensorPlan& t : tensor_plan(spec)) {
    std::vector<uint8_t> bytes;
    const GgufWriter::Append append = [&](std::span<const uint8_t> b) -> Status {
      bytes.insert(bytes.end(), b.begin(), b.end());
      return {};
    };
    if (Status s = generate_tensor(spec, t, append); !s.ok()) return s;
    if (Status s = w.add_tensor(t.name, t.type, t.dims, std::move(bytes)); !s.ok()) return s;
  }
  return w;
}

Status write_random_llama(const RandomModelSpec& spec, const std::string& path,
                          const std::function<void(const RandomModelProgress&)>& progress) {
  if (Status s = validate_random_model_spec(spec); !s.ok()) return s;
  GgufWriter w;
  if (Status s = set_metadata(spec, w); !s.ok()) return s;
  const std::vector<TensorPlan> plan = tensor_plan(spec);
  uint64_t total = 0;
  for (const TensorPlan& t : plan) {
    if (Status s = w.declare_tensor(t.name, t.type, t.dims); !s.ok()) return s;
    total += w.tensor_nbytes(w.tensor_count() - 1);
  }
  uint64_t done = 0;
  return w.write_streaming(path, [&](size_t i, const GgufWriter::Append& append) -> Status {
    if (Status s = generate_tensor(spec, plan[i], append); !s.ok()) return s;
    done += w.tensor_nbytes(i);
    if (progress) progress({i, plan.size(), plan[i].name, done, total});
    return {};
  });
}

}  // namespace pagoda::engine
