// The daemon when its storage misbehaves: a full disk (readings held, nothing acked lost, a few log
// lines, resumes by itself), the database file deleted while running, a read-only database and a
// damaged one (both refused before the daemon says it is ready).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "plugbridge/store/store.hpp"
#include "scenario.hpp"
#include "support/small_disk.hpp"

namespace pb::itest {
namespace {

namespace fs = std::filesystem;

size_t count_lines(const test::Process& p, const std::string& needle) {
  size_t n = 0;
  for (const auto& l : p.stderr_lines()) n += l.find(needle) != std::string::npos;
  return n;
}

TEST(Storage, DiskFullHoldsReadingsUnackedAndResumesWithNothingAckedLost) {
  if (auto why = test::SmallDisk::unavailable()) GTEST_SKIP() << *why;
  test::SmallDisk disk(24 << 20);
  Scenario sc({.sockets = 5, .database = (disk.path() / "plugbridge.db").string()});
  sc.start_daemon();
  // 2 readings/s: a socket's 128-record buffer outlasts the ~25 s of full disk below, so every
  // record reaches the gateway (a fuller buffer would merge readings, by design).
  sc.start_sim(5, {"--watts", "100,800", "--reading-interval-ms", "500"});
  sc.wait_sessions(5);
  ASSERT_TRUE(test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > 50; }, 30s))
      << sc.sim().describe();

  disk.fill();
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("cannot write the database: .*full"), 20s))
      << sc.daemon().describe();
  // While the disk is full: acks stop (after at most the batch that was already committed), the
  // daemon keeps the sessions and says what is wrong to the CLI too.
  ASSERT_TRUE(
      test::wait_until([&] { return count_lines(sc.daemon(), "database still not writable") >= 1; }, 30s))
      << sc.daemon().describe();
  const size_t acked_while_full = sim_events(sc.sim(), "acked").size();
  const CliRun devices = cli(sc, {"devices"});
  EXPECT_NE(devices.err.find("cannot write the database"), std::string::npos) << devices.err;
  ASSERT_TRUE(
      test::wait_until([&] { return count_lines(sc.daemon(), "database still not writable") >= 2; }, 30s));
  EXPECT_EQ(sim_events(sc.sim(), "acked").size(), acked_while_full) << "acked while the disk was full";
  // About one line a second at most: here one every 10 s.
  const size_t error_lines = count_lines(sc.daemon(), "ERROR gateway");
  EXPECT_LE(error_lines, 4u) << sc.daemon().describe(40);

  disk.free();
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("database writable again"), 30s))
      << sc.daemon().describe();
  ASSERT_TRUE(
      test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > acked_while_full + 30; }, 30s));
  EXPECT_EQ(cli(sc, {"devices"}).err.find("cannot write"), std::string::npos);
  sc.sim().write_stdin("stats");
  nlohmann::json stats;
  ASSERT_TRUE(sc.sim().wait_for_stdout_line(
      [&](const std::string& line) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || j.value("ev", "") != "stats") return false;
        stats = j;
        return true;
      },
      10s));
  ASSERT_EQ(stats.value("dropped", -1), 0) << stats.dump();
  ASSERT_EQ(stats.value("coarsened", -1), 0) << "the sockets merged readings: the check below cannot hold";
  sc.sim().signal(SIGTERM);
  ASSERT_TRUE(sc.sim().wait_exit(20s));
  sc.daemon().signal(SIGTERM);
  EXPECT_EQ(sc.daemon().wait_exit(20s), 0) << sc.daemon().describe();
  EXPECT_EQ(unstored_acked_events(sc, 5), "");
  EXPECT_EQ(uncommitted_acked_records(sc, 5), "");
}

TEST(Storage, DatabaseDeletedWhileRunningStopsTheDaemonAndItsAcks) {
  Scenario sc({.sockets = 2});
  sc.start_daemon();
  sc.start_sim(2, {"--watts", "100", "--reading-interval-ms", "100"});
  sc.wait_sessions(2);
  ASSERT_TRUE(test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > 20; }, 30s));
  fs::remove(sc.db_path());
  // Found at the next commit or by the periodic check, whichever comes first: seconds, not never.
  EXPECT_EQ(sc.daemon().wait_exit(10s), 1) << sc.daemon().describe();
  EXPECT_GE(count_lines(sc.daemon(), "was deleted"), 1u) << sc.daemon().describe();
  // Started again (as systemd would), it makes a new database and the sockets carry on.
  const size_t acked_before = sim_events(sc.sim(), "acked").size();
  sc.start_daemon();
  ASSERT_TRUE(test::wait_until([&] { return sim_events(sc.sim(), "acked").size() > acked_before + 20; }, 30s))
      << sc.sim().describe() << sc.daemon().describe();
  ASSERT_TRUE(
      test::wait_until([&] { return store::Store(sc.db_path().string(), true).count_samples() > 0; }, 10s));
}

test::Process start_refused(const Scenario& sc) {
  return test::Process({test::binary("plugbridged").string(), "--config", sc.config_path().string()});
}

TEST(Storage, ReadOnlyDatabaseIsRefusedBeforeReady) {
  if (auto why = test::SmallDisk::unavailable()) GTEST_SKIP() << *why;
  test::SmallDisk disk(4 << 20);
  Scenario sc({.sockets = 1, .database = (disk.path() / "plugbridge.db").string()});
  { store::Store create(sc.db_path().string()); }
  disk.set_read_only(true);
  test::Process daemon = start_refused(sc);
  EXPECT_EQ(daemon.wait_exit(20s), 1) << daemon.describe();
  EXPECT_TRUE(daemon.wait_for_stderr(std::regex("is read-only: the file system .* is mounted read-only"), 1s))
      << daemon.describe();
  EXPECT_EQ(count_lines(daemon, "listening for sockets"), 0u) << "it got as far as serving";
}

TEST(Storage, DamagedDatabaseIsRefusedAtStartAndRecovered) {
  Scenario sc({.sockets = 1});
  {
    store::Store db(sc.db_path().string());
    store::EnergyUpdate up;
    // Recent: retention must not prune them once the daemon runs on the recovered file.
    const int64_t start = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count() -
                          6'000'000;
    for (int64_t i = 1; i <= 5000; ++i) {
      store::BucketUpdate b;
      b.cid = sc.cid(0);
      b.start_ms = start - start % 1000 + i * 1000;
      b.samples = 1;
      up.samples.push_back(b);
    }
    db.commit({}, up);
    ASSERT_TRUE(db.checkpoint());
  }
  {
    std::fstream f(sc.db_path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(19 * 4096);
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  test::Process daemon = start_refused(sc);
  EXPECT_EQ(daemon.wait_exit(30s), 1) << daemon.describe();
  EXPECT_TRUE(daemon.wait_for_stderr(std::regex("is damaged: .*plugbridge db recover"), 1s))
      << daemon.describe();
  EXPECT_EQ(count_lines(daemon, "listening for sockets"), 0u);

  const CliRun check = cli(sc, {"db", "check"});
  EXPECT_EQ(check.code, 3) << check.out << check.err;
  EXPECT_NE(check.out.find("damaged"), std::string::npos) << check.out;
  const CliRun recover = cli(sc, {"db", "recover"});
  ASSERT_EQ(recover.code, 0) << recover.out << recover.err;
  const std::string recovered = sc.db_path().string() + ".recovered";
  ASSERT_TRUE(fs::exists(recovered)) << recover.out;
  fs::rename(sc.db_path(), sc.db_path().string() + ".damaged");
  fs::rename(recovered, sc.db_path());
  EXPECT_EQ(cli(sc, {"db", "check"}).code, 0);
  sc.start_daemon();  // throws unless it serves
  sc.daemon().signal(SIGTERM);
  EXPECT_EQ(sc.daemon().wait_exit(20s), 0);
  const size_t kept = store::Store(sc.db_path().string(), true).count_samples();
  EXPECT_GT(kept, 4800u);
  EXPECT_LT(kept, 5000u);
}

}  // namespace
}  // namespace pb::itest
