#pragma once
// GGUF models with random weights, in any registered family's layout (llama by default; qwen2 adds Q/K/V
// biases, qwen3 per-head Q/K norms and wider heads, phi3 fused matrices, gemma post-norms): for tests (a tiny model that loads and runs in
// milliseconds) and for benchmarks at real model shapes (smollm2-135m, llama3-8b, llama2-7b) without
// downloading anything. Weights are deterministic in the seed, quantized with ggml's reference
// formulas (Q4_0, Q4_1, Q8_0) or stored as F16/F32; norms are F32. The tokenizer is a byte-level
// "gpt2" vocabulary (the 256 byte symbols, fillers, and <|im_start|> / <|im_end|>) with no merges.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf/gguf_writer.h"
#include "engine/quant/ggml_types.h"
#include "engine/status.h"

namespace pagoda::engine {

struct RandomModelSpec {
  std::string name = "tiny";
  std::string architecture = "llama";  // a registered family (engine/model/architecture.h): its tensors and keys
  int n_layers = 2;
  int d_model = 64;
  int n_heads = 4;
  int n_kv_heads = 2;
  int head_dim = 0;  // 0: d_model / n_heads
  int ffn_dim = 128;
  // Routed experts (families with LayerOps::moe, and llama when n_experts > 0: Mixtral, whose experts are
  // ffn_dim wide): count, used per token, each one's hidden size.
  int n_experts = 0;
  int n_experts_used = 0;
  int expert_ffn_dim = 0;
  int vocab_size = 320;
  int context_length = 256;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  // LongRoPE (phi3 128k): > 0 writes rope_factors_long/short and rope.scaling.original_context_length =
  // this, rope.scaling.attn_factor = rope_attn_factor; 0 = plain RoPE.
  int longrope_original_context = 0;
  float rope_attn_factor = 1.0f;
  float rope_linear_factor = 0.0f;  // > 0: rope.scaling.type linear with this factor (gemma3 4B and up: 8)
  // Written where > 0 (families with sliding windows / soft-capping read them; gemma2, gemma3).
  int sliding_window = 0;
  float attn_softcap = 0.0f;
  float final_softcap = 0.0f;
  GgmlType weight_type = GgmlType::Q8_0;  // Q4_0, Q4_1, Q8_0, F16 or F32 (norms are always F32)
  bool tied_embeddings = false;           // no output.weight: token_embd doubles as the LM head
  std::string vocab_path;                 // set by use_vocabulary(); empty: the byte-level vocabulary
  uint64_t seed = 1;
};

// Presets: "tiny", "smollm2-135m", "llama3-8b", "llama2-7b", "qwen2-tiny", "qwen3-tiny", "qwen3moe-tiny",
// "qwen3moe-shapes" (awkward sizes, for the golden test), "mixtral-tiny" (llama with experts), "phi3-tiny"
// (LongRoPE), "gemma2-tiny", "gemma3-tiny" (sliding windows shorter than the test sequences), "qwen2.5-0.5b",
// "qwen3-0.6b", "phi3-mini", "gemma2-2b", "gemma3-1b", "qwen3-30b-a3b" (128 experts, 8 per token); nullopt
// otherwise.
std::optional<RandomModelSpec> random_model_preset(std::string_view name);
std::vector<std::string> random_model_preset_names();

// Checks the shape (divisibility, head_dim, a vocabulary big enough for the byte tokens) and type.
Status validate_random_model_spec(const RandomModelSpec& spec);
int64_t random_model_param_count(const RandomModelSpec& spec);
int random_model_head_dim(const RandomModelSpec& spec);
// Takes the tokenizer of another GGUF (every tokenizer.* key, e.g. from llama.cpp's vocabulary-only
// models/ggml-vocab-qwen2.gguf) instead of the byte-level one; vocab_size becomes its token count.
Status use_vocabulary(RandomModelSpec& spec, const std::string& path);

// Builds the whole model in memory (small models: tests edit the writer to make broken files).
Result<GgufWriter> random_llama_writer(const RandomModelSpec& spec);

// Called after each tensor is written.
struct RandomModelProgress {
  size_t tensor_index = 0;  // of the tensor just written
  size_t tensor_count = 0;
  std::string tensor_name;
  uint64_t bytes_done = 0;   // tensor data written so far
  uint64_t bytes_total = 0;  // tensor data in all
};

// Streams the model to `path` (via path + ".tmp"): memory stays bounded whatever the model size.
Status write_random_llama(const RandomModelSpec& spec, const std::string& path,
                          const std::function<void(const RandomModelProgress&)>& progress = {});

}  // namespace pagoda::engine
