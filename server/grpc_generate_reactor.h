#pragma once
// One Generate call: a ServerWriteReactor fed by the request's stream sink on the engine thread.
// Events are queued under a mutex and written one at a time (one outstanding write); a client that
// leaves more than StreamLimits::max_unsent_bytes queued has its request cancelled and the call ends
// with RESOURCE_EXHAUSTED (sent once its pending write drains). The call finishes
// with OK after every choice's final message, with the service's error code, or CANCELLED when the
// client cancels or its deadline passes (which cancels the request in the engine). The reactor is
// shared between gRPC (until OnDone) and the sink (until the scheduler drops the request), so it
// lives until both are done; nothing is written after Finish.
#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_set>

#include "pagoda/v1/pagoda.pb.h"
#include "scheduler/request.h"
#include "server/inference_service.h"

namespace pagoda::server {

// Calls ended for not reading whose last write never drains: a shutdown cancels them at once instead
// of waiting out its grace period for them.
class StalledCalls {
 public:
  void add(grpc::CallbackServerContext* call);
  void remove(grpc::CallbackServerContext* call);  // from OnDone: the context is about to go
  void cancel_all();

 private:
  std::recursive_mutex mu_;  // TryCancel may run a reactor's OnDone (remove) on this thread
  std::unordered_set<grpc::CallbackServerContext*> calls_;
};

// What a Generate stream may hold for a client that does not read it.
struct StreamLimits {
  size_t max_unsent_bytes = 1 << 20;  // queued messages' bytes before the call is ended
  Counter* unread_streams_ended = nullptr;
  std::shared_ptr<StalledCalls> stalled;
};

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Validates, tokenizes and submits the request; the returned reactor is owned by gRPC and the
  // engine together. Errors finish the call at once with the mapped code.
  static grpc::ServerWriteReactor<v1::GenerateResponse>* start(InferenceService& service,
                                                               const v1::GenerateRequest& request,
                                                               const StreamLimits& limits = {},
                                                               grpc::CallbackServerContext* call = nullptr);
  // A call refused before it reaches the service (no API key): finishes at once with `status`.
  static grpc::ServerWriteReactor<v1::GenerateResponse>* refuse(InferenceService& service, const Status& status);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  GenerateReactor(InferenceService& service, int32_t n, bool with_logprobs, StreamLimits limits = {});  // use start()

 private:
  enum class Action { None, Write, Finish };

  void on_event(const scheduler::TokenEvent& ev);  // engine thread
  void submitted(scheduler::RequestId id);
  void end_with(grpc::Status status);  // finishes once no write is in flight
  // Decides the next gRPC operation under the lock and runs it after releasing it.
  void pump(std::unique_lock<std::mutex>& lock);

  InferenceService& service_;
  const int32_t n_;
  const bool with_logprobs_;
  const StreamLimits limits_;
  grpc::CallbackServerContext* call_ = nullptr;  // for StalledCalls; valid until OnDone
  std::shared_ptr<GenerateReactor> self_;  // gRPC's reference, dropped in OnDone

  std::mutex mu_;
  std::deque<v1::GenerateResponse> queue_;
  size_t queued_bytes_ = 0;  // serialized size of queue_
  v1::GenerateResponse current_;  // the message being written (touched only while writing_)
  bool writing_ = false;
  bool cancelled_ = false;                    // client cancel, deadline or broken stream
  std::optional<grpc::Status> final_status_;  // set once the outcome is known
  bool finished_ = false;                     // Finish was called (or is about to be)
  int32_t choices_done_ = 0;
  scheduler::RequestId id_ = 0;  // 0 until submitted
};

}  // namespace pagoda::server
