// The daemon reports energy from its accounted history: DP 44 total, DP 45 today, DP 46 this
// month, DP 58/59 the local midnight the daily/monthly counters restarted at.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <tuple>

#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/energy/totals.hpp"
#include "plugbridge/store/store.hpp"
#include "scenario.hpp"

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
  sc.wait_energy_baselines(4);  // the first readings, with the relays still off
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

  // Accounted energy = the counter's climb since the first reading, exactly (the relays were off
  // until the command, so the first reading counted nothing yet): nothing lost, nothing twice.
  store::Store db(sc.db_path().string(), true);
  const auto states = db.energy_states();
  ASSERT_EQ(states.size(), 4u);
  for (const auto& st : states) EXPECT_EQ(energy_mismatch(db, st.cid, 0), "");
  EXPECT_TRUE(db.events("", 0, INT64_MAX).size() > 0);
  for (const auto& e : db.events("", 0, INT64_MAX)) EXPECT_NE(e.kind, "rejected_jump") << e.detail;
}

// A power cut of the gateway (SIGKILL: nothing flushed, nothing said to anyone) with readings gathered
// for a second per commit (acked before it) and relay events flowing: every acked event is in the
// database once, and the accounted energy is the counters' climb, exactly.
TEST(Energy, SigkillWithGroupedCommitsLosesNoAckedEventAndNoEnergy) {
  constexpr size_t kSockets = 6;
  Scenario sc({.sockets = kSockets, .extra_yaml = "history: {commit_interval_ms: 1000}\n"});
  sc.start_daemon();
  sc.start_sim(kSockets, {"--watts", "300,1000", "--reading-interval-ms", "100"});
  sc.wait_sessions(kSockets);
  sc.wait_energy_baselines(kSockets);  // the first readings, with the relays still off
  for (size_t i = 0; i < kSockets; ++i) ASSERT_EQ(cli(sc, {"relay", sc.cid(i), "on"}).code, 0);
  const auto press_buttons = [&] {
    for (size_t i = 0; i < kSockets; i += 2) sc.sim().write_stdin("button " + sc.cid(i));
  };
  press_buttons();
  ASSERT_TRUE(test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > 300; }, 30s));
  press_buttons();  // relay events in flight at the kill

  sc.daemon().signal(SIGKILL);
  ASSERT_TRUE(sc.daemon().wait_exit(10s));
  const size_t acked_at_kill = sim_events(sc.sim(), "acked").size();
  sc.start_daemon();
  ASSERT_TRUE(
      test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > acked_at_kill + 300; }, 40s))
      << sc.sim().describe();
  sc.sim().signal(SIGTERM);
  ASSERT_TRUE(sc.sim().wait_exit(20s));
  sc.daemon().signal(SIGTERM);
  ASSERT_TRUE(sc.daemon().wait_exit(20s));

  EXPECT_EQ(unstored_acked_events(sc, kSockets), "");
  store::Store db(sc.db_path().string(), true);
  size_t relay_events = 0;
  for (const auto& e : db.events("", 0, INT64_MAX)) relay_events += e.kind == "relay";
  EXPECT_GE(relay_events, kSockets) << "the relays switched on, at least";
  for (size_t i = 0; i < kSockets; ++i) EXPECT_EQ(energy_mismatch(db, sc.cid(i), 0), "");
}

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The daemon prunes raw samples older than history.raw_days (its first pass runs at start, after
// rolling the samples up into the buckets and those into local days), of every socket, in batches;
// the 15-minute buckets, the energy states, the events and the recent samples stay.
TEST(Energy, RawSamplesOlderThanTheRetentionArePrunedBucketsStay) {
  Scenario sc({.sockets = 1, .extra_yaml = "history: {raw_days: 2}\n"});
  const std::string cid = sc.cid(0), gone = "sock-removed";
  constexpr int64_t kDay = 86'400'000;
  const int64_t now = unix_now_ms();
  const int64_t old_start = energy::floor_to(now - 4 * kDay, 60'000);  // 2 500 minutes: all older than 2 days
  std::vector<store::BucketRow> buckets_before;
  int64_t total = 0;
  {
    store::Store db(sc.db_path().string());
    store::EnergyUpdate up;
    auto add = [&](const std::string& c, int64_t start) {
      store::BucketUpdate b;
      b.cid = c;
      b.start_ms = energy::floor_to(start, 60'000);
      b.energy_mwh = 7;
      b.samples = 6;
      b.power_sum_mw = 6 * 4200;
      b.power_min_mw = 4000;
      b.power_max_mw = 4400;
      b.voltage_min_mv = b.voltage_max_mv = 230'000;
      b.current_max_ua = 20'000;
      up.samples.push_back(b);
      total += b.energy_mwh;
    };
    for (int64_t i = 0; i < 2500; ++i) add(cid, old_start + i * 60'000);
    add(cid, now - 2 * kDay + 3'600'000);  // inside the window by an hour
    for (int64_t i = 0; i < 10; ++i) add(cid, now - 3'600'000 + i * 60'000);
    for (int64_t i = 0; i < 300; ++i) add(gone, old_start + i * 60'000);
    add(gone, now - 3'600'000);
    up.states.push_back({cid, 1, 1, now - 3'600'000, 0, 0, 0});
    up.states.push_back({gone, 1, 1, now - 3'600'000, 0, 0, 0});
    std::vector<store::EventRow> events = {{cid, old_start, "relay", 1, 9999, 1, "{}"},
                                           {gone, old_start, "relay", 1, 9999, 0, "{}"}};
    db.commit(events, up);
    for (const std::string& c : {cid, gone})
      for (const auto& b : db.buckets(c, INT64_MIN, INT64_MAX)) buckets_before.push_back(b);
    ASSERT_EQ(db.count_samples(), 2500u + 1 + 10 + 300 + 1);
    ASSERT_EQ(db.rolled_up_ms(), 0) << "nothing rolled up yet: the daemon does it";
  }

  sc.start_daemon();
  const int64_t cutoff = now - 2 * kDay;
  store::Store db(sc.db_path().string(), true);
  ASSERT_TRUE(test::wait_until(
      [&] { return db.samples(cid, 0, cutoff).empty() && db.samples(gone, 0, cutoff).empty(); }, 20s))
      << db.count_samples(cid) << " / " << db.count_samples(gone) << " samples left\n"
      << sc.daemon().describe();

  EXPECT_EQ(db.count_samples(cid), 11u);  // the one inside the window and the recent ones
  EXPECT_EQ(db.count_samples(gone), 1u);
  EXPECT_GT(db.rolled_up_ms(), cutoff);
  // The local days before today, rolled up in the same pass (the totals below read them).
  EXPECT_GE(db.rolled_days(INT64_MIN, INT64_MAX).size(), 3u);
  std::vector<store::BucketRow> buckets_after;
  for (const std::string& c : {cid, gone})
    for (const auto& b : db.buckets(c, INT64_MIN, INT64_MAX)) buckets_after.push_back(b);
  EXPECT_EQ(buckets_after, buckets_before);
  EXPECT_EQ(energy::all_time_total(db, cid) + energy::all_time_total(db, gone), total);
  EXPECT_EQ(db.energy_states().size(), 2u);
  EXPECT_EQ(db.events("", old_start, old_start + 1).size(), 2u);
}

// sockets[].energy.max_power_w replaces energy.max_power_w for that socket. Both sockets come back
// from a restart with their counter 5 Wh higher and no load: plausible at 3 500 W (>= 10.7 Wh
// allowed across the restart), a rejected jump at 100 W (~1.3 Wh plus 0.03 Wh per second away).
TEST(Energy, PerSocketJumpLimitReplacesTheGlobalOne) {
  Scenario sc({.sockets = 2});
  const std::string strict = sc.cid(0), normal = sc.cid(1);
  {
    std::ifstream in(sc.config_path());
    std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string anchor = "secret: " + sc.roster()[0].secret_hex + "\n";
    const size_t at = yaml.find(anchor);
    ASSERT_NE(at, std::string::npos) << yaml;
    yaml.insert(at + anchor.size(), "    energy: {max_power_w: 100}\n");
    std::ofstream(sc.config_path()) << yaml;
  }
  const std::filesystem::path state_dir = sc.dir() / "sim-state";
  std::filesystem::create_directories(state_dir);
  for (const std::string& c : {strict, normal})  // boot 5, 1 kWh, epoch 0, relay off
    std::ofstream(state_dir / (c + ".state")) << "plugsim-state 1 5 1000000 0 0\n";

  sc.start_daemon();
  const std::vector<std::string> sim_args = {"--reading-interval-ms", "200"};
  sc.start_sim(2, sim_args);
  store::Store db(sc.db_path().string(), true);
  std::map<std::string, uint32_t> first_boot;
  ASSERT_TRUE(test::wait_until(
      [&] {
        for (const auto& st : db.energy_states()) first_boot[st.cid] = st.boot;
        return first_boot.size() == 2;
      },
      20s))
      << sc.sim().describe() << sc.daemon().describe();
  sc.sim().signal(SIGTERM);
  ASSERT_TRUE(sc.sim().wait_exit(20s));

  // The counters as the sockets stored them, plus 5 Wh.
  for (const std::string& c : {strict, normal}) {
    std::ifstream in(state_dir / (c + ".state"));
    std::vector<std::string> fields;
    for (std::string f; in >> f;) fields.push_back(f);
    ASSERT_GE(fields.size(), 6u) << c;
    ASSERT_EQ(fields[3], "1000000") << c;
    fields[3] = "1005000";
    std::ofstream out(state_dir / (c + ".state"));
    for (const auto& f : fields) out << f << ' ';
    out << '\n';
  }
  sc.start_sim(2, sim_args);
  ASSERT_TRUE(test::wait_until(
      [&] {
        size_t moved = 0;
        for (const auto& st : db.energy_states()) moved += st.boot > first_boot[st.cid] ? 1 : 0;
        return moved == 2;
      },
      20s))
      << sc.sim().describe() << sc.daemon().describe();

  std::map<std::string, int64_t> total;
  for (const auto& st : db.energy_states()) total[st.cid] = st.total_mwh;
  EXPECT_EQ(total[strict], 0);
  EXPECT_EQ(total[normal], 5000);
  const auto strict_events = db.events(strict, 0, INT64_MAX);
  ASSERT_EQ(std::count_if(strict_events.begin(), strict_events.end(),
                          [](const auto& e) { return e.kind == "rejected_jump"; }),
            1)
      << sc.daemon().describe();
  for (const auto& e : strict_events)
    if (e.kind == "rejected_jump") {
      EXPECT_EQ(e.value, 5000);
      EXPECT_NE(e.detail.find("limit 100 W"), std::string::npos) << e.detail;
    }
  for (const auto& e : db.events(normal, 0, INT64_MAX)) EXPECT_NE(e.kind, "rejected_jump") << e.detail;
}

}  // namespace
}  // namespace pb::itest
