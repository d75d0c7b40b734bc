#pragma once
// pagoda.v1 wire messages <-> the InferenceService's types: GenerateRequest -> Request (defaults as the
// proto documents them, prompt tokenized), TokenEvent -> GenerateResponse, Status -> grpc::Status.
// No transport logic here; grpc_generate_reactor.cpp and grpc_server.cpp use it.
#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

#include "engine/status.h"
#include "pagoda/v1/pagoda.pb.h"
#include "scheduler/request.h"
#include "server/inference_service.h"

namespace pagoda::server {

grpc::StatusCode to_grpc_code(StatusCode code);
grpc::Status to_grpc_status(const Status& status);

// Valid UTF-8 for a proto3 string field: each byte that is not part of a well-formed sequence becomes
// U+FFFD (token pieces may be partial code points).
std::string utf8_safe(std::string_view bytes);

// The request's prompt as the service tokenizes it (InvalidArgument when no prompt is set).
Result<PromptInput> to_prompt_input(const v1::GenerateRequest& req);

// Maps and tokenizes a request; the sink is left empty for the caller. Range checks on the sampling
// and stop fields are the scheduler's (validate_request), reached through InferenceService::submit.
Result<scheduler::Request> to_request(const v1::GenerateRequest& req, const InferenceService& service);

// One stream message for a token and/or finish event (not for FinishReason::Error, which ends the call).
// with_logprobs: the request asked for logprobs.
void to_response(const scheduler::TokenEvent& ev, bool with_logprobs, const InferenceService& service,
                 v1::GenerateResponse& out);

v1::FinishReason to_wire(scheduler::FinishReason reason);

}  // namespace pagoda::server
