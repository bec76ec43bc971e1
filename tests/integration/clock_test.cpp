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

#include "plugbridge/energy/accountant.hpp"
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
  // Samples of last week, which a year-2000 retention pass must not touch.
  const int64_t week_ago = energy::floor_to(test_start_ms - 7 * 86'400'000LL, 60'000);
  {
    store::Store db(sc.db_path().string());
    store::EnergyUpdate old;
    for (int64_t i = 0; i < 5; ++i) {
      store::BucketUpdate b;
      b.cid = sc.cid(0);
      b.start_ms = week_ago + i * 60'000;
      b.samples = 1;
      old.samples.push_back(b);
    }
    db.commit({}, old);
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
  // Each socket's records acked up to sequence 8: its power-on, relay and command events and at
  // least 4 readings (the sockets read at phases of their own, so not as many each at a time).
  for (size_t i = 0; i < 2; ++i)
    ASSERT_TRUE(test::wait_until(
        [&] {
          for (const auto& e : sim_events(sc.sim(), "acked"))
            if (e.value("cid", "") == sc.cid(i) && e.value("seq", 0) >= 8) return true;
          return false;
        },
        30s))
        << sc.cid(i) << sc.sim().describe();
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
    int64_t recent = 0;
    for (const auto& r : db.samples(sc.cid(i), week_ago + 5 * 60'000, INT64_MAX)) {
      EXPECT_GE(r.start_ms, energy::floor_to(test_start_ms, 60'000)) << sc.cid(i);
      EXPECT_LE(r.start_ms, real_now_ms());
      recent += r.samples;
    }
    EXPECT_EQ(db.samples(sc.cid(i), 0, week_ago).size(), 0u) << "a sample before the seeded ones";
    EXPECT_GE(recent, 4) << "readings in samples";
    const auto events = db.events(sc.cid(i), 0, INT64_MAX);
    EXPECT_GE(events.size(), 2u) << "the relay and command events";
    for (const auto& e : events) EXPECT_GE(e.ts_ms, test_start_ms - 1000) << e.kind << " " << e.detail;
    // The energy is in today's buckets, none in 2000's.
    EXPECT_TRUE(db.buckets(sc.cid(i), 0, energy::bucket_start(week_ago)).empty());
    EXPECT_TRUE(db.buckets(sc.cid(i), week_ago + 1'800'000, test_start_ms - 900'000).empty());
    EXPECT_GT(db.energy_sum(sc.cid(i), test_start_ms - 900'000, INT64_MAX), 0) << sc.cid(i);
  }
  EXPECT_EQ(db.samples(sc.cid(0), week_ago, week_ago + 5 * 60'000).size(), 5u) << "pruned";
  EXPECT_EQ(unstored_acked_events(sc, 2), "");
  EXPECT_EQ(uncommitted_acked_records(sc, 2), "");
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
  int64_t readings = 0;  // with a valid meter value: the samples count no others
  for (const auto& r : db.samples(sc.cid(0), 0, INT64_MAX)) readings += r.samples;
  ASSERT_GE(readings, 4);
  int64_t energy = 0;
  for (const auto& b : db.buckets(sc.cid(0), 0, INT64_MAX)) {
    EXPECT_GE(b.energy_mwh, 0);
    energy += b.energy_mwh;
  }
  EXPECT_GT(energy, 0);
  EXPECT_EQ(unstored_acked_events(sc, 1), "");
  EXPECT_EQ(uncommitted_acked_records(sc, 1), "");
}

}  // namespace
}  // namespace pb::itest
