#pragma once
// Constructors of the concrete tokenizers, for the factory in tokenizer.cpp. Internal to engine/tokenizer.
#include <memory>

#include "engine/status.h"
#include "engine/tokenizer/tokenizer.h"

namespace pagoda::engine::tok {

// Byte-level BPE over merges (tokenizer.ggml.model "gpt2"), llm_tokenizer_bpe in llama.cpp.
Result<std::unique_ptr<Tokenizer>> make_bpe_gpt2(TokenizerSpec spec);
// SentencePiece-style BPE over scores with <0xXX> byte fallback ("llama"), llm_tokenizer_spm.
Result<std::unique_ptr<Tokenizer>> make_bpe_spm(TokenizerSpec spec);

}  // namespace pagoda::engine::tok
