#include "server/grpc_generate_reactor.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "server/grpc_mapping.h"

namespace pagoda::server {

GenerateReactor::GenerateReactor(InferenceService& service, int32_t n, bool with_logprobs, StreamLimits limits)
    : service_(service), n_(n), with_logprobs_(with_logprobs), limits_(limits) {}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerateReactor::refuse(InferenceService& service,
                                                                        const Status& status) {
  auto reactor = std::make_shared<GenerateReactor>(service, 1, false);
  reactor->self_ = reactor;
  reactor->end_with(to_grpc_status(status));
  return reactor.get();  // gRPC's reference (self_) keeps it until OnDone
}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerateReactor::start(InferenceService& service,
                                                                       const v1::GenerateRequest& request,
                                                                       const StreamLimits& limits,
                                                                       grpc::CallbackServerContext* call) {
  const auto make = [&service, &limits, call](int32_t n, bool with_logprobs) {
    auto reactor = std::make_shared<GenerateReactor>(service, n, with_logprobs, limits);
    reactor->call_ = call;
    reactor->self_ = reactor;
    return reactor;
  };
  const auto fail = [&service](const Status& status) { return refuse(service, status); };
  if (!service.serving()) {
    return fail(Status::error(StatusCode::Unavailable, "the server is not serving (starting up or draining)"));
  }
  Result<scheduler::Request> mapped = to_request(request, service);
  if (!mapped.ok()) return fail(mapped.status());

  scheduler::Request& r = mapped.value();
  std::shared_ptr<GenerateReactor> reactor = make(r.n, r.sampling.logprobs >= 0);
  r.sink = [reactor](const scheduler::TokenEvent& ev) { reactor->on_event(ev); };
  Result<scheduler::RequestId> id = service.submit(std::move(r), request.request_id());
  if (!id.ok()) {
    reactor->end_with(to_grpc_status(id.status()));
  } else {
    reactor->submitted(id.value());
  }
  return reactor.get();
}

void GenerateReactor::submitted(scheduler::RequestId id) {
  bool cancel = false;
  {
    std::lock_guard lock(mu_);
    id_ = id;
    // A cancel, or a RESOURCE_EXHAUSTED for an unread stream, before the id was known.
    cancel = (cancelled_ || (final_status_ && !final_status_->ok())) && choices_done_ < n_;
  }
  if (cancel) service_.cancel(id);
}

void GenerateReactor::on_event(const scheduler::TokenEvent& ev) {
  std::unique_lock lock(mu_);
  if (ev.finish != scheduler::FinishReason::None) ++choices_done_;
  if (finished_ || cancelled_ || final_status_) return;
  if (ev.finish == scheduler::FinishReason::Error) {
    final_status_ = grpc::Status(grpc::StatusCode::INTERNAL, ev.error.empty() ? "generation failed" : ev.error);
  } else {
    v1::GenerateResponse& message = queue_.emplace_back();
    to_response(ev, with_logprobs_, service_, message);
    queued_bytes_ += message.ByteSizeLong();
    if (choices_done_ >= n_) final_status_ = grpc::Status::OK;
  }
  scheduler::RequestId cancel_id = 0;
  if (queued_bytes_ > limits_.max_unsent_bytes && choices_done_ < n_) {
    // Not read: the request stops (no more engine time or KV), the queue goes, and the status says why.
    cancel_id = id_;
    final_status_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "the stream was ended: the client did not read " +
                                     std::to_string(limits_.max_unsent_bytes) + " bytes of it in time");
    queue_.clear();
    queued_bytes_ = 0;
    if (limits_.unread_streams_ended) limits_.unread_streams_ended->inc();
    // The status goes once the write in flight drains; a shutdown will not wait for that.
    if (writing_ && limits_.stalled && call_) limits_.stalled->add(call_);
  }
  pump(lock);
  if (cancel_id != 0) service_.cancel(cancel_id);
}

void GenerateReactor::end_with(grpc::Status status) {
  std::unique_lock lock(mu_);
  if (!final_status_) final_status_ = std::move(status);
  pump(lock);
}

void GenerateReactor::OnWriteDone(bool ok) {
  std::unique_lock lock(mu_);
  writing_ = false;
  scheduler::RequestId cancel_id = 0;
  if (!ok && !cancelled_) {  // the stream broke: nothing more can be delivered
    cancelled_ = true;
    if (id_ != 0 && choices_done_ < n_) cancel_id = id_;
    if (!final_status_) final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the stream was closed");
  }
  pump(lock);
  if (cancel_id != 0) service_.cancel(cancel_id);
}

void GenerateReactor::OnCancel() {
  std::unique_lock lock(mu_);
  cancelled_ = true;
  const scheduler::RequestId cancel_id = (id_ != 0 && choices_done_ < n_) ? id_ : 0;
  if (!final_status_ || final_status_->ok()) {
    final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled or its deadline passed");
  }
  pump(lock);
  if (cancel_id != 0) service_.cancel(cancel_id);
}

void GenerateReactor::OnDone() {
  if (limits_.stalled && call_) limits_.stalled->remove(call_);
  // gRPC's reference goes; the sink's copy (if the scheduler still holds it) keeps the object alive.
  std::shared_ptr<GenerateReactor> keep = std::move(self_);
}

void StalledCalls::add(grpc::CallbackServerContext* call) {
  std::lock_guard lock(mu_);
  calls_.insert(call);
}

void StalledCalls::remove(grpc::CallbackServerContext* call) {
  std::lock_guard lock(mu_);
  calls_.erase(call);
}

void StalledCalls::cancel_all() {
  std::lock_guard lock(mu_);  // held: no context is freed (OnDone waits here) while it is cancelled
  const std::vector<grpc::CallbackServerContext*> calls(calls_.begin(), calls_.end());
  for (grpc::CallbackServerContext* call : calls) {
    if (calls_.count(call) != 0) call->TryCancel();
  }
}

void GenerateReactor::pump(std::unique_lock<std::mutex>& lock) {
  Action action = Action::None;
  grpc::Status status;
  if (!finished_ && !writing_) {
    if (!cancelled_ && !queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= std::min(queued_bytes_, current_.ByteSizeLong());
      writing_ = true;
      action = Action::Write;
    } else if (final_status_) {
      queue_.clear();
      finished_ = true;
      status = *final_status_;
      action = Action::Finish;
    }
  }
  lock.unlock();
  // current_ is stable while writing_; Finish happens once, after the last write completed.
  if (action == Action::Write) StartWrite(&current_);
  if (action == Action::Finish) Finish(std::move(status));
}

}  // namespace pagoda::server
