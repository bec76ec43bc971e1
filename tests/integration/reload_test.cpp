// Reloading plugbridged's configuration (plugbridge reload, SIGHUP) against a real broker, the Tuya
// emulator and plugsim: added sockets come in, the others keep their sessions, bad files change nothing.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>

#include "plugbridge/cli/control_client.hpp"
#include "scenario.hpp"

namespace pb::itest {
namespace {

using nlohmann::json;

size_t sessions_up(const test::Process& sim, const std::string& cid) {
  size_t n = 0;
  for (const auto& e : sim_events(sim, "session_up")) n += e.value("cid", "") == cid;
  return n;
}

bool synced(Scenario& sc, const std::string& cid, std::chrono::milliseconds deadline) {
  return sc.emu().wait_for(
      "devices/sync/response",
      [&](const json& j) { return j.value("param", json::object()).value("cid", "") == cid; }, deadline);
}

// Any devices/status from the `from`-th on that said this socket was offline.
bool ever_offline(Scenario& sc, const std::string& cid, size_t from = 0) {
  const auto all = sc.emu().seen("devices/status");
  for (size_t i = from; i < all.size(); ++i)
    for (const auto& p : all[i]["param"])
      if (p.value("cid", "") == cid && !p.value("status", true)) return true;
  return false;
}

bool wait_online(Scenario& sc, const std::string& cid) {
  return sc.emu().wait_for(
      "devices/status",
      [&](const json& j) {
        for (const auto& p : j["param"])
          if (p.value("cid", "") == cid && p.value("status", false)) return true;
        return false;
      },
      10s);
}

size_t log_lines(const test::Process& p, const std::string& text) {
  size_t n = 0;
  for (const auto& l : p.stderr_lines()) n += l.find(text) != std::string::npos;
  return n;
}

// Three sockets in the daemon's roster, a fourth (in plugsim) knocking with an unknown identity.
struct ThreePlusOne {
  Scenario sc{{.sockets = 4, .configured = 3}};
  size_t statuses_before = 0;
  ThreePlusOne() {
    sc.start_daemon();
    for (size_t i = 0; i < 3; ++i)
      if (!synced(sc, sc.cid(i), 20s)) throw std::runtime_error("no sync for " + sc.cid(i));
    sc.start_sim(4, {"--watts", "60,450,1000,25"});
    sc.wait_sessions(3);
    // Online at the edge (the sync came before the sessions, with "offline").
    for (size_t i = 0; i < 3; ++i)
      if (!wait_online(sc, sc.cid(i))) throw std::runtime_error("no online status for " + sc.cid(i));
    statuses_before = sc.emu().seen("devices/status").size();
    // The fourth is refused, and the log says what to do: once, however often it retries.
    if (!sc.daemon().wait_for_stderr(std::regex("socket 'sock-004' is not in the roster: add it"), 20s))
      throw std::runtime_error("no unknown-identity line:\n" + sc.daemon().describe());
  }
  void add_fourth() { sc.write_config(sc.roster()); }
  void expect_fourth_joins_and_others_kept() {
    ASSERT_TRUE(synced(sc, "sock-004", 20s)) << sc.daemon().describe();
    ASSERT_TRUE(sc.sim().wait_for_stdout_line(
        [&](const std::string& line) {
          auto j = json::parse(line, nullptr, false);
          return !j.is_discarded() && j.value("ev", "") == "session_up" && j.value("cid", "") == "sock-004";
        },
        30s))
        << sc.sim().describe();
    ASSERT_TRUE(sc.emu().wait_for(
        "properties/report", [&](const json& j) { return j["param"].value("cid", "") == "sock-004"; }, 20s))
        << sc.daemon().describe();
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(sessions_up(sc.sim(), sc.cid(i)), 1u) << sc.cid(i) << " reconnected\n" << sc.sim().describe();
      EXPECT_FALSE(ever_offline(sc, sc.cid(i), statuses_before)) << sc.cid(i) << " was reported offline";
      EXPECT_EQ(log_lines(sc.daemon(), sc.cid(i) + " disconnected"), 0u) << sc.daemon().describe();
    }
    EXPECT_LE(log_lines(sc.daemon(), "socket 'sock-004' is not in the roster"), 1u)
        << "repeated attempts must be logged once a minute";
    EXPECT_TRUE(sc.emu().violations().empty());
  }
};

TEST(Reload, AddedSocketIsSyncedAndReportsWhileTheOthersKeepTheirSessions) {
  ThreePlusOne t;
  t.add_fourth();
  CliRun r = cli(t.sc, {"reload"});
  ASSERT_EQ(r.code, 0) << r.out << r.err << t.sc.daemon().describe();
  EXPECT_NE(r.out.find("reloaded " + t.sc.config_path().string() + ": 1 added (sock-004), 0 removed"),
            std::string::npos)
      << r.out;
  t.expect_fourth_joins_and_others_kept();
  // The live view has it too.
  CliRun d = cli(t.sc, {"devices", "--format", "json"});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.out.find("sock-004"), std::string::npos) << d.out;
}

TEST(Reload, SighupDoesTheSameAndNeverTerminatesTheDaemon) {
  ThreePlusOne t;
  t.add_fourth();
  t.sc.daemon().signal(SIGHUP);
  ASSERT_TRUE(t.sc.daemon().wait_for_stderr(std::regex("SIGHUP: reloaded .*1 added \\(sock-004\\)"), 10s))
      << t.sc.daemon().describe();
  t.expect_fourth_joins_and_others_kept();
  // Again with nothing changed: still alive, nothing added.
  t.sc.daemon().signal(SIGHUP);
  ASSERT_TRUE(t.sc.daemon().wait_for_stderr(std::regex("SIGHUP: reloaded .*0 added, 0 removed"), 10s))
      << t.sc.daemon().describe();
  EXPECT_TRUE(t.sc.daemon().running());
}

TEST(Reload, BrokenFileIsRefusedWithFileAndLineAndTheDaemonKeepsTheOldOne) {
  Scenario sc({.sockets = 2});
  sc.start_daemon();
  sc.start_sim(2, {"--watts", "60"});
  sc.wait_sessions(2);
  {
    std::ifstream in(sc.config_path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text += "  - cid: sock-003\n    product_id: pbtestpid\n    secret: not-hex\n";
    std::ofstream(sc.config_path()) << text;
  }
  CliRun r = cli(sc, {"reload"});
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find(sc.config_path().string() + ":"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("secret"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("still running on the previous configuration"), std::string::npos) << r.err;
  // Still bridging on the old roster: both sockets keep reporting, the daemon answers.
  EXPECT_TRUE(sc.daemon().running());
  const size_t acked = sim_events(sc.sim(), "acked").size();
  ASSERT_TRUE(test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > acked + 2; }, 20s))
      << "readings are no longer committed\n"
      << sc.sim().describe();
  // The control socket answers from the old roster (the CLI itself cannot read the broken file).
  const json st = cli::control_request(sc.control_socket().string(), {{"cmd", "status"}}, 5s);
  ASSERT_TRUE(st.value("ok", false)) << st.dump();
  ASSERT_EQ(st["sockets"].size(), 2u) << st.dump();
  EXPECT_EQ(st["sockets"][1].value("cid", ""), sc.cid(1));
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(sessions_up(sc.sim(), sc.cid(i)), 1u);
}

TEST(Reload, RekeyedSocketIsDisconnectedAndARemovedOneLeavesTheRosterAndGoesOffline) {
  Scenario sc({.sockets = 3});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(3, {"--watts", "60"});
  sc.wait_sessions(3);
  for (size_t i = 0; i < 3; ++i) ASSERT_TRUE(wait_online(sc, sc.cid(i))) << sc.cid(i);
  const size_t statuses_before = sc.emu().seen("devices/status").size();
  auto roster = sc.roster();
  roster[0].secret_hex = "5f3a9c1e7b2d48e06a91c3f7d2b8e415";  // plugsim keeps the old key
  roster.erase(roster.begin() + 1);                           // sock-002 goes
  sc.write_config(roster);
  CliRun r = cli(sc, {"reload"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("0 added, 1 removed (sock-002), 1 re-keyed (sock-001), 0 changed"), std::string::npos)
      << r.out;
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("sock-001: key changed in the roster"), 10s));
  // The removed one is reported offline at the edge and is gone from the live view.
  ASSERT_TRUE(test::wait_until([&] { return ever_offline(sc, "sock-002", statuses_before); }, 10s))
      << sc.daemon().describe();
  // `devices` may still list it for its history (if a reading of it was committed), but not as a
  // roster socket: no name, no live state.
  CliRun d = cli(sc, {"devices", "--format", "json"});
  ASSERT_EQ(d.code, 0) << d.err;
  const json devices = json::parse(d.out, nullptr, false);
  ASSERT_TRUE(devices.is_object() && devices["sockets"].is_array()) << d.out;
  for (const json& s : devices["sockets"]) {
    if (s.value("cid", "") != "sock-002") continue;
    EXPECT_EQ(s.value("name", "?"), "") << d.out;
    EXPECT_TRUE(s["online"].is_null()) << d.out;
  }
  // sock-001 comes back with its old key and is refused; sock-003 was never touched.
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("identity 'sock-001' failed"), 30s))
      << sc.daemon().describe();
  EXPECT_EQ(sessions_up(sc.sim(), sc.cid(2)), 1u);
  EXPECT_FALSE(ever_offline(sc, sc.cid(2), statuses_before));
}

TEST(Reload, ProvisionAsksTheRunningDaemonToReload) {
  Scenario sc({.sockets = 1});
  sc.start_daemon();
  sc.wait_uplink_synced();
  CliRun r = cli(sc, {"provision", "--count", "2", "--product-id", "pbsock1", "--gateway", "127.0.0.1:6690",
                      "--out", (sc.dir() / "hex").string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("daemon reloaded: reloaded " + sc.config_path().string() +
                       ": 2 added (socket-0001, socket-0002), 0 removed"),
            std::string::npos)
      << r.out << r.err;
  EXPECT_TRUE(synced(sc, "socket-0001", 20s)) << sc.daemon().describe();
  EXPECT_TRUE(synced(sc, "socket-0002", 20s)) << sc.daemon().describe();
}

}  // namespace
}  // namespace pb::itest
