#pragma once
// UTF-8 helpers with llama.cpp's exact semantics (src/unicode.cpp), and the GPT-2 byte <-> unicode map.
// Internal to engine/tokenizer.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pagoda::engine::tok {

// Length of the UTF-8 sequence that starts with `lead`, from its high nibble only (1 for stray bytes).
size_t utf8_len(char lead);

// Decodes like llama.cpp's unicode_cpts_from_utf8: each byte that does not start a well-formed sequence
// becomes U+FFFD and decoding resumes at the next byte. Overlong forms and surrogates are not rejected.
std::vector<uint32_t> decode_utf8_lax(std::string_view text);

// Appends the UTF-8 bytes of `cpt` (any value up to 0x1FFFFF; surrogates are encoded as-is).
void append_utf8(std::string& out, uint32_t cpt);

// GPT-2 byte-level alphabet: byte -> the UTF-8 text of its printable stand-in codepoint, and back.
const std::string& byte_to_unicode(uint8_t byte);
// Returns -1 when `utf8` is not one of the 256 stand-ins.
int unicode_to_byte(std::string_view utf8);

// Valid UTF-8 for display: each byte that is not part of a well-formed sequence becomes U+FFFD.
std::string sanitize_utf8(std::string_view bytes);
// Bytes at the end of `bytes` that start a well-formed but unfinished sequence (0 when none).
size_t incomplete_utf8_suffix(std::string_view bytes);

}  // namespace pagoda::engine::tok
