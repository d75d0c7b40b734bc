#include "engine/loaded_model.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

namespace pagoda::engine {

Result<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& path) {
  auto file = GgufFile::open(path);
  if (!file.ok()) return file.status();
  auto spec = tokenizer_spec_from_gguf(*file.value());
  if (!spec.ok()) return spec.status();
  return Tokenizer::create(std::move(spec.value()));
}

std::string default_model_path() {
  if (const char* p = std::getenv("PAGODA_MODEL"); p && *p) return p;
  std::string cache;
  if (const char* c = std::getenv("PAGODA_CACHE"); c && *c) {
    cache = c;
  } else {
    const char* home = std::getenv("HOME");
    cache = std::string(home ? home : ".") + "/.cache/pagoda";
  }
  return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

Result<int32_t> kv_blocks_for(const LoadOptions& o, int64_t bytes_per_block, int64_t available_bytes) {
  if (bytes_per_block <= 0) return Status::error("kv cache: the backend reports 0 bytes per block");
  int64_t blocks = 0;
  if (o.kv_memory_bytes > 0) {
    blocks = o.kv_memory_bytes / bytes_per_block;
  } else if (o.kv_memory_fraction > 0.0) {
    if (o.kv_memory_fraction > 0.95) {
      return Status::error(fmt::format("kv memory fraction {} is above the limit of 0.95", o.kv_memory_fraction));
    }
    blocks = static_cast<int64_t>(static_cast<double>(available_bytes) * o.kv_memory_fraction) / bytes_per_block;
  } else {
    if (o.kv_tokens <= 0) return Status::error(fmt::format("kv tokens must be positive, got {}", o.kv_tokens));
    blocks = (static_cast<int64_t>(o.kv_tokens) + o.block_size - 1) / o.block_size;
  }
  if (blocks < 1)
    return Status::error(fmt::format("kv cache: the requested memory holds no block of {} bytes", bytes_per_block));
  if (blocks > (int64_t{1} << 30))
    return Status::error(fmt::format("kv cache: {} blocks is above the limit of 2^30", blocks));
  return static_cast<int32_t>(blocks);
}

Result<KvPoolSizes> kv_pools_for(const LoadOptions& o, int64_t bytes_per_block, int64_t window_bytes, int32_t window,
                                 int64_t available_bytes) {
  if (window <= 0 || window_bytes <= 0 || o.window_pool_seqs <= 0) {
    auto blocks = kv_blocks_for(o, bytes_per_block, available_bytes);
    if (!blocks.ok()) return blocks.status();
    return KvPoolSizes{blocks.value(), 0};
  }
  // A sequence between steps holds the blocks of its last window (ceil((window - 1) / bs) + 1); a step
  // adds its new tokens' blocks, one more per sequence where they straddle a block edge.
  const int64_t bs = std::max(o.block_size, 1);
  const int64_t wanted = int64_t{o.window_pool_seqs} * ((window - 1 + bs - 1) / bs + 2) +
                         (int64_t{std::max(o.backend.max_step_tokens, 1)} + bs - 1) / bs;
  // Each main block with a window block beside it. Where that is all the memory allows, the pools stay
  // equal (a window pool as large as the main one never runs out first); where the window pool has what
  // it wants before that, the rest goes to main blocks. A token count sizes the main pool alone. With
  // every layer windowed the main pool holds no bytes (only the tables' bookkeeping): both pools get
  // what the memory holds, as before there was a window pool.
  auto paired = kv_blocks_for(o, bytes_per_block + window_bytes, available_bytes);
  if (!paired.ok()) return paired.status();
  const bool by_memory = o.kv_memory_bytes > 0 || o.kv_memory_fraction > 0.0;
  if (by_memory && bytes_per_block <= 0) return KvPoolSizes{paired.value(), paired.value()};
  if (!by_memory || wanted >= paired.value()) {
    return KvPoolSizes{paired.value(), static_cast<int32_t>(std::min<int64_t>(wanted, paired.value()))};
  }
  const int64_t window_blocks = wanted;
  const int64_t budget = o.kv_memory_bytes > 0
                             ? o.kv_memory_bytes
                             : static_cast<int64_t>(static_cast<double>(available_bytes) * o.kv_memory_fraction);
  const int64_t blocks = std::min<int64_t>((budget - window_blocks * window_bytes) / bytes_per_block, int64_t{1} << 30);
  return KvPoolSizes{static_cast<int32_t>(blocks), static_cast<int32_t>(window_blocks)};
}

Result<LoadedModel> load_model(const std::string& path, const LoadOptions& options) {
  LoadedModel m;
  auto w = load_model_weights(path);
  if (!w.ok()) return w.status();
  m.weights = std::move(w.value());
  auto spec = tokenizer_spec_from_gguf(*m.weights->file);
  if (!spec.ok()) return spec.status();
  auto tok = Tokenizer::create(std::move(spec.value()));
  if (!tok.ok()) return tok.status();
  m.tokenizer = std::move(tok.value());
  if (m.tokenizer->vocab_size() < m.weights->config.vocab_size) {
    return Status::error(fmt::format("{}: tokenizer has {} tokens but the embedding has {} rows", path,
                                     m.tokenizer->vocab_size(), m.weights->config.vocab_size));
  }
  std::string why;
  const BackendKind kind = resolve_backend_kind(options.backend.kind, &why);
  spdlog::info("backend: {} ({})", backend_kind_name(kind), why);
  BackendOptions bo = options.backend;
  bo.kind = kind;
  auto backend = make_backend(bo);
  if (!backend.ok()) return backend.status();
  m.backend = std::move(backend.value());
  Status loaded = m.backend->load(m.weights);
  if (!loaded.ok() && options.backend.kind == BackendKind::Auto && kind != BackendKind::Cpu) {
    // Auto chose a GPU that cannot run this model: the CPU can. (An explicit --backend stays an error.)
    spdlog::warn("backend: {} cannot run {} ({}); falling back to cpu", backend_kind_name(kind), path, loaded.message());
    m.backend = make_cpu_backend(bo.cpu);
    loaded = m.backend->load(m.weights);
  }
  if (!loaded.ok()) return loaded;
  // kv_bytes_per_block is known once the model is loaded; the block size decides it.
  // (With a window pool of one block, the two pools' bytes per block.)
  const int32_t window = options.window_pool_seqs > 0 ? m.backend->kv_window() : 0;
  if (Status s = m.backend->allocate_kv({1, options.block_size, KvDtype::F16, window > 0 ? 1 : 0}); !s.ok()) return s;
  auto pools = kv_pools_for(options, m.backend->kv_bytes_per_block(), m.backend->kv_bytes_per_window_block(), window,
                            m.backend->kv_memory_available());
  if (!pools.ok()) return pools.status();
  if (Status s = m.backend->allocate_kv(
          {pools.value().num_blocks, options.block_size, KvDtype::F16, pools.value().num_window_blocks});
      !s.ok()) {
    return s;
  }
  // LongRoPE's factor set follows the longest sequence this deployment can run (as llama.cpp's follows its
  // per-sequence context): the serving limit, the model's context and the KV pool, whichever is least.
  // Chosen here, once the pool is sized; the CPU backend reads the set at each step (the CUDA backend
  // refuses LongRoPE models).
  int64_t longest = int64_t{pools.value().num_blocks} * options.block_size;
  longest = std::min<int64_t>(longest, m.weights->config.context_length);
  if (options.max_sequence_length > 0) longest = std::min<int64_t>(longest, options.max_sequence_length);
  select_rope_factors(*m.weights, longest);
  return m;
}

}  // namespace pagoda::engine
