// plugsim library against a small in-test TLS-PSK gateway on loopback (port 0).
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <pbfw/proto.hpp>
#include <string>
#include <vector>

#include "plugsim/esp_at_link.hpp"
#include "plugsim/host_hal.hpp"
#include "plugsim/simulator.hpp"

namespace {

namespace asio = boost::asio;
namespace proto = pbfw::proto;
using tcp = asio::ip::tcp;
using nlohmann::json;
using namespace std::chrono_literals;

const std::vector<uint8_t> kKey = {0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87,
                                   0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f};

// Minimal gateway: TLS 1.2 PSK, answers Hello, commits records in order and acks them (unless
// told to withhold acks), sends one SetRelay(on) command per boot.
class TestGateway {
 public:
  struct Conn {
    Conn(asio::io_context& io, asio::ssl::context& ctx) : stream(io, ctx) {}
    asio::ssl::stream<tcp::socket> stream;
    std::array<uint8_t, 4096> rbuf{};
    std::vector<uint8_t> rx;
    std::deque<std::vector<uint8_t>> wq;
  };

  TestGateway(asio::io_context& io, std::map<std::string, std::vector<uint8_t>> keys,
              tcp::endpoint bind = tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
      : io_(io), acceptor_(io, bind), ctx_(asio::ssl::context::tls_server), keys_(std::move(keys)) {
    SSL_CTX* c = ctx_.native_handle();
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(c, pbfw::proto::kPskCipherList);
    SSL_CTX_set_ex_data(c, index(), this);
    SSL_CTX_set_psk_server_callback(c, &TestGateway::psk_cb);
    accept();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

  // Stops listening and drops the connection (a gateway restart); the object stays alive for the
  // handlers still queued.
  void shutdown() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    drop();
  }

  void drop() {
    if (conn_) {
      boost::system::error_code ignored;
      conn_->stream.lowest_layer().close(ignored);
      conn_.reset();
    }
  }

  // Observations.
  int handshakes = 0;
  int handshake_failures = 0;
  int hellos = 0;
  uint32_t boot = 0;
  std::vector<uint32_t> boots;
  uint32_t committed = 0;          // highest contiguous record seq committed (current boot)
  std::vector<uint32_t> received;  // every record seq received, resends included
  std::vector<proto::Reading> readings;
  std::vector<proto::Event> events;
  std::vector<proto::CommandResult> results;
  bool ack_enabled = true;
  bool send_command = true;

 private:
  static int index() {
    static const int i = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return i;
  }
  static unsigned int psk_cb(SSL* ssl, const char* identity, unsigned char* psk, unsigned int max_len) {
    auto* self = static_cast<TestGateway*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), index()));
    auto it = self->keys_.find(identity ? identity : "");
    if (it == self->keys_.end() || it->second.size() > max_len) return 0;
    std::copy(it->second.begin(), it->second.end(), psk);
    return static_cast<unsigned int>(it->second.size());
  }

  void accept() {
    auto conn = std::make_shared<Conn>(io_, ctx_);
    acceptor_.async_accept(conn->stream.lowest_layer(), [this, conn](const boost::system::error_code& ec) {
      if (ec) return;
      conn->stream.async_handshake(
          asio::ssl::stream_base::server, [this, conn](const boost::system::error_code& hec) {
            if (hec) {
              ++handshake_failures;
              return;
            }
            ++handshakes;
            drop();  // one socket at a time in these tests: the newest connection wins
            conn_ = conn;
            read(conn);
          });
      accept();
    });
  }

  void read(const std::shared_ptr<Conn>& conn) {
    conn->stream.async_read_some(
        asio::buffer(conn->rbuf), [this, conn](const boost::system::error_code& ec, size_t n) {
          if (ec || conn != conn_) return;
          conn->rx.insert(conn->rx.end(), conn->rbuf.begin(),
                          conn->rbuf.begin() + static_cast<std::ptrdiff_t>(n));
          for (;;) {
            proto::Message m{};
            size_t used = 0;
            const auto st = proto::decode(conn->rx.data(), conn->rx.size(), m, used);
            if (st == proto::DecodeStatus::NeedMore) break;
            ASSERT_EQ(st, proto::DecodeStatus::Ok) << proto::to_string(st);
            conn->rx.erase(conn->rx.begin(), conn->rx.begin() + static_cast<std::ptrdiff_t>(used));
            handle(conn, m);
          }
          read(conn);
        });
  }

  void handle(const std::shared_ptr<Conn>& conn, const proto::Message& m) {
    switch (m.type) {
      case proto::MsgType::Hello: {
        ++hellos;
        if (m.hello.boot_counter != boot) {
          boot = m.hello.boot_counter;
          boots.push_back(boot);
          committed = 0;
          command_sent_ = false;
        }
        proto::Message r{};
        r.type = proto::MsgType::HelloAck;
        r.hello_ack.unix_ms = 1700000000000ull;
        r.hello_ack.last_committed_seq = committed;
        r.hello_ack.keepalive_s = 15;
        send(conn, r);
        if (send_command && !command_sent_) {
          command_sent_ = true;
          proto::Message c{};
          c.type = proto::MsgType::Command;
          c.command.cmd_id = 7;
          c.command.kind = proto::CommandKind::SetRelay;
          c.command.value = 1;
          send(conn, c);
        }
        break;
      }
      case proto::MsgType::Reading:
      case proto::MsgType::Event: {
        const uint32_t seq = m.type == proto::MsgType::Reading ? m.reading.seq : m.event.seq;
        received.push_back(seq);
        if (!ack_enabled) break;  // as if the gateway died before committing
        if (seq == committed + 1) {
          committed = seq;
          if (m.type == proto::MsgType::Reading)
            readings.push_back(m.reading);
          else
            events.push_back(m.event);
        }
        proto::Message a{};
        a.type = proto::MsgType::Ack;
        a.ack.up_to_seq = committed;
        send(conn, a);
        break;
      }
      case proto::MsgType::CommandResult:
        results.push_back(m.command_result);
        break;
      default:
        break;
    }
  }

  void send(const std::shared_ptr<Conn>& conn, const proto::Message& m) {
    std::vector<uint8_t> frame(proto::kMaxFrame);
    frame.resize(proto::encode(m, frame.data(), frame.size()));
    ASSERT_FALSE(frame.empty());
    conn->wq.push_back(std::move(frame));
    if (conn->wq.size() == 1) write(conn);
  }

  void write(const std::shared_ptr<Conn>& conn) {
    asio::async_write(conn->stream, asio::buffer(conn->wq.front()),
                      [this, conn](const boost::system::error_code& ec, size_t) {
                        if (ec) return;
                        conn->wq.pop_front();
                        if (!conn->wq.empty()) write(conn);
                      });
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  asio::ssl::context ctx_;
  std::map<std::string, std::vector<uint8_t>> keys_;
  std::shared_ptr<Conn> conn_;
  bool command_sent_ = false;
};

class CollectingSink : public plugsim::EventSink {
 public:
  void emit(const std::string& line) override { events.push_back(json::parse(line)); }
  size_t count(const std::string& ev) const {
    size_t n = 0;
    for (const auto& e : events) n += e.at("ev") == ev ? 1 : 0;
    return n;
  }
  const json* find(const std::string& ev, const std::string& key = "", const json& value = nullptr) const {
    for (const auto& e : events) {
      if (e.at("ev") == ev && (key.empty() || (e.contains(key) && e.at(key) == value))) return &e;
    }
    return nullptr;
  }
  std::vector<json> events;
};

template <typename Pred>
bool run_until(asio::io_context& io, Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.run_for(5ms);
    if (io.stopped()) io.restart();
  }
  return true;
}

plugsim::SimulatorOptions options_for(const TestGateway& gw, std::vector<uint8_t> key = kKey,
                                      plugsim::LinkKind link = plugsim::LinkKind::Direct) {
  plugsim::SimulatorOptions o;
  o.gateway = gw.endpoint();
  o.transport.link = link;
  plugsim::SocketSpec s;
  s.cid = "sock-1";
  s.psk = std::move(key);
  s.watts = 100.0;
  s.power_factor = 0.9;
  s.reading_interval_ms = 100;
  o.sockets.push_back(s);
  o.transport.backoff_initial = 50ms;
  o.transport.backoff_max = 200ms;
  return o;
}

// The end-to-end tests run over both links: asio TLS directly, and the firmware's ESP-AT driver
// through the emulated ESP8266.
class PlugsimLinks : public ::testing::TestWithParam<plugsim::LinkKind> {};

std::string link_name(const ::testing::TestParamInfo<plugsim::LinkKind>& info) {
  return info.param == plugsim::LinkKind::EspAt ? "EspAt" : "Direct";
}

TEST_P(PlugsimLinks, ReadingsCommandAndResendAfterReconnect) {
  asio::io_context io;
  TestGateway gw(io, {{"sock-1", kKey}});
  CollectingSink sink;
  plugsim::Simulator sim(io, options_for(gw, kKey, GetParam()), sink);
  sim.start();

  // Session up, the relay command is confirmed, readings arrive and are acked.
  ASSERT_TRUE(run_until(io, [&] { return !gw.results.empty() && gw.readings.size() >= 5; }));
  EXPECT_EQ(gw.results[0].cmd_id, 7u);
  EXPECT_EQ(gw.results[0].status, proto::CommandStatus::Ok);
  EXPECT_EQ(gw.results[0].relay_on, 1);
  EXPECT_TRUE(sim.socket(0).relay_on());
  ASSERT_NE(sink.find("connected", "cid", "sock-1"), nullptr);
  const json* up = sink.find("session_up", "cid", "sock-1");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->at("boot"), gw.boot);
  const json* relay = sink.find("relay", "on", true);
  ASSERT_NE(relay, nullptr);
  EXPECT_EQ(relay->at("cause"), "command");
  const json* cmd = sink.find("command", "kind", "set_relay");
  ASSERT_NE(cmd, nullptr);
  EXPECT_EQ(cmd->at("status"), "ok");

  // Readings taken with the relay on carry the simulated load, measured through the decoder.
  ASSERT_TRUE(run_until(io, [&] {
    return !gw.readings.empty() && (gw.readings.back().flags & proto::kRelayOn) &&
           (gw.readings.back().flags & proto::kMeterOk);
  }));
  const auto& r = gw.readings.back();
  EXPECT_NEAR(r.power_mw, 100000.0, 1000.0);
  EXPECT_NEAR(r.voltage_mv, 230000.0, 1150.0);
  EXPECT_NEAR(r.power_factor_e4, 9000, 60);

  // Every committed record is reported acked, with the boot.
  ASSERT_TRUE(run_until(io, [&] { return sim.socket(0).acked_seq() == gw.committed; }));
  EXPECT_GE(sink.count("acked"), gw.committed);

  // The gateway stops committing; then the link drops. The socket must resend the records.
  gw.ack_enabled = false;
  const uint32_t committed_before = gw.committed;
  const size_t received_before = gw.received.size();
  ASSERT_TRUE(run_until(io, [&] { return gw.received.size() >= received_before + 3; }));
  std::vector<uint32_t> unacked(gw.received.begin() + static_cast<std::ptrdiff_t>(received_before),
                                gw.received.end());
  gw.drop();
  gw.ack_enabled = true;
  ASSERT_TRUE(run_until(io, [&] {
    return gw.hellos >= 2 && gw.committed >= unacked.back() && sim.socket(0).acked_seq() >= unacked.back();
  }));
  EXPECT_EQ(gw.boots.size(), 1u) << "a reconnect is not a reboot";
  EXPECT_GE(sink.count("disconnected"), 1u);
  EXPECT_GE(sink.count("connected"), 2u);
  EXPECT_GT(gw.committed, committed_before);
  for (uint32_t seq : unacked) {
    EXPECT_EQ(std::count(gw.received.begin(), gw.received.end(), seq), 2) << "seq " << seq << " resent once";
    bool acked = false;
    for (const auto& e : sink.events) {
      acked |= e.at("ev") == "acked" && e.at("seq") == seq && e.at("boot") == gw.boot;
    }
    EXPECT_TRUE(acked) << "seq " << seq;
  }
  sim.stop();
}

TEST_P(PlugsimLinks, ControlLines) {
  asio::io_context io;
  TestGateway gw(io, {{"sock-1", kKey}});
  gw.send_command = false;
  CollectingSink sink;
  plugsim::Simulator sim(io, options_for(gw, kKey, GetParam()), sink);
  sim.start();
  ASSERT_TRUE(run_until(io, [&] { return sim.socket(0).session_up(); }));

  using R = plugsim::Simulator::ControlResult;
  EXPECT_EQ(sim.control("quit"), R::Quit);
  EXPECT_EQ(sim.control("load nosuch 5"), R::Error);
  EXPECT_EQ(sim.control("load sock-1 -5"), R::Error);
  EXPECT_EQ(sim.control("frobnicate sock-1"), R::Error);
  EXPECT_EQ(sim.control(""), R::Ok);

  const bool before = sim.socket(0).relay_on();
  EXPECT_EQ(sim.control("button sock-1"), R::Ok);
  EXPECT_NE(sim.socket(0).relay_on(), before);
  const json* relay = sink.find("relay", "cause", "button");
  ASSERT_NE(relay, nullptr);
  EXPECT_EQ(relay->at("on"), !before);
  if (!sim.socket(0).relay_on()) sim.control("button sock-1");

  EXPECT_EQ(sim.control("load sock-1 500"), R::Ok);
  ASSERT_TRUE(run_until(io, [&] {
    return !gw.readings.empty() && gw.readings.back().power_mw > 495000 &&
           gw.readings.back().power_mw < 505000;
  }));

  EXPECT_EQ(sim.control("disconnect sock-1"), R::Ok);
  ASSERT_TRUE(run_until(io, [&] { return sink.find("disconnected", "cid", "sock-1") != nullptr; }));
  ASSERT_TRUE(run_until(io, [&] { return sink.count("session_up") >= 2; }));
  sim.stop();
}

TEST_P(PlugsimLinks, WrongPskNeverConnectsAndKeepsRetrying) {
  asio::io_context io;
  TestGateway gw(io, {{"sock-1", kKey}});
  CollectingSink sink;
  auto wrong = kKey;
  wrong[0] ^= 0xFF;
  plugsim::Simulator sim(io, options_for(gw, wrong, GetParam()), sink);
  sim.start();
  ASSERT_TRUE(run_until(io, [&] { return gw.handshake_failures >= 3; }));
  EXPECT_EQ(gw.handshakes, 0);
  EXPECT_EQ(sink.count("connected"), 0u);
  EXPECT_FALSE(sim.socket(0).connected());
  sim.stop();
}

TEST_P(PlugsimLinks, GatewayDownThenUp) {
  asio::io_context io;
  // Reserve a free port and release it: connecting there is refused until the gateway appears.
  tcp::endpoint ep;
  {
    tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    ep = probe.local_endpoint();
  }
  CollectingSink sink;
  plugsim::SimulatorOptions o;
  o.gateway = ep;
  o.sockets.push_back({.cid = "sock-1", .psk = kKey, .reading_interval_ms = 100});
  o.transport.backoff_initial = 20ms;
  o.transport.backoff_max = 100ms;
  o.transport.link = GetParam();
  plugsim::Simulator sim(io, o, sink);
  sim.start();
  io.run_for(150ms);
  EXPECT_EQ(sink.count("connected"), 0u);
  EXPECT_FALSE(sim.socket(0).connected());

  std::unique_ptr<TestGateway> gw;
  try {
    gw = std::make_unique<TestGateway>(io, std::map<std::string, std::vector<uint8_t>>{{"sock-1", kKey}}, ep);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "port " << ep.port() << " was taken meanwhile: " << e.what();
  }
  gw->send_command = false;
  ASSERT_TRUE(run_until(io, [&] { return sink.count("session_up") == 1 && gw->committed >= 2; }));
  EXPECT_EQ(gw->handshakes, 1);
  sim.stop();
}

TEST_P(PlugsimLinks, GatewayRestartReconnectsByItself) {
  asio::io_context io;
  auto gw = std::make_unique<TestGateway>(io, std::map<std::string, std::vector<uint8_t>>{{"sock-1", kKey}});
  gw->send_command = false;
  const tcp::endpoint ep = gw->endpoint();
  CollectingSink sink;
  plugsim::Simulator sim(io, options_for(*gw, kKey, GetParam()), sink);
  sim.start();
  ASSERT_TRUE(run_until(io, [&] { return sim.socket(0).session_up() && gw->committed >= 2; }));

  gw->shutdown();  // the gateway process goes away...
  auto old_gw = std::move(gw);
  ASSERT_TRUE(run_until(io, [&] { return !sim.socket(0).connected(); }));
  io.run_for(100ms);  // ...for a while, during which connects are refused
  EXPECT_FALSE(sim.socket(0).connected());
  try {
    gw = std::make_unique<TestGateway>(io, std::map<std::string, std::vector<uint8_t>>{{"sock-1", kKey}}, ep);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "port " << ep.port() << " was taken meanwhile: " << e.what();
  }
  gw->send_command = false;
  // (This gateway forgot what it committed, so it only counts what arrives.)
  ASSERT_TRUE(run_until(io, [&] { return sim.socket(0).session_up() && gw->received.size() >= 2; }));
  EXPECT_EQ(gw->hellos, 1);
  EXPECT_EQ(sink.count("session_up"), 2u);
  sim.stop();
}

TEST_P(PlugsimLinks, WifiLossRejoinsAndResendsWhatWasTakenOffline) {
  asio::io_context io;
  TestGateway gw(io, {{"sock-1", kKey}});
  gw.send_command = false;
  CollectingSink sink;
  plugsim::Simulator sim(io, options_for(gw, kKey, GetParam()), sink);
  sim.start();
  ASSERT_TRUE(run_until(io, [&] { return sim.socket(0).session_up() && gw.committed >= 2; }));
  if (!sim.socket(0).wifi_loss(400ms)) GTEST_SKIP() << "the direct link has no Wi-Fi";
  ASSERT_TRUE(run_until(io, [&] { return !sim.socket(0).connected(); }));
  const uint32_t next_seq = sim.socket(0).core().lan().next_seq();
  // Readings keep being taken (every 100 ms) while the access point is gone, then reach the gateway.
  ASSERT_TRUE(run_until(io, [&] { return sim.socket(0).core().lan().next_seq() >= next_seq + 3; }));
  ASSERT_TRUE(run_until(io, [&] { return sim.socket(0).session_up() && gw.committed >= next_seq + 3; }));
  auto* link = dynamic_cast<plugsim::EspAtLink*>(&sim.socket(0).transport());
  ASSERT_NE(link, nullptr);
  EXPECT_GE(link->driver().failures(), 1u);
  EXPECT_EQ(sink.count("session_up"), 2u);
  sim.stop();
}

TEST_P(PlugsimLinks, StopThenStartComesBack) {
  // What a power cut does to the link (the Wi-Fi module loses power with the MCU).
  asio::io_context io;
  TestGateway gw(io, {{"sock-1", kKey}});
  gw.send_command = false;
  CollectingSink sink;
  plugsim::Simulator sim(io, options_for(gw, kKey, GetParam()), sink);
  sim.start();
  for (int round = 1; round <= 2; ++round) {
    ASSERT_TRUE(run_until(io, [&] { return sim.socket(0).session_up(); })) << round;
    sim.socket(0).transport().stop();
    EXPECT_FALSE(sim.socket(0).connected());
    io.run_for(50ms);
    EXPECT_FALSE(sim.socket(0).connected());
    sim.socket(0).transport().start(0ms);
  }
  ASSERT_TRUE(run_until(io, [&] { return sim.socket(0).session_up(); }));
  EXPECT_EQ(sink.count("session_up"), 3u);
  sim.stop();
}

INSTANTIATE_TEST_SUITE_P(Links, PlugsimLinks,
                         ::testing::Values(plugsim::LinkKind::Direct, plugsim::LinkKind::EspAt), link_name);

// Accepts any number of TLS-PSK connections (every identity has kKey) and holds them open without
// speaking the protocol: enough to bring many links up and then lose them all at once.
class HoldingGateway {
 public:
  explicit HoldingGateway(asio::io_context& io)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        ctx_(asio::ssl::context::tls_server) {
    SSL_CTX* c = ctx_.native_handle();
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(c, pbfw::proto::kPskCipherList);
    SSL_CTX_set_psk_server_callback(
        c, [](SSL*, const char*, unsigned char* psk, unsigned int max_len) -> unsigned {
          if (kKey.size() > max_len) return 0;
          std::copy(kKey.begin(), kKey.end(), psk);
          return static_cast<unsigned>(kKey.size());
        });
    accept();
  }
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }
  size_t handshakes = 0;

 private:
  using Stream = asio::ssl::stream<tcp::socket>;
  void accept() {
    auto conn = std::make_shared<Stream>(acceptor_.get_executor(), ctx_);
    acceptor_.async_accept(conn->lowest_layer(), [this, conn](const boost::system::error_code& ec) {
      if (ec) return;
      conn->async_handshake(asio::ssl::stream_base::server,
                            [this, conn](const boost::system::error_code& hec) {
                              if (hec) return;
                              ++handshakes;
                              conns_.push_back(conn);
                            });
      accept();
    });
  }
  tcp::acceptor acceptor_;
  asio::ssl::context ctx_;
  std::vector<std::shared_ptr<Stream>> conns_;
};

TEST(PlugsimEspAt, HundredSocketsSpreadTheirReconnects) {
  asio::io_context io;
  plugsim::SimulatorOptions o;
  for (int i = 0; i < 100; ++i) {
    o.sockets.push_back({.cid = "sock-" + std::to_string(i), .psk = kKey, .reading_interval_ms = 1000});
  }
  auto gw = std::make_unique<HoldingGateway>(io);
  o.gateway = gw->endpoint();
  o.transport.link = plugsim::LinkKind::EspAt;
  o.transport.backoff_initial = 2000ms;
  o.transport.backoff_max = 8000ms;
  CollectingSink sink;
  plugsim::Simulator sim(io, o, sink);
  sim.start();
  auto all_up = [&] {
    for (size_t i = 0; i < sim.size(); ++i) {
      if (!sim.socket(i).connected()) return false;
    }
    return true;
  };
  ASSERT_TRUE(run_until(io, all_up, 30s));
  EXPECT_EQ(gw->handshakes, 100u);

  // The gateway dies: every socket sees CLOSED at about the same moment and schedules a retry.
  gw.reset();
  auto all_down = [&] {
    for (size_t i = 0; i < sim.size(); ++i) {
      if (sim.socket(i).connected()) return false;
    }
    return true;
  };
  ASSERT_TRUE(run_until(io, all_down));
  std::vector<uint32_t> delays;
  for (size_t i = 0; i < sim.size(); ++i) {
    auto& link = dynamic_cast<plugsim::EspAtLink&>(sim.socket(i).transport());
    delays.push_back(link.driver().last_backoff_ms());
  }
  // First retry: equal jitter over [1, 2] s (a socket that needed a second attempt to connect, e.g.
  // on a slow sanitizer build, draws from [2, 4] s). Spread means no 100 ms slot holds more than a few.
  std::vector<uint32_t> first;
  for (uint32_t d : delays) {
    EXPECT_GE(d, 1000u);
    EXPECT_LE(d, 8000u);
    if (d >= 1000 && d <= 2000) first.push_back(d);
  }
  ASSERT_GE(first.size(), 80u);
  const auto [mn, mx] = std::minmax_element(first.begin(), first.end());
  EXPECT_GE(*mx - *mn, 700u);
  std::vector<int> slots(11, 0);
  for (uint32_t d : first) ++slots[(d - 1000) / 100];
  EXPECT_LE(*std::max_element(slots.begin(), slots.end()), 25);
  sim.stop();
}

struct CountingListener final : plugsim::TransportListener {
  virtual ~CountingListener() = default;
  void on_connected() override { ++connected; }
  void on_disconnected(const std::string&) override { ++disconnected; }
  void on_bytes(const uint8_t*, size_t n) override { bytes += n; }
  int connected = 0, disconnected = 0;
  size_t bytes = 0;
};

TEST(PlugsimTransport, SendIsRefusedWhenDisconnectedOrQueueFull) {
  asio::io_context io;
  TestGateway gw(io, {{"sock-1", kKey}});
  auto ctx = plugsim::make_psk_client_context();
  CountingListener l;
  plugsim::TransportOptions o;
  o.max_queued_bytes = 160;
  o.backoff_initial = 20ms;
  plugsim::TlsTransport t(io, ctx, gw.endpoint(), {"sock-1", kKey}, l, o);
  proto::Message ka{};
  ka.type = proto::MsgType::Keepalive;
  ka.keepalive.uptime_ms = 1;
  uint8_t frame[proto::kMaxFrame];
  const size_t len = proto::encode(ka, frame, sizeof frame);
  ASSERT_GT(len, 0u);
  EXPECT_FALSE(t.send(frame, len)) << "not connected yet";
  t.start();
  ASSERT_TRUE(run_until(io, [&] { return l.connected == 1; }));
  // Without running the io_context nothing drains: the bound must hold.
  size_t accepted = 0;
  for (int i = 0; i < 100; ++i) accepted += t.send(frame, len) ? 1 : 0;
  EXPECT_EQ(accepted, o.max_queued_bytes / len);
  io.run_for(50ms);
  EXPECT_TRUE(t.send(frame, len)) << "the queue drained";
  t.drop("test");
  EXPECT_EQ(l.disconnected, 1);
  EXPECT_FALSE(t.send(frame, len));
  ASSERT_TRUE(run_until(io, [&] { return l.connected == 2; })) << "reconnects after a drop";
  t.stop();
  EXPECT_EQ(l.disconnected, 2);
}

TEST(PlugsimStorage, FileRoundTripAndCorruption) {
  const auto dir = std::filesystem::temp_directory_path() / ("plugsim-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  plugsim::FileStorage st(dir / "a.state");
  pbfw::PersistentState s{};
  EXPECT_FALSE(st.load(s));
  pbfw::PersistentState w{};
  w.boot_counter = 41;
  w.energy_mwh = 123456789012ull;
  w.energy_epoch = 3;
  w.relay_on = 1;
  w.switch_disabled = 1;
  st.save(w);
  pbfw::PersistentState r{};
  ASSERT_TRUE(st.load(r));
  EXPECT_EQ(r.boot_counter, 41u);
  EXPECT_EQ(r.energy_mwh, 123456789012ull);
  EXPECT_EQ(r.energy_epoch, 3);
  EXPECT_EQ(r.relay_on, 1);
  EXPECT_EQ(r.switch_disabled, 1);
  // A version 2 file (before switch_disabled) loads with switching enabled.
  { std::ofstream(dir / "a.state") << "plugsim-state 2 7 100 1 1 0 5 1 5000 0 0 0 0 1880000 1000000\n"; }
  ASSERT_TRUE(st.load(r));
  EXPECT_EQ(r.boot_counter, 7u);
  EXPECT_EQ(r.ki_e6, 1000000u);
  EXPECT_EQ(r.switch_disabled, 0);
  { std::ofstream(dir / "a.state") << "garbage\n"; }
  EXPECT_FALSE(st.load(r));
  plugsim::FileStorage seeded(dir / "b.state", 1700000000u);
  ASSERT_TRUE(seeded.load(r)) << "missing file: fresh state with the seed boot counter";
  EXPECT_EQ(r.boot_counter, 1700000000u);
  EXPECT_EQ(r.energy_mwh, 0u);
  EXPECT_EQ(r.relay_on, 0);
  std::filesystem::remove_all(dir);
}

TEST(PlugsimE2e, StateDirGivesEachRestartANewBoot) {
  const auto dir = std::filesystem::temp_directory_path() / ("plugsim-boot-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  asio::io_context io;
  TestGateway gw(io, {{"sock-1", kKey}});
  gw.send_command = false;
  for (int run = 0; run < 2; ++run) {
    CollectingSink sink;
    auto o = options_for(gw);
    o.state_dir = dir;
    plugsim::Simulator sim(io, o, sink);
    sim.start();
    ASSERT_TRUE(run_until(io, [&] { return sink.count("session_up") >= 1; }));
    sim.stop();
    io.run_for(20ms);
  }
  ASSERT_EQ(gw.boots.size(), 2u);
  EXPECT_GT(gw.boots[1], gw.boots[0]);
  std::filesystem::remove_all(dir);
}

TEST(PlugsimE2e, StatsTimeEachRecordUntilItsAck) {
  asio::io_context io;
  TestGateway gw(io, {{"sock-1", kKey}});
  gw.send_command = false;
  CollectingSink sink;
  plugsim::Simulator sim(io, options_for(gw), sink);
  sim.start();
  ASSERT_TRUE(run_until(io, [&] { return sim.latency().count() >= 3; }));
  EXPECT_LE(sim.latency().percentile_ms(0.5), sim.latency().max_ms());

  using R = plugsim::Simulator::ControlResult;
  EXPECT_EQ(sim.control("stats reset"), R::Ok);
  EXPECT_EQ(sim.latency().count(), 0u);
  EXPECT_EQ(sim.control("stats nonsense"), R::Error);

  // Acks withheld for three more reading intervals (100 ms each): the oldest waits >= ~200 ms.
  gw.ack_enabled = false;
  const size_t received_before = gw.received.size();
  ASSERT_TRUE(run_until(io, [&] { return gw.received.size() >= received_before + 3; }));
  EXPECT_EQ(sim.latency().count(), 0u);
  gw.drop();  // the records are resent and acked after the reconnect
  gw.ack_enabled = true;
  ASSERT_TRUE(
      run_until(io, [&] { return sim.socket(0).acked_seq() >= gw.received.back() && gw.hellos >= 2; }));
  EXPECT_GE(sim.latency().count(), 3u);
  EXPECT_GE(sim.latency().max_ms(), 150.0);

  EXPECT_EQ(sim.control("stats"), R::Ok);
  const json* stats = sink.find("stats");
  ASSERT_NE(stats, nullptr);
  EXPECT_EQ(stats->at("sockets"), 1);
  EXPECT_EQ(stats->at("acked"), sim.latency().count());
  EXPECT_GE(stats->at("latency_ms").at("max").get<double>(), 150.0);
  EXPECT_LE(stats->at("latency_ms").at("p50").get<double>(), stats->at("latency_ms").at("p99").get<double>());
  sim.stop();
}

TEST(PlugsimLatencyStats, Percentiles) {
  plugsim::LatencyStats st;
  EXPECT_EQ(st.percentile_ms(0.99), 0.0);
  for (int ms = 1; ms <= 100; ++ms) st.add(std::chrono::milliseconds(ms));
  EXPECT_EQ(st.count(), 100u);
  EXPECT_NEAR(st.percentile_ms(0.50), 50.0, 0.11);
  EXPECT_NEAR(st.percentile_ms(0.99), 99.0, 0.11);
  EXPECT_NEAR(st.percentile_ms(1.0), 100.0, 0.001);
  EXPECT_NEAR(st.max_ms(), 100.0, 0.001);
  EXPECT_NEAR(st.mean_ms(), 50.5, 0.001);
  st.add(std::chrono::seconds(40));  // beyond the histogram: still counted, max exact
  EXPECT_NEAR(st.percentile_ms(1.0), 40000.0, 0.001);
  st.reset();
  EXPECT_EQ(st.count(), 0u);
  EXPECT_EQ(st.max_ms(), 0.0);
}

}  // namespace
