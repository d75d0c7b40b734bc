#pragma once
// Status / Result: how errors cross part boundaries (DESIGN.md: exceptions stay inside a part).
// Every message names what was wrong and the limit or expectation that applied.
#include <string>
#include <utility>
#include <variant>

namespace pagoda {

// What kind of failure, so front ends can map it to HTTP statuses and gRPC codes.
enum class StatusCode {
  Ok,
  InvalidArgument,    // the caller's input is wrong (400 / INVALID_ARGUMENT)
  NotFound,           // 404 / NOT_FOUND
  ResourceExhausted,  // a queue or pool is full: retry later (429 / RESOURCE_EXHAUSTED)
  Unavailable,        // shutting down or not ready (503 / UNAVAILABLE)
  Unauthenticated,    // a missing or wrong API key (401 / UNAUTHENTICATED)
  DeadlineExceeded,
  Cancelled,
  Internal,           // our fault (500 / INTERNAL)
};
const char* status_code_name(StatusCode c);

class Status {
 public:
  Status() = default;
  // Errors default to InvalidArgument: most errors crossing a part boundary are about bad input.
  static Status error(std::string message) { return Status(StatusCode::InvalidArgument, std::move(message)); }
  static Status error(StatusCode code, std::string message) { return Status(code, std::move(message)); }
  bool ok() const { return code_ == StatusCode::Ok; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  StatusCode code_ = StatusCode::Ok;
  std::string message_;
};

inline const char* status_code_name(StatusCode c) {
  switch (c) {
    case StatusCode::Ok: return "OK";
    case StatusCode::InvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::NotFound: return "NOT_FOUND";
    case StatusCode::ResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::Unavailable: return "UNAVAILABLE";
    case StatusCode::Unauthenticated: return "UNAUTHENTICATED";
    case StatusCode::DeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::Cancelled: return "CANCELLED";
    case StatusCode::Internal: return "INTERNAL";
  }
  return "?";
}

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}                   // NOLINT: implicit by design
  Result(Status error) : v_(std::move(error)) {}              // NOLINT: implicit by design
  bool ok() const { return std::holds_alternative<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  const std::string& message() const {
    static const std::string empty;
    return ok() ? empty : std::get<Status>(v_).message();
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace pagoda
