#include "engine/loaded_model.h"

#include <spdlog/fmt/fmt.h>

#include <cstdlib>

namespace pagoda::engine {

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
  m.backend = make_cpu_backend(options.backend);
  if (Status s = m.backend->load(m.weights); !s.ok()) return s;
  const int32_t blocks = (options.kv_tokens + options.block_size - 1) / options.block_size;
  if (Status s = m.backend->allocate_kv({blocks, options.block_size}); !s.ok()) return s;
  return m;
}

}  // namespace pagoda::engine
