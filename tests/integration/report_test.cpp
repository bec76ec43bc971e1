// The report rules in the daemon (report: section -> ReportPolicy -> properties/report), timed by
// the emulator's arrival times: a measured change is held for report.min_interval_s after the
// previous report of that DP, and a relay switch is neither held nor holds back the power after it.
#include <gtest/gtest.h>

#include "scenario.hpp"

namespace pb::itest {
namespace {

using nlohmann::json;

struct Arrival {
  int64_t at_ms;
  json value;
};

// properties/report messages of one DP of one socket, with the emulator's arrival time.
std::vector<Arrival> arrivals(Scenario& sc, const std::string& cid, int dp) {
  std::vector<Arrival> out;
  const std::string topic = "gateway_id/gw-test/properties/report";
  for (const auto& e : sc.emu().events()) {
    if (e.value("dir", "") != "in" || e.value("topic", "") != topic || !e.contains("payload")) continue;
    const auto& p = e["payload"]["param"];
    if (p.value("cid", "") == cid && p.value("id", "") == std::to_string(dp))
      out.push_back({e.value("at_ms", int64_t{0}), p["value"]});
  }
  return out;
}

// Waits for the first report of DP 3 (W x 10^4) after `after_ms` within 3 % of `watts`.
std::optional<Arrival> wait_power(Scenario& sc, const std::string& cid, double watts, int64_t after_ms = 0) {
  std::optional<Arrival> found;
  test::wait_until(
      [&] {
        for (const auto& a : arrivals(sc, cid, 3))
          if (a.at_ms > after_ms && a.value.is_number() &&
              std::abs(a.value.get<double>() / 1e4 - watts) <= watts * 0.03 + 0.5) {
            found = a;
            return true;
          }
        return false;
      },
      15s);
  return found;
}

TEST(Reports, MinimumIntervalHoldsAChangeButNeverARelaySwitch) {
  // The full report only hourly, so every report below is an on-change one.
  Scenario sc({.sockets = 1,
               .extra_yaml = "report: {period_s: 3600, min_interval_s: 4, power_w: 5, power_percent: 0}\n"});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_sessions(1);
  const auto cid = sc.cid(0);
  ASSERT_TRUE(test::wait_until([&] { return !arrivals(sc, cid, 1).empty(); }, 15s)) << sc.daemon().describe();
  if (arrivals(sc, cid, 1).back().value == false) {
    ASSERT_EQ(sc.command_code(cid, 1, "true", "r-on"), 0);  // fresh sockets start off
  }
  const auto w60 = wait_power(sc, cid, 60);
  ASSERT_TRUE(w60) << sc.daemon().describe();

  // 100 W goes out (at once, or when the interval since the 60 W report ends); 200 W a reading
  // later is held until 4 s after the 100 W report.
  sc.sim().write_stdin("load " + cid + " 100");
  const auto w100 = wait_power(sc, cid, 100, w60->at_ms);
  ASSERT_TRUE(w100) << sc.daemon().describe();
  sc.sim().write_stdin("load " + cid + " 200");
  const auto w200 = wait_power(sc, cid, 200, w100->at_ms);
  ASSERT_TRUE(w200) << sc.daemon().describe();
  EXPECT_GE(w200->at_ms - w100->at_ms, 3'900) << "held for min_interval_s";
  EXPECT_LE(w200->at_ms - w100->at_ms, 8'000) << "released when the interval ended";

  // Switched off from the cloud right after: DP 1 at once, and the 0 W that follows is not held
  // though the 200 W report was less than 4 s before.
  ASSERT_EQ(sc.command_code(cid, 1, "false", "r-off"), 0);
  const auto off = arrivals(sc, cid, 1).back();
  EXPECT_EQ(off.value, false);
  const auto w0 = wait_power(sc, cid, 0, w200->at_ms);
  ASSERT_TRUE(w0) << sc.daemon().describe();
  EXPECT_LT(w0->at_ms - w200->at_ms, 3'900) << "the power after a switch is not held";
}

}  // namespace
}  // namespace pb::itest
