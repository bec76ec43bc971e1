// Integration tests of pb::uplink::Client against a real mosquitto on loopback (TLS +
// password + ACL). The broker fixture is local because some tests need certificates with
// chosen subjectAltNames.
#include "plugbridge/uplink/uplink.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "plugbridge/common/log.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::uplink {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kDeadline = 10s;
const std::string kGateway = "gw-test-1";
const std::string kUser = "vendor-x";
const std::string kAdmin = "admin";
const std::string kAdminPassword = "admin-secret";

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool port_accepts(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds deadline = kDeadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);  // polling interval, not synchronisation
  }
  return pred();
}

void run(const std::string& cmd) {
  ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
}

// CA + server certificate (with the given SANs) + mosquitto with TLS, passwords and ACL.
class Broker {
 public:
  explicit Broker(const std::string& san = "DNS:localhost,IP:127.0.0.1") {
    char tmpl[] = "/tmp/pb-uplink-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    port_ = free_port();
    auto d = dir_.string();
    make_ca(dir_, "plugbridge uplink test CA");
    std::ofstream(dir_ / "server.ext") << "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                                       << "subjectAltName=" << san << "\n";
    run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d +
        "/server.key -out " + d + "/server.csr -subj /CN=broker");
    run("openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.crt -CAkey " + d +
        "/ca.key -CAcreateserial -out " + d + "/server.crt -days 2 -extfile " + d + "/server.ext");
    std::ofstream(dir_ / "passwd").close();
    run("mosquitto_passwd -b " + d + "/passwd " + kUser + " " + tuya::md5_password(kGateway, kUser));
    run("mosquitto_passwd -b " + d + "/passwd " + kAdmin + " " + kAdminPassword);
    std::ofstream(dir_ / "acl") << "user " << kUser << "\ntopic readwrite gateway_id/" << kGateway << "/#\n"
                                << "user " << kAdmin << "\ntopic readwrite gateway_id/#\n";
    std::ofstream(dir_ / "mosquitto.conf")
        << "user root\nper_listener_settings false\npersistence false\nallow_anonymous false\n"
        << "password_file " << d << "/passwd\nacl_file " << d << "/acl\n"
        << "listener " << port_ << " 127.0.0.1\ncafile " << d << "/ca.crt\ncertfile " << d << "/server.crt\n"
        << "keyfile " << d << "/server.key\ntls_version tlsv1.2\nrequire_certificate false\n"
        << "log_dest file " << d << "/mosquitto.log\nlog_type all\n";
    start();
  }
  ~Broker() {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static void make_ca(const fs::path& dir, const std::string& cn) {
    auto d = dir.string();
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d +
        "/ca.key -out " + d + "/ca.crt -days 2 -subj '/CN=" + cn +
        "' -addext basicConstraints=critical,CA:TRUE -addext " + "keyUsage=critical,keyCertSign,cRLSign");
  }

  void start() {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // no orphaned broker if the test process dies
      // Not the test's stdout: a leaked broker must not hold a pipe open.
      int null_fd = ::open("/dev/null", O_RDWR);
      ::dup2(null_fd, STDIN_FILENO);
      ::dup2(null_fd, STDOUT_FILENO);
      ::dup2(null_fd, STDERR_FILENO);
      ::execlp("mosquitto", "mosquitto", "-c", (dir_ / "mosquitto.conf").c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ASSERT_GT(pid_, 0);
    ASSERT_TRUE(eventually([&] { return port_accepts(port_); })) << "mosquitto did not start";
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  uint16_t port() const { return port_; }
  fs::path dir() const { return dir_; }
  std::string ca_file() const { return (dir_ / "ca.crt").string(); }

 private:
  fs::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// The platform side: an admin MQTT client (Paho, used synchronously from the test thread).
class Platform {
 public:
  explicit Platform(const Broker& broker)
      : cli_("ssl://localhost:" + std::to_string(broker.port()), "platform-" + tuya::new_request_id()) {
    mqtt::ssl_options ssl;
    ssl.set_trust_store(broker.ca_file());
    mqtt::connect_options opts;
    opts.set_user_name(kAdmin);
    opts.set_password(kAdminPassword);
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
    on_loop([&] { client_.reset(); });
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
  std::optional<bool> publish(const std::string& suffix, const std::string& payload) {
    auto result = std::make_shared<std::promise<bool>>();
    auto fut = result->get_future();
    on_loop([&] {
      client_->publish(suffix, payload, [this, result](bool ok) {
        if (std::this_thread::get_id() != loop_id_) wrong_thread_ = true;
        result->set_value(ok);
      });
    });
    if (fut.wait_for(kDeadline) != std::future_status::ready) return std::nullopt;
    return fut.get();
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
  Broker::make_ca(other, "some other CA");
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
  o.port = free_port();  // nothing listens here
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

}  // namespace
}  // namespace pb::uplink
