// The daemon reports energy from its accounted history: DP 44 total, DP 45 today, DP 46 this
// month, DP 58/59 the local midnight the daily/monthly counters restarted at.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <regex>
#include <tuple>

#include "energy/accountant.hpp"
#include "energy/calendar.hpp"
#include "energy/totals.hpp"
#include "scenario.hpp"
#include "store/store.hpp"

namespace pb::itest {
namespace {

using nlohmann::json;

int64_t last_value(const std::vector<json>& reports) {
  return reports.empty() ? -1 : reports.back()["param"]["value"].get<int64_t>();
}

TEST(Energy, TotalDailyMonthlyAndReadingTimesAreReported) {
  // A :45 zone, and a full report every second so the test need not wait for the 0.01 kWh band.
  Scenario sc({.sockets = 1, .extra_yaml = "report: {period_s: 1}\ntimezone: Asia/Kathmandu\n"});
  const std::string cid = sc.cid(0);
  sc.start_daemon();
  sc.start_sim(1, {"--watts", "1000", "--pf", "1.0", "--volts", "230", "--reading-interval-ms", "200"});
  sc.wait_sessions(1);
  sc.wait_uplink_synced();
  ASSERT_EQ(sc.command_code(cid, 1, "true", "on-" + cid), 0);

  // 1 kW gives the 0.1 Wh of one DP unit in 0.36 s; wait for a few units.
  ASSERT_TRUE(test::wait_until(
      [&] {
        return last_value(sc.reports(cid, 44)) >= 5 && last_value(sc.reports(cid, 45)) >= 5 &&
               last_value(sc.reports(cid, 46)) >= 5;
      },
      30s))
      << sc.daemon().describe();

  // Everything counted so far happened today (unless the test straddles Kathmandu midnight).
  const int64_t total = last_value(sc.reports(cid, 44));
  const int64_t today = last_value(sc.reports(cid, 45));
  const int64_t month = last_value(sc.reports(cid, 46));
  EXPECT_LE(today, month);
  EXPECT_LE(month, total);

  // The reported values come from the buckets in the database (DP unit = 100 mWh).
  store::Store db(sc.db_path().string(), true);
  const energy::Calendar cal("Asia/Kathmandu");
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const energy::Summary s = energy::summary(db, cal, cid, now_ms);
  EXPECT_GE(s.all_time_mwh / 100 + 1, total);
  EXPECT_GT(s.today_mwh, 0);
  EXPECT_EQ(s.today_mwh, energy::day_total(db, cal, cid, cal.local_date(now_ms)));
  // 1 kW for the run (< 60 s) is < 17 Wh: nothing like the raw counter or a phantom spike.
  EXPECT_LT(s.all_time_mwh, 20'000);

  // Reading times: strings, local midnight of today and of the 1st of this month.
  const auto d58 = sc.reports(cid, 58);
  const auto d59 = sc.reports(cid, 59);
  ASSERT_FALSE(d58.empty());
  ASSERT_FALSE(d59.empty());
  const date::year_month_day local_today = cal.local_date(now_ms);
  EXPECT_EQ(d58.back()["param"]["value"], cal.local_time_string(cal.day(local_today).from_ms));
  EXPECT_EQ(d59.back()["param"]["value"],
            cal.local_time_string(cal.month(local_today.year() / local_today.month()).from_ms));
  EXPECT_TRUE(std::regex_match(d58.back()["param"]["value"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\d 00:00:00)")));
  EXPECT_TRUE(std::regex_match(d59.back()["param"]["value"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-01 00:00:00)")));
  EXPECT_TRUE(sc.emu().violations().empty());
}

TEST(Energy, SigkillAndRestartNeitherLoseNorDoubleCountEnergy) {
  Scenario sc({.sockets = 4});
  sc.start_daemon();
  sc.start_sim(4, {"--watts", "300,1000", "--reading-interval-ms", "100"});
  sc.wait_sessions(4);
  sc.wait_uplink_synced();
  for (size_t i = 0; i < 4; ++i) ASSERT_EQ(sc.command_code(sc.cid(i), 1, "true", "on-" + sc.cid(i)), 0);
  ASSERT_TRUE(test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > 400; }, 30s));

  // Killed in the middle of a bucket with batches in flight; the sockets resend what was not acked.
  sc.daemon().signal(SIGKILL);
  ASSERT_TRUE(sc.daemon().wait_exit(10s));
  const size_t acked_at_kill = sim_events(sc.sim(), "acked").size();
  sc.start_daemon();
  ASSERT_TRUE(
      test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > acked_at_kill + 400; }, 40s))
      << sc.sim().describe();
  sc.sim().signal(SIGTERM);
  ASSERT_TRUE(sc.sim().wait_exit(20s));
  sc.daemon().signal(SIGTERM);
  ASSERT_TRUE(sc.daemon().wait_exit(20s));

  // Accounted energy = the counter's climb between the first and the last stored reading, exactly.
  store::Store db(sc.db_path().string(), true);
  const auto states = db.energy_states();
  ASSERT_EQ(states.size(), 4u);
  for (const auto& st : states) {
    std::vector<store::ReadingRow> rows;  // the ones with a valid meter value
    for (const auto& r : db.readings(st.cid, 0, INT64_MAX))
      if (r.flags & energy::kMeterOkFlag) rows.push_back(r);
    ASSERT_FALSE(rows.empty());
    const auto [first, last] = std::minmax_element(
        rows.begin(), rows.end(),
        [](const auto& a, const auto& b) { return std::tie(a.boot, a.seq) < std::tie(b.boot, b.seq); });
    ASSERT_EQ(first->energy_epoch, last->energy_epoch) << st.cid;
    const auto climb = static_cast<int64_t>(last->energy_mwh - first->energy_mwh);
    EXPECT_GT(climb, 0) << st.cid;
    EXPECT_EQ(st.total_mwh, climb) << st.cid;
    EXPECT_EQ(energy::all_time_total(db, st.cid), climb) << st.cid;
    EXPECT_EQ(st.seq, last->seq) << st.cid;
  }
  EXPECT_TRUE(db.events("", 0, INT64_MAX).size() > 0);
  for (const auto& e : db.events("", 0, INT64_MAX)) EXPECT_NE(e.kind, "rejected_jump") << e.detail;
}

}  // namespace
}  // namespace pb::itest
