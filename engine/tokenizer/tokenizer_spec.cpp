// tokenizer_spec_from_gguf: the tokenizer.ggml.* metadata as plain data, with the defaults llama.cpp's
// llama_vocab::impl::load uses when a key is absent.
#include <limits>

#include "engine/gguf/gguf_file.h"
#include "engine/tokenizer/tokenizer.h"

namespace pagoda::engine {

namespace {

bool is_one_of(const std::string& s, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

// The fill-in-the-middle markers by their text, for GGUFs without the fim_*_token_id keys (llama.cpp's
// llama_vocab::impl::load looks for the same names: Qwen, StarCoder/Granite, DeepSeek, CodeLlama, GLM-4.5,
// Falcon-H1).
void find_fim_tokens(TokenizerSpec& spec) {
  struct Marker {
    int32_t* id;
    std::initializer_list<const char*> names;
  };
  for (const Marker& m :
       {Marker{&spec.fim_pre_id, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>",
                                  "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"}},
        Marker{&spec.fim_suf_id, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>",
                                  "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"}},
        Marker{&spec.fim_mid_id, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>",
                                  "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"}}}) {
    if (*m.id >= 0) continue;
    for (size_t i = 0; i < spec.tokens.size() && *m.id < 0; ++i) {
      if (is_one_of(spec.tokens[i], m.names)) *m.id = static_cast<int32_t>(i);
    }
  }
}

}  // namespace

Result<TokenizerSpec> tokenizer_spec_from_gguf(const GgufFile& file) {
  TokenizerSpec spec;

  auto model = file.get_string("tokenizer.ggml.model");
  if (!model.ok()) return model.status();
  if (!model.value()) return Status::error(file.path() + ": metadata key 'tokenizer.ggml.model' is missing");
  spec.model = *model.value();
  if (spec.model != "gpt2" && spec.model != "llama" && spec.model != "gemma4")
    return Status::error(file.path() + ": tokenizer.ggml.model '" + spec.model +
                         "' is not supported (supported: gpt2, llama, gemma4)");

  if (auto name = file.get_string("general.name"); name.ok() && name.value()) spec.model_name = *name.value();
  auto pre = file.get_string("tokenizer.ggml.pre");
  if (!pre.ok()) return pre.status();
  spec.pre = pre.value() && !pre.value()->empty() ? *pre.value() : "default";
  if (spec.model == "gemma4") spec.pre = "gemma4";  // as llama-vocab.cpp: the model names its pre-tokenizer
  spec.escape_whitespaces = is_one_of(spec.pre, {"gemma4", "granite-embed-multi-311m"});

  auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.status();
  if (!tokens.value()) return Status::error(file.path() + ": metadata key 'tokenizer.ggml.tokens' is missing");
  spec.tokens.reserve(tokens.value()->size());
  for (std::string_view t : *tokens.value()) spec.tokens.emplace_back(t);
  const size_t n = spec.tokens.size();

  auto scores = file.get_float_array("tokenizer.ggml.scores");
  if (!scores.ok()) return scores.status();
  if (scores.value()) {
    spec.scores = std::move(*scores.value());
    if (spec.scores.size() < n)
      return Status::error(file.path() + ": tokenizer.ggml.scores has " + std::to_string(spec.scores.size()) +
                           " entries for " + std::to_string(n) + " tokens");
  }

  auto types = file.get_int_array("tokenizer.ggml.token_type");
  if (!types.ok()) return types.status();
  if (types.value()) {
    if (types.value()->size() < n)
      return Status::error(file.path() + ": tokenizer.ggml.token_type has " + std::to_string(types.value()->size()) +
                           " entries for " + std::to_string(n) + " tokens");
    spec.token_types.reserve(types.value()->size());
    for (int64_t t : *types.value()) spec.token_types.push_back(static_cast<int32_t>(t));
  }

  if (spec.model == "gpt2" || spec.model == "gemma4") {
    auto merges = file.get_string_array("tokenizer.ggml.merges");
    if (!merges.ok()) return merges.status();
    if (!merges.value()) {
      return Status::error(file.path() + ": model '" + spec.model + "' needs tokenizer.ggml.merges (missing)");
    }
    spec.merges.reserve(merges.value()->size());
    for (std::string_view m : *merges.value()) spec.merges.emplace_back(m);
  }

  // Defaults (llama-vocab.cpp): SPM "llama" has <unk>=0 <s>=1 </s>=2, adds BOS and a space prefix;
  // byte-level BPE has 11/11 and adds BOS only for the llama3 / tekken pre-tokenizers.
  if (spec.model == "llama") {
    spec.bos_id = 1;
    spec.eos_id = 2;
    spec.unk_id = 0;
    spec.add_bos = true;
    spec.add_space_prefix = true;
  } else if (spec.model == "gemma4") {  // no defaults: the file names them
    spec.bos_id = -1;
    spec.eos_id = -1;
    spec.unk_id = -1;
  } else {
    spec.bos_id = 11;
    spec.eos_id = 11;
    spec.unk_id = -1;
    spec.add_bos = is_one_of(spec.pre, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                        "midm-2.0", "lfm2", "jina-v5-nano", "tekken"});
    if (is_one_of(spec.pre, {"chatglm-bpe", "glm4", "glm5"})) spec.bos_id = -1;
  }

  auto add_prefix = file.get_bool("tokenizer.ggml.add_space_prefix");
  if (!add_prefix.ok()) return add_prefix.status();
  if (add_prefix.value()) spec.add_space_prefix = *add_prefix.value();

  struct IdKey {
    const char* key;
    int32_t* id;
  };
  for (const IdKey& k : {IdKey{"tokenizer.ggml.bos_token_id", &spec.bos_id},
                         IdKey{"tokenizer.ggml.eos_token_id", &spec.eos_id},
                         IdKey{"tokenizer.ggml.eot_token_id", &spec.eot_id},
                         IdKey{"tokenizer.ggml.unknown_token_id", &spec.unk_id},
                         IdKey{"tokenizer.ggml.padding_token_id", &spec.pad_id},
                         IdKey{"tokenizer.ggml.fim_pre_token_id", &spec.fim_pre_id},
                         IdKey{"tokenizer.ggml.fim_suf_token_id", &spec.fim_suf_id},
                         IdKey{"tokenizer.ggml.fim_mid_token_id", &spec.fim_mid_id},
                         // their older names
                         IdKey{"tokenizer.ggml.prefix_token_id", &spec.fim_pre_id},
                         IdKey{"tokenizer.ggml.suffix_token_id", &spec.fim_suf_id},
                         IdKey{"tokenizer.ggml.middle_token_id", &spec.fim_mid_id}}) {
    if (*k.id >= 0 && static_cast<size_t>(*k.id) >= n) *k.id = -1;  // default out of range: disabled
    auto v = file.get_int(k.key);
    if (!v.ok()) return v.status();
    if (!v.value()) continue;
    const int64_t id = *v.value();
    if (id >= 0 && static_cast<uint64_t>(id) < n) *k.id = static_cast<int32_t>(id);  // else keep the default
  }

  auto add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
  if (!add_bos.ok()) return add_bos.status();
  if (add_bos.value()) spec.add_bos = *add_bos.value();
  if (spec.pre == "gemma4") spec.add_bos = true;  // llama.cpp's Gemma 4 workaround (its PR 21500)
  auto add_eos = file.get_bool("tokenizer.ggml.add_eos_token");
  if (!add_eos.ok()) return add_eos.status();
  if (add_eos.value()) spec.add_eos = *add_eos.value();

  auto tmpl = file.get_string("tokenizer.chat_template");
  if (!tmpl.ok()) return tmpl.status();
  if (tmpl.value()) spec.chat_template = std::move(*tmpl.value());
  find_fim_tokens(spec);
  return spec;
}

}  // namespace pagoda::engine
