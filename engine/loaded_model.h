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
  int32_t kv_tokens = 4096;  // KV capacity in tokens (rounded up to whole blocks)
  int32_t block_size = 16;
};

struct LoadedModel {
  std::shared_ptr<ModelWeights> weights;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Backend> backend;
  const ModelConfig& config() const { return weights->config; }
};

Result<LoadedModel> load_model(const std::string& path, const LoadOptions& options);

// The default model path: $PAGODA_MODEL, else the cache location scripts/fetch_model.sh writes to.
std::string default_model_path();

}  // namespace pagoda::engine
