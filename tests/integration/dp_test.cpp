// The Tuya DP mapping end to end: limit commands confirmed by the (simulated) socket and reported,
// switch_enabled, a protection trip reported as fault/alarm DPs, and the measured DPs.
#include <gtest/gtest.h>

#include <sstream>

#include "plugbridge/cli/cli.hpp"
#include "scenario.hpp"

namespace pb::itest {
namespace {

using nlohmann::json;

// The newest reported value of a DP, or null.
json last_value(const Scenario& sc, const std::string& cid, int dp) {
  auto r = sc.reports(cid, dp);
  return r.empty() ? json() : r.back()["param"]["value"];
}

bool wait_value(const Scenario& sc, const std::string& cid, int dp, const json& want) {
  return test::wait_until([&] { return last_value(sc, cid, dp) == want; }, 10s);
}

TEST(DpMapping, ValidationCodesForNewDpsOnlineAndOffline) {
  Scenario sc({.sockets = 2});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});  // the second socket stays offline
  sc.wait_sessions(1);
  const auto on = sc.cid(0), off = sc.cid(1);

  EXPECT_EQ(sc.command_code(on, 48, "\"x\"", "v-1103"), 1103);
  EXPECT_EQ(sc.command_code(on, 18, "60001", "v-1101"), 1101);      // > 600 s
  EXPECT_EQ(sc.command_code(on, 12, "3010000", "v-1101-v"), 1101);  // > 300 V
  EXPECT_EQ(sc.command_code(on, 19, "0", "v-ro"), 2002);            // fault is read-only
  EXPECT_EQ(sc.command_code(on, 99, "0", "v-unknown"), 2002);
  EXPECT_EQ(sc.command_code(off, 48, "10000000", "v-2001"), 2001);
  EXPECT_EQ(sc.command_code(off, 48, "\"x\"", "v-off-1103"), 1103);  // type before offline
  EXPECT_EQ(sc.command_code(off, 17, "false", "v-17-off"), 2001);    // the socket keeps it: must confirm

  // Settings are answered after the socket confirmed, then reported with the DP's scale.
  EXPECT_EQ(sc.command_code(on, 11, "\"1800000\"", "v-11"), 0) << sc.daemon().describe();
  EXPECT_TRUE(wait_value(sc, on, 11, 1800000));
  EXPECT_EQ(sc.command_code(on, 18, "150", "v-18"), 0);
  EXPECT_TRUE(wait_value(sc, on, 18, 150));

  // switch_enabled = false refuses relay commands until enabled again.
  EXPECT_EQ(sc.command_code(on, 17, "false", "v-17f"), 0);
  EXPECT_TRUE(wait_value(sc, on, 17, false));
  EXPECT_EQ(sc.command_code(on, 1, "false", "v-1-refused"), 2002);
  EXPECT_EQ(sc.command_code(on, 57, "false", "v-57-refused"), 2002);
  {  // The local control socket's relay command is refused too.
    std::ostringstream out, err;
    cli::Terminal t{out, err};
    int code = cli::run({"--config", sc.config_path().string(), "relay", on, "off"}, t);
    EXPECT_NE(code, 0) << out.str();
    EXPECT_NE(err.str().find("switch_enabled"), std::string::npos) << err.str();
  }
  EXPECT_EQ(sc.command_code(on, 17, "\"true\"", "v-17t"), 0);
  EXPECT_EQ(sc.command_code(on, 57, "false", "v-57"), 0);
  EXPECT_TRUE(wait_value(sc, on, 57, false));
  EXPECT_TRUE(wait_value(sc, on, 1, false));
}

TEST(DpMapping, PowerLimitTripIsReportedAsFaultAndClearedBySwitchingOn) {
  Scenario sc({.sockets = 1});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_sessions(1);
  const auto cid = sc.cid(0);
  ASSERT_TRUE(test::wait_until([&] { return !sc.reports(cid, 1).empty(); }, 15s)) << sc.daemon().describe();
  if (last_value(sc, cid, 1) == false) {
    ASSERT_EQ(sc.command_code(cid, 1, "true", "t-on-first"), 0);
  }
  ASSERT_TRUE(wait_value(sc, cid, 19, 0));
  ASSERT_TRUE(wait_value(sc, cid, 20, "general"));

  // Measured DPs, and phase_a as an object of strings.
  ASSERT_TRUE(test::wait_until([&] { return last_value(sc, cid, 30).is_object(); }, 10s));
  for (const char* k : {"voltage", "current", "power", "electricity"})
    EXPECT_TRUE(last_value(sc, cid, 30)[k].is_string()) << k;
  for (int dp : {37, 38, 40, 50, 52}) EXPECT_TRUE(last_value(sc, cid, dp).is_number_integer()) << dp;
  // 60 W resistive: DP 37 equals DP 3, apparent power close to it.
  EXPECT_EQ(last_value(sc, cid, 37), last_value(sc, cid, 3));

  // 50 W limit under a 60 W load: the socket confirms, then trips on over-power.
  ASSERT_EQ(sc.command_code(cid, 48, "500000", "t-48"), 0);
  EXPECT_TRUE(wait_value(sc, cid, 48, 500000));
  ASSERT_TRUE(wait_value(sc, cid, 19, 512)) << sc.daemon().describe();  // bit 9 high_power_alarm
  EXPECT_TRUE(wait_value(sc, cid, 1, false));
  EXPECT_EQ(last_value(sc, cid, 20), "urgent");
  EXPECT_NE(last_value(sc, cid, 21).get<std::string>().find("over-power"), std::string::npos);

  // Limit off, relay on: the fault clears.
  ASSERT_EQ(sc.command_code(cid, 48, "0", "t-48off"), 0);
  ASSERT_EQ(sc.command_code(cid, 1, "true", "t-on"), 0);
  EXPECT_TRUE(wait_value(sc, cid, 19, 0));
  EXPECT_TRUE(wait_value(sc, cid, 20, "general"));
  EXPECT_TRUE(wait_value(sc, cid, 21, ""));
  EXPECT_TRUE(test::wait_until(
      [&] {
        auto v = last_value(sc, cid, 42);
        return v.is_number_integer() && v.get<int64_t>() >= 2;
      },
      10s))
      << "switch_times counts the trip and the switch-on";
}

}  // namespace
}  // namespace pb::itest
