#include "engine/tokenizer/vocab.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <set>

namespace pagoda::engine::tok {

namespace {

uint32_t attr_from_type(int32_t type) {
  switch (type) {
    case 1: return kAttrNormal;
    case 2: return kAttrUnknown;
    case 3: return kAttrControl;
    case 4: return kAttrUserDefined;
    case 5: return kAttrUnused;
    case 6: return kAttrByte;
    default: return kAttrUndefined;
  }
}

// Token texts llama.cpp treats as end-of-generation (llama-vocab.cpp, special_eog_ids).
const char* const kEogNames[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[",
};
// Names llama.cpp auto-detects as FIM pad / repo / file-separator tokens (also end-of-generation) and
// as EOT / EOM / other FIM tokens (forced to control type).
const char* const kFimEogNames[] = {
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",                          // pad
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>",              // repo
    "<|file_sep|>",                                                                      // file sep
};
const char* const kControlNames[] = {
    "<|eom_id|>",
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>",
    "<|middle|>",
};

}  // namespace

Vocab build_vocab(const TokenizerSpec& spec) {
  Vocab v;
  const size_t n = spec.tokens.size();
  v.texts.resize(n);
  v.attrs.assign(n, kAttrNormal);
  v.ids.reserve(n * 2);
  const bool have_types = spec.token_types.size() >= n;
  for (size_t i = 0; i < n; ++i) {
    v.texts[i] = spec.tokens[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : spec.tokens[i];
    v.ids[v.texts[i]] = static_cast<int32_t>(i);
    if (have_types) v.attrs[i] = attr_from_type(spec.token_types[i]);
  }

  auto force_control = [&](const char* name) {
    const int32_t id = v.find(name);
    if (id >= 0) v.attrs[static_cast<size_t>(id)] |= kAttrControl;
    return id;
  };
  std::set<int32_t> eog;
  for (const char* name : kControlNames) force_control(name);
  for (const char* name : kFimEogNames) {
    const int32_t id = force_control(name);
    if (id >= 0) eog.insert(id);
  }
  for (const char* name : kEogNames) {
    const int32_t id = force_control(name);
    if (id >= 0) eog.insert(id);
  }
  // Control tokens named "unused" are unused.
  for (size_t i = 0; i < n; ++i)
    if ((v.attrs[i] & kAttrControl) && v.texts[i].find("unused") != std::string::npos) v.attrs[i] |= kAttrUnused;
  // gpt-oss: these are always rendered.
  for (const char* name : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    const int32_t id = v.find(name);
    if (id >= 0) v.attrs[static_cast<size_t>(id)] = kAttrUserDefined;
  }
  const auto in_range = [&](int32_t id) { return id >= 0 && static_cast<size_t>(id) < n; };
  if (in_range(spec.eos_id)) eog.insert(spec.eos_id);
  if (in_range(spec.eot_id)) eog.insert(spec.eot_id);
  // o200k_harmony / solar-open: <|end|> is not end-of-generation when <|return|> + <|call|> exist.
  {
    const int32_t ret = v.find("<|return|>"), call = v.find("<|call|>"), calls = v.find("<|calls|>"),
                  flush = v.find("<|flush|>"), end = v.find("<|end|>");
    const bool has_call = (call >= 0 && eog.count(call)) || (calls >= 0 && eog.count(calls));
    const bool has_return = ret >= 0 && eog.count(ret), has_flush = flush >= 0 && eog.count(flush);
    if (end >= 0 && eog.count(end) && ((has_return && has_call) || (has_call && has_flush))) {
      eog.erase(end);
      v.attrs[static_cast<size_t>(end)] = kAttrUserDefined;
    }
  }
  // gemma4 / plamo: </s> is a normal token there.
  {
    const int32_t s = v.find("</s>"), tr = v.find("<|tool_response>"), pe = v.find("<|plamo:eos|>");
    if (s >= 0 && eog.count(s) && ((tr >= 0 && eog.count(tr)) || (pe >= 0 && eog.count(pe)))) {
      eog.erase(s);
      v.attrs[static_cast<size_t>(s)] = kAttrNormal;
    }
  }
  v.eog_ids.assign(eog.begin(), eog.end());

  for (size_t i = 0; i < n; ++i)
    if (v.attrs[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) v.special_tokens.push_back(static_cast<int32_t>(i));
  // Same comparator (and algorithm) as llama.cpp, so equal-length tokens keep llama.cpp's order.
  std::sort(v.special_tokens.begin(), v.special_tokens.end(), [&](int32_t a, int32_t b) {
    return v.texts[static_cast<size_t>(a)].size() > v.texts[static_cast<size_t>(b)].size();
  });
  // Per-token attributes by model name, as llama-vocab.cpp (from Phi-3's tokenizer.json, rstrip: true):
  // its special tokens but <unk>, <s> and <|endoftext|> swallow the whitespace after them, so the "\n"
  // after each <|end|> or <|user|> of its chat template is not a token.
  std::string name = spec.model_name;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (int32_t id : v.special_tokens) v.attrs[static_cast<size_t>(id)] |= kAttrRstrip;
    auto set = [&](const char* text, bool on) {
      const int32_t id = v.find(text);
      if (id < 0) return;  // llama.cpp refuses such a vocabulary; the tokens are simply not there
      v.attrs[static_cast<size_t>(id)] = on ? (v.attrs[static_cast<size_t>(id)] | kAttrRstrip)
                                            : (v.attrs[static_cast<size_t>(id)] & ~kAttrRstrip);
    };
    set("</s>", true);
    for (const char* text : {"<unk>", "<s>", "<|endoftext|>"}) set(text, false);
  }
  return v;
}

std::string byte_token_piece(const std::string& text) {
  if (text.size() < 3) return {};
  return std::string(1, static_cast<char>(std::strtol(text.substr(3, 2).c_str(), nullptr, 16)));
}

std::vector<Fragment> partition_special(const Vocab& vocab, std::string_view text, bool parse_special) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : vocab.special_tokens) {
    if (!parse_special && vocab.has_attr(id, kAttrControl | kAttrUnknown)) continue;
    const std::string& tok = vocab.texts[static_cast<size_t>(id)];
    bool any = false;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t off = f.offset;
      const size_t end = f.offset + f.length;
      // isspace in the C locale, as llama.cpp's strip loops
      const auto space = [&](size_t i) { return std::strchr(" \t\n\v\f\r", text[i]) != nullptr && text[i] != 0; };
      while (off < end) {
        const size_t match = text.substr(0, end).find(tok, off);
        if (match == std::string_view::npos) break;
        any = true;
        if (match > off) next.push_back({-1, off, match - off});
        next.push_back({id, match, tok.size()});
        off = match + tok.size();
        if (vocab.has_attr(id, kAttrRstrip)) {
          while (off < end && space(off)) ++off;
        }
      }
      if (off < end) next.push_back({-1, off, end - off});
    }
    if (any) frags.swap(next);
  }
  return frags;
}

}  // namespace pagoda::engine::tok
