#include "server/api_keys.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cctype>
#include <fstream>

namespace pagoda::server {

namespace {

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// A key travels in an HTTP header: visible ASCII only (0x21..0x7e), no spaces.
bool header_safe(std::string_view key) {
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e) return false;
  }
  return !key.empty();
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Both strings are read to the longer one's length (the shorter one cyclically), and every
  // difference is OR-ed in, so the loop's time depends on the lengths alone.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = a.empty() ? 0 : static_cast<unsigned char>(a[i % a.size()]);
    const unsigned char y = b.empty() ? 0 : static_cast<unsigned char>(b[i % b.size()]);
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

Result<std::shared_ptr<const ApiKeys>> ApiKeys::load(const std::vector<std::string>& given, const std::string& file,
                                                     bool file_given) {
  std::vector<std::string> keys;
  if (file_given && file.empty()) return Status::error("--api-key-file: the path is empty");
  for (const std::string& k : given) {
    const std::string_view key = trim(k);
    if (!header_safe(key)) return Status::error("--api-key: a key must be visible ASCII without spaces");
    keys.emplace_back(key);
  }
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return Status::error(fmt::format("--api-key-file {}: cannot read it", file));
    std::string line;
    size_t from_file = 0;
    for (int line_no = 1; std::getline(in, line); ++line_no) {
      std::string_view key = trim(line);
      if (line_no == 1 && key.substr(0, 3) == "\xEF\xBB\xBF") key = trim(key.substr(3));  // a UTF-8 BOM
      if (key.empty() || key.front() == '#') continue;
      if (!header_safe(key)) {
        return Status::error(
            fmt::format("--api-key-file {}: the key on line {} is not visible ASCII without spaces", file, line_no));
      }
      keys.emplace_back(key);
      ++from_file;
    }
    if (from_file == 0) return Status::error(fmt::format("--api-key-file {}: no key in it", file));
  }
  return std::make_shared<const ApiKeys>(std::move(keys));
}

bool ApiKeys::accepts(std::string_view key) const {
  bool ok = false;
  for (const std::string& k : keys_) ok |= constant_time_equal(k, key);  // no early exit
  return ok;
}

bool ApiKeys::accepts_authorization(std::string_view value) const {
  value = trim(value);
  constexpr std::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (static_cast<char>(std::tolower(static_cast<unsigned char>(value[i]))) != kScheme[i]) return false;
  }
  return accepts(trim(value.substr(kScheme.size())));
}

}  // namespace pagoda::server
