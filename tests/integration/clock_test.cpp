// The daemon when the system clock is wrong (libfaketime, one process): a Pi that boots in 2000
// and gets the right time later, and a clock set back an hour while running.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "plugbridge/store/store.hpp"
#include "scenario.hpp"

namespace pb::itest {
namespace {

namespace fs = std::filesystem;

int64_t real_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// libfaketime for plugbridged, its offset read from `file` at every clock call (FAKETIME_NO_CACHE),
// the monotonic clock left alone. nullopt (and why) where it cannot be used.
std::optional<std::map<std::string, std::string>> faketime_env(const fs::path& file, std::string& why) {
  if (std::getenv("PB_TEST_EMULATOR")) {
    why = "libfaketime is not preloaded into programs run by an emulator";
    return std::nullopt;
  }
  std::string lib;
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                          "/usr/lib/arm-linux-gnueabihf", "/usr/lib"}) {
    const fs::path p = fs::path(dir) / "faketime" / "libfaketimeMT.so.1";
    if (fs::exists(p)) lib = p;
  }
  if (lib.empty()) {
    why = "libfaketime is not installed (Debian package faketime; script/bootstrap installs it)";
    return std::nullopt;
  }
  // timerfd_passthrough first: its timerfd_settime wins over libfaketime's.
  std::map<std::string, std::string> env{{"LD_PRELOAD", std::string(PB_TIMERFD_PASSTHROUGH) + ":" + lib},
                                         {"FAKETIME_TIMESTAMP_FILE", file.string()},
                                         {"FAKETIME_NO_CACHE", "1"},
                                         {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}};
  // Under AddressSanitizer the preloaded library comes before ASan's runtime.
  const char* asan = std::getenv("ASAN_OPTIONS");
  env["ASAN_OPTIONS"] =
      std::string(asan ? asan : "") + (asan && *asan ? ":" : "") + "verify_asan_link_order=0";
  return env;
}

// Sets the faked clock `offset_s` seconds from the real one.
void set_offset(const fs::path& file, int64_t offset_s) {
  const fs::path tmp = file.string() + ".tmp";
  std::ofstream(tmp) << (offset_s >= 0 ? "+" : "") << offset_s << "\n";
  fs::rename(tmp, file);
}

nlohmann::json devices_json(const Scenario& sc) {
  const CliRun r = cli(sc, {"devices", "--format", "json"});
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

TEST(Clock, AYear2000BootHoldsRecordsAndRestampsThemWhenTheClockIsRight) {
  const int64_t test_start_ms = real_now_ms();
  test::TempDir fake;
  const fs::path offset_file = fake.path() / "faketime";
  std::string why;
  auto env = faketime_env(offset_file, why);
  if (!env) GTEST_SKIP() << why;
  set_offset(offset_file, 946'684'800 - test_start_ms / 1000);  // 2000-01-01T00:00:00Z

  Scenario sc({.sockets = 2, .daemon_env = *env});
  // Readings of last week, which a year-2000 retention pass must not touch.
  const int64_t week_ago = test_start_ms - 7 * 86'400'000LL;
  {
    store::Store db(sc.db_path().string());
    std::vector<store::ReadingRow> old;
    for (uint32_t seq = 1; seq <= 5; ++seq) {
      store::ReadingRow r;
      r.cid = sc.cid(0);
      r.boot = 0;  // not a boot plugsim uses
      r.seq = seq;
      r.ts_ms = week_ago + seq * 1000;
      old.push_back(r);
    }
    db.commit(old, {});
  }
  sc.start_daemon();
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("2000-01-01.*holding readings"), 10s))
      << sc.daemon().describe();
  sc.start_sim(2, {"--watts", "1000,500", "--reading-interval-ms", "500"});
  sc.wait_sessions(2);
  // Local commands work without a clock: relays on (a relay event and a command event, held too).
  for (size_t i = 0; i < 2; ++i)
    ASSERT_EQ(cli(sc, {"relay", sc.cid(i), "on"}).code, 0) << sc.daemon().describe();

  // Held, not acked, not reported, and the CLI says why.
  nlohmann::json dev;
  ASSERT_TRUE(test::wait_until(
      [&] {
        dev = devices_json(sc);
        return dev.value("storage", nlohmann::json::object()).value("records_waiting", 0) >= 10;
      },
      30s))
      << dev.dump() << sc.daemon().describe();
  EXPECT_EQ(dev["clock"].value("state", ""), "waiting") << dev.dump();
  EXPECT_FALSE(dev["clock"].value("trusted", true));
  EXPECT_TRUE(sim_events(sc.sim(), "acked").empty()) << "acked with a year-2000 time";
  EXPECT_TRUE(sc.emu().seen("properties/report").empty());
  EXPECT_TRUE(sc.emu().seen("devices/sync").empty()) << "a sync carries a time too";
  EXPECT_NE(cli(sc, {"devices"}).err.find("does not trust the system clock"), std::string::npos);

  // NTP answers.
  set_offset(offset_file, 0);
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("trustworthy now.*re-stamped"), 40s))
      << sc.daemon().describe();
  ASSERT_TRUE(test::wait_until([&] { return sim_events(sc.sim(), "acked").size() >= 4; }, 30s))
      << sc.sim().describe();
  sc.wait_uplink_synced();
  for (size_t i = 0; i < 2; ++i)
    ASSERT_TRUE(test::wait_until([&] { return !sc.reports(sc.cid(i), 44).empty(); }, 30s))
        << "no energy report for " << sc.cid(i) << sc.daemon().describe();

  sc.sim().signal(SIGTERM);
  ASSERT_TRUE(sc.sim().wait_exit(20s));
  sc.daemon().signal(SIGTERM);
  ASSERT_EQ(sc.daemon().wait_exit(20s), 0) << sc.daemon().describe();

  // Nothing went out with a time before this test, and nothing is stored with one.
  for (const char* topic : {"properties/report", "devices/sync", "devices/status"})
    for (const auto& m : sc.emu().seen(topic))
      EXPECT_GE(m.value("t", int64_t{0}), test_start_ms / 1000 - 1) << topic << ": " << m.dump();
  store::Store db(sc.db_path().string(), true);
  for (size_t i = 0; i < 2; ++i) {
    const auto rows = db.readings(sc.cid(i), 0, INT64_MAX);
    size_t recent = 0;
    for (const auto& r : rows) {
      if (r.boot == 0) continue;  // the seeded ones
      EXPECT_GE(r.ts_ms, test_start_ms - 1000) << sc.cid(i) << " seq " << r.seq;
      EXPECT_LE(r.ts_ms, real_now_ms());
      ++recent;
    }
    EXPECT_GE(recent, 4u);
    const auto events = db.events(sc.cid(i), 0, INT64_MAX);
    EXPECT_GE(events.size(), 2u) << "the relay and command events";
    for (const auto& e : events) EXPECT_GE(e.ts_ms, test_start_ms - 1000) << e.kind << " " << e.detail;
    // The energy is in today's buckets, none in 2000's.
    EXPECT_TRUE(db.buckets(sc.cid(i), 0, test_start_ms - 900'000).empty());
    EXPECT_GT(db.energy_sum(sc.cid(i), test_start_ms - 900'000, INT64_MAX), 0) << sc.cid(i);
  }
  EXPECT_EQ(db.readings(sc.cid(0), week_ago, week_ago + 10'000).size(), 5u) << "pruned";
  EXPECT_EQ(unstored_acked_records(sc, 2), "");
}

TEST(Clock, AClockSetBackAnHourKeepsTheLiveStateMoving) {
  test::TempDir fake;
  const fs::path offset_file = fake.path() / "faketime";
  std::string why;
  auto env = faketime_env(offset_file, why);
  if (!env) GTEST_SKIP() << why;
  set_offset(offset_file, 0);
  Scenario sc({.sockets = 1, .daemon_env = *env});
  sc.start_daemon();
  sc.start_sim(1, {"--watts", "800", "--reading-interval-ms", "300"});
  sc.wait_sessions(1);
  ASSERT_EQ(cli(sc, {"relay", sc.cid(0), "on"}).code, 0);
  ASSERT_TRUE(test::wait_until([&] { return sim_events(sc.sim(), "acked").size() >= 3; }, 30s));

  set_offset(offset_file, -3600);
  // Believed with NTP's word for it, else followed on the monotonic clock: either is logged.
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("stepped by -3[56]\\d\\d|monotonic clock's pace"), 10s))
      << sc.daemon().describe();
  const size_t acked_at_step = sim_events(sc.sim(), "acked").size();
  // The live state keeps changing with every new reading.
  std::set<int64_t> seen;
  ASSERT_TRUE(test::wait_until(
      [&] {
        const auto dev = devices_json(sc);
        if (dev.contains("sockets") && !dev["sockets"].empty() &&
            dev["sockets"][0]["last_seen_ms"].is_number())
          seen.insert(dev["sockets"][0]["last_seen_ms"].get<int64_t>());
        return seen.size() >= 4;
      },
      30s))
      << sc.daemon().describe();
  EXPECT_GT(sim_events(sc.sim(), "acked").size(), acked_at_step);

  sc.sim().signal(SIGTERM);
  ASSERT_TRUE(sc.sim().wait_exit(20s));
  sc.daemon().signal(SIGTERM);
  ASSERT_EQ(sc.daemon().wait_exit(20s), 0) << sc.daemon().describe();
  store::Store db(sc.db_path().string(), true);
  const auto rows = db.readings(sc.cid(0), 0, INT64_MAX);
  ASSERT_GE(rows.size(), 6u);
  int64_t energy = 0;
  for (const auto& b : db.buckets(sc.cid(0), 0, INT64_MAX)) {
    EXPECT_GE(b.energy_mwh, 0);
    energy += b.energy_mwh;
  }
  EXPECT_GT(energy, 0);
  EXPECT_EQ(unstored_acked_records(sc, 1), "");
}

}  // namespace
}  // namespace pb::itest
