#pragma once
// The OpenSSL server context the HTTP gateway's TLS sessions share (Boost.Asio's ssl::context). Kept
// out of tls.h so only the files that run TLS streams include Asio's SSL headers.
#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "engine/status.h"
#include "server/tls.h"

namespace pagoda::server {

// TLS 1.2+ server context with the credentials loaded; the error says what OpenSSL refused (a PEM
// that does not parse, a key that does not match the certificate).
Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_server_context(const TlsCredentials& credentials);

}  // namespace pagoda::server
