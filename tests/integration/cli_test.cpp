// The plugbridge CLI against a running plugbridged with plugsim sockets: relay commands through
// the control socket (also with the broker down), live devices, events, and the errors when the
// daemon is not running.
#include "plugbridge/cli/cli.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <sstream>

#include "scenario.hpp"

namespace pb::itest {
namespace {

bool sim_relay_is(const Scenario& sc, const std::string& cid, bool on) {
  auto ev = sim_events(const_cast<Scenario&>(sc).sim(), "relay");
  for (auto it = ev.rbegin(); it != ev.rend(); ++it)
    if (it->value("cid", "") == cid) return it->value("on", !on) == on;
  return false;
}

TEST(Cli, RelayThroughTheControlSocketIsConfirmedEvenWithTheUplinkDown) {
  Scenario sc({.sockets = 2});
  sc.start_daemon();
  sc.start_sim(1);
  sc.wait_sessions(1);
  sc.broker().stop();  // the cloud is unreachable; local control must not care
  const std::string a = sc.cid(0), b = sc.cid(1);

  auto on = cli(sc, {"relay", a, "on"});
  EXPECT_EQ(on.code, 0) << on.err << sc.daemon().describe();
  EXPECT_EQ(on.out, a + ": relay on (confirmed by the socket)\n");
  EXPECT_TRUE(test::wait_until([&] { return sim_relay_is(sc, a, true); }, 5s)) << sc.sim().describe();

  auto off = cli(sc, {"relay", a, "off"});
  EXPECT_EQ(off.code, 0) << off.err;
  EXPECT_EQ(off.out, a + ": relay off (confirmed by the socket)\n");
  EXPECT_TRUE(test::wait_until([&] { return sim_relay_is(sc, a, false); }, 5s)) << sc.sim().describe();

  auto toggle = cli(sc, {"relay", a, "toggle"});
  EXPECT_EQ(toggle.code, 0) << toggle.err;
  EXPECT_EQ(toggle.out, a + ": relay on (confirmed by the socket)\n");

  auto offline = cli(sc, {"relay", b, "on"});
  EXPECT_EQ(offline.code, cli::exit_code::kFailed);
  EXPECT_EQ(offline.err,
            "plugbridge relay: " + b +
                ": socket is offline\n  fix: check that the socket is powered and on the network "
                "(plugbridge devices)\n");

  auto unknown = cli(sc, {"relay", "sock-999", "on"});
  EXPECT_EQ(unknown.code, cli::exit_code::kUsage);
  EXPECT_NE(unknown.err.find("not in the roster"), std::string::npos) << unknown.err;

  auto cd = cli(sc, {"countdown", a, "30"});
  EXPECT_EQ(cd.code, 0) << cd.err;
  EXPECT_EQ(cd.out, a + ": relay flips in 30 s (confirmed by the socket)\n");
  ASSERT_TRUE(test::wait_until(
      [&] {
        for (const auto& e : sim_events(sc.sim(), "command"))
          if (e.value("cid", "") == a && e.value("kind", "") == "set_countdown" &&
              e.value("status", "") == "ok")
            return true;
        return false;
      },
      5s))
      << sc.sim().describe();
  auto bad = cli(sc, {"countdown", a, "90000"});
  EXPECT_NE(bad.code, 0);

  auto dev = cli(sc, {"devices"});
  ASSERT_EQ(dev.code, 0) << dev.err;
  EXPECT_EQ(dev.out.find("from the database"), std::string::npos) << dev.out;
  std::istringstream lines(dev.out);
  std::string head, la, lb;
  std::getline(lines, head);
  std::getline(lines, la);
  std::getline(lines, lb);
  EXPECT_EQ(la.rfind(a, 0), 0u) << dev.out;
  EXPECT_NE(la.find(" online "), std::string::npos) << dev.out;
  EXPECT_NE(la.find(" on "), std::string::npos) << dev.out;
  EXPECT_NE(lb.find(" offline "), std::string::npos) << dev.out;

  // The local commands are in the history, each with its result.
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto ev = cli(sc, {"events", a, "--kind", "command"});
        size_t n = 0;
        for (size_t p = ev.out.find("local command done"); p != std::string::npos;
             p = ev.out.find("local command done", p + 1))
          ++n;
        return n >= 3;
      },
      5s))
      << cli(sc, {"events"}).out;
}

TEST(Cli, DaemonNotRunningIsAClearErrorWithExitCode4) {
  Scenario sc({.sockets = 1});
  sc.start_daemon();
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("control socket at"), 10s)) << sc.daemon().describe();
  ASSERT_TRUE(std::filesystem::exists(sc.control_socket()));
  sc.wait_uplink_synced();  // the loop runs, so SIGTERM is handled (not fatal)
  sc.daemon().signal(SIGTERM);
  ASSERT_EQ(sc.daemon().wait_exit(15s), 0) << sc.daemon().describe();
  EXPECT_FALSE(std::filesystem::exists(sc.control_socket())) << "removed at exit";

  // The real binary, for the process exit code.
  test::Process p(
      {test::binary("plugbridge").string(), "--config", sc.config_path().string(), "relay", sc.cid(0), "on"});
  EXPECT_EQ(p.wait_exit(20s), cli::exit_code::kNoDaemon) << p.describe();
  EXPECT_TRUE(p.wait_for_stderr(std::regex("daemon not reachable at .*control\\.sock"), 5s)) << p.describe();
  EXPECT_TRUE(p.wait_for_stderr(std::regex("fix: is plugbridged running\\?"), 5s)) << p.describe();

  // devices still answers from the database, and says so.
  auto dev = cli(sc, {"devices"});
  EXPECT_EQ(dev.code, 0) << dev.err;
  EXPECT_NE(dev.out.find("(from the database: daemon not reachable"), std::string::npos) << dev.out;
}

}  // namespace
}  // namespace pb::itest
