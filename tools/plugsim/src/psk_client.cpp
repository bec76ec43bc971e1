#include "plugsim/psk_client.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <pbfw/limits.hpp>
#include <stdexcept>

namespace plugsim {

namespace {

int creds_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

unsigned int psk_client_cb(SSL* ssl, const char* /*hint*/, char* identity, unsigned int max_identity_len,
                           unsigned char* psk, unsigned int max_psk_len) {
  const auto* creds = static_cast<const PskCredentials*>(SSL_get_ex_data(ssl, creds_index()));
  if (creds == nullptr) return 0;
  // max_identity_len includes room for the terminator.
  if (creds->identity.size() + 1 > max_identity_len || creds->key.size() > max_psk_len || creds->key.empty())
    return 0;
  std::memcpy(identity, creds->identity.c_str(), creds->identity.size() + 1);
  std::copy(creds->key.begin(), creds->key.end(), psk);
  return static_cast<unsigned int>(creds->key.size());
}

}  // namespace

boost::asio::ssl::context make_psk_client_context() {
  boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
  SSL_CTX* native = ctx.native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(native, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(native, pbfw::proto::kPskCipherList) != 1) {
    throw std::runtime_error("plugsim: cannot configure the TLS-PSK client context");
  }
  SSL_CTX_set_psk_client_callback(native, psk_client_cb);
  return ctx;
}

void attach_psk(SSL* ssl, const PskCredentials* creds) {
  SSL_set_ex_data(ssl, creds_index(), const_cast<PskCredentials*>(creds));
}

}  // namespace plugsim
