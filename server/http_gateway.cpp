// The HTTP gateway's transport shell: binds the acceptor, runs the io_context threads, hands each
// connection to an HttpSession (http_session.cpp), and drains and stops them.
#include "server/http_gateway.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "server/http_session.h"
#include "server/tls_context.h"

namespace pagoda::server {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

}  // namespace

struct HttpGateway::Impl : HttpContext {
  using HttpContext::HttpContext;
  // Declared after the context's session registry: sessions destroyed with the io_context still
  // unregister there.
  asio::io_context ioc;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  int bound_port = 0;
  std::mutex lifecycle_mu;
  bool started = false, stopped = false;

  Counter* refused_connections = nullptr;

  void do_accept();
  bool at_connection_limit();
  void refuse(tcp::socket socket);
  void close_sessions();
};

void HttpGateway::Impl::do_accept() {
  acceptor->async_accept(asio::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec && at_connection_limit()) {
      refuse(std::move(socket));
      do_accept();
      return;
    }
    if (!ec) {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (opt.send_buffer_bytes > 0) socket.set_option(asio::socket_base::send_buffer_size(opt.send_buffer_bytes), ignored);
      try {
        make_http_session(*this, std::move(socket))->start();
      } catch (const std::exception& e) {  // e.g. OpenSSL out of memory for a TLS stream: this one only
        spdlog::warn("http: cannot start a session: {}", e.what());
      }
      do_accept();
      return;
    }
    // Out of descriptors or similar: retry shortly instead of spinning.
    spdlog::warn("http accept failed: {}", ec.message());
    auto timer = std::make_shared<asio::steady_timer>(acceptor->get_executor(), std::chrono::milliseconds(100));
    timer->async_wait([this, timer](error_code) {
      if (acceptor->is_open()) do_accept();
    });
  });
}

bool HttpGateway::Impl::at_connection_limit() {
  std::lock_guard lock(sessions_mu);
  return static_cast<int64_t>(sessions.size()) >= opt.max_connections;
}

// Over --max-connections: a short 503 written straight away (a fresh socket's send buffer takes it
// without blocking), then the socket closes. The client learns why instead of seeing a reset. (Under
// TLS the socket just closes: the 503 would need a handshake first, which is what the limit saves.)
void HttpGateway::Impl::refuse(tcp::socket socket) {
  static const std::string body =
      R"({"error":{"message":"Too many open connections; retry later","type":"server_error","param":null,)"
      R"("code":"too_many_connections"}})";
  static const std::string response = "HTTP/1.1 503 Service Unavailable\r\nServer: pagoda\r\n"
                                      "Content-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\n"
                                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  refused_connections->inc();
  error_code ec;
  if (tls) {  // a plain-text answer means nothing to a TLS client: the close is the answer
    socket.close(ec);
    return;
  }
  socket.non_blocking(true, ec);
  if (!ec) socket.write_some(asio::buffer(response), ec);
  // Unread bytes at close make the kernel send a reset, which can destroy the 503 before the client
  // reads it: take what the request has already sent.
  std::array<char, 4096> sink;
  for (int i = 0; i < 16 && !ec; ++i) {
    if (socket.read_some(asio::buffer(sink), ec) == 0) break;
  }
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

void HttpGateway::Impl::close_sessions() {
  std::vector<std::shared_ptr<HttpSession>> live;
  {
    std::lock_guard lock(sessions_mu);
    for (auto& [key, weak] : sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->stop();
}

HttpGateway::HttpGateway(InferenceService& service, const HttpGatewayOptions& options)
    : impl_(std::make_unique<Impl>(service, options)) {}

HttpGateway::~HttpGateway() { shutdown(std::chrono::milliseconds(0)); }

Status HttpGateway::start() {
  Impl& c = *impl_;
  std::lock_guard lock(c.lifecycle_mu);
  const std::string where = c.opt.host + ":" + std::to_string(c.opt.port);
  if (c.started) return Status::error(StatusCode::Internal, "the HTTP gateway on " + where + " is already started");
  if (c.opt.tls) {
    auto tls = make_tls_server_context(*c.opt.tls);
    if (!tls.ok()) return Status::error(StatusCode::InvalidArgument, "HTTP TLS: " + tls.message());
    c.tls = std::move(tls.value());
  }
  c.refused_connections = &c.service.metrics().counter(
      "pagoda_http_connections_refused_total", "HTTP connections answered 503 at once: --max-connections were open");
  c.unread_streams_ended = &c.service.metrics().counter(
      "pagoda_streams_ended_unread_total", "Streams ended because the client stopped reading them", {{"api", "http"}});
  error_code ec;
  tcp::resolver resolver(c.ioc);
  auto endpoints = resolver.resolve(c.opt.host, std::to_string(c.opt.port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) {
    return Status::error(StatusCode::Unavailable, "cannot resolve the HTTP address " + where + ": " + ec.message());
  }
  const tcp::endpoint ep = endpoints.begin()->endpoint();
  c.acceptor.emplace(asio::make_strand(c.ioc));  // its handlers and its close run one at a time
  if (c.acceptor->open(ep.protocol(), ec); !ec) c.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) c.acceptor->bind(ep, ec);
  if (!ec) c.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    c.acceptor.reset();
    return Status::error(StatusCode::Unavailable, "cannot listen for HTTP on " + where + ": " + ec.message());
  }
  c.bound_port = c.acceptor->local_endpoint().port();
  c.work.emplace(asio::make_work_guard(c.ioc));
  c.do_accept();
  for (int i = 0; i < std::max(1, c.opt.threads); ++i) c.threads.emplace_back([&c] { c.ioc.run(); });
  c.started = true;
  return {};
}

int HttpGateway::port() const { return impl_->bound_port; }

void HttpGateway::begin_drain() { impl_->draining = true; }

void HttpGateway::shutdown(std::chrono::milliseconds grace) {
  Impl& c = *impl_;
  std::lock_guard lock(c.lifecycle_mu);
  if (!c.started || c.stopped) return;
  c.stopped = true;
  c.draining = true;
  // Running requests may finish (and their responses be written) until the deadline.
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while ((c.service.in_flight() > 0 || c.active.load() > 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard gate_lock(c.gate->mu);
    c.gate->open = false;
  }
  if (c.acceptor) {
    asio::post(c.acceptor->get_executor(), [&c] {
      error_code ec;
      c.acceptor->close(ec);
    });
  }
  {
    std::lock_guard grammar_lock(c.grammar_mu);
    c.grammar_closed = true;
  }
  c.grammar_pool.join();  // queued tasks answer 503 at once (draining); a running compile finishes
  c.close_sessions();
  c.work.reset();
  // Closed sockets finish their handlers quickly; a stuck one is not waited for beyond this.
  const auto join_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!c.ioc.stopped() && std::chrono::steady_clock::now() < join_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  c.ioc.stop();
  for (auto& t : c.threads) t.join();
  c.threads.clear();
}

}  // namespace pagoda::server
