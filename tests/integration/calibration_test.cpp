// Calibration and roster limits end to end: plugbridge calibrate -> control socket -> the socket's
// command queue -> plugsim's firmware core (meter with a gain error), kept across a plugsim restart;
// the roster's limits.current_max_ma / power_max_w applied to the socket at session start.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "plugbridge/cli/cli.hpp"
#include "plugbridge/cli/control_client.hpp"
#include "scenario.hpp"

namespace pb::itest {
namespace {

using json = nlohmann::json;

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// The daemon's newest reading of `cid` sampled at or after `after_ms` (unix ms), if any.
std::optional<json> reading_after(const Scenario& sc, const std::string& cid, int64_t after_ms) {
  json r = cli::control_request(sc.control_socket().string(), {{"cmd", "status"}}, 5s);
  for (const auto& s : r.value("sockets", json::array()))
    if (s.value("cid", "") == cid && s["reading"].is_object() &&
        s["reading"].value("ts_ms", int64_t{0}) >= after_ms && s["reading"].value("meter_ok", false))
      return s["reading"];
  return std::nullopt;
}

// Power (W) of the first reading sampled after `after_ms` that shows the relay's load, waiting for it.
double power_after(const Scenario& sc, const std::string& cid, int64_t after_ms) {
  double w = -1;
  test::wait_until(
      [&] {
        auto r = reading_after(sc, cid, after_ms);
        if (!r || !(*r)["power_mw"].is_number() || (*r)["power_mw"].get<int64_t>() < 100'000) return false;
        w = (*r)["power_mw"].get<int64_t>() / 1000.0;
        return true;
      },
      10s);
  return w;
}

// Adds `lines` (indented for a roster item) to the roster entry of `cid` in the scenario's config.
void add_to_roster_entry(const Scenario& sc, const std::string& cid, const std::string& lines) {
  std::ifstream in(sc.config_path());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string y = ss.str();
  const auto at = y.find("  - cid: " + cid + "\n");
  ASSERT_NE(at, std::string::npos);
  const auto end = y.find("    location: lab\n", at);
  ASSERT_NE(end, std::string::npos);
  y.insert(end + std::string("    location: lab\n").size(), lines);
  std::ofstream(sc.config_path()) << y;
}

bool sim_trip(const Scenario& sc, const std::string& cid, const std::string& protection) {
  for (const auto& e : sim_events(const_cast<Scenario&>(sc).sim(), "trip"))
    if (e.value("cid", "") == cid && e.value("protection", "") == protection) return true;
  return false;
}

TEST(Calibration, PowerSetAgainstAKnownLoadIsAppliedAndSurvivesASocketRestart) {
  Scenario sc({.sockets = 2});
  const std::string a = sc.cid(0), b = sc.cid(1);  // b is never simulated: offline
  // The socket's shunt reads 5 % high; the true load is 1000 W at 230 V (resistive).
  const std::vector<std::string> sim_args{"--meter-gain", a + "=1.05", "--watts", "1000",
                                          "--pf",         "1",         "--volts", "230"};
  sc.start_daemon();
  sc.start_sim(1, sim_args);
  sc.wait_sessions(1);

  // Relay still off: nothing to calibrate against.
  auto off = cli(sc, {"calibrate", a, "--power", "1000"});
  EXPECT_EQ(off.code, cli::exit_code::kFailed) << off.out << off.err;
  EXPECT_NE(off.err.find("relay is off"), std::string::npos) << off.err;

  ASSERT_EQ(cli(sc, {"relay", a, "on"}).code, 0);
  const double before = power_after(sc, a, wall_ms());
  EXPECT_NEAR(before, 1050.0, 5.0) << "the simulated gain error is not there";

  // The control request checks the quantity and the range before queueing.
  const auto ctl = [&](json req) { return cli::control_request(sc.control_socket().string(), req, 10s); };
  EXPECT_EQ(
      ctl({{"cmd", "calibrate"}, {"cid", a}, {"quantity", "watts"}, {"value", 1000}}).value("error", ""),
      "bad_request");
  EXPECT_EQ(ctl({{"cmd", "calibrate"}, {"cid", a}, {"quantity", "power"}, {"value", 999}}).value("error", ""),
            "bad_request");
  EXPECT_EQ(ctl({{"cmd", "calibrate"}, {"cid", a}, {"quantity", "kv"}, {"value", 9999}}).value("error", ""),
            "bad_request");
  EXPECT_EQ(cli(sc, {"calibrate", a}).code, cli::exit_code::kUsage);

  auto offline = cli(sc, {"calibrate", b, "--power", "1000"});
  EXPECT_EQ(offline.code, cli::exit_code::kFailed);
  EXPECT_NE(offline.err.find("socket is offline"), std::string::npos) << offline.err;

  // Relay on but nothing plugged in.
  sc.sim().write_stdin("load " + a + " 0");
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto r = reading_after(sc, a, wall_ms() - 500);
        return r && (*r)["power_mw"].is_number() && (*r)["power_mw"].get<int64_t>() < 1000;
      },
      10s));
  auto empty = cli(sc, {"calibrate", a, "--power", "1000"});
  EXPECT_EQ(empty.code, cli::exit_code::kFailed);
  EXPECT_NE(empty.err.find("no load"), std::string::npos) << empty.err;
  sc.sim().write_stdin("load " + a + " 1000");
  EXPECT_NEAR(power_after(sc, a, wall_ms()), 1050.0, 5.0);

  // A value far from the measured one is refused by the daemon (exit 1), nothing is sent.
  auto wild = cli(sc, {"calibrate", a, "--power", "3000"});
  EXPECT_EQ(wild.code, cli::exit_code::kFailed);
  EXPECT_NE(wild.err.find("implausible"), std::string::npos) << wild.err;
  auto both = cli(sc, {"calibrate", a, "--power", "1000", "--current", "4.3"});
  EXPECT_EQ(both.code, cli::exit_code::kUsage);

  auto cal = cli(sc, {"calibrate", a, "--voltage", "230", "--power", "1000"});
  ASSERT_EQ(cal.code, 0) << cal.out << cal.err << sc.daemon().describe();
  EXPECT_NE(cal.out.find(a + ": voltage 230.000 V set (confirmed and kept by the socket)\n"),
            std::string::npos)
      << cal.out;
  EXPECT_NE(cal.out.find(a + ": power 1000.000 W set"), std::string::npos) << cal.out;
  EXPECT_NE(cal.out.find(a + ": now measures 230.0 V"), std::string::npos) << cal.out;
  const double after = power_after(sc, a, wall_ms() + 100);
  EXPECT_NEAR(after, 1000.0, 5.0) << cal.out;  // within 0.5 %

  // plugsim restarts (its state dir stands for the socket's flash): the constants are still there.
  // SIGKILL, no orderly save: the socket must have persisted the constants when it took them.
  sc.sim().signal(SIGKILL);
  ASSERT_TRUE(sc.sim().wait_exit(10s).has_value());
  const int64_t restarted = wall_ms();
  sc.start_sim(1, sim_args);
  sc.wait_sessions(1);
  if (!test::wait_until([&] { return reading_after(sc, a, restarted).has_value(); }, 10s))
    FAIL() << sc.sim().describe();
  const json after_restart = *reading_after(sc, a, restarted);
  if (!after_restart["power_mw"].is_number() ||
      after_restart["power_mw"].get<int64_t>() == 0) {  // the relay restored off: switch it on
    ASSERT_EQ(cli(sc, {"relay", a, "on"}).code, 0);
  }
  EXPECT_NEAR(power_after(sc, a, wall_ms()), 1000.0, 5.0) << sc.sim().describe();

  // The raw constants can be set too: Ki back to the board's nominal 1.0 reads the 5 % high again.
  auto raw = cli(sc, {"calibrate", a, "--kv", "1.88", "--ki", "1"});
  EXPECT_EQ(raw.code, 0) << raw.err;
  EXPECT_EQ(raw.out.substr(0, raw.out.find('\n')),
            a + ": Kv 1.880000 set (confirmed and kept by the socket)");
  EXPECT_NEAR(power_after(sc, a, wall_ms() + 100), 1050.0, 5.0) << raw.out;

  sc.daemon().signal(SIGTERM);
  ASSERT_TRUE(sc.daemon().wait_exit(15s).has_value());
  auto down = cli(sc, {"calibrate", a, "--power", "1000"});
  EXPECT_EQ(down.code, cli::exit_code::kNoDaemon) << down.err;
}

TEST(RosterLimits, AreAppliedToTheSocketAtSessionStart) {
  Scenario sc({.sockets = 2});
  const std::string a = sc.cid(0), b = sc.cid(1);
  add_to_roster_entry(sc, a, "    limits:\n      current_max_ma: 2000\n");
  add_to_roster_entry(sc, b, "    limits:\n      power_max_w: 300\n");
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(2, {"--watts", "700,400", "--pf", "1"});
  sc.wait_sessions(2);

  // Queued behind the limits the daemon sent at session start, so they are in place before the load.
  ASSERT_EQ(cli(sc, {"relay", a, "on"}).code, 0);
  ASSERT_EQ(cli(sc, {"relay", b, "on"}).code, 0);
  EXPECT_TRUE(test::wait_until([&] { return sim_trip(sc, a, "over_current"); }, 10s)) << sc.sim().describe();
  EXPECT_TRUE(test::wait_until([&] { return sim_trip(sc, b, "over_power"); }, 10s)) << sc.sim().describe();
  // The socket confirmed them (plugsim logs each command it handled).
  auto confirmed = [&](const std::string& cid, const std::string& kind, int value) {
    for (const auto& e : sim_events(sc.sim(), "command"))
      if (e.value("cid", "") == cid && e.value("kind", "") == kind && e.value("value", 0) == value &&
          e.value("status", "") == "ok")
        return true;
    return false;
  };
  EXPECT_TRUE(confirmed(a, "set_current_limit", 2000)) << sc.sim().describe();
  EXPECT_TRUE(confirmed(b, "set_power_limit", 300)) << sc.sim().describe();
  // DP 6 says 2 A and DP 48 300 W (both scale 4), once confirmed.
  EXPECT_TRUE(test::wait_until(
      [&] {
        auto r6 = sc.reports(a, 6);
        auto r48 = sc.reports(b, 48);
        return !r6.empty() && r6.back()["param"]["value"] == 20000 && !r48.empty() &&
               r48.back()["param"]["value"] == 300 * 10000;
      },
      10s))
      << (sc.reports(a, 6).empty() ? "no DP 6" : sc.reports(a, 6).back().dump())
      << (sc.reports(b, 48).empty() ? "no DP 48" : sc.reports(b, 48).back().dump());
  // A cloud DP 6 holds until the daemon restarts; here it is also re-applied at a reconnect.
  EXPECT_EQ(sc.command_code(a, 6, "30000", "dp6-1"), 0);
  sc.sim().write_stdin("disconnect " + a);
  EXPECT_TRUE(test::wait_until(
      [&] {
        int n = 0;
        for (const auto& e : sim_events(sc.sim(), "command"))
          if (e.value("cid", "") == a && e.value("kind", "") == "set_current_limit" &&
              e.value("value", 0) == 3000)
            ++n;
        return n >= 2;
      },
      15s))
      << sc.sim().describe();
}

}  // namespace
}  // namespace pb::itest
