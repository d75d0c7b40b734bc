#pragma once
// Chat templates: the GGUF's tokenizer.chat_template is recognised by its markers and rendered by a
// matching C++ formatter (ChatML, Llama-2, Llama-3, Mistral, Zephyr ...). An unknown template falls
// back to ChatML, and that choice is reported so callers can log it.
#include <string>
#include <vector>

namespace pagoda::engine {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

enum class ChatTemplateKind { ChatML, Llama2, Llama3, Mistral, Zephyr, Fallback };
const char* chat_template_kind_name(ChatTemplateKind k);

ChatTemplateKind detect_chat_template(const std::string& template_text);

// Renders the conversation, ending with the opening of an assistant turn when add_generation_prompt.
// For SmolLM2-style templates that insert a default system prompt, that prompt is reproduced.
std::string apply_chat_template(const std::string& template_text, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt);

}  // namespace pagoda::engine
