#include "bench/grpc_load_driver.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <numeric>
#include <utility>

#include "pagoda/v1/pagoda.grpc.pb.h"

namespace pagoda::bench {

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kTimeLimit = "time limit reached";

bool is_loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

// OK when every address `host` resolves to is loopback: "localhost" is only a name, so check where it
// really points (Unavailable when it does not resolve, InvalidArgument for a non-loopback address).
Status check_resolves_to_loopback(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0)
    return Status::error(StatusCode::Unavailable, "cannot resolve '" + host + "': " + gai_strerror(rc));
  Status st;
  for (const addrinfo* a = found; a != nullptr && st.ok(); a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = "?";
    if (a->ai_family == AF_INET) {
      const in_addr& v4 = reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr;
      if ((ntohl(v4.s_addr) >> 24) == 127) continue;  // 127.0.0.0/8
      inet_ntop(AF_INET, &v4, text, sizeof text);
    } else if (a->ai_family == AF_INET6) {
      const in6_addr& v6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr;
      if (IN6_IS_ADDR_LOOPBACK(&v6)) continue;
      inet_ntop(AF_INET6, &v6, text, sizeof text);
    }
    st = Status::error("load target '" + host + "' resolves to non-loopback " + text);
  }
  freeaddrinfo(found);
  return st;
}

// gRPC's canonical upper-case code names, as grpc::StatusCode spells them.
const char* grpc_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "UNKNOWN_CODE";
  }
}

// gRPC target string; an IPv6 literal needs brackets before the port.
std::string channel_target(const GrpcTarget& target) {
  const std::string host = target.host.find(':') != std::string::npos ? "[" + target.host + "]" : target.host;
  return host + ":" + std::to_string(target.port);
}

v1::GenerateRequest generate_request(const LoadRequest& r) {
  v1::GenerateRequest req;
  req.set_text(r.prompt);
  req.mutable_sampling()->set_temperature(0);
  req.mutable_stop()->set_max_tokens(r.max_tokens);
  req.mutable_stop()->set_ignore_eos(r.ignore_eos);
  return req;
}

// State shared by the dispatching thread and the reactions. `mu` guards active, ended and
// cancelled_at_deadline, and the hand-over of each finished sample; a call's sample is otherwise
// written only by that call's reactions (gRPC runs one of them at a time per call: one read in flight).
struct Run {
  std::string session_header;  // GrpcTarget::session_header
  Clock::time_point start;
  Clock::time_point deadline;
  LoadProgress* progress = nullptr;
  std::vector<RequestSample> samples;

  std::mutex mu;
  std::condition_variable cv;  // signalled whenever a call ends
  int active = 0;              // calls started and not yet done
  std::vector<size_t> ended;   // calls done, waiting for the dispatcher to destroy them
  bool cancelled_at_deadline = false;

  double now_s() const { return std::chrono::duration<double>(Clock::now() - start).count(); }

  // Records the end of request i (ok or failed) in the progress counters.
  void finished(size_t i) {
    if (!progress) return;
    ++progress->finished;
    if (!samples[i].ok) ++progress->failed;
  }
};

// One Generate call. Owned by the dispatcher, which destroys it only after OnDone has run, so its
// ClientContext stays valid for TryCancel as long as the dispatcher can reach it.
class GenerateCall final : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  GenerateCall(Run& run, size_t index, const LoadRequest& r)
      : run_(run), index_(index), load_request_(r), request_(generate_request(r)) {
    // The server sees the run's end too; the dispatcher's TryCancel at the deadline is the backstop.
    const auto left = run.deadline - Clock::now();
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::microseconds>(left));
    if (!run.session_header.empty() && !r.session.empty()) ctx_.AddMetadata(run.session_header, r.session);
  }

  // Starts the call; the caller must not hold run.mu (a failing call may end inline).
  void start(v1::Generation::Stub& stub) {
    run_.samples[index_].submit_s = run_.now_s();
    if (run_.progress) ++run_.progress->sent;
    stub.async()->Generate(&ctx_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  // Safe at any time before the dispatcher destroys the call, also after it ended.
  void cancel() { ctx_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // no more responses; OnDone follows with the status
    record(response_, run_.now_s());
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    const double end = run_.now_s();
    std::lock_guard lock(run_.mu);
    RequestSample& s = run_.samples[index_];
    s.end_s = end;
    s.error = outcome(status);
    s.ok = s.error.empty();
    settle_sample(load_request_, s);
    run_.finished(index_);
    run_.ended.push_back(index_);
    --run_.active;
    // Notified under the lock: once it is released the dispatcher may destroy this call.
    run_.cv.notify_all();
  }

 private:
  void record(const v1::GenerateResponse& r, double t) {
    RequestSample& s = run_.samples[index_];
    if (r.token_ids_size() > 0) {
      if (s.token_times_s.empty()) s.first_token_s = t;
      s.token_times_s.insert(s.token_times_s.end(), static_cast<size_t>(r.token_ids_size()), t);
      if (run_.progress) run_.progress->tokens += r.token_ids_size();
    }
    if (r.finish_reason() != v1::FINISH_REASON_UNSPECIFIED && r.has_usage()) {
      s.prompt_tokens = r.usage().prompt_tokens();
      s.output_tokens = r.usage().completion_tokens();
      got_final_ = true;
    }
  }

  // The request's error for this final status, empty when it succeeded. Called with run.mu held.
  std::string outcome(const grpc::Status& status) const {
    if (status.ok()) return got_final_ ? "" : "stream ended without a final response (finish_reason and usage)";
    // DEADLINE_EXCEEDED can only be the run's deadline, which every call carries.
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
        (status.error_code() == grpc::StatusCode::CANCELLED && run_.cancelled_at_deadline))
      return kTimeLimit;
    return std::string("gRPC ") + grpc_code_name(status.error_code()) + ": " + status.error_message();
  }

  Run& run_;
  const size_t index_;
  grpc::ClientContext ctx_;
  const LoadRequest& load_request_;  // the caller's, alive until run_grpc_load returns
  const v1::GenerateRequest request_;
  v1::GenerateResponse response_;
  bool got_final_ = false;
};

// Runs on the calling thread: starts the calls in schedule order, waits on run.cv for a due time, a
// free slot or the deadline, and destroys calls once they are done. Never holds run.mu while calling
// into gRPC (starting, cancelling or destroying a call), since gRPC may run a reaction inline.
class Dispatcher {
 public:
  Dispatcher(Run& run, v1::Generation::Stub& stub, int max_in_flight, double time_limit_s, size_t n)
      : run_(run), stub_(stub), max_in_flight_(max_in_flight), time_limit_s_(time_limit_s), calls_(n) {}

  void dispatch(const std::vector<LoadRequest>& requests) {
    std::unique_lock lock(run_.mu);
    const std::vector<double> at = send_times(requests);
    for (size_t i : schedule_order(at)) {
      // Compared in seconds first: a far-future at_s would overflow the clock's integer duration.
      if (at[i] >= time_limit_s_) {
        fail_unsent(i);
        continue;
      }
      const auto due = run_.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(at[i]));
      wait_until(lock, due, [] { return false; });
      wait_until(lock, run_.deadline, [&] { return run_.active < max_in_flight_; });
      if (Clock::now() >= run_.deadline) {
        fail_unsent(i);
        continue;
      }
      start(lock, i, requests[i]);
    }
    drain(lock);
  }

 private:
  // Send times in seconds from the start: at_s, with negative (and NaN, which would break the sort) as 0.
  static std::vector<double> send_times(const std::vector<LoadRequest>& requests) {
    std::vector<double> at;
    at.reserve(requests.size());
    for (const LoadRequest& r : requests) at.push_back(r.at_s > 0 ? r.at_s : 0.0);
    return at;
  }

  static std::vector<size_t> schedule_order(const std::vector<double>& at) {
    std::vector<size_t> order(at.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return at[a] < at[b]; });
    return order;
  }

  // Waits until `done()` or time `t`, destroying ended calls whenever one wakes us.
  template <class Pred>
  void wait_until(std::unique_lock<std::mutex>& lock, Clock::time_point t, Pred done) {
    while (!done() && Clock::now() < t) {
      run_.cv.wait_until(lock, t);
      reap(lock);
    }
  }

  void fail_unsent(size_t i) {
    RequestSample& s = run_.samples[i];
    s.ok = false;
    s.error = kTimeLimit;
    s.end_s = run_.now_s();
    run_.finished(i);
  }

  void start(std::unique_lock<std::mutex>& lock, size_t i, const LoadRequest& r) {
    ++run_.active;  // before starting: the call may end (and decrement) before start() returns
    calls_[i] = std::make_unique<GenerateCall>(run_, i, r);
    GenerateCall* call = calls_[i].get();
    lock.unlock();
    call->start(stub_);
    lock.lock();
  }

  // Waits for every started call to end: until the deadline, then cancelling those still streaming.
  void drain(std::unique_lock<std::mutex>& lock) {
    wait_until(lock, run_.deadline, [&] { return run_.active == 0; });
    if (run_.active > 0) {
      run_.cancelled_at_deadline = true;
      std::vector<GenerateCall*> live;
      for (const auto& c : calls_)
        if (c) live.push_back(c.get());
      lock.unlock();
      for (GenerateCall* c : live) c->cancel();  // only this thread destroys calls, so all are alive
      lock.lock();
    }
    run_.cv.wait(lock, [&] { return run_.active == 0; });
    reap(lock);
  }

  // Destroys the calls whose OnDone has run.
  void reap(std::unique_lock<std::mutex>& lock) {
    if (run_.ended.empty()) return;
    std::vector<std::unique_ptr<GenerateCall>> dead;
    for (size_t i : run_.ended) dead.push_back(std::move(calls_[i]));
    run_.ended.clear();
    lock.unlock();
    dead.clear();
    lock.lock();
  }

  Run& run_;
  v1::Generation::Stub& stub_;
  const int max_in_flight_;
  const double time_limit_s_;
  std::vector<std::unique_ptr<GenerateCall>> calls_;  // by request index; null before start and after reaping
};

Status check_args(const GrpcTarget& target, int max_in_flight, double time_limit_s) {
  if (!is_loopback(target.host))
    return Status::error("load target host '" + target.host +
                         "' refused: only loopback targets (127.0.0.1, localhost, ::1) may be driven");
  if (target.port <= 0 || target.port > 65535)
    return Status::error("load target port " + std::to_string(target.port) + " is outside 1..65535");
  if (max_in_flight < 1) return Status::error("max_in_flight must be at least 1, got " + std::to_string(max_in_flight));
  if (!(time_limit_s > 0) || !std::isfinite(time_limit_s))
    return Status::error("time_limit_s must be positive and finite, got " + std::to_string(time_limit_s));
  if (Status st = check_session_header(target.session_header); !st.ok()) return st;
  return check_resolves_to_loopback(target.host);
}

}  // namespace

Result<std::vector<RequestSample>> run_grpc_load(const GrpcTarget& target, const std::vector<LoadRequest>& requests,
                                                 int max_in_flight, double time_limit_s, LoadProgress* progress) {
  if (Status st = check_args(target, max_in_flight, time_limit_s); !st.ok()) return st;

  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(channel_target(target), grpc::InsecureChannelCredentials());
  std::unique_ptr<v1::Generation::Stub> stub = v1::Generation::NewStub(channel);
  Run run;
  run.session_header = target.session_header;
  run.progress = progress;
  run.samples.resize(requests.size());
  run.start = Clock::now();
  // Capped at ~3 years so that the deadline stays representable (the clock's range is ~292 years).
  const double limit_s = std::min(time_limit_s, 1e8);
  run.deadline = run.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit_s));
  Dispatcher(run, *stub, max_in_flight, limit_s, requests.size()).dispatch(requests);
  return std::move(run.samples);
}

}  // namespace pagoda::bench
