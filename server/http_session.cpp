// One HTTP connection: reading with timeouts and limits, routing, plain responses, and generation
// requests answered as JSON or streamed as Server-Sent Events. Request / response JSON lives in
// openai_mapping and openai_response.
#include "server/http_session.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <array>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "server/openai_mapping.h"
#include "server/openai_response.h"
#include "server/openai_tools.h"

namespace pagoda::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using error_code = beast::error_code;

std::string random_hex(size_t n) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* digits = "0123456789abcdef";
  std::string s(n, '0');
  for (char& c : s) c = digits[rng() & 15];
  return s;
}

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

// The connection's byte stream: plain TCP, or TLS over it (--tls-cert). Timeouts and the socket live on
// the TCP layer either way.
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

template <class Stream>
Stream open_stream(tcp::socket socket, HttpContext& ctx) {
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    return Stream(std::move(socket), *ctx.tls);
  } else {
    return Stream(std::move(socket));
  }
}

template <class Stream>
class Session final : public HttpSession, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Session(HttpContext& ctx, tcp::socket socket, uint64_t key)
      : ctx_(ctx), stream_(open_stream<Stream>(std::move(socket), ctx)), key_(key) {}
  ~Session() override {
    std::lock_guard lock(ctx_.sessions_mu);
    ctx_.sessions.erase(key_);
  }
  void start() override {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        // The handshake counts against the header timeout: a client that connects and sends nothing
        // (or plain HTTP, which fails the handshake) holds the connection no longer than that.
        self->transport().expires_after(std::chrono::seconds(self->ctx_.opt.header_timeout_s));
        self->stream_.async_handshake(asio::ssl::stream_base::server, [self](error_code ec) {
          if (ec) {
            spdlog::debug("http: TLS handshake failed: {}", ec.message());
            return self->do_close();
          }
          self->read_next();
        });
      } else {
        self->read_next();
      }
    });
  }
  // From shutdown: cancels a running request and closes the connection.
  void stop() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->gen_ && self->gen_->submitted) self->ctx_.service.cancel(self->gen_->id);
      self->do_close();  // first: no write may still use the generation's buffers after it ends
      self->end_generation();
    });
  }

 private:
  // A generation request in flight on this connection.
  struct Generation {
    uint64_t seq = 0;
    scheduler::RequestId id = 0;
    bool submitted = false;
    bool streaming = false;
    std::unique_ptr<openai::ResponseBuilder> builder;
    // Streaming state.
    std::unique_ptr<http::response<http::empty_body>> head;
    std::unique_ptr<http::response_serializer<http::empty_body>> serializer;
    bool head_sent = false, writing = false, ended = false, last_sent = false;
    bool abandoned = false;    // ended for not reading: later events are dropped
    bool close_after = false;  // close the connection once the stream is written
    std::string pending;
  };

  // ---- reading --------------------------------------------------------------------------------
  void read_next() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    // Beast refuses a Content-Length over this as it parses that field, so such a request gets its
    // 413 even without a key (the limit is no secret: --help shows it); every other body waits for
    // the key check in on_header.
    parser_->body_limit(ctx_.opt.max_body_bytes);
    if (first_ || buffer_.size() > 0) {
      first_ = false;
      read_header();
      return;
    }
    // Keep-alive: wait for the next request's first bytes up to the idle limit; the header limit
    // starts with them (so a slow sender cannot hold the connection by trickling bytes).
    transport().expires_after(std::chrono::seconds(ctx_.opt.idle_timeout_s));
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](error_code ec, size_t n) {
      if (ec) return self->do_close();
      self->buffer_.commit(n);
      self->read_header();
    });
  }

  void read_header() {
    transport().expires_after(std::chrono::seconds(ctx_.opt.header_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
    // The key is checked before any body is read (or a 100 Continue sent): a client without one
    // cannot make the server buffer bodies. The connection then closes, its unread body drained by the
    // lingering close.
    const std::string target(req.target());
    if (!authorized(req, target.substr(0, target.find('?')))) {
      keep_alive_ = false;
      return send_unauthorized(true);
    }
    if (auto cl = parser_->content_length(); cl && *cl > ctx_.opt.max_body_bytes) return body_too_large();
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      static const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(cont), [self = this->shared_from_this()](error_code ec2, size_t) {
        if (ec2) return self->do_close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return self->on_read_error(ec);
      self->handle(self->parser_->release());
    });
  }

  void on_read_error(error_code ec) {
    if (ec == http::error::body_limit) return body_too_large();
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::ssl::error::stream_truncated || closed_) {
      return do_close();
    }
    keep_alive_ = false;
    send_error(openai::invalid("Malformed HTTP request: " + ec.message()), true);
  }

  void body_too_large() {
    keep_alive_ = false;
    openai::ApiError e;
    e.http_status = 413;
    e.code = "request_too_large";
    e.message = "The request body is larger than the limit of " + std::to_string(ctx_.opt.max_body_bytes) + " bytes";
    send_error(e, true);
  }

  // ---- routing --------------------------------------------------------------------------------
  void handle(http::request<http::string_body> req) {
    keep_alive_ = req.keep_alive();
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    const http::verb method = req.method();
    auto only = [&](http::verb allowed) {
      if (method == allowed) return true;
      const char* name = allowed == http::verb::get ? "GET" : "POST";
      openai::ApiError e;
      e.http_status = 405;
      e.code = "method_not_allowed";
      e.message =
          std::string("Method ") + std::string(req.method_string()) + " is not allowed on " + path + "; use " + name;
      send_error(e, false, name);
      return false;
    };
    if (path == "/health") {
      if (only(http::verb::get)) send(http::status::ok, "application/json", R"({"status":"ok"})");
    } else if (path == "/ready") {
      if (!only(http::verb::get)) return;
      if (ctx_.service.serving() && !ctx_.draining) {
        send(http::status::ok, "application/json", R"({"status":"ready"})");
      } else {
        send(http::status::service_unavailable, "application/json",
             ctx_.draining ? R"({"status":"draining"})" : R"({"status":"loading"})");
      }
    } else if (path == "/metrics") {
      if (only(http::verb::get)) {
        send(http::status::ok, "text/plain; version=0.0.4; charset=utf-8", ctx_.service.metrics().render());
      }
    } else if (path == "/v1/models") {
      if (only(http::verb::get))
        send(http::status::ok, "application/json",
             json{{"object", "list"}, {"data", json::array({model_json()})}}.dump());
    } else if (path.rfind("/v1/models/", 0) == 0) {
      if (!only(http::verb::get)) return;
      if (path.substr(11) == ctx_.service.model_id()) {
        send(http::status::ok, "application/json", model_json().dump());
      } else {
        openai::ApiError e;
        e.http_status = 404;
        e.code = "model_not_found";
        e.param = "model";
        e.message =
            "The model '" + path.substr(11) + "' does not exist; this server serves '" + ctx_.service.model_id() + "'";
        send_error(e);
      }
    } else if (path == "/v1/completions") {
      if (only(http::verb::post)) generate(openai::Endpoint::Completions, req);
    } else if (path == "/v1/chat/completions") {
      if (only(http::verb::post)) generate(openai::Endpoint::ChatCompletions, req);
    } else {
      openai::ApiError e;
      e.http_status = 404;
      e.code = "unknown_url";
      e.message = "Unknown route: " + std::string(req.method_string()) + " " + path;
      send_error(e);
    }
  }

  void send_unauthorized(bool close) {
    send(http::status::unauthorized, "application/json",
         openai::error_body(openai::error_from_status(Status::error(
             StatusCode::Unauthenticated, "Missing or invalid API key: send the header Authorization: Bearer <key>"))),
         close, nullptr, /*bearer_challenge=*/true);
  }

  template <class Request>
  bool authorized(const Request& req, const std::string& path) const {
    const ApiKeys* keys = ctx_.opt.api_keys.get();
    if (keys == nullptr || !keys->enabled()) return true;
    for (const std::string& open : ctx_.opt.open_paths) {
      if (path == open) return true;
    }
    return keys->accepts_authorization(req[http::field::authorization]);
  }

  json model_json() const {
    return {{"id", ctx_.service.model_id()}, {"object", "model"}, {"created", ctx_.created}, {"owned_by", "pagoda"}};
  }

  // ---- plain responses ------------------------------------------------------------------------
  void send(http::status status, const char* content_type, std::string body, bool close = false,
            const char* allow = nullptr, bool bearer_challenge = false) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, "pagoda");
    res->set(http::field::content_type, content_type);
    if (allow) res->set(http::field::allow, allow);
    if (bearer_challenge) res->set(http::field::www_authenticate, "Bearer");
    res->keep_alive(keep_alive_ && !close && !ctx_.draining);
    res->body() = std::move(body);
    res->prepare_payload();
    const bool close_after = !res->keep_alive();
    transport().expires_after(std::chrono::seconds(ctx_.opt.idle_timeout_s));
    http::async_write(stream_, *res, [self = this->shared_from_this(), res, close_after](error_code ec, size_t) {
      if (ec) return self->do_close();
      self->exchange_done(close_after);
    });
  }

  void send_error(const openai::ApiError& e, bool close = false, const char* allow = nullptr) {
    send(static_cast<http::status>(e.http_status), "application/json", openai::error_body(e), close, allow);
  }

  void exchange_done(bool close) {
    if (closed_) return;
    if (watch_reading_) {  // TLS: the disconnect watch's read (cancelled by end_generation) ends first
      resume_ = close ? Resume::Close : Resume::Read;
      return;
    }
    if (close) return linger_close();
    read_next();
  }

  // After a response that ends the connection (413, a malformed request, draining), the client may still be
  // sending its body. Closing with unread bytes makes the kernel reset the connection, and the client can
  // lose the response it was sent. So the send side is shut and what still arrives is read and dropped,
  // for at most 2 s and 1 MiB, before the close (nginx's lingering close).
  void linger_close(size_t drained = 0) {
    if (closed_) return;
    if (drained == 0) {
      error_code ec;
      transport().socket().shutdown(tcp::socket::shutdown_send, ec);
      if (ec) return do_close();
      transport().expires_after(std::chrono::seconds(2));
    }
    if (drained >= (size_t{1} << 20)) return do_close();
    stream_.async_read_some(asio::buffer(linger_buf_),
                            [self = this->shared_from_this(), drained](error_code ec, size_t n) {
                              if (ec) return self->do_close();  // EOF, reset, or the 2 s are up
                              self->linger_close(drained + std::max<size_t>(n, 1));
                            });
  }

  // ---- generation -----------------------------------------------------------------------------
  void generate(openai::Endpoint endpoint, const http::request<http::string_body>& req) {
    if (ctx_.draining || !ctx_.service.serving()) {
      return send_error(openai::error_from_status(Status::error(
          StatusCode::Unavailable, ctx_.draining ? "The server is shutting down and accepts no new requests"
                                                 : "The server is not ready yet (loading)")));
    }
    openai::ParseLimits limits;
    limits.served_model = ctx_.service.model_id();
    limits.request = ctx_.service.request_limits();
    auto parsed = openai::parse_request(endpoint, req.body(), limits);
    if (auto* err = std::get_if<openai::ApiError>(&parsed)) return send_error(*err);
    openai::ParsedRequest& p = std::get<openai::ParsedRequest>(parsed);
    if (auto err = openai::apply_tools(p, ctx_.service.chat_template())) return send_error(*err);

    if (p.prompt.suffix && !ctx_.service.tokenizer().has_fill_in_the_middle()) {
      return send_error(openai::invalid("'suffix' needs a model trained for fill-in-the-middle; this one has no FIM "
                                        "prefix, suffix and middle tokens", "suffix"));
    }
    auto ids = ctx_.service.tokenize(p.prompt);
    if (!ids.ok()) {
      openai::ApiError e = openai::error_from_status(ids.status());
      if (e.http_status == 400) e.param = endpoint == openai::Endpoint::Completions ? "prompt" : "messages";
      return send_error(e);
    }
    const int32_t prompt_len = static_cast<int32_t>(ids.value().size());
    if (auto err = openai::resolve_max_tokens(p, prompt_len, ctx_.service.context_length())) return send_error(*err);
    if (p.echo) {
      if (p.prompt.kind == PromptInput::Kind::Text) {
        p.echo_text = p.prompt.text;
      } else {
        // The client's ids, not the prompt built from them (with a suffix, that holds the FIM markers too).
        auto text = ctx_.service.detokenize(p.prompt.token_ids, /*skip_special=*/false);
        if (!text.ok()) return send_error(openai::invalid(text.message(), "prompt"));
        p.echo_text = std::move(text.value());
      }
    }

    scheduler::Request r;
    r.prompt = std::move(ids.value());
    r.sampling = p.sampling;
    r.stop.max_tokens = static_cast<int32_t>(*p.max_tokens);
    r.stop.stop_strings = p.stop;
    r.stop.ignore_eos = p.ignore_eos;
    r.n = p.n;
    r.num_speculative_tokens = p.num_speculative_tokens;
    if (p.prediction) {
      auto predicted = ctx_.service.tokenize_prediction(*p.prediction);
      if (!predicted.ok()) return send_error(openai::invalid(predicted.message(), "prediction"));
      r.prediction = std::move(predicted.value());
    }
    std::string log_id(req["x-request-id"]);  // the client's id for the log line, else ours
    if (!p.grammar) return submit_generation(endpoint, p, std::move(r), prompt_len, std::move(log_id));

    // The grammar compiles on the gateway's grammar threads, neither this I/O thread (its other
    // connections go on) nor the engine's; the session waits with nothing in flight, then goes on
    // here, on its strand. Compiled grammars are cached: a repeated schema is a lookup.
    auto pending = std::make_shared<PendingGeneration>(PendingGeneration{endpoint, std::move(p), std::move(r), prompt_len,
                                                                         std::move(log_id)});
    auto compile = [self = this->shared_from_this(), pending] {
      Result<std::shared_ptr<const engine::CompiledGrammar>> grammar =
          self->ctx_.draining ? Result<std::shared_ptr<const engine::CompiledGrammar>>(Status::error(
                                    StatusCode::Unavailable, "The server is shutting down and accepts no new requests"))
                              : self->ctx_.service.compile_grammar(*pending->parsed.grammar);
      asio::post(self->stream_.get_executor(), [self, pending, grammar = std::move(grammar)]() mutable {
        if (self->closed_) return;
        if (!grammar.ok()) {
          openai::ApiError e = openai::error_from_status(grammar.status());
          if (e.http_status == 400) e.param = pending->parsed.grammar_param;
          return self->send_error(e);
        }
        pending->request.sampling.grammar = std::move(grammar.value());
        self->submit_generation(pending->endpoint, pending->parsed, std::move(pending->request), pending->prompt_len,
                                std::move(pending->log_id));
      });
    };
    {
      std::lock_guard lock(ctx_.grammar_mu);
      if (!ctx_.grammar_closed) return asio::post(ctx_.grammar_pool, std::move(compile));
    }
    send_error(openai::error_from_status(
        Status::error(StatusCode::Unavailable, "The server is shutting down and accepts no new requests")));
  }

  // A parsed request waiting for its grammar to compile.
  struct PendingGeneration {
    openai::Endpoint endpoint;
    openai::ParsedRequest parsed;
    scheduler::Request request;
    int32_t prompt_len;
    std::string log_id;
  };

  void submit_generation(openai::Endpoint endpoint, const openai::ParsedRequest& p, scheduler::Request r,
                         int32_t prompt_len, std::string log_id) {
    const bool chat = endpoint == openai::Endpoint::ChatCompletions;
    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + random_hex(24);
    auto gen = std::make_unique<Generation>();
    gen->seq = ++gen_seq_;
    gen->streaming = p.stream;
    InferenceService* service = &ctx_.service;
    gen->builder = std::make_unique<openai::ResponseBuilder>(p, id, unix_now(), ctx_.service.model_id(), prompt_len,
                                                             [service](int32_t t) { return service->token_piece(t); });
    r.sink = make_sink(gen->seq);
    gen_ = std::move(gen);

    if (log_id.empty()) log_id = id;
    auto submitted = ctx_.service.submit(std::move(r), log_id);
    if (!submitted.ok()) {
      gen_.reset();
      return send_error(openai::error_from_status(submitted.status()));
    }
    if (!p.user.empty()) spdlog::info("http {}: user {}", log_id, p.user);
    gen_->id = submitted.value();
    gen_->submitted = true;
    self_hold_ = this->shared_from_this();  // events keep coming even if no I/O is pending
    ++ctx_.active;
    counted_ = true;
    if (gen_->streaming) start_stream();
    watch_disconnect(gen_->seq);
  }

  // Runs on the engine thread: only posts the event to this session's strand.
  scheduler::StreamSink make_sink(uint64_t seq) {
    std::weak_ptr<Session> weak = this->shared_from_this();
    std::shared_ptr<SinkGate> gate = ctx_.gate;
    return [weak, gate, seq](const scheduler::TokenEvent& ev) {
      std::lock_guard lock(gate->mu);
      if (!gate->open) return;
      if (auto self = weak.lock()) {
        asio::post(self->stream_.get_executor(), [self, ev, seq] { self->on_event(seq, ev); });
      }
    };
  }

  void on_event(uint64_t seq, const scheduler::TokenEvent& ev) {
    if (!gen_ || gen_->seq != seq) return;
    Generation& g = *gen_;
    std::string out = g.builder->on_event(ev);
    if (closed_) {
      if (g.builder->finished() || g.builder->failed() || g.builder->cancelled()) end_generation();
      return;
    }
    if (!g.streaming) {
      if (g.builder->failed()) {
        const openai::ApiError e = g.builder->error();
        end_generation();
        return send_error(e);
      }
      if (g.builder->cancelled()) {
        end_generation();
        openai::ApiError e = openai::error_from_status(
            Status::error(StatusCode::Unavailable, "The request was cancelled (the server is shutting down)"));
        return send_error(e, true);
      }
      if (g.builder->finished()) {
        std::string body = g.builder->body();
        end_generation();
        return send(http::status::ok, "application/json", std::move(body));
      }
      return;
    }
    if (g.builder->cancelled() && !g.abandoned) {  // cancelled by the server: the stream just ends
      end_generation();
      return do_close();
    }
    if (g.abandoned) return;  // the unread-stream error is all that is still sent
    g.pending += out;
    if (g.pending.size() > ctx_.opt.max_unsent_bytes && !g.builder->finished() && !g.builder->failed()) {
      return abandon_unread_stream();
    }
    if (g.builder->failed()) {
      g.pending += openai::sse_done();
      g.ended = true;
    } else if (g.builder->finished()) {
      g.pending += g.builder->stream_end();
      g.ended = true;
    }
    flush_stream();
  }

  // The client has not taken max_unsent_bytes of its stream: it is not reading (or reads slower than
  // the model writes). Its request is cancelled, so it holds no engine time or KV memory, and what
  // was not yet handed to the socket is replaced by an error event and [DONE], sent if the client
  // ever reads again; a write that stays stuck past the idle timeout closes the connection.
  void abandon_unread_stream() {
    Generation& g = *gen_;
    spdlog::warn("http: request {} cancelled: its client left {} bytes of the stream unread (limit {})", g.id,
                 g.pending.size(), ctx_.opt.max_unsent_bytes);
    if (ctx_.unread_streams_ended) ctx_.unread_streams_ended->inc();
    g.abandoned = true;
    g.close_after = true;
    ctx_.service.cancel(g.id);
    // What is left is best effort: a shutdown does not wait for this client to read.
    if (counted_) {
      counted_ = false;
      --ctx_.active;
    }
    openai::ApiError e;
    e.http_status = 429;
    e.type = "server_error";
    e.code = "stream_not_read";
    e.message = "The stream was ended: the client did not read " + std::to_string(ctx_.opt.max_unsent_bytes) +
                " bytes of it in time";
    g.pending = openai::sse_event(openai::error_body(e));
    g.pending += openai::sse_done();
    g.ended = true;
    flush_stream();
  }

  void start_stream() {
    Generation& g = *gen_;
    g.head = std::make_unique<http::response<http::empty_body>>(http::status::ok, 11);
    g.head->set(http::field::server, "pagoda");
    g.head->set(http::field::content_type, "text/event-stream");
    g.head->set(http::field::cache_control, "no-cache");
    g.head->keep_alive(keep_alive_ && !ctx_.draining);
    g.head->chunked(true);
    g.serializer = std::make_unique<http::response_serializer<http::empty_body>>(*g.head);
    g.pending = g.builder->stream_start();
    g.writing = true;
    transport().expires_after(std::chrono::seconds(ctx_.opt.idle_timeout_s));
    http::async_write_header(stream_, *g.serializer, [self = this->shared_from_this(), seq = g.seq](error_code ec, size_t) {
      if (!self->gen_ || self->gen_->seq != seq) return;
      self->gen_->writing = false;
      if (ec) return self->client_gone();
      self->gen_->head_sent = true;
      self->flush_stream();
    });
  }

  void flush_stream() {
    Generation& g = *gen_;
    if (!g.head_sent || g.writing || closed_) return;
    // The bytes being written live in the handler, not in the Generation: a shutdown or disconnect
    // may end the generation while the write is still in flight.
    auto in_write = std::make_shared<std::string>();
    auto on_written = [self = this->shared_from_this(), seq = g.seq, in_write](error_code ec, size_t) {
      if (!self->gen_ || self->gen_->seq != seq) return;
      self->gen_->writing = false;
      if (ec) return self->client_gone();
      self->flush_stream();
    };
    transport().expires_after(std::chrono::seconds(ctx_.opt.idle_timeout_s));
    if (!g.pending.empty()) {
      in_write->swap(g.pending);
      g.writing = true;
      asio::async_write(stream_, http::make_chunk(asio::buffer(*in_write)), std::move(on_written));
    } else if (g.ended && !g.last_sent) {
      g.last_sent = true;
      g.writing = true;
      asio::async_write(stream_, http::make_chunk_last(), std::move(on_written));
    } else if (g.last_sent) {
      const bool close = g.close_after || !g.head->keep_alive();
      end_generation();
      exchange_done(close);
    }
  }

  // A readable socket while a request runs is the client's next pipelined request (leave it), end-of-
  // file or a reset (the client is gone, so its request is cancelled), or a stale readiness edge from
  // bytes already read (wait again). A non-blocking peek tells them apart.
  void watch_disconnect(uint64_t seq) {
    if constexpr (kTls) {
      // Under TLS the raw bytes are records: a client's close_notify (what curl and most clients send
      // when they abort) would look like a pipelined request to a peek. So the watch reads through the
      // TLS stream (one read beside the response's writes is allowed), keeping what arrives (a
      // pipelined request, up to a cap) for the next exchange; end of stream or an error means gone.
      if (buffer_.size() >= kMaxPipelinedBytes) return;
      watch_reading_ = true;
      stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this(), seq](error_code ec, size_t n) {
        self->watch_reading_ = false;
        if (!ec) self->buffer_.commit(n);
        if (self->resume_ != Resume::None) {  // the exchange ended while the read was pending
          const Resume r = std::exchange(self->resume_, Resume::None);
          if (self->closed_) return;
          return r == Resume::Close ? self->linger_close() : self->read_next();
        }
        if (!self->gen_ || self->gen_->seq != seq || self->closed_) return;
        if (ec) return self->client_gone();
        self->watch_disconnect(seq);
      });
      return;
    }
    transport().socket().async_wait(tcp::socket::wait_read, [self = this->shared_from_this(), seq](error_code ec) {
      if (ec || !self->gen_ || self->gen_->seq != seq || self->closed_) return;
      char c;
      const ssize_t n = ::recv(self->transport().socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) return;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return self->watch_disconnect(seq);
      self->client_gone();
    });
  }

  void client_gone() {
    if (gen_ && gen_->submitted && !gen_->builder->finished()) ctx_.service.cancel(gen_->id);
    do_close();  // the Cancelled (or final) event ends the generation
    if (gen_ && (gen_->builder->finished() || gen_->builder->failed() || gen_->builder->cancelled())) {
      end_generation();
    }
  }

  void end_generation() {
    if (gen_) {
      gen_.reset();
      error_code ec;
      transport().socket().cancel(ec);  // the disconnect watch
    }
    if (counted_) {
      counted_ = false;
      --ctx_.active;
    }
    self_hold_.reset();  // last: may release this session once the current handler returns
  }

  void do_close() {
    if (closed_) return;
    closed_ = true;
    error_code ec;
    transport().socket().shutdown(tcp::socket::shutdown_both, ec);
    transport().socket().close(ec);
  }

  beast::tcp_stream& transport() { return beast::get_lowest_layer(stream_); }

  HttpContext& ctx_;
  Stream stream_;
  uint64_t key_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool first_ = true;
  bool closed_ = false;
  std::array<char, 16384> linger_buf_{};
  bool keep_alive_ = true;
  bool counted_ = false;  // holds one count of ctx_.active
  std::unique_ptr<Generation> gen_;
  uint64_t gen_seq_ = 0;
  std::shared_ptr<Session> self_hold_;
  // TLS disconnect watch (watch_disconnect): a read is pending; what to do when it ends.
  enum class Resume { None, Read, Close };
  static constexpr size_t kMaxPipelinedBytes = 64 * 1024;
  bool watch_reading_ = false;
  Resume resume_ = Resume::None;
};

}  // namespace

HttpContext::HttpContext(InferenceService& s, const HttpGatewayOptions& o) : service(s), opt(o), created(unix_now()) {}

std::shared_ptr<HttpSession> make_http_session(HttpContext& context, tcp::socket socket) {
  std::lock_guard lock(context.sessions_mu);
  const uint64_t key = context.next_session++;
  std::shared_ptr<HttpSession> s;
  if (context.tls) {
    s = std::make_shared<Session<TlsStream>>(context, std::move(socket), key);
  } else {
    s = std::make_shared<Session<PlainStream>>(context, std::move(socket), key);
  }
  context.sessions.emplace(key, s);
  return s;
}

}  // namespace pagoda::server
