// pb::lan::Server against real TLS-PSK clients on 127.0.0.1, all on one io_context run by the test thread.
#include "plugbridge/lan/server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "key_throttle.hpp"

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace proto = pbfw::proto;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using pb::lan::Server;
using pb::lan::ServerHandlers;
using pb::lan::ServerOptions;
using pb::lan::Session;

std::vector<uint8_t> key_for(const std::string& identity) {
  std::vector<uint8_t> key(32);
  for (size_t i = 0; i < key.size(); ++i)
    key[i] = static_cast<uint8_t>(identity[i % identity.size()] + i * 7);
  return key;
}

proto::Message make_hello(const std::string& cid, uint8_t version = proto::kVersion) {
  proto::Message m{};
  m.type = proto::MsgType::Hello;
  m.hello.proto_version = version;
  std::snprintf(m.hello.cid, sizeof m.hello.cid, "%s", cid.c_str());
  std::snprintf(m.hello.fw_version, sizeof m.hello.fw_version, "1.2.3");
  m.hello.capabilities = proto::kCapRelay | proto::kCapMeter;
  m.hello.boot_counter = 7;
  m.hello.uptime_ms = 1234;
  return m;
}

proto::Message make_reading(uint32_t seq) {
  proto::Message m{};
  m.type = proto::MsgType::Reading;
  m.reading.seq = seq;
  m.reading.flags = proto::kVoltageValid | proto::kMeterOk;
  m.reading.voltage_mv = 230000 + seq;
  return m;
}

proto::Message make_keepalive(uint64_t uptime) {
  proto::Message m{};
  m.type = proto::MsgType::Keepalive;
  m.keepalive.uptime_ms = uptime;
  return m;
}

proto::Message make_command(uint32_t id) {
  proto::Message m{};
  m.type = proto::MsgType::Command;
  m.command.cmd_id = id;
  m.command.kind = proto::CommandKind::SetRelay;
  m.command.value = 1;
  return m;
}

std::vector<uint8_t> encode(const proto::Message& m) {
  std::vector<uint8_t> out(proto::kMaxFrame);
  size_t n = proto::encode(m, out.data(), out.size());
  EXPECT_GT(n, 0u);
  out.resize(n);
  return out;
}

// A TLS-PSK socket as the firmware would behave, built on make_psk_client_context.
class TestClient {
 public:
  TestClient(asio::io_context& io, const std::string& identity, const std::vector<uint8_t>& key)
      : ctx_(pb::lan::make_psk_client_context(identity, key)), stream_(io, ctx_) {}

  // source: a loopback address of 127.0.0.0/8 to connect from (another "host").
  void connect(uint16_t port, bool tls = true, const std::string& source = "") {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    if (!source.empty()) {
      stream_.lowest_layer().open(tcp::v4());
      stream_.lowest_layer().bind(tcp::endpoint(asio::ip::make_address(source), 0));
    }
    stream_.lowest_layer().async_connect(ep, [this, tls](const boost::system::error_code& ec) {
      if (ec || !tls) {
        connected = !ec;
        handshake_ec = ec;
        handshake_done = true;
        return;
      }
      connected = true;
      stream_.lowest_layer().set_option(tcp::no_delay(true));
      stream_.async_handshake(ssl::stream_base::client, [this](const boost::system::error_code& hec) {
        handshake_ec = hec;
        handshake_done = true;
        if (hec) return;
        read();
        if (!queue_.empty()) write_next();
      });
    });
  }

  void send(const proto::Message& m) { send_raw(encode(m)); }
  void close_socket() {
    boost::system::error_code ignored;
    stream_.lowest_layer().close(ignored);
  }

  void send_raw(std::vector<uint8_t> bytes) {
    // Frames sent before the handshake completes wait for it.
    queue_.push_back(std::move(bytes));
    if (queue_.size() == 1 && ok()) write_next();
  }

  // For the non-TLS client: read until the server drops the TCP connection.
  void read_plain() {
    stream_.next_layer().async_read_some(asio::buffer(chunk_),
                                         [this](const boost::system::error_code& ec, size_t) {
                                           if (ec) {
                                             closed = true;
                                             read_ec = ec;
                                             return;
                                           }
                                           read_plain();
                                         });
  }

  bool ok() const { return handshake_done && !handshake_ec; }
  SSL* tls() { return stream_.native_handle(); }  // to set up before connect()
  ssl::stream<tcp::socket>& stream() { return stream_; }
  size_t count(proto::MsgType t) const {
    size_t n = 0;
    for (auto& m : received) n += m.type == t;
    return n;
  }

  bool connected = false;
  bool handshake_done = false;
  boost::system::error_code handshake_ec;
  bool closed = false;
  boost::system::error_code read_ec;
  std::vector<proto::Message> received;

 private:
  void write_next() {
    asio::async_write(stream_, asio::buffer(queue_.front()),
                      [this](const boost::system::error_code& ec, size_t) {
                        if (ec) return;
                        queue_.pop_front();
                        if (!queue_.empty()) write_next();
                      });
  }

  void read() {
    stream_.async_read_some(asio::buffer(chunk_), [this](const boost::system::error_code& ec, size_t n) {
      if (ec) {
        closed = true;
        read_ec = ec;
        return;
      }
      rbuf_.insert(rbuf_.end(), chunk_.begin(), chunk_.begin() + static_cast<std::ptrdiff_t>(n));
      for (;;) {
        proto::Message m{};
        size_t consumed = 0;
        auto st = proto::decode(rbuf_.data(), rbuf_.size(), m, consumed);
        if (st == proto::DecodeStatus::NeedMore) break;
        ASSERT_EQ(st, proto::DecodeStatus::Ok);
        received.push_back(m);
        rbuf_.erase(rbuf_.begin(), rbuf_.begin() + static_cast<std::ptrdiff_t>(consumed));
      }
      read();
    });
  }

  ssl::context ctx_;
  ssl::stream<tcp::socket> stream_;
  std::array<uint8_t, 4096> chunk_{};
  std::vector<uint8_t> rbuf_;
  std::deque<std::vector<uint8_t>> queue_;
};

class LanServerTest : public ::testing::Test {
 protected:
  void start_server(ServerOptions opts = {}) {
    opts.address = "127.0.0.1";
    opts.port = 0;
    ServerHandlers h;
    h.on_hello = [this](const std::shared_ptr<Session>& s) { hellos.push_back(s); };
    h.on_message = [this](const std::shared_ptr<Session>& s, const proto::Message& m) {
      messages.emplace_back(s->id(), m);
    };
    h.on_closed = [this](const std::shared_ptr<Session>& s, const std::string& reason) {
      EXPECT_FALSE(s->open());
      closed.emplace_back(s->id(), reason);
    };
    auto lookup = [this](std::string_view identity) -> std::optional<std::vector<uint8_t>> {
      ++lookups;
      std::string id(identity);
      if (id.rfind("sock-", 0) != 0) return std::nullopt;
      return key_for(id);
    };
    server = std::make_unique<Server>(io, opts, lookup, h);
    server->start();
    ASSERT_NE(server->port(), 0);
  }

  TestClient& add_client(const std::string& identity, std::vector<uint8_t> key = {},
                         const std::string& source = "", const std::function<void(SSL*)>& configure = {}) {
    if (key.empty()) key = key_for(identity);
    clients.push_back(std::make_unique<TestClient>(io, identity, key));
    if (configure) configure(clients.back()->tls());
    clients.back()->connect(server->port(), true, source);
    return *clients.back();
  }

  // n TCP connections from source that never start their TLS handshake, which the server puts in
  // line (its handshake table is full); waits until it has.
  void queued_connections(size_t n, const std::string& source) {
    const size_t before = server->queued_count();
    for (size_t i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<TestClient>(io, "idle", key_for("sock-idle")));
      clients.back()->connect(server->port(), /*tls=*/false, source);
    }
    ASSERT_TRUE(run_until([&] { return server->queued_count() >= before + n; }));
  }

  // n TCP connections from source that never start their TLS handshake; waits until the server
  // has taken each (admitted, refused, or admitted in the place of an older one).
  void idle_connections(size_t n, const std::string& source) {
    auto taken = [this] { return server->handshake_count() + server->refused() + server->evicted(); };
    const uint64_t before = taken();
    std::vector<TestClient*> added;
    for (size_t i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<TestClient>(io, "idle", key_for("sock-idle")));
      added.push_back(clients.back().get());
      added.back()->connect(server->port(), /*tls=*/false, source);
    }
    ASSERT_TRUE(run_until([&] {
      return std::all_of(added.begin(), added.end(), [](const TestClient* c) { return c->handshake_done; });
    }));
    for (TestClient* c : added) c->read_plain();
    ASSERT_TRUE(run_until([&] { return taken() >= before + n; })) << taken() << " of " << before + n;
  }

  // A table of 2 places taken by idle connections from 127.0.0.2, a line of max_queued behind it,
  // no per-address limits.
  void start_with_a_full_table(size_t max_queued) {
    ServerOptions o;
    o.handshake_timeout = 30s;
    o.max_handshakes = 2;
    o.max_queued = max_queued;
    o.max_handshakes_per_address = 0;
    o.new_per_address_per_s = 0;
    start_server(o);
    idle_connections(2, "127.0.0.2");
    ASSERT_EQ(server->handshake_count(), 2U);
  }

  // Connects, handshakes and says Hello; waits for on_hello.
  TestClient& connect_hello(const std::string& cid, const std::function<void(SSL*)>& configure = {}) {
    size_t before = hellos.size();
    auto& c = add_client(cid, {}, "", configure);
    c.send(make_hello(cid));
    EXPECT_TRUE(run_until([&] { return hellos.size() > before || c.closed; }));
    EXPECT_FALSE(c.closed);
    return c;
  }

  bool run_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!cond()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      io.restart();
      io.run_one_for(10ms);
    }
    return true;
  }

  std::shared_ptr<Session> session_for(const std::string& cid) {
    for (auto& s : hellos)
      if (s->cid() == cid) return s;
    return nullptr;
  }

  size_t closed_count(uint64_t id) const {
    size_t n = 0;
    for (auto& [sid, reason] : closed) n += sid == id;
    return n;
  }

  asio::io_context io;
  std::vector<std::shared_ptr<Session>> hellos;
  std::vector<std::pair<uint64_t, proto::Message>> messages;
  std::vector<std::pair<uint64_t, std::string>> closed;
  int lookups = 0;
  std::unique_ptr<Server> server;
  std::vector<std::unique_ptr<TestClient>> clients;  // destroyed before the server and io
};

TEST_F(LanServerTest, HandshakeAndHelloDeliverOnHelloWithCid) {
  start_server();
  auto& c = connect_hello("sock-a1");
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(hellos.size(), 1u);
  auto s = hellos[0];
  EXPECT_EQ(s->cid(), "sock-a1");
  EXPECT_TRUE(s->open());
  EXPECT_STREQ(s->hello().fw_version, "1.2.3");
  EXPECT_EQ(s->hello().boot_counter, 7u);
  EXPECT_EQ(s->remote().rfind("127.0.0.1:", 0), 0u) << s->remote();
  EXPECT_EQ(server->session_count(), 1u);
  EXPECT_TRUE(s->compact());      // the contract's preferred suite: the SSL is freed
  EXPECT_TRUE(messages.empty());  // Hello itself is not an on_message frame
}

TEST_F(LanServerTest, MessagesRoundTripBothWays) {
  start_server();
  auto& c = connect_hello("sock-rt");
  auto s = hellos.at(0);

  // Several frames in one write, and one frame dribbled in byte by byte.
  std::vector<uint8_t> two = encode(make_reading(1));
  auto second = encode(make_reading(2));
  two.insert(two.end(), second.begin(), second.end());
  c.send_raw(two);
  for (uint8_t b : encode(make_reading(3))) c.send_raw({b});
  ASSERT_TRUE(run_until([&] { return messages.size() == 3; }));
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(messages[i].first, s->id());
    ASSERT_EQ(messages[i].second.type, proto::MsgType::Reading);
    EXPECT_EQ(messages[i].second.reading.seq, i + 1);
    EXPECT_EQ(messages[i].second.reading.voltage_mv, 230001 + i);
  }

  for (uint32_t i = 1; i <= 5; ++i) s->send(make_command(i));
  ASSERT_TRUE(run_until([&] { return c.received.size() == 5; }));
  for (uint32_t i = 0; i < 5; ++i) {
    ASSERT_EQ(c.received[i].type, proto::MsgType::Command);
    EXPECT_EQ(c.received[i].command.cmd_id, i + 1);  // in order
  }
}

// After the handshake a session keeps only its keys (Session::compact) for the suites the record
// layer covers, and OpenSSL's SSL for CBC with MAC-then-encrypt; either way frames go both ways,
// in volume (records of 16 KiB and frames split across them), and the session ends cleanly.
struct SuiteSetup {
  const char* name;
  const char* ciphers;
  bool encrypt_then_mac;
  bool compact;
};

class LanRecordLayerTest : public LanServerTest, public ::testing::WithParamInterface<SuiteSetup> {
 protected:
  // The test client offers only the parameter's suite, with or without encrypt-then-MAC.
  static void use_suite(SSL* ssl) {
    ASSERT_EQ(SSL_set_cipher_list(ssl, GetParam().ciphers), 1);
    if (!GetParam().encrypt_then_mac) SSL_set_options(ssl, SSL_OP_NO_ENCRYPT_THEN_MAC);
  }
};

TEST_P(LanRecordLayerTest, FramesFlowBothWaysAndTheSessionEndsCleanly) {
  start_server();
  auto& c = connect_hello("sock-suite", &use_suite);
  ASSERT_TRUE(c.ok());
  auto s = hellos.at(0);
  EXPECT_EQ(s->compact(), GetParam().compact);

  std::vector<uint8_t> burst;
  for (uint32_t i = 1; i <= 600; ++i) {  // well over one record
    auto f = encode(make_reading(i));
    burst.insert(burst.end(), f.begin(), f.end());
  }
  c.send_raw(burst);
  ASSERT_TRUE(run_until([&] { return messages.size() == 600; })) << messages.size();
  for (uint32_t i = 0; i < 600; ++i) ASSERT_EQ(messages[i].second.reading.seq, i + 1);

  for (uint32_t i = 1; i <= 2000; ++i) s->send(make_command(i));
  ASSERT_TRUE(run_until([&] { return c.received.size() == 2000; })) << c.received.size();
  for (uint32_t i = 0; i < 2000; ++i) ASSERT_EQ(c.received[i].command.cmd_id, i + 1);

  s->close("test done");
  ASSERT_TRUE(run_until([&] { return c.closed && closed.size() == 1; }));
  // The peer saw our close_notify, not a cut connection.
  EXPECT_EQ(c.read_ec, asio::error::eof) << c.read_ec.message();
}

TEST_P(LanRecordLayerTest, PeerCloseNotifyEndsTheSession) {
  start_server();
  auto& c = connect_hello("sock-bye", &use_suite);
  ASSERT_TRUE(c.ok());
  c.stream().async_shutdown([](const boost::system::error_code&) {});
  ASSERT_TRUE(run_until([&] { return closed.size() == 1; }));
  EXPECT_EQ(closed[0].second, "peer closed the connection");
}

INSTANTIATE_TEST_SUITE_P(
    Suites, LanRecordLayerTest,
    ::testing::Values(SuiteSetup{"ChaCha20Poly1305", "ECDHE-PSK-CHACHA20-POLY1305", true, true},
                      SuiteSetup{"Aes128CbcSha256EncryptThenMac", "ECDHE-PSK-AES128-CBC-SHA256", true, true},
                      SuiteSetup{"Aes128CbcSha256MacThenEncrypt", "ECDHE-PSK-AES128-CBC-SHA256", false,
                                 false}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(LanServerTest, ARecordThatFailsAuthenticationClosesTheSession) {
  start_server();
  auto& c = connect_hello("sock-forged");
  auto s = hellos.at(0);
  ASSERT_TRUE(s->compact());
  // An application-data record whose body is not what the key would produce: what a host in the
  // path that injects data into the connection can send.
  std::vector<uint8_t> forged = {23, 3, 3, 0, 40};
  forged.resize(5 + 40, 0x5a);
  asio::write(c.stream().next_layer(), asio::buffer(forged));
  ASSERT_TRUE(run_until([&] { return closed.size() == 1 && c.closed; }));
  EXPECT_NE(closed[0].second.find("bad record MAC"), std::string::npos) << closed[0].second;
  EXPECT_TRUE(messages.empty());
}

TEST_F(LanServerTest, RenegotiationIsRefused) {
  start_server();
  auto& c = connect_hello("sock-reneg", [](SSL* ssl) { SSL_clear_options(ssl, SSL_OP_NO_RENEGOTIATION); });
  ASSERT_TRUE(hellos.at(0)->compact());
  ASSERT_EQ(SSL_renegotiate(c.stream().native_handle()), 1);
  c.send(make_reading(1));  // the write starts the new handshake first
  ASSERT_TRUE(run_until([&] { return closed.size() == 1; }));
  EXPECT_NE(closed[0].second.find("renegotiate"), std::string::npos) << closed[0].second;
}

TEST_F(LanServerTest, KeepaliveIsAnsweredAndPassedOn) {
  start_server();
  auto& c = connect_hello("sock-ka");
  c.send(make_keepalive(99));
  ASSERT_TRUE(run_until([&] { return c.count(proto::MsgType::Keepalive) == 1 && messages.size() == 1; }));
  EXPECT_EQ(messages[0].second.type, proto::MsgType::Keepalive);
  EXPECT_EQ(messages[0].second.keepalive.uptime_ms, 99u);
}

TEST_F(LanServerTest, UnknownIdentityFailsHandshakeAndIsLogged) {
  start_server();
  testing::internal::CaptureStderr();
  auto& bad = add_client("intruder-9", key_for("sock-x"));
  ASSERT_TRUE(run_until([&] { return bad.handshake_done && server->session_count() == 0 && lookups == 1; }));
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(bad.handshake_ec) << "handshake should fail";
  EXPECT_TRUE(hellos.empty());
  EXPECT_NE(log.find("socket 'intruder-9' is not in the roster"), std::string::npos) << log;
  EXPECT_NE(log.find("plugbridge reload"), std::string::npos) << log;
  EXPECT_NE(log.find("127.0.0.1:"), std::string::npos) << log;

  // The server carries on.
  auto& good = connect_hello("sock-ok");
  EXPECT_TRUE(good.ok());
  EXPECT_EQ(hellos.size(), 1u);
}

TEST_F(LanServerTest, WrongKeyFailsHandshake) {
  start_server();
  testing::internal::CaptureStderr();
  auto& bad = add_client("sock-wk", key_for("sock-other"));
  ASSERT_TRUE(run_until([&] { return bad.handshake_done && server->session_count() == 0; }));
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(bad.handshake_ec);
  EXPECT_TRUE(hellos.empty());
  EXPECT_NE(log.find("sock-wk"), std::string::npos) << log;
  EXPECT_NE(log.find("wrong key"), std::string::npos) << log;

  auto& good = connect_hello("sock-wk");
  EXPECT_TRUE(good.ok());
  EXPECT_EQ(hellos.size(), 1u);
}

TEST_F(LanServerTest, ConnectionsWithoutTheKeyLeaveTheSocketsSessionAlone) {
  start_server();
  auto& real = connect_hello("sock-up");
  // Another host knocks with the socket's identity, without its key, again and again.
  for (int i = 0; i < 5; ++i) {
    auto& bad = add_client("sock-up", key_for("sock-other"), "127.0.0." + std::to_string(10 + i));
    ASSERT_TRUE(run_until([&] { return bad.handshake_done; }));
    EXPECT_TRUE(bad.handshake_ec);
  }
  ASSERT_TRUE(run_until([&] { return server->session_count() == 1; }));
  EXPECT_EQ(hellos.size(), 1U);
  EXPECT_TRUE(hellos[0]->open());
  EXPECT_TRUE(closed.empty());
  real.send(make_keepalive(7));
  ASSERT_TRUE(run_until([&] { return !messages.empty(); }));
  EXPECT_EQ(messages[0].first, hellos[0]->id());
}

TEST_F(LanServerTest, HelloCidMismatchIsClosed) {
  start_server();
  auto& c = add_client("sock-m1");
  c.send(make_hello("sock-m2"));
  ASSERT_TRUE(run_until([&] { return c.closed; }));
  EXPECT_TRUE(hellos.empty());
  EXPECT_TRUE(closed.empty());  // on_closed only for sessions that got on_hello
  EXPECT_EQ(server->session_count(), 0u);
}

TEST_F(LanServerTest, WrongProtoVersionAndNonHelloFirstFrameAreClosed) {
  start_server();
  auto& v2 = add_client("sock-v2");
  v2.send(make_hello("sock-v2", 2));
  auto& rd = add_client("sock-rd");
  rd.send(make_reading(1));
  ASSERT_TRUE(run_until([&] { return v2.closed && rd.closed; }));
  EXPECT_TRUE(hellos.empty());
  EXPECT_TRUE(messages.empty());
}

class BadFrameTest : public LanServerTest, public ::testing::WithParamInterface<const char*> {};

std::vector<uint8_t> bad_frame(const std::string& kind) {
  if (kind == "crc") {
    auto f = encode(make_keepalive(5));
    f.back() ^= 0x01;
    return f;
  }
  if (kind == "oversized") return {proto::kSof, proto::kVersion, 3, 0x10, 0x00};
  // Unknown type 0x63 with an empty payload and a correct CRC.
  std::vector<uint8_t> f{proto::kSof, proto::kVersion, 0x63, 0x00, 0x00};
  uint16_t crc = proto::crc16_ccitt(f.data() + 1, f.size() - 1);
  f.push_back(static_cast<uint8_t>(crc >> 8));
  f.push_back(static_cast<uint8_t>(crc));
  return f;
}

TEST_P(BadFrameTest, ClosesOnlyThatSession) {
  start_server();
  auto& victim = connect_hello("sock-bad");
  auto& other = connect_hello("sock-good");
  auto bad_session = session_for("sock-bad");
  ASSERT_TRUE(bad_session);

  testing::internal::CaptureStderr();
  victim.send_raw(bad_frame(GetParam()));
  ASSERT_TRUE(run_until([&] { return victim.closed && closed_count(bad_session->id()) == 1; }));
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("sock-bad"), std::string::npos) << log;
  EXPECT_NE(log.find("bad frame"), std::string::npos) << log;
  EXPECT_FALSE(bad_session->open());
  EXPECT_EQ(server->session_count(), 1u);

  other.send(make_reading(42));
  ASSERT_TRUE(run_until([&] { return messages.size() == 1; }));
  EXPECT_EQ(messages[0].second.reading.seq, 42u);
  EXPECT_TRUE(session_for("sock-good")->open());
}

INSTANTIATE_TEST_SUITE_P(Kinds, BadFrameTest, ::testing::Values("crc", "oversized", "unknown_type"));

TEST_F(LanServerTest, IdleTimeoutCloses) {
  ServerOptions o;
  o.idle_timeout = 1s;
  start_server(o);
  auto& c = connect_hello("sock-idle");
  auto s = hellos.at(0);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] { return c.closed && closed.size() == 1; }, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_NE(closed[0].second.find("idle"), std::string::npos) << closed[0].second;
}

TEST_F(LanServerTest, FramesKeepTheSessionAlivePastIdleTimeout) {
  ServerOptions o;
  o.idle_timeout = 1s;
  start_server(o);
  auto& c = connect_hello("sock-busy");
  // Keepalives every ~300 ms for 1.6 s: longer than the idle timeout, never idle for it.
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; i <= 5; ++i) {
    auto when = t0 + i * 300ms;
    run_until([&] { return std::chrono::steady_clock::now() >= when || c.closed; }, 2s);
    c.send(make_keepalive(static_cast<uint64_t>(i)));
  }
  ASSERT_TRUE(run_until([&] { return messages.size() == 5 || c.closed; }));
  EXPECT_FALSE(c.closed);
  EXPECT_TRUE(closed.empty());
}

TEST_F(LanServerTest, HandshakeTimeoutDropsSilentConnection) {
  ServerOptions o;
  o.handshake_timeout = 1s;
  start_server(o);
  clients.push_back(std::make_unique<TestClient>(io, "sock-silent", key_for("sock-silent")));
  auto& c = *clients.back();
  c.connect(server->port(), /*tls=*/false);
  ASSERT_TRUE(run_until([&] { return c.connected && server->session_count() == 1; }));
  c.read_plain();
  ASSERT_TRUE(run_until([&] { return c.closed; }, 5s));
  EXPECT_EQ(server->session_count(), 0u);
}

TEST_F(LanServerTest, PeerThatDoesNotReadIsDropped) {
  ServerOptions o;
  o.max_write_queue_bytes = 1024;
  start_server(o);
  connect_hello("sock-slow");
  auto s = hellos.at(0);
  // Frames go to the socket until the kernel's buffers are full (the peer reads nothing), then they
  // queue, and past 1 KiB the session is dropped.
  for (uint32_t i = 0; i < 2'000'000 && s->open(); ++i) s->send(make_command(i));
  EXPECT_FALSE(s->open());
  ASSERT_TRUE(run_until([&] { return closed.size() == 1; }));
  EXPECT_NE(closed[0].second.find("write queue"), std::string::npos) << closed[0].second;
}

TEST_F(LanServerTest, CloseFromGatewayIsIdempotentAndNotifiesOnce) {
  start_server();
  auto& c = connect_hello("sock-cl");
  auto s = hellos.at(0);
  s->send(make_command(1));
  s->close("replaced");
  s->close("again");
  EXPECT_FALSE(s->open());
  EXPECT_TRUE(closed.empty());  // posted, not called from inside close()
  s->send(make_command(2));     // no-op once closed
  ASSERT_TRUE(run_until([&] { return c.closed && closed.size() == 1; }));
  // Let any stray duplicate arrive.
  run_until([] { return false; }, 50ms);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].second, "replaced");
  EXPECT_EQ(server->session_count(), 0u);
}

TEST_F(LanServerTest, ShutdownIsBoundedWhenPeerNeverAnswersCloseNotify) {
  ServerOptions o;
  o.shutdown_timeout = 200ms;
  start_server(o);
  auto& c = connect_hello("sock-mute");
  std::weak_ptr<Session> weak = hellos.at(0);
  hellos.clear();
  weak.lock()->close("test");
  // The client sees close_notify but never answers it nor closes TCP: the server must still let go.
  ASSERT_TRUE(run_until([&] { return c.closed && closed.size() == 1; }));
  ASSERT_TRUE(run_until([&] { return weak.expired(); }, 3s));
}

TEST_F(LanServerTest, ConnectionsBeyondMaxSessionsAreRefused) {
  ServerOptions o;
  o.max_sessions = 2;
  start_server(o);
  connect_hello("sock-1");
  connect_hello("sock-2");
  auto& third = add_client("sock-3");
  ASSERT_TRUE(run_until([&] { return third.handshake_done; }));
  EXPECT_TRUE(third.handshake_ec);
  EXPECT_EQ(server->session_count(), 2u);

  hellos.at(0)->close("make room");
  connect_hello("sock-4");
  EXPECT_EQ(hellos.size(), 3u);
  EXPECT_EQ(server->session_count(), 2u);
}

TEST_F(LanServerTest, IdleConnectionsFromOneAddressCannotKeepASocketOut) {
  ServerOptions o;
  o.handshake_timeout = 30s;  // longer than the test: only the limits can let the socket in
  o.max_handshakes = 16;
  o.max_handshakes_per_address = 4;
  o.new_per_address_per_s = 1000;
  start_server(o);
  testing::internal::CaptureStderr();
  idle_connections(200, "127.0.0.2");
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(server->handshake_count(), 4U);
  EXPECT_EQ(server->refused(), 196U);
  // One line for the 196 refusals (the next, a minute on, would count those not logged).
  size_t lines = 0;
  for (size_t at = log.find('\n'); at != std::string::npos; at = log.find('\n', at + 1)) ++lines;
  EXPECT_EQ(lines, 1U) << log;
  EXPECT_NE(log.find("refusing a connection from 127.0.0.2"), std::string::npos) << log;
  connect_hello("sock-real");
  EXPECT_EQ(hellos.size(), 1U);
  EXPECT_EQ(server->handshake_count(), 4U);
}

TEST_F(LanServerTest, AFullHandshakeTableMakesRoomForAnAddressHoldingLess) {
  ServerOptions o;
  o.handshake_timeout = 30s;
  o.max_handshakes = 12;
  o.max_handshakes_per_address = 0;  // no per-address limit: many hosts behind one address
  o.new_per_address_per_s = 0;
  start_server(o);
  idle_connections(8, "127.0.0.2");
  idle_connections(4, "127.0.0.3");
  ASSERT_EQ(server->handshake_count(), 12U);
  // A third host gets in: the oldest place of the address holding the most is taken.
  connect_hello("sock-real");
  EXPECT_EQ(hellos.size(), 1U);
  EXPECT_EQ(server->evicted(), 1U);
  EXPECT_EQ(server->handshake_count(), 11U);
  // The place the socket left after its Hello, then one taken from 127.0.0.2 (7 against 5); with
  // six each, the newcomer's address holds as many as the heaviest: it waits in line.
  idle_connections(1, "127.0.0.3");
  EXPECT_EQ(server->evicted(), 1U);
  idle_connections(1, "127.0.0.3");
  EXPECT_EQ(server->evicted(), 2U);
  EXPECT_EQ(server->queued_count(), 0U);
  queued_connections(1, "127.0.0.3");
  EXPECT_EQ(server->evicted(), 2U);
  EXPECT_EQ(server->refused(), 0U);
  EXPECT_EQ(server->handshake_count(), 12U);
}

TEST_F(LanServerTest, ConnectionsBeyondTheTableWaitInLineAndStartInOrder) {
  start_with_a_full_table(3);
  // Three sockets from the same address: in line, not refused (they would back off).
  std::vector<TestClient*> line;
  for (const char* cid : {"sock-a", "sock-b", "sock-c"}) {
    line.push_back(&add_client(cid, {}, "127.0.0.2"));
    line.back()->send(make_hello(cid));
  }
  ASSERT_TRUE(run_until([&] { return server->queued_count() == 3; }));
  EXPECT_TRUE(hellos.empty());
  // Beyond the line: refused.
  idle_connections(1, "127.0.0.2");
  EXPECT_EQ(server->refused(), 1U);
  // The idle ones go: the three start, in the order they came, and say Hello.
  clients[0]->close_socket();
  clients[1]->close_socket();
  ASSERT_TRUE(run_until([&] { return hellos.size() == 3; }));
  // Sessions are numbered as they start.
  EXPECT_LT(session_for("sock-a")->id(), session_for("sock-b")->id());
  EXPECT_LT(session_for("sock-b")->id(), session_for("sock-c")->id());
  EXPECT_EQ(server->queued_count(), 0U);
  EXPECT_EQ(server->refused(), 1U);
}

// After a reconnect storm most of the line are peers that gave up long ago: each fails its handshake
// as soon as it starts, and frees its place for the next one.
TEST_F(LanServerTest, ALineOfPeersThatGaveUpIsWorkedOffInBoundedTurnsHoldingNoTlsState) {
  start_with_a_full_table(300);
  ASSERT_EQ(server->tls_states(), 2U);
  const size_t first_queued = clients.size();
  queued_connections(200, "127.0.0.2");
  for (size_t i = first_queued; i < clients.size(); ++i) clients[i]->close_socket();
  clients[0]->close_socket();
  clients[1]->close_socket();

  auto failed = [this] {
    const pb::lan::HandshakeFailures f = server->handshake_failures();
    return f.unknown_identity + f.wrong_key + f.tls + f.timeout + f.hello + f.disconnected;
  };
  uint64_t before = failed();
  uint64_t most_in_one_turn = 0;
  long most_held_by_closed = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (server->queued_count() + server->handshake_count() > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_one_for(10ms);  // one handler at a time
    const uint64_t now_failed = failed();
    most_in_one_turn = std::max(most_in_one_turn, now_failed - before);
    before = now_failed;
    most_held_by_closed = std::max(most_held_by_closed, static_cast<long>(server->tls_states()) -
                                                            static_cast<long>(server->session_count()));
  }
  ASSERT_EQ(server->queued_count(), 0U);
  ASSERT_EQ(server->handshake_count(), 0U);
  EXPECT_EQ(failed(), 202U);
  EXPECT_LE(most_in_one_turn, 64U) << "one turn of the loop started the whole line";
  EXPECT_EQ(most_held_by_closed, 0) << "closed connections kept their TLS state until destroyed";
  EXPECT_EQ(server->tls_states(), 0U);
}

TEST_F(LanServerTest, NewConnectionsPerAddressAreRateLimited) {
  ServerOptions o;
  o.handshake_timeout = 30s;
  o.max_handshakes_per_address = 0;
  o.new_per_address_per_s = 5;  // bursts of 10
  start_server(o);
  const auto t0 = std::chrono::steady_clock::now();
  idle_connections(40, "127.0.0.4");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double allowed = 10 + 5 * seconds;
  EXPECT_GE(server->handshake_count(), 10U);
  EXPECT_LE(static_cast<double>(server->handshake_count()), allowed + 1);
  EXPECT_EQ(server->handshake_count() + server->refused(), 40U);
  // Another address has its own allowance.
  connect_hello("sock-other");
}

TEST_F(LanServerTest, WithoutARateLimitAddressesAreForgottenOnceNothingWaits) {
  ServerOptions o;
  o.max_handshakes = 2;
  o.max_queued = 2;  // the server remembers at most 8 addresses
  o.max_handshakes_per_address = 0;
  o.new_per_address_per_s = 0;
  start_server(o);
  // Twenty sockets, each from an address of its own, one after the other.
  for (int i = 0; i < 20; ++i) {
    const std::string cid = "sock-" + std::to_string(i);
    auto& c = add_client(cid, {}, "127.0.2." + std::to_string(i + 1));
    c.send(make_hello(cid));
    ASSERT_TRUE(run_until([&] { return hellos.size() == static_cast<size_t>(i + 1) || c.closed; })) << cid;
    ASSERT_FALSE(c.closed) << cid;
  }
  EXPECT_EQ(server->refused(), 0U);
}

TEST_F(LanServerTest, SessionsPastHelloDoNotCountAgainstTheHandshakeTable) {
  ServerOptions o;
  o.max_handshakes = 2;
  o.max_handshakes_per_address = 0;
  o.new_per_address_per_s = 0;
  start_server(o);
  for (int i = 0; i < 6; ++i) connect_hello("sock-" + std::to_string(i));
  EXPECT_EQ(hellos.size(), 6U);
  EXPECT_EQ(server->handshake_count(), 0U);
  EXPECT_EQ(server->refused(), 0U);
}

TEST_F(LanServerTest, TwoHundredConcurrentSessions) {
  ServerOptions o;  // all from one address, at once
  o.max_handshakes_per_address = 0;
  o.new_per_address_per_s = 0;
  start_server(o);
  constexpr int kN = 200;
  std::vector<TestClient*> cs;
  for (int i = 0; i < kN; ++i) {
    std::string cid = "sock-" + std::to_string(i);
    auto& c = add_client(cid);
    c.send(make_hello(cid));
    cs.push_back(&c);
  }
  ASSERT_TRUE(run_until([&] { return hellos.size() == kN; }, 30s)) << hellos.size();
  EXPECT_EQ(server->session_count(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) cs[static_cast<size_t>(i)]->send(make_reading(static_cast<uint32_t>(i + 1)));
  ASSERT_TRUE(run_until([&] { return messages.size() == kN; }, 30s));
  for (auto& s : hellos) s->send(make_command(static_cast<uint32_t>(s->id())));
  ASSERT_TRUE(run_until(
      [&] {
        for (auto* c : cs)
          if (c->received.empty()) return false;
        return true;
      },
      30s));
  // Each socket got exactly its own session's command.
  std::map<uint64_t, std::string> cid_of;
  for (auto& s : hellos) cid_of[s->id()] = s->cid();
  for (int i = 0; i < kN; ++i) {
    auto& r = cs[static_cast<size_t>(i)]->received;
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(cid_of[r[0].command.cmd_id], "sock-" + std::to_string(i));
  }
}

TEST_F(LanServerTest, StopClosesEverything) {
  start_server();
  auto& a = connect_hello("sock-s1");
  auto& b = connect_hello("sock-s2");
  auto& pending = add_client("sock-s3");  // handshaken, no Hello yet
  ASSERT_TRUE(run_until([&] { return pending.ok() && server->session_count() == 3; }));
  uint16_t port = server->port();

  server->stop();
  EXPECT_EQ(server->session_count(), 0u);
  ASSERT_TRUE(run_until([&] { return a.closed && b.closed && pending.closed && closed.size() == 2; }));
  EXPECT_EQ(a.read_ec, asio::error::eof);  // clean TLS close_notify

  // No longer accepting.
  auto& late = *clients.emplace_back(std::make_unique<TestClient>(io, "sock-late", key_for("sock-late")));
  late.connect(port);
  ASSERT_TRUE(run_until([&] { return late.handshake_done; }));
  EXPECT_TRUE(late.handshake_ec);
  EXPECT_TRUE(hellos.size() == 2);
}

TEST_F(LanServerTest, DestroyedServerCallsNoHandlers) {
  start_server();
  auto& c = connect_hello("sock-d");
  c.send(make_reading(1));
  server.reset();
  ASSERT_TRUE(run_until([&] { return c.closed; }));
  run_until([] { return false; }, 50ms);
  EXPECT_TRUE(closed.empty());
  EXPECT_TRUE(messages.empty());
}

TEST_F(LanServerTest, StartFailsClearlyWhenPortIsTaken) {
  start_server();
  ServerOptions o;
  o.address = "127.0.0.1";
  o.port = server->port();
  Server second(io, o, [](std::string_view) { return std::nullopt; }, {});
  try {
    second.start();
    FAIL() << "expected std::system_error";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("bind"), std::string::npos) << e.what();
    EXPECT_EQ(e.code().value(), EADDRINUSE);
  }
  o.address = "not-an-address";
  Server third(io, o, [](std::string_view) { return std::nullopt; }, {});
  EXPECT_THROW(third.start(), std::system_error);
}

TEST(LanClientContext, RejectsEmptyCredentials) {
  EXPECT_THROW(pb::lan::make_psk_client_context("", {1, 2, 3}), std::invalid_argument);
  EXPECT_THROW(pb::lan::make_psk_client_context("sock", {}), std::invalid_argument);
}

}  // namespace

TEST(KeyThrottle, OncePerKeyPerPeriod) {
  using namespace std::chrono_literals;
  pb::lan::KeyThrottle t(60s, 3);
  const auto t0 = pb::lan::KeyThrottle::Clock::time_point{} + 1h;
  EXPECT_TRUE(t.allow("a", t0));
  EXPECT_FALSE(t.allow("a", t0 + 1s));
  EXPECT_FALSE(t.allow("a", t0 + 59s));
  EXPECT_TRUE(t.allow("b", t0 + 59s));  // another identity is its own line
  EXPECT_TRUE(t.allow("a", t0 + 60s));  // a minute later: again
  EXPECT_EQ(t.suppressed(), 2u);
}

TEST(KeyThrottle, CountsWhatItSuppressedPerKey) {
  pb::lan::KeyThrottle t(std::chrono::minutes(1), 16);
  const auto t0 = pb::lan::KeyThrottle::Clock::now();
  uint64_t missed = 99;
  EXPECT_TRUE(t.allow("10.0.0.7", t0, &missed));
  EXPECT_EQ(missed, 0U);
  for (int i = 0; i < 41; ++i) EXPECT_FALSE(t.allow("10.0.0.7", t0 + std::chrono::seconds(1), &missed));
  EXPECT_TRUE(t.allow("10.0.0.7", t0 + std::chrono::minutes(2), &missed));
  EXPECT_EQ(missed, 41U) << "the next line says how many were not logged";
  EXPECT_EQ(t.suppressed(), 41U);
  EXPECT_TRUE(t.allow("10.0.0.7", t0 + std::chrono::minutes(4), &missed));
  EXPECT_EQ(missed, 0U);
}

TEST(KeyThrottle, BoundedWhenFloodedWithIdentities) {
  using namespace std::chrono_literals;
  pb::lan::KeyThrottle t(60s, 3);
  const auto t0 = pb::lan::KeyThrottle::Clock::time_point{} + 1h;
  EXPECT_TRUE(t.allow("k0", t0));
  EXPECT_TRUE(t.allow("k1", t0));
  EXPECT_TRUE(t.allow("k2", t0));
  // Full of recent keys: new ones share one line per period, memory stays at the cap.
  EXPECT_TRUE(t.allow("k3", t0 + 1s));
  for (int i = 4; i < 1000; ++i) EXPECT_FALSE(t.allow("k" + std::to_string(i), t0 + 2s));
  EXPECT_EQ(t.remembered(), 3u);
  // Once the remembered ones expire, new keys are remembered again.
  EXPECT_TRUE(t.allow("new", t0 + 61s));
  EXPECT_FALSE(t.allow("new", t0 + 62s));
  EXPECT_LE(t.remembered(), 3u);
}
