#include "server/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pagoda/v1/pagoda.grpc.pb.h"
#include "server/grpc_generate_reactor.h"
#include "server/grpc_mapping.h"

namespace pagoda::server {

namespace {

constexpr const char* kServiceName = "pagoda.v1.Generation";

// pagoda.v1.Generation on the callback API. Unary calls run on gRPC's callback threads and finish
// before returning; Generate hands off to a GenerateReactor.
class GenerationService final : public v1::Generation::CallbackService {
 public:
  GenerationService(InferenceService& service, const GrpcServerOptions& options)
      : service_(service), keys_(options.api_keys) {
    limits_.max_unsent_bytes = options.max_unsent_bytes;
    limits_.stalled = std::make_shared<StalledCalls>();
    limits_.unread_streams_ended = &service.metrics().counter(
        "pagoda_streams_ended_unread_total", "Streams ended because the client stopped reading them", {{"api", "grpc"}});
  }

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* ctx,
                                                           const v1::GenerateRequest* request) override {
    if (Status s = authorize(*ctx); !s.ok()) return GenerateReactor::refuse(service_, s);
    return GenerateReactor::start(service_, *request, limits_, ctx);
  }

  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx, const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override {
    if (Status s = authorize(*ctx); !s.ok()) return finish(ctx, s);
    return finish(ctx, tokenize(*request, *response));
  }

  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* ctx, const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override {
    if (Status s = authorize(*ctx); !s.ok()) return finish(ctx, s);
    std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
    auto text = service_.detokenize(ids, request->skip_special());
    if (text.ok()) response->set_text(utf8_safe(text.value()));
    return finish(ctx, text.status());
  }

  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx, const v1::GetModelInfoRequest* /*request*/,
                                         v1::ModelInfo* response) override {
    if (Status s = authorize(*ctx); !s.ok()) return finish(ctx, s);
    const ModelInfoView v = service_.model_info();
    response->set_id(v.id);
    response->set_architecture(v.architecture);
    response->set_context_length(v.context_length);
    response->set_vocab_size(v.vocab_size);
    response->set_n_layers(v.n_layers);
    response->set_d_model(v.d_model);
    response->set_quantization(v.quantization);
    response->set_backend(v.backend);
    response->set_chat_template(v.chat_template);
    return finish(ctx, Status());
  }

 private:
  Status authorize(const grpc::CallbackServerContext& ctx) const {
    if (!keys_ || !keys_->enabled()) return {};
    const auto& md = ctx.client_metadata();
    const auto it = md.find("authorization");
    if (it != md.end() && keys_->accepts_authorization(std::string_view(it->second.data(), it->second.size()))) {
      return {};
    }
    return Status::error(StatusCode::Unauthenticated,
                         "missing or invalid API key: send metadata authorization: Bearer <key>");
  }

  static grpc::ServerUnaryReactor* finish(grpc::CallbackServerContext* ctx, const Status& status) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(to_grpc_status(status));
    return reactor;
  }

  Status tokenize(const v1::TokenizeRequest& request, v1::TokenizeResponse& response) const {
    Result<std::vector<int32_t>> ids = Status::error("input is required: set text or chat");
    if (request.input_case() == v1::TokenizeRequest::kText) {
      ids = service_.tokenize_text(request.text(), request.add_special(), request.parse_special());
    } else if (request.input_case() == v1::TokenizeRequest::kChat) {
      PromptInput in;
      in.kind = PromptInput::Kind::Chat;
      for (const v1::ChatMessage& m : request.chat().messages()) in.chat.push_back({m.role(), m.content(), {}, {}});
      ids = service_.tokenize(in);
    }
    if (!ids.ok()) return ids.status();
    for (int32_t id : ids.value()) {
      response.add_token_ids(id);
      response.add_pieces(utf8_safe(service_.token_piece(id)));
    }
    return {};
  }

  InferenceService& service_;
  std::shared_ptr<const ApiKeys> keys_;
  StreamLimits limits_;

 public:
  StalledCalls& stalled() { return *limits_.stalled; }
};

std::string listen_address(const std::string& host, int port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

struct GrpcServer::Impl {
  Impl(InferenceService& s, const GrpcServerOptions& o) : service(s), options(o), generation(s, o) {}

  void apply_serving() {  // with mu held
    if (!server) return;
    grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
    if (!health) return;
    health->SetServingStatus("", serving);
    health->SetServingStatus(kServiceName, serving);
  }

  InferenceService& service;
  GrpcServerOptions options;
  GenerationService generation;
  std::mutex mu;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  bool serving = false;
  bool shut_down = false;
};

GrpcServer::GrpcServer(InferenceService& service, const GrpcServerOptions& options)
    : impl_(std::make_unique<Impl>(service, options)) {}

GrpcServer::~GrpcServer() { shutdown(std::chrono::milliseconds(0)); }

Status GrpcServer::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->server) return Status::error(StatusCode::Internal, "the gRPC server is already started");
  const std::string address = listen_address(impl_->options.host, impl_->options.port);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int selected = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (const TlsCredentials* tls = impl_->options.tls.get()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({tls->private_key_pem, tls->cert_chain_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(address, credentials, &selected);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, impl_->options.max_concurrent_streams);
  builder.SetMaxReceiveMessageSize(impl_->options.max_message_bytes);
  builder.SetMaxSendMessageSize(impl_->options.max_message_bytes);
  builder.RegisterService(&impl_->generation);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || selected == 0) {
    impl_->server.reset();
    return Status::error(StatusCode::Unavailable,
                         "cannot listen for gRPC on " + address + " (address in use or not local?)");
  }
  impl_->port = selected;
  impl_->apply_serving();
  return {};
}

int GrpcServer::port() const {
  std::lock_guard lock(impl_->mu);
  return impl_->port;
}

void GrpcServer::set_serving(bool serving) {
  std::lock_guard lock(impl_->mu);
  impl_->serving = serving;
  if (!impl_->shut_down) impl_->apply_serving();
}

void GrpcServer::shutdown(std::chrono::milliseconds grace) {
  grpc::Server* server = nullptr;
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->server || impl_->shut_down) return;
    impl_->shut_down = true;
    impl_->serving = false;
    server = impl_->server.get();
    if (grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService()) health->Shutdown();
  }
  // Refuses new calls at once; calls still running at the deadline are cancelled (their reactors
  // cancel the engine requests and finish). Wait returns when every reactor is done.
  impl_->generation.stalled().cancel_all();  // calls whose clients stopped reading: not waited for
  server->Shutdown(std::chrono::system_clock::now() + grace);
  server->Wait();
}

}  // namespace pagoda::server
