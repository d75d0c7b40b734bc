#include "engine/tokenizer/unicode_utf8.h"

#include <array>
#include <unordered_map>

namespace pagoda::engine::tok {

size_t utf8_len(char lead) {
  static constexpr size_t kLookup[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLookup[static_cast<uint8_t>(lead) >> 4];
}

namespace {

bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

// One code point at `offset`, as llama.cpp's unicode_cpt_from_utf8; false where it would throw.
bool decode_one(std::string_view s, size_t& offset, uint32_t& cpt) {
  const auto at = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = at(offset);
  if (!(b0 & 0x80)) {
    cpt = b0;
    offset += 1;
    return true;
  }
  if (!(b0 & 0x40)) return false;
  if (!(b0 & 0x20)) {
    if (offset + 1 >= s.size() || !is_cont(at(offset + 1))) return false;
    cpt = ((b0 & 0x1Fu) << 6) | (at(offset + 1) & 0x3Fu);
    offset += 2;
    return true;
  }
  if (!(b0 & 0x10)) {
    if (offset + 2 >= s.size() || !is_cont(at(offset + 1)) || !is_cont(at(offset + 2))) return false;
    cpt = ((b0 & 0x0Fu) << 12) | ((at(offset + 1) & 0x3Fu) << 6) | (at(offset + 2) & 0x3Fu);
    offset += 3;
    return true;
  }
  if (!(b0 & 0x08)) {
    if (offset + 3 >= s.size() || !is_cont(at(offset + 1)) || !is_cont(at(offset + 2)) ||
        !is_cont(at(offset + 3)))
      return false;
    cpt = ((b0 & 0x07u) << 18) | ((at(offset + 1) & 0x3Fu) << 12) | ((at(offset + 2) & 0x3Fu) << 6) |
          (at(offset + 3) & 0x3Fu);
    offset += 4;
    return true;
  }
  return false;
}

struct ByteMap {
  std::array<std::string, 256> to_unicode;
  std::unordered_map<std::string, uint8_t> to_byte;
  ByteMap() {
    std::array<bool, 256> direct{};
    for (int ch = 0x21; ch <= 0x7E; ++ch) direct[ch] = true;
    for (int ch = 0xA1; ch <= 0xAC; ++ch) direct[ch] = true;
    for (int ch = 0xAE; ch <= 0xFF; ++ch) direct[ch] = true;
    uint32_t n = 0;
    for (int ch = 0; ch < 256; ++ch) {
      const uint32_t cpt = direct[ch] ? static_cast<uint32_t>(ch) : 256 + n++;
      append_utf8(to_unicode[ch], cpt);
      to_byte.emplace(to_unicode[ch], static_cast<uint8_t>(ch));
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

// Length of a strictly well-formed UTF-8 sequence at `i` (RFC 3629), 0 when malformed; sets
// `needed` to the full length the lead byte announces.
size_t strict_len(std::string_view s, size_t i, size_t& needed) {
  const uint8_t b0 = static_cast<uint8_t>(s[i]);
  needed = 1;
  if (b0 < 0x80) return 1;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    needed = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    needed = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    needed = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < needed; ++k) {
    if (i + k >= s.size()) return 0;
    const uint8_t b = static_cast<uint8_t>(s[i + k]);
    if (k == 1 ? (b < lo || b > hi) : !is_cont(b)) return 0;
  }
  return needed;
}

}  // namespace

std::vector<uint32_t> decode_utf8_lax(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  size_t offset = 0;
  while (offset < text.size()) {
    uint32_t cpt = 0;
    if (decode_one(text, offset, cpt)) {
      out.push_back(cpt);
    } else {
      ++offset;
      out.push_back(0xFFFD);
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt <= 0x7F) {
    out.push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | ((cpt >> 6) & 0x1F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | ((cpt >> 12) & 0x0F)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | ((cpt >> 18) & 0x07)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  }
}

const std::string& byte_to_unicode(uint8_t byte) { return byte_map().to_unicode[byte]; }

int unicode_to_byte(std::string_view utf8) {
  const auto& m = byte_map().to_byte;
  auto it = m.find(std::string(utf8));
  return it == m.end() ? -1 : it->second;
}

std::string sanitize_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    size_t needed = 0;
    const size_t n = strict_len(bytes, i, needed);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

size_t incomplete_utf8_suffix(std::string_view bytes) {
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t i = n - back;
    const uint8_t b = static_cast<uint8_t>(bytes[i]);
    if (is_cont(b)) continue;
    if (b < 0xC2 || b > 0xF4) return 0;
    const size_t needed = b <= 0xDF ? 2 : b <= 0xEF ? 3 : 4;
    if (needed <= back) return 0;  // complete, or malformed (which waiting cannot fix)
    // The bytes present must be a valid start of that sequence.
    if (back > 1) {
      const uint8_t b1 = static_cast<uint8_t>(bytes[i + 1]);
      const uint8_t lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
      const uint8_t hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
      if (b1 < lo || b1 > hi) return 0;
    }
    return back;
  }
  return 0;
}

}  // namespace pagoda::engine::tok
