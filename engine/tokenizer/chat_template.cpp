// Chat templates: the GGUF's Jinja template is recognised by its markers (as llama.cpp's
// llm_chat_detect_template does) and rendered by the matching formatter, mirroring llama.cpp's
// llm_chat_apply_template. For ChatML templates that insert a default system prompt when the
// conversation does not start with one (SmolLM2, Qwen2.5), that prompt is read from the template.
#include "engine/tokenizer/chat_template.h"

#include <optional>

namespace pagoda::engine {

namespace {

bool contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// The Jinja string literal that starts at `open` (a quote character); nullopt when unterminated.
std::optional<std::string> read_literal(const std::string& t, size_t open) {
  const char q = t[open];
  std::string out;
  for (size_t i = open + 1; i < t.size(); ++i) {
    const char c = t[i];
    if (c == q) return out;
    if (c == '\\' && i + 1 < t.size()) {
      const char n = t[++i];
      switch (n) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        default: out += n; break;  // \\ \' \" and anything else: the character itself
      }
      continue;
    }
    out += c;
  }
  return std::nullopt;
}

// A literal "<|im_start|>system\n...<|im_end|>\n" that the template emits when messages[0] is not a
// system message (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by Hugging Face").
std::optional<std::string> default_system_block(const std::string& t) {
  if (!contains(t, "!= 'system'") && !contains(t, "!= \"system\"")) return std::nullopt;
  const std::string marker = "<|im_start|>system";
  for (size_t pos = t.find(marker); pos != std::string::npos; pos = t.find(marker, pos + 1)) {
    if (pos == 0 || (t[pos - 1] != '\'' && t[pos - 1] != '"')) continue;
    auto lit = read_literal(t, pos - 1);
    if (!lit) continue;
    const std::string end = "<|im_end|>\n";
    if (lit->size() > marker.size() + end.size() && lit->compare(lit->size() - end.size(), end.size(), end) == 0 &&
        (*lit)[marker.size()] == '\n')
      return lit;
  }
  return std::nullopt;
}

std::string render_chatml(const std::string& t, const std::vector<ChatMessage>& msgs, bool add_gen) {
  std::string out;
  if (!msgs.empty() && msgs.front().role != "system") {
    if (auto block = default_system_block(t)) out += *block;
  }
  for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_gen) out += "<|im_start|>assistant\n";
  return out;
}

// llama.cpp LLM_CHAT_TEMPLATE_LLAMA_2 (no system support: Mistral) and its _SYS / _SYS_BOS / _SYS_STRIP variants.
std::string render_llama2(const std::string& t, const std::vector<ChatMessage>& msgs, bool support_system) {
  const bool add_bos_inside = contains(t, "bos_token + '[INST]");
  const bool strip = contains(t, "content.strip()");
  std::string out = "[INST] ";
  bool inside_turn = true;
  for (const auto& m : msgs) {
    const std::string content = strip ? trim(m.content) : m.content;
    if (!inside_turn) {
      inside_turn = true;
      out += add_bos_inside ? "<s>[INST] " : "[INST] ";
    }
    if (m.role == "system") {
      out += support_system ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
    } else if (m.role == "user") {
      out += content + " [/INST]";
    } else {
      out += content + "</s>";
      inside_turn = false;
    }
  }
  return out;
}

std::string render_llama3(const std::vector<ChatMessage>& msgs, bool add_gen) {
  std::string out;
  for (const auto& m : msgs)
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
  if (add_gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string render_zephyr(const std::vector<ChatMessage>& msgs, bool add_gen) {
  std::string out;
  for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + "<|endoftext|>\n";
  if (add_gen) out += "<|assistant|>\n";
  return out;
}

}  // namespace

const char* chat_template_kind_name(ChatTemplateKind k) {
  switch (k) {
    case ChatTemplateKind::ChatML: return "chatml";
    case ChatTemplateKind::Llama2: return "llama2";
    case ChatTemplateKind::Llama3: return "llama3";
    case ChatTemplateKind::Mistral: return "mistral";
    case ChatTemplateKind::Zephyr: return "zephyr";
    case ChatTemplateKind::Fallback: return "fallback (chatml)";
  }
  return "unknown";
}

ChatTemplateKind detect_chat_template(const std::string& t) {
  if (contains(t, "<|im_start|>")) return ChatTemplateKind::ChatML;
  if (contains(t, "[INST]")) return contains(t, "<<SYS>>") ? ChatTemplateKind::Llama2 : ChatTemplateKind::Mistral;
  if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>")) return ChatTemplateKind::Llama3;
  if (contains(t, "<|user|>")) return ChatTemplateKind::Zephyr;
  return ChatTemplateKind::Fallback;
}

std::string apply_chat_template(const std::string& t, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt) {
  switch (detect_chat_template(t)) {
    case ChatTemplateKind::ChatML: return render_chatml(t, messages, add_generation_prompt);
    case ChatTemplateKind::Llama2: return render_llama2(t, messages, /*support_system=*/true);
    case ChatTemplateKind::Mistral: return render_llama2(t, messages, /*support_system=*/false);
    case ChatTemplateKind::Llama3: return render_llama3(messages, add_generation_prompt);
    case ChatTemplateKind::Zephyr: return render_zephyr(messages, add_generation_prompt);
    case ChatTemplateKind::Fallback: break;
  }
  return render_chatml(std::string(), messages, add_generation_prompt);
}

}  // namespace pagoda::engine
