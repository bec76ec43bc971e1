// Client-side TLS 1.2 PSK context shared by every simulated socket. The identity and key are
// per connection (attached to the SSL object), so 1000 sockets need one SSL_CTX, not 1000.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <string>
#include <vector>

typedef struct ssl_st SSL;

namespace plugsim {

struct PskCredentials {
  std::string identity;      // the socket cid
  std::vector<uint8_t> key;  // pre-shared key
};

// TLS 1.2 only, the contract's cipher list (pbfw::proto::kPskCipherList, pbfw/limits.hpp).
boost::asio::ssl::context make_psk_client_context();

// Attaches credentials to one connection; `creds` must outlive the handshake.
void attach_psk(SSL* ssl, const PskCredentials* creds);

}  // namespace plugsim
