#pragma once
// A model ready to run: weights, tokenizer and a backend with its KV pool. What the CLI (and later
// the daemon) builds from --model.
#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/tokenizer/tokenizer.h"

namespace pagoda::engine {

struct LoadOptions {
  BackendOptions backend;
  // KV capacity, first that is set: bytes, a fraction of the memory available at start-up, tokens.
  int64_t kv_memory_bytes = 0;
  double kv_memory_fraction = 0.0;  // (0, 0.95] of the backend's kv_memory_available()
  int32_t kv_tokens = 4096;         // rounded up to whole blocks
  int32_t block_size = 16;
  // The longest sequence the caller will run (the server's --max-model-len), further capped at the model's
  // context and the KV pool: LongRoPE models (phi3 128k) choose their frequency factors by it. 0 = no cap.
  int32_t max_sequence_length = 0;
  // Sliding-window layers (gemma2/3): > 0 gives them a KV pool of their own, sized for this many
  // sequences (the scheduler's max_num_seqs), each holding only its window (KvCacheManager's window
  // pool). 0: every layer in the main pool, for callers that address it with one table per sequence
  // (the CLI's single sequence, the draft model).
  int32_t window_pool_seqs = 0;
};

// The two pools' sizes (KvCacheShape): the main pool's blocks, and the window pool's.
struct KvPoolSizes {
  int32_t num_blocks = 0;
  int32_t num_window_blocks = 0;
};

// Blocks of KV cache the options ask for, given the bytes one block takes and the memory a pool may
// take (Backend::kv_memory_available: what a fraction applies to). Errors name the option.
Result<int32_t> kv_blocks_for(const LoadOptions& options, int64_t bytes_per_block, int64_t available_bytes);
// With a window pool of `window`-token windows whose blocks take window_bytes: it gets what
// options.window_pool_seqs sequences can hold at once (each its window and a step's tokens), at most as
// many blocks as the main pool; the memory options then size both pools together.
Result<KvPoolSizes> kv_pools_for(const LoadOptions& options, int64_t bytes_per_block, int64_t window_bytes,
                                 int32_t window, int64_t available_bytes);

struct LoadedModel {
  std::shared_ptr<ModelWeights> weights;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Backend> backend;
  const ModelConfig& config() const { return weights->config; }
};

Result<LoadedModel> load_model(const std::string& path, const LoadOptions& options);

// Only the tokenizer of a GGUF file: its metadata is read, the weights are not touched.
Result<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& path);

// The default model path: $PAGODA_MODEL, else the cache location scripts/fetch_model.sh writes to.
std::string default_model_path();

}  // namespace pagoda::engine
