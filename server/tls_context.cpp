#include "server/tls_context.h"

#include <openssl/ssl.h>

#include <boost/asio/buffer.hpp>
#include <string>

namespace pagoda::server {

namespace ssl = boost::asio::ssl;

Result<std::shared_ptr<ssl::context>> make_tls_server_context(const TlsCredentials& credentials) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                       ec);
  if (ec) return Status::error("TLS options: " + ec.message());
  // An encrypted key would make OpenSSL ask for a passphrase on the terminal: it is refused instead.
  context->set_password_callback([](size_t, ssl::context::password_purpose) { return std::string(); }, ec);
  if (ec) return Status::error("TLS password callback: " + ec.message());
  context->use_certificate_chain(boost::asio::buffer(credentials.cert_chain_pem), ec);
  if (ec) return Status::error("the certificate chain does not load: " + ec.message());
  context->use_private_key(boost::asio::buffer(credentials.private_key_pem), ssl::context::pem, ec);
  if (ec) return Status::error("the private key does not load (an encrypted key is not supported), or does not match the certificate: " + ec.message());
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return Status::error("the private key does not match the certificate");
  }
  return context;
}

}  // namespace pagoda::server
