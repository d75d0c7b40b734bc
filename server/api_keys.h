#pragma once
// Optional API keys (--api-key, --api-key-file): when any is set, every HTTP path but the open ones
// (--open-paths; the probes by default) needs `Authorization: Bearer <key>`, and every
// pagoda.v1.Generation call the same in its `authorization` metadata; gRPC health stays open. A missing
// or wrong key gets 401 / UNAUTHENTICATED (HTTP: before its body is read). Keys are compared in time
// that does not depend on where a guess first differs (only the lengths show), and never logged.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"

namespace pagoda::server {

class ApiKeys {
 public:
  // The keys given on the command line plus those of `file` (one per line; blank lines and lines
  // starting with '#' ignored; surrounding whitespace trimmed). Errors name the file or the problem
  // (unreadable, no key in it, a key that is not visible ASCII). file_given: the flag was set, so an
  // empty path (an unset variable in a script) is an error, not "no keys".
  static Result<std::shared_ptr<const ApiKeys>> load(const std::vector<std::string>& keys, const std::string& file,
                                                     bool file_given = false);
  explicit ApiKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}

  bool enabled() const { return !keys_.empty(); }
  size_t size() const { return keys_.size(); }
  bool accepts(std::string_view key) const;  // every key is compared, in constant time each
  // An Authorization header (or metadata) value: "Bearer <key>" (scheme case-insensitive) with an
  // accepted key.
  bool accepts_authorization(std::string_view value) const;

 private:
  std::vector<std::string> keys_;
};

// a == b, reading every byte of both whatever they hold (only the lengths' equality shows in the time).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace pagoda::server
