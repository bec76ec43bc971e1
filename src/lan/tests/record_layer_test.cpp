// The session-key record layer against OpenSSL's own: a real TLS 1.2 PSK handshake between two
// OpenSSL endpoints over memory BIOs, then one side is taken over and must interoperate with the
// other, byte for byte, in both directions.
#include "record_layer.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "pbfw/limits.hpp"

namespace {

using pb::lan::detail::AlertDescription;
using pb::lan::detail::ContentType;
using pb::lan::detail::RecordProtection;
using Role = RecordProtection::Role;

constexpr char kIdentity[] = "socket-0001";
const uint8_t kKey[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

unsigned int server_psk(SSL*, const char* identity, unsigned char* psk, unsigned int max) {
  if (std::strcmp(identity, kIdentity) != 0 || max < sizeof kKey) return 0;
  std::memcpy(psk, kKey, sizeof kKey);
  return sizeof kKey;
}

unsigned int client_psk(SSL*, const char*, char* identity, unsigned int max_identity, unsigned char* psk,
                        unsigned int max_psk) {
  if (sizeof kIdentity > max_identity || sizeof kKey > max_psk) return 0;
  std::memcpy(identity, kIdentity, sizeof kIdentity);
  std::memcpy(psk, kKey, sizeof kKey);
  return sizeof kKey;
}

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// Two OpenSSL endpoints whose records travel through memory BIOs the test moves by hand.
class Endpoints {
 public:
  Endpoints(const char* ciphers, bool client_etm) {
    sctx_.reset(SSL_CTX_new(TLS_server_method()));
    cctx_.reset(SSL_CTX_new(TLS_client_method()));
    for (SSL_CTX* c : {sctx_.get(), cctx_.get()}) {
      SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
      SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
      EXPECT_EQ(SSL_CTX_set_cipher_list(c, ciphers), 1);
      SSL_CTX_set_options(c, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    }
    if (!client_etm) SSL_CTX_set_options(cctx_.get(), SSL_OP_NO_ENCRYPT_THEN_MAC);
    SSL_CTX_set_psk_server_callback(sctx_.get(), server_psk);
    SSL_CTX_set_psk_client_callback(cctx_.get(), client_psk);
    server_.reset(SSL_new(sctx_.get()));
    client_.reset(SSL_new(cctx_.get()));
    for (BIO** b : {&s_in_, &s_out_, &c_in_, &c_out_}) *b = BIO_new(BIO_s_mem());
    SSL_set_bio(server_.get(), s_in_, s_out_);
    SSL_set_bio(client_.get(), c_in_, c_out_);
    SSL_set_accept_state(server_.get());
    SSL_set_connect_state(client_.get());
  }

  void handshake() {
    for (int i = 0; i < 20; ++i) {
      const int c = SSL_do_handshake(client_.get());
      move(c_out_, s_in_);
      const int s = SSL_do_handshake(server_.get());
      move(s_out_, c_in_);
      if (c == 1 && s == 1) return;
    }
    FAIL() << "handshake did not complete";
  }

  static void move(BIO* from, BIO* to) {
    char buf[4096];
    int n;
    while ((n = BIO_read(from, buf, sizeof buf)) > 0) ASSERT_EQ(BIO_write(to, buf, n), n);
  }
  static std::vector<uint8_t> drain(BIO* from) {
    std::vector<uint8_t> out;
    char buf[4096];
    int n;
    while ((n = BIO_read(from, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
    return out;
  }

  SSL* server() { return server_.get(); }
  SSL* client() { return client_.get(); }
  // What the client wrote, as raw records; what the server writes goes to the client with to_client.
  std::vector<uint8_t> from_client() { return drain(c_out_); }
  std::vector<uint8_t> from_server() { return drain(s_out_); }
  void to_client(const std::vector<uint8_t>& b) {
    ASSERT_EQ(BIO_write(c_in_, b.data(), static_cast<int>(b.size())), static_cast<int>(b.size()));
  }
  void to_server(const std::vector<uint8_t>& b) {
    ASSERT_EQ(BIO_write(s_in_, b.data(), static_cast<int>(b.size())), static_cast<int>(b.size()));
  }

 private:
  std::unique_ptr<SSL_CTX, CtxFree> sctx_, cctx_;
  std::unique_ptr<SSL, SslFree> server_, client_;
  BIO *s_in_ = nullptr, *s_out_ = nullptr, *c_in_ = nullptr, *c_out_ = nullptr;  // owned by the SSLs
};

std::vector<uint8_t> pattern(size_t n, uint8_t salt) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + salt);
  return v;
}

// Opens every record in `wire`, in order; appends application data to `out`, returns the content
// types seen, fails the test on a bad record.
std::vector<ContentType> open_all(RecordProtection& p, std::vector<uint8_t> wire, std::vector<uint8_t>& out) {
  std::vector<ContentType> types;
  size_t pos = 0;
  while (pos < wire.size()) {
    size_t len = 0;
    AlertDescription alert{};
    EXPECT_EQ(RecordProtection::frame(wire.data() + pos, wire.size() - pos, len, alert),
              RecordProtection::Framing::Complete);
    if (len == 0) break;
    ContentType type{};
    size_t off = 0, n = 0;
    EXPECT_TRUE(p.open(wire.data() + pos, len, type, off, n));
    types.push_back(type);
    if (type == ContentType::ApplicationData)
      out.insert(out.end(), wire.data() + pos + off, wire.data() + pos + off + n);
    if (type == ContentType::Alert)
      out.insert(out.end(), wire.data() + pos + off, wire.data() + pos + off + n);
    pos += len;
  }
  return types;
}

std::vector<uint8_t> ssl_read_all(SSL* ssl) {
  std::vector<uint8_t> out;
  uint8_t buf[8192];
  size_t n = 0;
  while (SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) out.insert(out.end(), buf, buf + n);
  return out;
}

struct SuiteCase {
  const char* ciphers;
  RecordProtection::Suite suite;
};

class RecordLayerSuite : public ::testing::TestWithParam<SuiteCase> {
 protected:
  // Handshakes, then takes over the `role` side (the client offers encrypt-then-MAC).
  std::unique_ptr<RecordProtection> take_over(Role role) {
    e.handshake();
    std::string why;
    auto p = RecordProtection::take_over(role == Role::Server ? e.server() : e.client(), role,
                                         /*encrypt_then_mac=*/true, why);
    EXPECT_NE(p, nullptr) << why;
    return p;
  }

  Endpoints e{GetParam().ciphers, /*client_etm=*/true};
};

TEST_P(RecordLayerSuite, TakenOverServerTalksToOpenSslClientBothWays) {
  auto p = take_over(Role::Server);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->suite(), GetParam().suite);

  // Client to taken-over server: small, exact-record-size and multi-record writes.
  std::vector<uint8_t> sent, got;
  for (size_t size :
       {size_t{1}, size_t{15}, size_t{16}, size_t{100}, RecordProtection::kMaxPlaintext, size_t{40000}}) {
    auto msg = pattern(size, static_cast<uint8_t>(size));
    size_t written = 0;
    ASSERT_EQ(SSL_write_ex(e.client(), msg.data(), msg.size(), &written), 1);
    sent.insert(sent.end(), msg.begin(), msg.end());
  }
  auto types = open_all(*p, e.from_client(), got);
  EXPECT_EQ(got, sent);
  for (auto t : types) EXPECT_EQ(t, ContentType::ApplicationData);

  // Taken-over server to client.
  std::vector<uint8_t> wire, expect;
  for (size_t size : {size_t{0}, size_t{1}, size_t{31}, size_t{32}, size_t{5000}, size_t{70000}}) {
    auto msg = pattern(size, static_cast<uint8_t>(size + 7));
    ASSERT_TRUE(p->seal(ContentType::ApplicationData, msg.data(), msg.size(), wire));
    expect.insert(expect.end(), msg.begin(), msg.end());
  }
  e.to_client(wire);
  EXPECT_EQ(ssl_read_all(e.client()), expect);

  // And on again, both ways, so the sequence numbers keep matching.
  for (int i = 0; i < 50; ++i) {
    auto msg = pattern(23 + i, static_cast<uint8_t>(i));
    size_t written = 0;
    ASSERT_EQ(SSL_write_ex(e.client(), msg.data(), msg.size(), &written), 1);
    std::vector<uint8_t> in;
    open_all(*p, e.from_client(), in);
    ASSERT_EQ(in, msg) << "record " << i;
    std::vector<uint8_t> out;
    ASSERT_TRUE(p->seal(ContentType::ApplicationData, in.data(), in.size(), out));
    e.to_client(out);
    ASSERT_EQ(ssl_read_all(e.client()), msg) << "record " << i;
  }
}

TEST_P(RecordLayerSuite, TakenOverClientTalksToOpenSslServer) {
  auto p = take_over(Role::Client);
  ASSERT_NE(p, nullptr);
  auto msg = pattern(3000, 9);
  std::vector<uint8_t> wire;
  ASSERT_TRUE(p->seal(ContentType::ApplicationData, msg.data(), msg.size(), wire));
  e.to_server(wire);
  EXPECT_EQ(ssl_read_all(e.server()), msg);
  size_t written = 0;
  ASSERT_EQ(SSL_write_ex(e.server(), msg.data(), 77, &written), 1);
  std::vector<uint8_t> got;
  open_all(*p, e.from_server(), got);
  EXPECT_EQ(got, std::vector<uint8_t>(msg.begin(), msg.begin() + 77));
}

TEST_P(RecordLayerSuite, AlteredReplayedOrReorderedRecordsAreRejected) {
  auto p = take_over(Role::Server);
  ASSERT_NE(p, nullptr);
  auto msg = pattern(200, 1);
  size_t written = 0;
  ASSERT_EQ(SSL_write_ex(e.client(), msg.data(), msg.size(), &written), 1);
  const auto first = e.from_client();
  ASSERT_EQ(SSL_write_ex(e.client(), msg.data(), msg.size(), &written), 1);
  const auto second = e.from_client();
  ContentType type{};
  size_t off = 0, n = 0;

  // Every single-bit change of the body, and a changed content type (authenticated data), fails.
  for (size_t byte : {RecordProtection::kHeader, RecordProtection::kHeader + 20, first.size() - 1}) {
    auto bad = first;
    bad[byte] ^= 0x01;
    EXPECT_FALSE(p->open(bad.data(), bad.size(), type, off, n)) << "byte " << byte;
  }
  auto retyped = first;
  retyped[0] = static_cast<uint8_t>(ContentType::Handshake);
  EXPECT_FALSE(p->open(retyped.data(), retyped.size(), type, off, n));
  // The second record before the first (wrong sequence number) fails.
  auto early = second;
  EXPECT_FALSE(p->open(early.data(), early.size(), type, off, n));

  // A failed open does not advance: the genuine records still open, once each.
  auto good = first;
  ASSERT_TRUE(p->open(good.data(), good.size(), type, off, n));
  EXPECT_EQ(std::vector<uint8_t>(good.begin() + off, good.begin() + off + n), msg);
  auto replay = first;
  EXPECT_FALSE(p->open(replay.data(), replay.size(), type, off, n));
  auto next = second;
  EXPECT_TRUE(p->open(next.data(), next.size(), type, off, n));
}

TEST_P(RecordLayerSuite, CloseNotifyFromThePeerIsAnAlertRecord) {
  auto p = take_over(Role::Server);
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(SSL_shutdown(e.client()), 0);  // close_notify sent
  std::vector<uint8_t> alert;
  auto types = open_all(*p, e.from_client(), alert);
  ASSERT_EQ(types, std::vector<ContentType>{ContentType::Alert});
  EXPECT_EQ(alert, (std::vector<uint8_t>{1, 0}));  // warning, close_notify

  // Ours is understood by OpenSSL as the end of the connection.
  const uint8_t close_notify[2] = {1, 0};
  std::vector<uint8_t> wire;
  ASSERT_TRUE(p->seal(ContentType::Alert, close_notify, 2, wire));
  e.to_client(wire);
  uint8_t buf[16];
  size_t n = 0;
  EXPECT_EQ(SSL_read_ex(e.client(), buf, sizeof buf, &n), 0);
  EXPECT_EQ(SSL_get_error(e.client(), 0), SSL_ERROR_ZERO_RETURN);
}

INSTANTIATE_TEST_SUITE_P(
    Suites, RecordLayerSuite,
    ::testing::Values(SuiteCase{"ECDHE-PSK-CHACHA20-POLY1305", RecordProtection::Suite::ChaCha20Poly1305},
                      SuiteCase{"ECDHE-PSK-AES128-CBC-SHA256", RecordProtection::Suite::Aes128CbcSha256}),
    [](const auto& param_info) {
      return param_info.param.suite == RecordProtection::Suite::ChaCha20Poly1305
                 ? std::string("ChaCha20Poly1305")
                 : std::string("Aes128CbcSha256EncryptThenMac");
    });

TEST(RecordLayer, TheContractsPreferredSuiteIsTakenOver) {
  Endpoints e(pbfw::proto::kPskCipherList, true);
  e.handshake();
  std::string why;
  auto p = RecordProtection::take_over(e.server(), Role::Server, true, why);
  ASSERT_NE(p, nullptr) << why;
  EXPECT_EQ(p->suite(), RecordProtection::Suite::ChaCha20Poly1305);
}

TEST(RecordLayer, CbcWithMacThenEncryptIsLeftToOpenSsl) {
  Endpoints e("ECDHE-PSK-AES128-CBC-SHA256", /*client_etm=*/false);
  e.handshake();
  std::string why;
  EXPECT_EQ(RecordProtection::take_over(e.server(), Role::Server, /*encrypt_then_mac=*/false, why), nullptr);
  EXPECT_NE(why.find("without encrypt-then-MAC"), std::string::npos) << why;
  // The SSL is untouched and still works.
  size_t written = 0;
  ASSERT_EQ(SSL_write_ex(e.client(), "ping", 4, &written), 1);
  e.to_server(e.from_client());
  EXPECT_EQ(ssl_read_all(e.server()), (std::vector<uint8_t>{'p', 'i', 'n', 'g'}));
}

TEST(RecordLayer, UnfinishedHandshakeIsNotTakenOver) {
  Endpoints e(pbfw::proto::kPskCipherList, true);
  std::string why;
  EXPECT_EQ(RecordProtection::take_over(e.server(), Role::Server, true, why), nullptr);
  EXPECT_FALSE(why.empty());
}

TEST(RecordLayer, FramingRefusesWhatNoPeerMaySend) {
  size_t len = 0;
  AlertDescription alert{};
  const uint8_t partial[] = {23, 3, 3, 0};
  EXPECT_EQ(RecordProtection::frame(partial, sizeof partial, len, alert),
            RecordProtection::Framing::NeedMore);
  const uint8_t whole[] = {23, 3, 3, 0, 2, 0xaa, 0xbb};
  EXPECT_EQ(RecordProtection::frame(whole, sizeof whole, len, alert), RecordProtection::Framing::Complete);
  EXPECT_EQ(len, sizeof whole);
  EXPECT_EQ(RecordProtection::frame(whole, 6, len, alert), RecordProtection::Framing::NeedMore);
  const uint8_t bad_type[] = {24, 3, 3, 0, 0};
  EXPECT_EQ(RecordProtection::frame(bad_type, 1, len, alert), RecordProtection::Framing::Bad);
  EXPECT_EQ(alert, AlertDescription::UnexpectedMessage);
  const uint8_t old_version[] = {23, 3, 1, 0, 0};
  EXPECT_EQ(RecordProtection::frame(old_version, sizeof old_version, len, alert),
            RecordProtection::Framing::Bad);
  EXPECT_EQ(alert, AlertDescription::DecodeError);
  const uint8_t too_long[] = {23, 3, 3, 0x48, 0x01};  // 18433 bytes
  EXPECT_EQ(RecordProtection::frame(too_long, sizeof too_long, len, alert), RecordProtection::Framing::Bad);
  EXPECT_EQ(alert, AlertDescription::RecordOverflow);
}

}  // namespace
