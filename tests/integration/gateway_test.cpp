// End-to-end behaviour of plugbridged against a real broker, the Tuya emulator and plugsim.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>

#include "plugbridge/store/store.hpp"
#include "scenario.hpp"

namespace pb::itest {
namespace {

using nlohmann::json;

bool any_line(const std::vector<std::string>& lines, const std::regex& re) {
  for (const auto& l : lines)
    if (std::regex_search(l, re)) return true;
  return false;
}

int64_t report_value(const json& j) {
  return j["param"]["value"].get<int64_t>();
}

TEST(Uplink, ConnectsWithMd5PasswordAndSyncsEveryRosterSocket) {
  Scenario sc({.sockets = 3});
  sc.start_daemon();
  sc.wait_uplink_synced();
  for (const auto& s : sc.roster()) {
    auto syncs = sc.emu().seen("devices/sync");
    bool found = false;
    for (const auto& j : syncs) {
      const auto& p = j["param"];
      if (p.value("cid", "") == s.cid) {
        found = true;
        EXPECT_EQ(p.value("product_id", ""), "pbtestpid");
        EXPECT_EQ(p.value("comm_type", ""), "mqtt");
        EXPECT_EQ(p.value("install_location", ""), "lab");
        EXPECT_TRUE(j["t"].is_number_integer());
        EXPECT_TRUE(j["request_id"].is_string());
      }
    }
    EXPECT_TRUE(found) << s.cid;
  }
  EXPECT_TRUE(sc.emu().violations().empty());
}

TEST(Uplink, WrongCredentialsAreRefusedWithTheReasonAndRetried) {
  Scenario sc({.sockets = 1, .config_username = "not-the-vendor"});
  sc.start_daemon();
  ASSERT_TRUE(sc.daemon().wait_for_stderr(
      std::regex("bad user name or password|not authorized", std::regex::icase), 20s))
      << sc.daemon().describe();
  // Still running and trying again.
  ASSERT_TRUE(test::wait_until(
      [&] {
        int n = 0;
        for (const auto& l : sc.daemon().stderr_lines())
          if (std::regex_search(l, std::regex("bad user name or password|not authorized", std::regex::icase)))
            ++n;
        return n >= 2;
      },
      30s))
      << sc.daemon().describe();
  EXPECT_TRUE(sc.daemon().running());
  EXPECT_TRUE(sc.emu().seen("devices/sync").empty());
}

TEST(Uplink, HeartbeatCadence) {
  Scenario sc({.sockets = 2, .heartbeat_s = 2});
  sc.start_daemon();
  sc.wait_uplink_synced();
  ASSERT_TRUE(test::wait_until([&] { return sc.emu().seen("devices/status").size() >= 5; }, 20s));
  std::vector<int64_t> at;
  for (const auto& e : sc.emu().events())
    if (e.value("dir", "") == "in" && e.value("topic", "").ends_with("/devices/status"))
      at.push_back(e["at_ms"]);
  ASSERT_GE(at.size(), 5u);
  for (size_t i = 1; i < at.size(); ++i) EXPECT_LE(at[i] - at[i - 1], 3000) << "gap before status #" << i;
  auto last = sc.emu().seen("devices/status").back();
  ASSERT_TRUE(last["param"].is_array());
  EXPECT_EQ(last["param"].size(), 2u);
  for (const auto& p : last["param"]) EXPECT_FALSE(p.value("status", true));  // nobody connected
}

TEST(EndToEnd, SyncComesBeforeReportsAndReportsMatchTheSimulatedLoad) {
  Scenario sc({.sockets = 2});
  sc.start_daemon();
  sc.start_sim(2, {"--watts", "100,800", "--pf", "1.0", "--volts", "230"});
  sc.wait_sessions(2);
  sc.wait_uplink_synced();
  // A fresh socket starts with its relay off: switch the loads on from the cloud.
  for (size_t i = 0; i < 2; ++i) ASSERT_EQ(sc.command_code(sc.cid(i), 1, "true", "on-" + sc.cid(i)), 0);
  for (size_t i = 0; i < 2; ++i) {
    const auto& cid = sc.cid(i);
    ASSERT_TRUE(test::wait_until(
        [&] {
          auto p = sc.reports(cid, 3);
          return !p.empty() && report_value(p.back()) > 0 && !sc.reports(cid, 44).empty();
        },
        20s))
        << cid << "\n"
        << sc.daemon().describe();
  }
  // Order, as the broker delivered it: the first report of a cid follows its sync.
  std::map<std::string, bool> synced;
  for (const auto& e : sc.emu().events()) {
    if (e.value("dir", "") != "in") continue;
    auto topic = e.value("topic", "");
    const auto& p = e["payload"]["param"];
    if (topic.ends_with("/devices/sync")) synced[p.value("cid", "")] = true;
    if (topic.ends_with("/properties/report")) {
      EXPECT_TRUE(synced[p.value("cid", "")]) << e.dump();
    }
  }
  // Metering tolerance: 2 % on power, voltage and current.
  const double watts[] = {100, 800};
  for (size_t i = 0; i < 2; ++i) {
    double p = report_value(sc.reports(sc.cid(i), 3).back()) / 1e4;
    double v = report_value(sc.reports(sc.cid(i), 5).back()) / 1e4;
    double ma = report_value(sc.reports(sc.cid(i), 7).back()) / 1e4;
    EXPECT_NEAR(p, watts[i], watts[i] * 0.02) << sc.cid(i);
    EXPECT_NEAR(v, 230.0, 230.0 * 0.02) << sc.cid(i);
    EXPECT_NEAR(ma, watts[i] / 230.0 * 1000, watts[i] / 230.0 * 1000 * 0.02) << sc.cid(i);
    EXPECT_EQ(sc.reports(sc.cid(i), 1).back()["param"]["value"], true);
    EXPECT_EQ(report_value(sc.reports(sc.cid(i), 6).back()), 5 * 10000);  // default 5 A limit
  }
  // The readings are in the database too, as samples with integer units.
  store::Store db(sc.db_path().string(), true);
  // The first samples may predate the switch-on (a socket's first reading comes at a point of the
  // interval of its own): wait for one with the load.
  ASSERT_TRUE(test::wait_until(
      [&] {
        const auto s = db.latest_sample(sc.cid(1));
        return s && s->power_max_mw > 0;
      },
      10s));
  const auto latest = db.latest_sample(sc.cid(1));
  ASSERT_GT(latest->samples, 0);
  // Its average may take in readings from before the switch-on: between 0 and the load.
  const double mean_mw = static_cast<double>(latest->power_sum_mw) / static_cast<double>(latest->samples);
  EXPECT_GT(mean_mw, 0);
  EXPECT_LE(mean_mw, 800000 + 16000);
  EXPECT_NEAR(latest->power_max_mw, 800000, 16000);
  ASSERT_TRUE(latest->voltage_min_mv.has_value()) << "the voltage was measured";
  EXPECT_NEAR(static_cast<double>(*latest->voltage_min_mv), 230000, 4600);
  EXPECT_TRUE(sc.emu().violations().empty());
}

TEST(EndToEnd, RelayCommandIsForwardedConfirmedAndAnswered) {
  Scenario sc({.sockets = 1});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_sessions(1);
  const auto cid = sc.cid(0);
  ASSERT_TRUE(test::wait_until([&] { return !sc.reports(cid, 1).empty(); }, 15s));

  ASSERT_EQ(sc.command_code(cid, 1, "false", "req-off"), 0) << sc.daemon().describe();
  ASSERT_TRUE(test::wait_until(
      [&] {
        for (const auto& e : sim_events(sc.sim(), "relay"))
          if (e.value("cid", "") == cid && e.value("on", true) == false) return true;
        return false;
      },
      5s))
      << sc.sim().describe();
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto r = sc.reports(cid, 1);
        return !r.empty() && r.back()["param"]["value"] == false;
      },
      5s));
  // The vendor sample's spelling of true.
  ASSERT_EQ(sc.command_code(cid, 1, "\"1\"", "req-on"), 0);
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto r = sc.reports(cid, 1);
        return !r.empty() && r.back()["param"]["value"] == true;
      },
      5s));

  // Relay changes and the commands are stored as events.
  ASSERT_TRUE(test::wait_until(
      [&] {
        store::Store db(sc.db_path().string(), true);
        int relay = 0, command = 0;
        for (const auto& e : db.events(cid, 0, INT64_MAX)) {
          relay += e.kind == "relay";
          command += e.kind == "command";
        }
        return relay >= 2 && command >= 2;
      },
      5s));
}

TEST(EndToEnd, EveryCommandErrorCodeIsAnswered) {
  Scenario sc({.sockets = 2});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});  // sock-002 stays offline
  sc.wait_sessions(1);
  const auto on = sc.cid(0), off = sc.cid(1);

  EXPECT_EQ(sc.command_code("no-such-socket", 1, "true", "e-2003"), 2003);
  EXPECT_EQ(sc.command_code(off, 1, "true", "e-2001"), 2001);
  EXPECT_EQ(sc.command_code(on, 13, "5", "e-2002-rw"), 2002);  // leakage: not on this hardware
  EXPECT_EQ(sc.command_code(on, 3, "5", "e-2002-ro"), 2002);   // power is read-only
  EXPECT_EQ(sc.command_code(on, 1, "\"maybe\"", "e-1103"), 1103);
  EXPECT_EQ(sc.command_code(on, 6, "999999999", "e-1101"), 1101);
  sc.emu().send_raw(R"({"t":1,"cid":")" + on + R"(","request_id":"e-11xx"})");
  auto r = sc.command_response("e-11xx", 10s);
  ASSERT_TRUE(r) << sc.daemon().describe();
  int code = (*r)["param"].value("code", -1);
  EXPECT_TRUE(code == 1100 || code == 1102) << code;
  // Unreadable: nothing to answer, a log line, and the daemon carries on.
  sc.emu().send_raw("this is not json");
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("ignoring a command"), 10s)) << sc.daemon().describe();
  EXPECT_EQ(sc.command_code(on, 9, "true", "e-status"), 0);
  EXPECT_EQ(sc.command_code(on, 1, "true", "ok-after"), 0);
  EXPECT_TRUE(sc.daemon().running());
}

TEST(Resilience, BrokerRestartReconnectsResubscribesAndResyncs) {
  Scenario sc({.sockets = 1});
  sc.start_daemon();
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_uplink_synced();
  sc.wait_sessions(1);
  const auto cid = sc.cid(0);
  ASSERT_EQ(sc.command_code(cid, 1, "false", "before"), 0);
  auto syncs_before = sc.emu().seen("devices/sync").size();

  sc.broker().stop();
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("uplink down"), 30s)) << sc.daemon().describe();
  sc.broker().start();
  ASSERT_TRUE(sc.emu().wait_subscribed(2, 30s));
  ASSERT_TRUE(test::wait_until([&] { return sc.emu().seen("devices/sync").size() > syncs_before; }, 60s))
      << sc.daemon().describe();
  ASSERT_TRUE(
      test::wait_until([&] { return sc.emu().seen("devices/sync/response").size() > syncs_before; }, 20s));
  // Commands reach the daemon again: it resubscribed.
  EXPECT_EQ(sc.command_code(cid, 1, "true", "after"), 0) << sc.daemon().describe();
}

TEST(Durability, SigkillUnderLoadLosesNoAckedEventAndStoresNoneTwice) {
  Scenario sc({.sockets = 20});
  sc.start_daemon();
  sc.start_sim(20, {"--watts", "50,500,1000", "--reading-interval-ms", "100"});
  sc.wait_sessions(20);
  ASSERT_TRUE(test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > 2000; }, 30s));

  sc.daemon().signal(SIGKILL);
  ASSERT_TRUE(sc.daemon().wait_exit(10s));
  auto acked_at_kill = sim_events(sc.sim(), "acked").size();
  sc.start_daemon();
  ASSERT_TRUE(
      test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > acked_at_kill + 2000; }, 40s))
      << sc.sim().describe();
  sc.sim().signal(SIGTERM);
  ASSERT_TRUE(sc.sim().wait_exit(20s));
  sc.daemon().signal(SIGTERM);
  ASSERT_TRUE(sc.daemon().wait_exit(20s));

  EXPECT_EQ(unstored_acked_events(sc, 20), "");
  // A clean stop commits what was acked early.
  EXPECT_EQ(uncommitted_acked_records(sc, 20), "");
  store::Store db(sc.db_path().string(), true);
  for (size_t i = 0; i < 20; ++i) EXPECT_GT(db.count_samples(sc.cid(i)), 0u) << sc.cid(i);
}

TEST(Lan, WrongPskIsRefusedAndLogged) {
  Scenario sc({.sockets = 2});
  sc.start_daemon();
  sc.start_sim(2, {"--psk-override", sc.cid(0) + "=5f3a9c1e7b2d48e06a91c3f7d2b8e415"});
  // The right key still works for the other socket.
  ASSERT_TRUE(sc.sim().wait_for_stdout_line(
      [&](const std::string& line) {
        auto j = json::parse(line, nullptr, false);
        return !j.is_discarded() && j.value("ev", "") == "session_up" && j.value("cid", "") == sc.cid(1);
      },
      20s))
      << sc.sim().describe();
  ASSERT_TRUE(sc.daemon().wait_for_stderr(
      std::regex("handshake.*" + sc.cid(0) + "|" + sc.cid(0) + ".*handshake"), 20s))
      << sc.daemon().describe();
  for (const auto& l : sc.daemon().stderr_lines())
    EXPECT_EQ(l.find("00112233445566778899"), std::string::npos);
  for (const auto& e : sim_events(sc.sim(), "session_up")) EXPECT_NE(e.value("cid", ""), sc.cid(0));
}

TEST(Daemon, SigtermReportsSocketsOfflineAndExitsZero) {
  Scenario sc({.sockets = 2});
  sc.start_daemon();
  sc.start_sim(2, {"--watts", "60"});
  sc.wait_uplink_synced();
  sc.wait_sessions(2);
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto st = sc.emu().seen("devices/status");
        if (st.empty()) return false;
        for (const auto& p : st.back()["param"])
          if (!p.value("status", false)) return false;
        return true;
      },
      10s));
  sc.daemon().signal(SIGTERM);
  auto code = sc.daemon().wait_exit(15s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << sc.daemon().describe();
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto st = sc.emu().seen("devices/status");
        if (st.empty()) return false;
        size_t offline = 0;
        for (const auto& p : st.back()["param"]) offline += !p.value("status", true);
        return offline == 2;
      },
      5s));
}

TEST(Daemon, CheckConfigNamesFileLineAndKey) {
  test::TempDir dir;
  auto path = dir.path() / "bad.yaml";
  std::ofstream(path) << "gateway_id: gw\nuplink:\n  username: u\n  ca_file: /dev/null\n  colour: blue\n";
  test::Process p({test::binary("plugbridged").string(), "--check-config", "--config", path.string()});
  auto code = p.wait_exit(10s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(any_line(p.stderr_lines(), std::regex("bad\\.yaml:5: .*colour"))) << p.describe();
}

TEST(Daemon, CheckConfigSaysWhatItLoadedAndChecksTheFilesAsTheServiceUser) {
  Scenario sc({.sockets = 2});
  test::Process ok(
      {test::binary("plugbridged").string(), "--check-config", "--config", sc.config_path().string()});
  ASSERT_EQ(ok.wait_exit(10s), 0) << ok.describe();
  const std::string expected = sc.config_path().string() +
                               ": OK: 2 sockets, uplink localhost:" + std::to_string(sc.broker().port()) +
                               " as tuya-vendor (gateway gw-test), database " + sc.db_path().string() +
                               ", LAN 127.0.0.1:" + std::to_string(sc.lan_port()) + ", control socket " +
                               sc.control_socket().string() + " (files checked as ";
  ASSERT_EQ(ok.stdout_lines().size(), 1u) << ok.describe();
  EXPECT_EQ(ok.stdout_lines()[0].rfind(expected, 0), 0u)
      << ok.stdout_lines()[0] << "\nexpected: " << expected;

  if (::geteuid() != 0) GTEST_SKIP() << "needs root to check as another user";
  // The broker's CA (0600 here, our own) cannot be read by the service user: refused, with the fix.
  std::filesystem::permissions(sc.broker().ca_file(),
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  test::Process as_nobody({test::binary("plugbridged").string(), "--check-config", "--service-user", "nobody",
                           "--config", sc.config_path().string()});
  ASSERT_EQ(as_nobody.wait_exit(10s), 2) << as_nobody.describe();
  EXPECT_TRUE(
      any_line(as_nobody.stderr_lines(),
               std::regex("uplink.ca_file .*ca\\.crt \\(root:root 0600\\) is not readable by nobody; fix: "
                          "chgrp .* && chmod 0640 ")))
      << as_nobody.describe();
  EXPECT_TRUE(any_line(as_nobody.stderr_lines(), std::regex("problems? for user nobody")))
      << as_nobody.describe();
  test::Process no_user({test::binary("plugbridged").string(), "--check-config", "--service-user",
                         "no-such-user-here", "--config", sc.config_path().string()});
  EXPECT_EQ(no_user.wait_exit(10s), 2) << no_user.describe();
}

}  // namespace
}  // namespace pb::itest
