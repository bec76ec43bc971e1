// Integration tests of pb::uplink::Client against a real mosquitto on loopback, set up by the
// shared test support: Tuya mode against TLS + password + ACL (tools/tuya-edge-emu/make-broker),
// generic mode against plain TCP + password file.
#include "plugbridge/uplink/uplink.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include "plugbridge/common/log.hpp"
#include "plugbridge/tuya/tuya.hpp"
#include "support/testsupport.hpp"

namespace pb::uplink {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kDeadline = 10s;
const std::string kGateway = "gw-test-1";
const std::string kUser = "vendor-x";

// The Tuya edge broker stand-in on a free loopback port, for kGateway / kUser.
class Broker : public pb::test::MosquittoBroker {
 public:
  explicit Broker(std::string san = pb::test::BrokerOptions{}.san)
      : MosquittoBroker(kGateway, kUser, pb::test::BrokerOptions{.san = std::move(san)}) {}
  std::string ca_file() const { return MosquittoBroker::ca_file().string(); }
};

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds deadline = kDeadline) {
  return pb::test::wait_until(pred, deadline);
}

// The platform side: an admin MQTT client (Paho, used synchronously from the test thread).
class Platform {
 public:
  explicit Platform(const Broker& broker)
      : cli_("ssl://localhost:" + std::to_string(broker.port()), "platform-" + tuya::new_request_id()) {
    mqtt::ssl_options ssl;
    ssl.set_trust_store(broker.ca_file());
    mqtt::connect_options opts;
    opts.set_user_name(broker.admin_user());
    opts.set_password(broker.admin_password());
    opts.set_ssl(ssl);
    opts.set_mqtt_version(MQTTVERSION_3_1_1);
    cli_.set_message_callback([this](mqtt::const_message_ptr m) {
      std::lock_guard lock(mutex_);
      seen_.emplace_back(m->get_topic(), m->to_string());
    });
    cli_.connect(opts)->wait();
    cli_.subscribe("gateway_id/#", 1)->wait();
  }
  ~Platform() {
    try {
      cli_.disconnect()->wait();
    } catch (const std::exception&) {
    }
  }
  void publish(const std::string& suffix, const std::string& payload) {
    cli_.publish(tuya::topic(kGateway, suffix), payload.data(), payload.size(), 1, false)->wait();
  }
  bool saw(const std::string& suffix, const std::string& payload) {
    std::lock_guard lock(mutex_);
    for (const auto& [t, p] : seen_) {
      if (t == tuya::topic(kGateway, suffix) && p == payload) return true;
    }
    return false;
  }
  // Where the message is among those seen, in arrival order.
  std::optional<size_t> position(const std::string& suffix, const std::string& payload) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < seen_.size(); ++i)
      if (seen_[i].first == tuya::topic(kGateway, suffix) && seen_[i].second == payload) return i;
    return std::nullopt;
  }
  size_t seen() {
    std::lock_guard lock(mutex_);
    return seen_.size();
  }

 private:
  mqtt::async_client cli_;
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> seen_;
};

// An io_context on its own thread plus a Client, recording every handler call.
class Harness {
 public:
  explicit Harness(Options o) {
    if (std::getenv("PB_TEST_DEBUG")) pb::log::set_level(pb::log::Level::Debug);
    thread_ = std::thread([this] { io_.run(); });
    loop_id_ = thread_.get_id();
    Handlers h;
    h.on_connected = [this] { record([&] { ++connects_; }); };
    h.on_disconnected = [this](const std::string& reason) { record([&] { reasons_.push_back(reason); }); };
    h.on_message = [this](const std::string& suffix, const std::string& payload) {
      record([&] { messages_.emplace_back(suffix, payload); });
    };
    on_loop([&] { client_ = std::make_unique<Client>(io_, std::move(o), std::move(h)); });
  }
  ~Harness() {
    destroy_client();
    work_.reset();
    thread_.join();
  }

  template <typename F>
  void on_loop(F f) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  void start() {
    on_loop([&] { client_->start(); });
  }
  bool connected() {
    bool c = false;
    on_loop([&] { c = client_->connected(); });
    return c;
  }
  // Publishes and waits for done(ok).
  std::optional<bool> publish(const std::string& suffix, const std::string& payload, bool retain = false) {
    auto result = std::make_shared<std::promise<bool>>();
    auto fut = result->get_future();
    on_loop([&] {
      client_->publish(
          suffix, payload,
          [this, result](bool ok) {
            if (std::this_thread::get_id() != loop_id_) wrong_thread_ = true;
            result->set_value(ok);
          },
          retain);
    });
    if (fut.wait_for(kDeadline) != std::future_status::ready) return std::nullopt;
    return fut.get();
  }
  // Publishes all of them in one loop turn, in order; done(ok) of each is counted.
  // Returns how many of them wait for the window right after (Client::waiting).
  size_t publish_burst(const std::vector<std::pair<std::string, std::string>>& msgs) {
    size_t waiting = 0;
    on_loop([&] {
      for (const auto& [suffix, payload] : msgs)
        client_->publish(suffix, payload, [this](bool ok) { ++(ok ? acked_ : failed_); });
      waiting = client_->waiting();
    });
    return waiting;
  }
  size_t waiting() {
    size_t n = 0;
    on_loop([&] { n = client_->waiting(); });
    return n;
  }
  size_t acked() const { return acked_; }
  size_t failed() const { return failed_; }
  // The Client's own view.
  std::string last_error() {
    std::string e;
    on_loop([&] { e = client_->last_error(); });
    return e;
  }
  std::pair<uint64_t, uint64_t> published_failed() {
    std::pair<uint64_t, uint64_t> n;
    on_loop([&] { n = {client_->published(), client_->failed()}; });
    return n;
  }
  // Destroys the Client on the loop without stop().
  void destroy_client() {
    on_loop([&] { client_.reset(); });
  }
  bool stop() {
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    on_loop([&] { client_->stop([done] { done->set_value(); }); });
    return fut.wait_for(kDeadline) == std::future_status::ready;
  }

  int connects() {
    std::lock_guard lock(mutex_);
    return connects_;
  }
  std::vector<std::string> reasons() {
    std::lock_guard lock(mutex_);
    return reasons_;
  }
  std::vector<std::pair<std::string, std::string>> messages() {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  bool got(const std::string& suffix, const std::string& payload) {
    std::lock_guard lock(mutex_);
    for (const auto& m : messages_) {
      if (m.first == suffix && m.second == payload) return true;
    }
    return false;
  }
  bool wrong_thread() const { return wrong_thread_; }
  std::string describe() {
    std::lock_guard lock(mutex_);
    std::string s = "connects=" + std::to_string(connects_) + " reasons:";
    for (const auto& r : reasons_) s += "\n  " + r;
    return s;
  }

 private:
  template <typename F>
  void record(F f) {
    if (std::this_thread::get_id() != loop_id_) wrong_thread_ = true;
    std::lock_guard lock(mutex_);
    f();
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      std::in_place, io_.get_executor()};
  std::thread thread_;
  std::thread::id loop_id_;
  std::unique_ptr<Client> client_;
  std::mutex mutex_;
  int connects_ = 0;
  std::vector<std::string> reasons_;
  std::vector<std::pair<std::string, std::string>> messages_;
  std::atomic<bool> wrong_thread_{false};
  std::atomic<size_t> acked_{0}, failed_{0};
};

// This process's TCP sockets connected to `port` whose TCP_NODELAY equals `nodelay`.
size_t tcp_sockets_to_port(uint16_t port, bool nodelay) {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    const int fd = std::atoi(entry.path().filename().c_str());
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    int type = 0, flag = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0 || peer.sin_family != AF_INET ||
        ntohs(peer.sin_port) != port)
      continue;
    len = sizeof flag;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &flag, &len) == 0 && (flag != 0) == nodelay) ++n;
  }
  return n;
}

Options options_for(const Broker& b, const std::string& host = "127.0.0.1") {
  Options o;
  o.host = host;
  o.port = b.port();
  o.ca_file = b.ca_file();
  o.gateway_id = kGateway;
  o.username = kUser;
  o.keepalive = 5s;
  o.connect_timeout = 3s;
  o.retry_min = 50ms;
  o.retry_max = 200ms;
  return o;
}

bool any_reason_contains(Harness& h, const std::string& words) {
  for (const auto& r : h.reasons()) {
    if (r.find(words) != std::string::npos) return true;
  }
  return false;
}

TEST(Uplink, ConnectsSubscribesPublishesAndReceivesOnLoopThread) {
  Broker broker;
  Platform platform(broker);
  Harness h(options_for(broker));
  EXPECT_FALSE(h.connected());
  EXPECT_EQ(h.publish("devices/status", "{}"), false);  // not connected yet: fails, does not hang
  h.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 1; })) << h.describe();
  EXPECT_TRUE(h.connected());
  // Nagle is off on the connection to the broker (the scan also covers the in-process platform's).
  EXPECT_GE(tcp_sockets_to_port(broker.port(), true), 1u);
  EXPECT_EQ(tcp_sockets_to_port(broker.port(), false), 0u);

  const std::string sync = R"({"t":1,"request_id":"r1","param":{"cid":"c1","product_id":"p"}})";
  EXPECT_EQ(h.publish("devices/sync", sync), true);
  EXPECT_TRUE(eventually([&] { return platform.saw("devices/sync", sync); }));

  // All three downlink topics are subscribed.
  platform.publish("commands", "cmd-1");
  platform.publish("devices/sync/response", "sync-resp");
  platform.publish("properties/report/response", "report-resp");
  EXPECT_TRUE(eventually([&] { return h.got("commands", "cmd-1"); }));
  EXPECT_TRUE(eventually([&] { return h.got("devices/sync/response", "sync-resp"); }));
  EXPECT_TRUE(eventually([&] { return h.got("properties/report/response", "report-resp"); }));
  EXPECT_FALSE(h.wrong_thread());

  EXPECT_TRUE(h.stop());
  EXPECT_FALSE(h.connected());
  EXPECT_TRUE(any_reason_contains(h, "stopped")) << h.describe();
  EXPECT_EQ(h.publish("devices/status", "{}"), false);
}

// n reports "report-0" .. "report-<n-1>", for Harness::publish_burst.
std::vector<std::pair<std::string, std::string>> report_burst(size_t n) {
  std::vector<std::pair<std::string, std::string>> msgs;
  for (size_t i = 0; i < n; ++i) msgs.emplace_back("properties/report", "report-" + std::to_string(i));
  return msgs;
}

// Thousands of publishes from one loop turn (every socket's sync after a restart, a burst of
// reports) are all delivered, where Paho alone refuses those past its buffer; and an answer to a
// command made after them overtakes those the client still holds.
TEST(Uplink, ABurstOfPublishesIsAllAckedAndACommandAnswerOvertakesIt) {
  Broker broker;
  Platform platform(broker);
  Harness h(options_for(broker));
  h.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 1; })) << h.describe();
  constexpr size_t kBurst = 3000;
  auto msgs = report_burst(kBurst);
  msgs.emplace_back("commands/response", "answer");
  const size_t waiting = h.publish_burst(msgs);
  EXPECT_GT(waiting, kBurst / 2) << "most of the burst waits for the window";
  EXPECT_LE(waiting, kBurst + 1);
  ASSERT_TRUE(eventually([&] { return h.acked() + h.failed() == kBurst + 1; }, 60s))
      << h.acked() << " acked, " << h.failed() << " failed";
  EXPECT_EQ(h.failed(), 0u);
  EXPECT_EQ(h.waiting(), 0u);
  ASSERT_TRUE(eventually([&] { return platform.seen() >= kBurst + 1; }));
  const auto answer = platform.position("commands/response", "answer");
  ASSERT_TRUE(answer.has_value());
  EXPECT_LT(*answer, kBurst / 4) << "the answer waited behind the reports";
  // The reports keep their order.
  for (size_t i : {size_t{0}, kBurst / 2, kBurst - 1})
    EXPECT_TRUE(platform.position("properties/report", "report-" + std::to_string(i)).has_value()) << i;
  EXPECT_LT(*platform.position("properties/report", "report-0"),
            *platform.position("properties/report", "report-" + std::to_string(kBurst - 1)));
  EXPECT_TRUE(h.stop());
}

TEST(Uplink, WrongPasswordIsExplainedAndRetried) {
  Broker broker;
  auto o = options_for(broker);
  o.username = "someone-else";  // unknown user: the broker refuses the CONNECT
  Harness h(o);
  h.start();
  ASSERT_TRUE(eventually([&] { return h.reasons().size() >= 3; })) << h.describe();
  EXPECT_EQ(h.connects(), 0);
  auto r = h.reasons().front();
  EXPECT_NE(r.find("broker refused the connection: CONNACK"), std::string::npos) << r;
  // mosquitto answers a bad password with 5 (not authorized) for MQTT 3.1.1; both codes must
  // carry words an operator can act on.
  EXPECT_TRUE(r.find("bad user name or password") != std::string::npos ||
              r.find("not authorized") != std::string::npos)
      << r;
  EXPECT_FALSE(h.wrong_thread());
  EXPECT_TRUE(h.stop());
}

// A daemon with several uplinks names the one at fault in the hints.
TEST(Uplink, HintsNameTheConfigKey) {
  Broker broker;
  auto o = options_for(broker);
  o.username = "someone-else";
  o.config_key = "uplinks[0]";
  Harness h(o);
  h.start();
  ASSERT_TRUE(eventually([&] { return !h.reasons().empty(); })) << h.describe();
  const auto r = h.reasons().front();
  EXPECT_NE(r.find("uplinks[0].username"), std::string::npos) << r;
  EXPECT_EQ(r.find("uplink."), std::string::npos) << r;
  EXPECT_TRUE(h.stop());
}

TEST(Uplink, ReconnectsAndResubscribesAfterBrokerRestart) {
  Broker broker;
  Harness h(options_for(broker));
  h.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 1; })) << h.describe();

  broker.stop();
  ASSERT_TRUE(eventually([&] { return !h.connected(); })) << h.describe();
  EXPECT_TRUE(any_reason_contains(h, "connection lost")) << h.describe();
  broker.start();  // fresh broker, no persistence: only a resubscription brings commands back
  ASSERT_TRUE(eventually([&] { return h.connects() == 2; })) << h.describe();

  Platform platform(broker);
  platform.publish("commands", "after-restart");
  EXPECT_TRUE(eventually([&] { return h.got("commands", "after-restart"); }));
  EXPECT_EQ(h.publish("properties/report", "r"), true);
  EXPECT_TRUE(h.stop());
}

// The link drops in the middle of a burst: what waited in the client fails at once (the outbox
// takes it back), what Paho held completes one way or the other, and publishes on the next link go
// out although the last one's may still be in Paho's hands.
TEST(Uplink, ABurstCutByALostLinkEndsAndTheNextLinkPublishes) {
  Broker broker;
  Harness h(options_for(broker));
  h.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 1; })) << h.describe();
  constexpr size_t kBurst = 3000;
  auto msgs = report_burst(kBurst);
  h.publish_burst(msgs);
  broker.stop();
  ASSERT_TRUE(eventually([&] { return !h.connected(); })) << h.describe();
  EXPECT_GT(h.failed(), 0u) << "the burst was all acked before the broker stopped: nothing tested";
  broker.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 2; })) << h.describe();
  EXPECT_EQ(h.publish("properties/report", "after"), true);
  EXPECT_TRUE(eventually([&] { return h.acked() + h.failed() == kBurst; }, 60s))
      << h.acked() << " acked, " << h.failed() << " failed of " << kBurst;
  EXPECT_TRUE(h.stop());
}

TEST(Uplink, HostNameMismatchIsRefusedWithReason) {
  Broker broker("DNS:localhost");  // valid for "localhost" only, not for "127.0.0.1"
  {
    Harness ok(options_for(broker, "localhost"));
    ok.start();
    ASSERT_TRUE(eventually([&] { return ok.connects() == 1; })) << ok.describe();
    EXPECT_TRUE(ok.stop());
  }
  Harness h(options_for(broker, "127.0.0.1"));
  h.start();
  ASSERT_TRUE(eventually([&] { return h.reasons().size() >= 2; })) << h.describe();
  EXPECT_EQ(h.connects(), 0);
  auto r = h.reasons().front();
  EXPECT_NE(r.find("not valid for host name \"127.0.0.1\""), std::string::npos) << r;
  EXPECT_NE(r.find("uplink.ca_file"), std::string::npos) << r;
  EXPECT_TRUE(h.stop());
}

TEST(Uplink, UnknownCaIsRefusedWithReason) {
  Broker broker;
  auto other = broker.dir() / "other";
  fs::create_directory(other);
  pb::test::make_test_ca(other, "some other CA");
  auto o = options_for(broker);
  o.ca_file = (other / "ca.crt").string();
  Harness h(o);
  h.start();
  ASSERT_TRUE(eventually([&] { return h.reasons().size() >= 2; })) << h.describe();
  EXPECT_EQ(h.connects(), 0);
  auto r = h.reasons().front();
  EXPECT_NE(r.find("certificate verify failed"), std::string::npos) << r;
  EXPECT_NE(r.find("uplink.ca_file"), std::string::npos) << r;
  EXPECT_TRUE(h.stop());
}

TEST(Uplink, UnreachableBrokerIsExplainedAndStopEndsRetrying) {
  Broker broker;
  auto o = options_for(broker);
  o.port = pb::test::free_tcp_port();  // nothing listens here
  Harness h(o);
  h.start();
  ASSERT_TRUE(eventually([&] { return h.reasons().size() >= 2; })) << h.describe();
  auto r = h.reasons().front();
  EXPECT_NE(r.find("broker not reachable"), std::string::npos) << r;
  EXPECT_NE(r.find("uplink.port"), std::string::npos) << r;
  EXPECT_TRUE(h.stop());
  auto after_stop = h.reasons().size();
  // No further attempts once stopped: a retry would add a reason within a few backoff periods.
  EXPECT_FALSE(eventually([&] { return h.reasons().size() > after_stop; }, 1s)) << h.describe();
}

TEST(Uplink, DestroyWhileConnectedIsSafe) {
  Broker broker;
  Platform platform(broker);
  Harness h(options_for(broker));
  h.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 1; })) << h.describe();
  platform.publish("commands", "x");
  EXPECT_TRUE(eventually([&] { return h.got("commands", "x"); }));
  // ~Harness destroys the Client on the loop without stop(): no callbacks may follow.
}

TEST(Uplink, DisableNagleToPortTouchesOnlySocketsToThatPort) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t alen = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &alen), 0);
  const uint16_t port = ntohs(addr.sin_port);
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const int accepted = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  auto nodelay = [](int fd) {
    int flag = 0;
    socklen_t len = sizeof flag;
    ::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &flag, &len);
    return flag != 0;
  };
  EXPECT_FALSE(nodelay(client));
  EXPECT_EQ(disable_nagle_to_port(port), 1u);  // the client only: the accepted side's peer is elsewhere
  EXPECT_TRUE(nodelay(client));
  EXPECT_FALSE(nodelay(accepted));
  ::close(accepted);
  ::close(client);
  ::close(listener);
}

// --- generic mode: a local broker over plain TCP ---------------------------------------------------

const std::string kLocalUser = "ha";
const std::string kLocalPassword = "s3cret pass";

using LocalBroker = pb::test::PlainMosquittoBroker;

Options generic_options(const LocalBroker& b, std::vector<std::string> topics, const std::string& client_id) {
  Options o;
  o.host = "127.0.0.1";
  o.port = b.port();
  o.tls = false;
  o.gateway_id = client_id;
  o.username = b.username();
  o.password = b.password();
  o.topics = std::move(topics);
  o.log_name = "uplink homeassistant";
  o.config_key = "uplinks[1]";
  o.keepalive = 5s;
  o.connect_timeout = 3s;
  o.retry_min = 50ms;
  o.retry_max = 200ms;
  return o;
}

// mosquitto_sub as a separate client (own process, so its socket is not among this process's):
// prints "topic payload" per message, exits after `count` of them or `timeout_s` seconds.
std::unique_ptr<pb::test::Process> subscriber(const LocalBroker& b, const std::string& filter, int count,
                                              int timeout_s = 10) {
  return std::make_unique<pb::test::Process>(
      std::vector<std::string>{"mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(b.port()), "-u",
                               b.username(), "-P", b.password(), "-t", filter, "-q", "1", "-v", "-C",
                               std::to_string(count), "-W", std::to_string(timeout_s)});
}

bool prints(pb::test::Process& p, const std::string& line) {
  return p.wait_for_stdout_line([&](const std::string& l) { return l == line; }, kDeadline);
}

// Shuts down this process's TCP connections to `port` (both directions) without an MQTT
// DISCONNECT, as a crash or a dead network would end them; returns how many.
size_t cut_tcp_to_port(uint16_t port) {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    const int fd = std::atoi(entry.path().filename().c_str());
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0 || peer.sin_family != AF_INET ||
        ntohs(peer.sin_port) != port)
      continue;
    if (::shutdown(fd, SHUT_RDWR) == 0) ++n;
  }
  return n;
}

TEST(UplinkGeneric, PlainTcpWithPasswordDeliversFullTopicsOfWildcardSubscriptions) {
  LocalBroker broker(kLocalUser, kLocalPassword);
  Harness h(generic_options(broker, {"zigbee2mqtt/+/set", "homeassistant/status"}, "plugbridge-ha"));
  Harness sender(generic_options(broker, {}, "plugbridge-sender"));  // no subscriptions at all
  EXPECT_EQ(h.publish("zigbee2mqtt/lamp/state", "x"), false);        // not connected yet
  EXPECT_EQ(h.published_failed(), (std::pair<uint64_t, uint64_t>{0, 1}));
  h.start();
  sender.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 1 && sender.connects() == 1; }))
      << h.describe() << "\n"
      << sender.describe() << "\n"
      << broker.log();
  EXPECT_EQ(h.last_error(), "");

  // In publish order from one client: once the last arrived, the unsubscribed one would have too.
  EXPECT_EQ(sender.publish("zigbee2mqtt/lamp/state", "{\"state\":\"OFF\"}"), true);
  EXPECT_EQ(sender.publish("homeassistant/status", "online"), true);
  EXPECT_EQ(sender.publish("zigbee2mqtt/lamp/set", "{\"state\":\"ON\"}"), true);
  ASSERT_TRUE(eventually([&] { return h.got("zigbee2mqtt/lamp/set", "{\"state\":\"ON\"}"); }));
  EXPECT_EQ(h.messages(),
            (std::vector<std::pair<std::string, std::string>>{
                {"homeassistant/status", "online"}, {"zigbee2mqtt/lamp/set", "{\"state\":\"ON\"}"}}));
  EXPECT_EQ(sender.published_failed(), (std::pair<uint64_t, uint64_t>{3, 0}));

  // A topic that looks like a Tuya one is not special in generic mode.
  EXPECT_EQ(h.publish("commands/response", "r"), true);
  EXPECT_EQ(h.published_failed(), (std::pair<uint64_t, uint64_t>{1, 1}));
  EXPECT_FALSE(h.wrong_thread());
  EXPECT_FALSE(sender.wrong_thread());

  EXPECT_TRUE(h.stop());
  EXPECT_EQ(h.last_error(), "stopped");
  EXPECT_TRUE(sender.stop());
}

TEST(UplinkGeneric, WrongPasswordIsRefusedWithTheConnackReason) {
  LocalBroker broker(kLocalUser, kLocalPassword);
  auto o = generic_options(broker, {"a/#"}, "plugbridge-ha");
  o.password = "not the password";
  Harness h(o);
  h.start();
  ASSERT_TRUE(eventually([&] { return h.reasons().size() >= 2; })) << h.describe();
  EXPECT_EQ(h.connects(), 0);
  const auto r = h.reasons().front();
  EXPECT_NE(r.find("broker refused the connection: CONNACK"), std::string::npos) << r;
  // mosquitto answers 5 (not authorized) to a wrong password on MQTT 3.1.1.
  EXPECT_TRUE(r.find("bad user name or password") != std::string::npos ||
              r.find("not authorized") != std::string::npos)
      << r;
  EXPECT_NE(r.find("uplinks[1].password"), std::string::npos) << r;
  EXPECT_EQ(r.find("md5"), std::string::npos) << r;
  EXPECT_EQ(r.find("Tuya"), std::string::npos) << r;
  EXPECT_NE(h.last_error().find("CONNACK"), std::string::npos) << h.last_error();
  EXPECT_TRUE(h.stop());
}

TEST(UplinkGeneric, RetainedPublishReachesALaterSubscriber) {
  LocalBroker broker(kLocalUser, kLocalPassword);
  Harness h(generic_options(broker, {}, "plugbridge-ha"));
  h.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 1; })) << h.describe() << "\n" << broker.log();
  EXPECT_EQ(h.publish("plugbridge/socket1/power", "42", /*retain=*/true), true);
  // Not retained: the broker keeps the retained one for later subscribers.
  EXPECT_EQ(h.publish("plugbridge/socket1/power", "43"), true);
  auto sub = subscriber(broker, "plugbridge/socket1/power", 1, 5);
  EXPECT_TRUE(prints(*sub, "plugbridge/socket1/power 42")) << sub->describe();
  EXPECT_EQ(sub->wait_exit(kDeadline), 0) << sub->describe();
  EXPECT_TRUE(h.stop());
}

TEST(UplinkGeneric, LastWillIsPublishedWhenTheConnectionDies) {
  LocalBroker broker(kLocalUser, kLocalPassword);
  auto o = generic_options(broker, {}, "plugbridge-ha");
  o.will = Options::Will{.topic = "plugbridge/availability", .payload = "offline"};
  Harness h(o);
  h.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 1; })) << h.describe() << "\n" << broker.log();
  EXPECT_EQ(h.publish("plugbridge/availability", "online", /*retain=*/true), true);
  auto sub = subscriber(broker, "plugbridge/availability", 2);
  ASSERT_TRUE(prints(*sub, "plugbridge/availability online")) << sub->describe();

  ASSERT_EQ(cut_tcp_to_port(broker.port()), 1u);  // the Client's; the subscriber is another process
  EXPECT_TRUE(prints(*sub, "plugbridge/availability offline")) << sub->describe() << "\n" << broker.log();
  EXPECT_TRUE(eventually([&] { return h.connects() == 2; })) << h.describe();
  EXPECT_TRUE(any_reason_contains(h, "connection lost")) << h.describe();
  EXPECT_TRUE(h.stop());
}

// ~Client is no graceful stop, but Paho still sends a DISCONNECT on a live link when it is torn
// down: the broker then drops the will. (A crashed process sends none: the will goes out.)
TEST(UplinkGeneric, DestroyWithoutStopDisconnectsAndTheBrokerDropsTheWill) {
  LocalBroker broker(kLocalUser, kLocalPassword);
  auto o = generic_options(broker, {}, "plugbridge-ha");
  o.will = Options::Will{.topic = "plugbridge/availability", .payload = "offline"};
  Harness h(o);
  h.start();
  ASSERT_TRUE(eventually([&] { return h.connects() == 1; })) << h.describe() << "\n" << broker.log();
  EXPECT_EQ(h.publish("plugbridge/availability", "online", /*retain=*/true), true);
  auto sub = subscriber(broker, "plugbridge/availability", 2);
  ASSERT_TRUE(prints(*sub, "plugbridge/availability online")) << sub->describe();
  h.destroy_client();
  ASSERT_TRUE(eventually([&] {
    return broker.log().find("Received DISCONNECT from plugbridge-ha") != std::string::npos;
  })) << broker.log();
  // mosquitto handled that DISCONNECT (and would have sent a will then) before this publish.
  Harness sender(generic_options(broker, {}, "plugbridge-sender"));
  sender.start();
  ASSERT_TRUE(eventually([&] { return sender.connects() == 1; })) << sender.describe();
  EXPECT_EQ(sender.publish("plugbridge/availability", "marker"), true);
  EXPECT_EQ(sub->wait_exit(kDeadline), 0) << sub->describe();
  EXPECT_EQ(sub->stdout_lines(),
            (std::vector<std::string>{"plugbridge/availability online", "plugbridge/availability marker"}));
  EXPECT_TRUE(sender.stop());
}

TEST(UplinkGeneric, RefusedConnectIsExplainedAsTcpNotTls) {
  Options o;
  o.host = "127.0.0.1";
  o.port = pb::test::free_tcp_port();  // nothing listens here
  o.tls = false;
  o.gateway_id = "plugbridge-ha";
  o.topics = std::vector<std::string>{"a/#"};
  o.config_key = "uplinks[1]";
  o.retry_min = 50ms;
  o.retry_max = 200ms;
  Harness h(o);
  h.start();
  ASSERT_TRUE(eventually([&] { return h.reasons().size() >= 2; })) << h.describe();
  const auto r = h.reasons().front();
  EXPECT_NE(r.find("tcp://127.0.0.1:"), std::string::npos) << r;
  EXPECT_NE(r.find("TCP connection refused"), std::string::npos) << r;
  EXPECT_NE(r.find("uplinks[1].port"), std::string::npos) << r;
  EXPECT_EQ(r.find("uplink."), std::string::npos) << r;
  EXPECT_EQ(r.find("Tuya"), std::string::npos) << r;
  EXPECT_EQ(r.find("TLS:"), std::string::npos) << r;
  EXPECT_EQ(r.find("certificate"), std::string::npos) << r;
  EXPECT_TRUE(h.stop());
}

// Plain MQTT to a TLS listener: TCP works, so the reason points at the tls setting.
TEST(UplinkGeneric, PlainConnectToATlsListenerPointsAtTheTlsSetting) {
  Broker broker;
  Options o = options_for(broker);
  o.tls = false;
  o.topics = std::vector<std::string>{};
  o.config_key = "uplinks[1]";
  Harness h(o);
  h.start();
  ASSERT_TRUE(eventually([&] { return h.reasons().size() >= 2; })) << h.describe();
  EXPECT_EQ(h.connects(), 0);
  const auto r = h.reasons().front();
  EXPECT_NE(r.find("TCP connection succeeds"), std::string::npos) << r;
  EXPECT_NE(r.find("uplinks[1].tls"), std::string::npos) << r;
  EXPECT_TRUE(h.stop());
}

}  // namespace
}  // namespace pb::uplink
