// plugbridged under systemd's notify protocol: READY=1 once it listens, watchdog pings from the event
// loop at half WATCHDOG_USEC, STOPPING=1 on SIGTERM. systemd is played by a datagram socket.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "support/testsupport.hpp"

namespace {

using namespace std::chrono_literals;

class NotifySocket {
 public:
  explicit NotifySocket(const std::filesystem::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("bind");
  }
  ~NotifySocket() { ::close(fd_); }
  // Next datagram within the deadline, or "" if none came.
  std::string receive(std::chrono::milliseconds deadline) {
    timeval tv{static_cast<time_t>(deadline.count() / 1000),
               static_cast<suseconds_t>(deadline.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  // Receives until a datagram contains `what`; returns the datagrams seen (the match last), or empty.
  std::vector<std::string> receive_until(const std::string& what, std::chrono::milliseconds deadline) {
    std::vector<std::string> seen;
    auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      std::string d = receive(std::max(left, 1ms));
      if (d.empty()) continue;
      seen.push_back(d);
      if (d.find(what) != std::string::npos) return seen;
    }
    return {};
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

TEST(Service, NotifiesReadyPingsTheWatchdogFromTheLoopAndSaysStopping) {
  pb::test::TempDir dir;
  const auto config = dir.path() / "plugbridge.yaml";
  std::ofstream(config)
      << "gateway_id: svc-test\n"
         "uplink:\n  enabled: false\n"
         "lan:\n  listen_address: 127.0.0.1\n  port: 0\n"
         "database: "
      << (dir.path() / "pb.db").string()
      << "\ncontrol_socket: \"\"\n"
         "sockets:\n  - cid: s1\n    product_id: p\n    secret: 3b8e51d0a7c29f64e18b5d3a0f7c926e\n";
  NotifySocket notify(dir.path() / "notify.sock");
  pb::test::Process daemon(
      {pb::test::binary("plugbridged").string(), "--config", config.string()},
      {{"NOTIFY_SOCKET", (dir.path() / "notify.sock").string()}, {"WATCHDOG_USEC", "400000"}});

  auto ready = notify.receive_until("READY=1", 15s);
  ASSERT_FALSE(ready.empty()) << daemon.describe();
  EXPECT_TRUE(std::regex_search(
      ready.back(), std::regex("STATUS=listening for sockets on port [1-9][0-9]*, 1 in the roster")))
      << ready.back();
  ASSERT_TRUE(daemon.wait_for_stderr(std::regex("listening for sockets"), 1s)) << daemon.describe();

  // Pings keep coming at about 200 ms while the loop runs.
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i)
    ASSERT_FALSE(notify.receive_until("WATCHDOG=1", 2s).empty()) << daemon.describe();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);

  // SIGHUP: RELOADING=1, then READY=1 with the new roster's size; the daemon stays.
  {
    std::ofstream out(config, std::ios::app);
    out << "  - cid: s2\n    product_id: p\n    secret: 9d27e4b1c86f03a5d1e97b42f6c0a38e\n";
  }
  daemon.signal(SIGHUP);
  auto reloading = notify.receive_until("RELOADING=1", 5s);
  ASSERT_FALSE(reloading.empty()) << daemon.describe();
  auto again = notify.receive_until("READY=1", 5s);
  ASSERT_FALSE(again.empty()) << daemon.describe();
  EXPECT_TRUE(std::regex_search(
      again.back(), std::regex("STATUS=listening for sockets on port [1-9][0-9]*, 2 in the roster")))
      << again.back();
  EXPECT_TRUE(daemon.running());

  daemon.signal(SIGTERM);
  EXPECT_FALSE(notify.receive_until("STOPPING=1", 5s).empty()) << daemon.describe();
  EXPECT_EQ(daemon.wait_exit(10s), 0) << daemon.describe();
}

TEST(Service, NoNotifySocketNoWatchdogLine) {
  pb::test::TempDir dir;
  const auto config = dir.path() / "plugbridge.yaml";
  std::ofstream(config) << "gateway_id: svc-test\nuplink:\n  enabled: false\n"
                           "lan:\n  listen_address: 127.0.0.1\n  port: 0\ndatabase: "
                        << (dir.path() / "pb.db").string() << "\ncontrol_socket: \"\"\n";
  pb::test::Process daemon({pb::test::binary("plugbridged").string(), "--config", config.string()});
  ASSERT_TRUE(daemon.wait_for_stderr(std::regex("listening for sockets"), 15s)) << daemon.describe();
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait_exit(10s), 0) << daemon.describe();
  for (const auto& l : daemon.stderr_lines()) EXPECT_EQ(l.find("watchdog"), std::string::npos) << l;
}

}  // namespace
