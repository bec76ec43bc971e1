#include "record_layer.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <cstring>
#include <limits>

namespace pb::lan::detail {

namespace {

constexpr uint8_t kVersionMajor = 3, kVersionMinor = 3;  // TLS 1.2 on the wire
constexpr size_t kTag = 16;                              // Poly1305
constexpr size_t kBlock = 16;                            // AES
constexpr size_t kMac = 32;                              // HMAC-SHA256
constexpr uint16_t kChaChaPskSuite = 0xCCAC;             // TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256
constexpr uint16_t kCbcPskSuite = 0xC037;                // TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256
constexpr size_t kMasterSecret = 48;
constexpr size_t kRandom = 32;

// The EVP objects records go through. Contexts are re-keyed per record, so a connection keeps
// only its key bytes; one set serves every connection of the thread.
struct Crypto {
  EVP_CIPHER* chacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  EVP_CIPHER* aes_cbc = EVP_CIPHER_fetch(nullptr, "AES-128-CBC", nullptr);
  EVP_CIPHER_CTX* cipher_ctx = EVP_CIPHER_CTX_new();
  EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* mac_ctx = nullptr;
  EVP_KDF* prf = EVP_KDF_fetch(nullptr, "TLS1-PRF", nullptr);

  Crypto() {
    if (hmac != nullptr) mac_ctx = EVP_MAC_CTX_new(hmac);
    if (mac_ctx != nullptr) {
      char digest[] = "SHA256";
      const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                   OSSL_PARAM_construct_end()};
      if (EVP_MAC_CTX_set_params(mac_ctx, params) != 1) {
        EVP_MAC_CTX_free(mac_ctx);
        mac_ctx = nullptr;
      }
    }
  }
  ~Crypto() {
    EVP_KDF_free(prf);
    EVP_MAC_CTX_free(mac_ctx);
    EVP_MAC_free(hmac);
    EVP_CIPHER_CTX_free(cipher_ctx);
    EVP_CIPHER_free(aes_cbc);
    EVP_CIPHER_free(chacha);
  }
  Crypto(const Crypto&) = delete;
  Crypto& operator=(const Crypto&) = delete;

  bool ok() const { return chacha && aes_cbc && cipher_ctx && mac_ctx && prf; }
};

Crypto& crypto() {
  thread_local Crypto c;
  return c;
}

void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

void put_u16(uint8_t* p, size_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

void put_header(uint8_t* h, ContentType type, size_t body) {
  h[0] = static_cast<uint8_t>(type);
  h[1] = kVersionMajor;
  h[2] = kVersionMinor;
  put_u16(h + 3, body);
}

// seq_num + type + version + length: the additional data (AEAD) or MAC prefix of a record.
std::array<uint8_t, 13> pseudo_header(uint64_t seq, ContentType type, size_t length) {
  std::array<uint8_t, 13> h{};
  put_u64(h.data(), seq);
  h[8] = static_cast<uint8_t>(type);
  h[9] = kVersionMajor;
  h[10] = kVersionMinor;
  put_u16(h.data() + 11, length);
  return h;
}

// RFC 7905 §2: the 64-bit sequence number, big-endian and left-padded to 12 bytes, XOR the IV.
std::array<uint8_t, 12> chacha_nonce(const std::array<uint8_t, 12>& iv, uint64_t seq) {
  std::array<uint8_t, 12> n = iv;
  for (int i = 0; i < 8; ++i) n[4 + i] ^= static_cast<uint8_t>(seq >> (56 - 8 * i));
  return n;
}

bool hmac_sha256(const std::array<uint8_t, 32>& key, const std::array<uint8_t, 13>& prefix,
                 const uint8_t* data, size_t n, uint8_t* out) {
  EVP_MAC_CTX* m = crypto().mac_ctx;
  size_t len = 0;
  return EVP_MAC_init(m, key.data(), key.size(), nullptr) == 1 &&
         EVP_MAC_update(m, prefix.data(), prefix.size()) == 1 && EVP_MAC_update(m, data, n) == 1 &&
         EVP_MAC_final(m, out, &len, kMac) == 1 && len == kMac;
}

// The TLS 1.2 PRF (RFC 5246 §5) with SHA-256: the PRF of TLS 1.2 for both suites.
// (SSL_CIPHER_get_handshake_digest would say MD5-SHA1 for the CBC suite, which is defined for
// TLS 1.0 too: the PRF of the older versions.)
bool tls12_prf(const uint8_t* secret, size_t secret_len, const uint8_t* seed, size_t seed_len, uint8_t* out,
               size_t out_len) {
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(crypto().prf);
  if (ctx == nullptr) return false;
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, const_cast<uint8_t*>(secret), secret_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, const_cast<uint8_t*>(seed), seed_len),
      OSSL_PARAM_construct_end()};
  const bool ok = EVP_KDF_derive(ctx, out, out_len, params) == 1;
  EVP_KDF_CTX_free(ctx);
  return ok;
}

}  // namespace

RecordProtection::~RecordProtection() {
  OPENSSL_cleanse(&read_, sizeof read_);
  OPENSSL_cleanse(&write_, sizeof write_);
}

std::unique_ptr<RecordProtection> RecordProtection::take_over(ssl_st* ssl, Role role, bool encrypt_then_mac,
                                                              std::string& why) {
  if (!crypto().ok()) {
    why = "OpenSSL lacks ChaCha20-Poly1305, AES-128-CBC, HMAC or the TLS 1.2 PRF";
    return nullptr;
  }
  if (SSL_version(ssl) != TLS1_2_VERSION || SSL_is_init_finished(ssl) != 1) {
    why = "not an established TLS 1.2 session";
    return nullptr;
  }
  if (SSL_has_pending(ssl) == 1) {
    why = "records already buffered inside OpenSSL";
    return nullptr;
  }
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  SSL_SESSION* session = SSL_get_session(ssl);
  if (cipher == nullptr || session == nullptr) {
    why = "no negotiated suite";
    return nullptr;
  }
  const uint16_t id = SSL_CIPHER_get_protocol_id(cipher);
  Suite suite;
  size_t mac_len = 0, key_len = 0, iv_len = 0;
  if (id == kChaChaPskSuite) {
    suite = Suite::ChaCha20Poly1305;
    key_len = 32;
    iv_len = 12;
  } else if (id == kCbcPskSuite && encrypt_then_mac) {
    suite = Suite::Aes128CbcSha256;
    mac_len = kMac;
    key_len = 16;
    iv_len = 16;  // derived but unused: TLS 1.2 sends an explicit IV per record
  } else {
    why = std::string("suite ") + SSL_CIPHER_get_name(cipher) +
          (id == kCbcPskSuite ? " without encrypt-then-MAC" : "") + " is left to OpenSSL";
    return nullptr;
  }

  std::array<uint8_t, kMasterSecret> master{};
  // "key expansion" + server_random + client_random (RFC 5246 §6.3).
  constexpr char kLabel[] = "key expansion";
  std::array<uint8_t, sizeof kLabel - 1 + 2 * kRandom> seed{};
  std::memcpy(seed.data(), kLabel, sizeof kLabel - 1);
  if (SSL_SESSION_get_master_key(session, master.data(), master.size()) != master.size() ||
      SSL_get_server_random(ssl, seed.data() + sizeof kLabel - 1, kRandom) != kRandom ||
      SSL_get_client_random(ssl, seed.data() + sizeof kLabel - 1 + kRandom, kRandom) != kRandom) {
    OPENSSL_cleanse(master.data(), master.size());
    why = "cannot read the session's secrets";
    return nullptr;
  }
  std::array<uint8_t, 2 * (32 + 32 + 16)> block{};
  const size_t block_len = 2 * (mac_len + key_len + iv_len);
  const bool derived =
      tls12_prf(master.data(), master.size(), seed.data(), seed.size(), block.data(), block_len);
  OPENSSL_cleanse(master.data(), master.size());
  if (!derived) {
    OPENSSL_cleanse(block.data(), block.size());
    why = "cannot derive the key block";
    return nullptr;
  }

  std::unique_ptr<RecordProtection> p(new RecordProtection(suite));
  // client MAC key, server MAC key, client key, server key, client IV, server IV.
  Direction& client = role == Role::Server ? p->read_ : p->write_;
  Direction& server = role == Role::Server ? p->write_ : p->read_;
  const uint8_t* b = block.data();
  std::memcpy(client.mac_key.data(), b, mac_len);
  std::memcpy(server.mac_key.data(), b + mac_len, mac_len);
  b += 2 * mac_len;
  std::memcpy(client.key.data(), b, key_len);
  std::memcpy(server.key.data(), b + key_len, key_len);
  b += 2 * key_len;
  if (suite == Suite::ChaCha20Poly1305) {
    std::memcpy(client.iv.data(), b, iv_len);
    std::memcpy(server.iv.data(), b + iv_len, iv_len);
  }
  OPENSSL_cleanse(block.data(), block.size());
  return p;
}

bool RecordProtection::seal(ContentType type, const uint8_t* data, size_t n, std::vector<uint8_t>& out) {
  do {
    const size_t chunk = n < kMaxPlaintext ? n : kMaxPlaintext;
    if (!seal_one(type, data, chunk, out)) return false;
    data += chunk;
    n -= chunk;
  } while (n > 0);
  return true;
}

bool RecordProtection::seal_one(ContentType type, const uint8_t* data, size_t n, std::vector<uint8_t>& out) {
  if (write_.seq == std::numeric_limits<uint64_t>::max()) return false;  // would repeat a nonce
  Crypto& c = crypto();
  const size_t start = out.size();
  int len = 0;
  if (suite_ == Suite::ChaCha20Poly1305) {
    const size_t body = n + kTag;
    out.resize(start + kHeader + body);
    uint8_t* h = out.data() + start;
    put_header(h, type, body);
    const auto aad = pseudo_header(write_.seq, type, n);
    const auto nonce = chacha_nonce(write_.iv, write_.seq);
    uint8_t* ct = h + kHeader;
    if (EVP_EncryptInit_ex2(c.cipher_ctx, c.chacha, write_.key.data(), nonce.data(), nullptr) != 1 ||
        EVP_EncryptUpdate(c.cipher_ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
        (n > 0 && EVP_EncryptUpdate(c.cipher_ctx, ct, &len, data, static_cast<int>(n)) != 1) ||
        EVP_EncryptFinal_ex(c.cipher_ctx, ct + n, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.cipher_ctx, EVP_CTRL_AEAD_GET_TAG, kTag, ct + n) != 1) {
      out.resize(start);
      return false;
    }
  } else {
    // IV, then plaintext + padding (each byte the padding length) to a whole block, then the MAC of
    // all of it.
    const size_t pad = kBlock - 1 - n % kBlock;
    const size_t padded = n + pad + 1;
    const size_t body = kBlock + padded + kMac;
    out.resize(start + kHeader + body);
    uint8_t* h = out.data() + start;
    put_header(h, type, body);
    uint8_t* iv = h + kHeader;
    uint8_t* ct = iv + kBlock;
    if (n > 0) std::memcpy(ct, data, n);
    std::memset(ct + n, static_cast<int>(pad), pad + 1);
    if (RAND_bytes(iv, kBlock) != 1 ||
        EVP_EncryptInit_ex2(c.cipher_ctx, c.aes_cbc, write_.key.data(), iv, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(c.cipher_ctx, 0) != 1 ||
        EVP_EncryptUpdate(c.cipher_ctx, ct, &len, ct, static_cast<int>(padded)) != 1 ||
        static_cast<size_t>(len) != padded || EVP_EncryptFinal_ex(c.cipher_ctx, ct + padded, &len) != 1 ||
        !hmac_sha256(write_.mac_key, pseudo_header(write_.seq, type, kBlock + padded), iv, kBlock + padded,
                     ct + padded)) {
      out.resize(start);
      return false;
    }
  }
  ++write_.seq;
  return true;
}

RecordProtection::Framing RecordProtection::frame(const uint8_t* p, size_t avail, size_t& record_len,
                                                  AlertDescription& alert) {
  if (avail >= 1 && (p[0] < static_cast<uint8_t>(ContentType::ChangeCipherSpec) ||
                     p[0] > static_cast<uint8_t>(ContentType::ApplicationData))) {
    alert = AlertDescription::UnexpectedMessage;
    return Framing::Bad;
  }
  if (avail >= 3 && (p[1] != kVersionMajor || p[2] != kVersionMinor)) {
    alert = AlertDescription::DecodeError;
    return Framing::Bad;
  }
  if (avail < kHeader) return Framing::NeedMore;
  const size_t body = static_cast<size_t>(p[3]) << 8 | p[4];
  if (body > kMaxBody) {
    alert = AlertDescription::RecordOverflow;
    return Framing::Bad;
  }
  record_len = kHeader + body;
  return avail >= record_len ? Framing::Complete : Framing::NeedMore;
}

bool RecordProtection::open(uint8_t* rec, size_t len, ContentType& type, size_t& offset, size_t& n) {
  if (len < kHeader || read_.seq == std::numeric_limits<uint64_t>::max()) return false;
  Crypto& c = crypto();
  type = static_cast<ContentType>(rec[0]);
  uint8_t* body = rec + kHeader;
  const size_t body_len = len - kHeader;
  int out = 0;
  if (suite_ == Suite::ChaCha20Poly1305) {
    if (body_len < kTag) return false;
    const size_t plain = body_len - kTag;
    const auto aad = pseudo_header(read_.seq, type, plain);
    const auto nonce = chacha_nonce(read_.iv, read_.seq);
    if (EVP_DecryptInit_ex2(c.cipher_ctx, c.chacha, read_.key.data(), nonce.data(), nullptr) != 1 ||
        EVP_DecryptUpdate(c.cipher_ctx, nullptr, &out, aad.data(), static_cast<int>(aad.size())) != 1 ||
        (plain > 0 && EVP_DecryptUpdate(c.cipher_ctx, body, &out, body, static_cast<int>(plain)) != 1) ||
        EVP_CIPHER_CTX_ctrl(c.cipher_ctx, EVP_CTRL_AEAD_SET_TAG, kTag, body + plain) != 1 ||
        EVP_DecryptFinal_ex(c.cipher_ctx, body + plain, &out) != 1)
      return false;
    offset = kHeader;
    n = plain;
  } else {
    // Encrypt-then-MAC: authenticate IV + ciphertext first; only authentic bytes are decrypted.
    if (body_len < kBlock + kBlock + kMac || (body_len - kBlock - kMac) % kBlock != 0) return false;
    const size_t ct_len = body_len - kBlock - kMac;
    std::array<uint8_t, kMac> mac{};
    if (!hmac_sha256(read_.mac_key, pseudo_header(read_.seq, type, kBlock + ct_len), body, kBlock + ct_len,
                     mac.data()) ||
        CRYPTO_memcmp(mac.data(), body + kBlock + ct_len, kMac) != 0)
      return false;
    uint8_t* ct = body + kBlock;
    if (EVP_DecryptInit_ex2(c.cipher_ctx, c.aes_cbc, read_.key.data(), body, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(c.cipher_ctx, 0) != 1 ||
        EVP_DecryptUpdate(c.cipher_ctx, ct, &out, ct, static_cast<int>(ct_len)) != 1 ||
        static_cast<size_t>(out) != ct_len || EVP_DecryptFinal_ex(c.cipher_ctx, ct + ct_len, &out) != 1)
      return false;
    const size_t pad = ct[ct_len - 1];
    if (pad + 1 > ct_len) return false;
    for (size_t i = ct_len - 1 - pad; i < ct_len - 1; ++i)
      if (ct[i] != pad) return false;
    offset = kHeader + kBlock;
    n = ct_len - pad - 1;
  }
  if (n > kMaxPlaintext) return false;
  ++read_.seq;
  return true;
}

}  // namespace pb::lan::detail
