#include "server/tls.h"

#include <spdlog/fmt/fmt.h>

#include <boost/asio/ssl/context.hpp>
#include <fstream>
#include <sstream>

#include "server/tls_context.h"

namespace pagoda::server {

namespace {

Result<std::string> read_pem(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(fmt::format("{} {}: cannot open the file", flag, path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::error(fmt::format("{} {}: read error", flag, path));
  std::string pem = text.str();
  if (pem.find("-----BEGIN ") == std::string::npos) {
    return Status::error(fmt::format("{} {}: not a PEM file (no -----BEGIN line)", flag, path));
  }
  return pem;
}

}  // namespace

Result<std::shared_ptr<const TlsCredentials>> load_tls_credentials(const std::string& cert_path,
                                                                   const std::string& key_path) {
  if (cert_path.empty() && key_path.empty()) return std::shared_ptr<const TlsCredentials>();
  if (cert_path.empty() || key_path.empty()) {
    return Status::error(cert_path.empty() ? "--tls-key needs --tls-cert (the certificate chain it belongs to)"
                                           : "--tls-cert needs --tls-key (the certificate's private key)");
  }
  auto cert = read_pem("--tls-cert", cert_path);
  if (!cert.ok()) return cert.status();
  auto key = read_pem("--tls-key", key_path);
  if (!key.ok()) return key.status();
  auto creds = std::make_shared<TlsCredentials>();
  creds->cert_chain_pem = std::move(cert.value());
  creds->private_key_pem = std::move(key.value());
  // The same checks the HTTP gateway's context makes when it starts, done here so a bad pair stops
  // start-up before the model loads, with the files named.
  auto context = make_tls_server_context(*creds);
  if (!context.ok()) {
    return Status::error(fmt::format("--tls-cert {} / --tls-key {}: {}", cert_path, key_path, context.message()));
  }
  return std::shared_ptr<const TlsCredentials>(std::move(creds));
}

}  // namespace pagoda::server
