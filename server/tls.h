#pragma once
// Optional TLS on both ports (--tls-cert, --tls-key): one certificate chain and private key, PEM files
// read once at start-up. The HTTP gateway serves them through Boost.Beast's SSL stream (OpenSSL), the
// gRPC server through grpc::SslServerCredentials. Only TLS 1.2 and 1.3 are offered. Nothing here reads
// a file after start-up, and no request field can name one.
#include <memory>
#include <string>

#include "engine/status.h"

namespace pagoda::server {

struct TlsCredentials {
  std::string cert_chain_pem;   // the server's certificate first, then any intermediates
  std::string private_key_pem;  // the key of the first certificate
};

// Reads both files and checks them with OpenSSL: each parses as PEM and the key matches the
// certificate. Errors name the flag and the file. Both paths empty: no TLS (null); one of them: an error.
Result<std::shared_ptr<const TlsCredentials>> load_tls_credentials(const std::string& cert_path,
                                                                   const std::string& key_path);

}  // namespace pagoda::server
