#include "server/tls_context.h"

#include <openssl/ssl.h>

#include <boost/asio/buffer.hpp>

namespace pagoda::server {

namespace ssl = boost::asio::ssl;

Result<std::shared_ptr<ssl::context>> make_tls_server_context(const TlsCredentials& credentials) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                       ec);
  if (ec) return Status::error("TLS options: " + ec.message());
  context->use_certificate_chain(boost::asio::buffer(credentials.cert_chain_pem), ec);
  if (ec) return Status::error("the certificate chain does not load: " + ec.message());
  context->use_private_key(boost::asio::buffer(credentials.private_key_pem), ssl::context::pem, ec);
  if (ec) return Status::error("the private key does not load or does not match the certificate: " + ec.message());
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return Status::error("the private key does not match the certificate");
  }
  return context;
}

}  // namespace pagoda::server
