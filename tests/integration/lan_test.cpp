// A host on the LAN that opens thousands of connections and never starts their TLS handshake, from
// one address and from fifty: the daemon's admission limits (lan:, defaults) let a real socket in
// at once, and the log stays short.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "scenario.hpp"
#include "support/lan_flood.hpp"

namespace pb::itest {
namespace {

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

  // Held, not reopened: the daemon closes most of them at once.
  test::LanFlood one(sc.lan_port(), {"127.0.0.2"}, 2000, 0);
  std::vector<std::string> sources;
  for (int i = 1; i <= 50; ++i) sources.push_back("127.0.1." + std::to_string(i));
  test::LanFlood fifty(sc.lan_port(), sources, 2000, 0);
  ASSERT_TRUE(test::wait_until([&] { return one.connects() >= 1990 && fifty.connects() >= 1990; }, 20s))
      << one.connects() << " and " << fifty.connects() << " connections made";

  const auto t0 = std::chrono::steady_clock::now();
  sc.start_sim(1);
  sc.wait_sessions(1);  // throws after 20 s
  const auto delay = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "socket up " << delay << " s after it started, behind " << one.connects() + fifty.connects()
            << " idle connections from 51 addresses\n";

  const size_t lines = sc.daemon().count_stderr_lines("lan:", lines_before);
  std::cout << lines << " lan log lines\n";
  EXPECT_LT(lines, 20U) << sc.daemon().describe();
}

}  // namespace
}  // namespace pb::itest
