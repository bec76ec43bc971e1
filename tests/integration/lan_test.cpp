// A host on the LAN that opens thousands of connections and never starts their TLS handshake, from
// one address and from fifty: the daemon's admission limits (lan:, defaults) let a real socket in
// at once, and the log stays short.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "scenario.hpp"

namespace pb::itest {
namespace {

// Holds n TCP connections to 127.0.0.1:port made from source, idle (no TLS). The daemon closes
// those it refuses; they stay open here until the end of the test.
class IdleConnections {
 public:
  IdleConnections(const std::string& source, uint16_t port, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) break;
      sockaddr_in from{};
      from.sin_family = AF_INET;
      ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(port);
      ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
          ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        ::close(fd);
        continue;
      }
      fds_.push_back(fd);
    }
  }
  ~IdleConnections() {
    for (const int fd : fds_) ::close(fd);
  }
  IdleConnections(const IdleConnections&) = delete;
  IdleConnections& operator=(const IdleConnections&) = delete;
  size_t size() const { return fds_.size(); }

 private:
  std::vector<int> fds_;
};

size_t lan_lines(const test::Process& daemon, size_t from) {
  const auto lines = daemon.stderr_lines();
  size_t n = 0;
  for (size_t i = from; i < lines.size(); ++i) n += lines[i].find("lan:") != std::string::npos;
  return n;
}

TEST(LanAbuse, ThousandsOfIdleConnectionsKeepNoSocketOut) {
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  lim.rlim_cur = lim.rlim_max;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur < 6000) GTEST_SKIP() << "needs 6000 descriptors, the hard limit is " << lim.rlim_cur;

  // Connections that never handshake hold their place for a minute: without the limits they would
  // keep the socket out for longer than the test waits for it.
  Scenario sc({.sockets = 1, .lan_limits = true, .handshake_timeout_s = 60});
  sc.start_daemon();
  const size_t lines_before = sc.daemon().stderr_lines().size();

  const IdleConnections one("127.0.0.2", sc.lan_port(), 2000);
  ASSERT_GE(one.size(), 1990U);
  std::vector<std::unique_ptr<IdleConnections>> fifty;
  size_t from_fifty = 0;
  for (int i = 1; i <= 50; ++i) {
    fifty.push_back(std::make_unique<IdleConnections>("127.0.1." + std::to_string(i), sc.lan_port(), 40));
    from_fifty += fifty.back()->size();
  }
  ASSERT_GE(from_fifty, 1990U);

  const auto t0 = std::chrono::steady_clock::now();
  sc.start_sim(1);
  sc.wait_sessions(1);  // throws after 20 s
  const auto delay = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "socket up " << delay << " s after it started, behind " << one.size() + from_fifty
            << " idle connections from 51 addresses\n";

  const size_t lines = lan_lines(sc.daemon(), lines_before);
  std::cout << lines << " lan log lines\n";
  EXPECT_LT(lines, 20U) << sc.daemon().describe();
}

}  // namespace
}  // namespace pb::itest
