#include "plugbridge/store/store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "support/small_disk.hpp"
#include "temp_db.hpp"

namespace pb::store {
namespace {

namespace fs = std::filesystem;

class StoreTest : public TempDbTest {
 protected:
  bool table_exists(const std::string& name) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE name = ?", -1, &s, nullptr);
    sqlite3_bind_text(s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    const bool found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    sqlite3_close(db);
    return found;
  }

  static ReadingRow reading(const std::string& cid, uint32_t boot, uint32_t seq, int64_t ts) {
    ReadingRow r;
    r.cid = cid;
    r.boot = boot;
    r.seq = seq;
    r.ts_ms = ts;
    r.flags = 3;
    r.voltage_mv = 230123;
    r.current_ua = 4999999;
    r.power_mw = 1100000 + seq;
    r.apparent_mva = 1150000;
    r.power_factor_e4 = 9567;
    r.energy_mwh = 0xFFFFFFFFull + 12345;  // beyond 32 bits
    r.energy_epoch = 65535;
    return r;
  }
  static EventRow event(const std::string& cid, int64_t ts, const std::string& kind,
                        std::optional<uint32_t> boot, std::optional<uint32_t> seq) {
    EventRow e;
    e.cid = cid;
    e.ts_ms = ts;
    e.kind = kind;
    e.boot = boot;
    e.seq = seq;
    e.value = -7;
    e.detail = R"({"cause":"button"})";
    return e;
  }
};

TEST_F(StoreTest, FreshDatabaseIsAtLatestVersion) {
  ASSERT_GE(Store::latest_schema_version(), 1);
  Store s(db_);
  EXPECT_EQ(s.schema_version(), Store::latest_schema_version());
  EXPECT_EQ(s.count_readings(), 0u);
  EXPECT_TRUE(table_exists("readings"));
  EXPECT_TRUE(table_exists("events"));
  EXPECT_TRUE(table_exists("events_record"));
}

TEST_F(StoreTest, EmbeddedMigrationsAreNumberedInOrder) {
  const auto& list = embedded_migrations();
  ASSERT_FALSE(list.empty());
  for (size_t i = 0; i < list.size(); ++i) {
    EXPECT_EQ(list[i].number, static_cast<int>(i + 1));
    EXPECT_FALSE(list[i].sql.empty());
  }
  EXPECT_EQ(list[0].name, "0001_initial.sql");
}

TEST_F(StoreTest, ReopenIsIdempotentAndKeepsData) {
  {
    Store s(db_);
    s.commit({reading("a", 1, 1, 100)}, {});
  }
  Store s(db_);
  EXPECT_EQ(s.schema_version(), Store::latest_schema_version());
  EXPECT_EQ(s.count_readings(), 1u);
}

TEST_F(StoreTest, NewerSchemaIsRefusedNamingBothVersions) {
  { Store s(db_); }
  const int newer = Store::latest_schema_version() + 5;
  raw_exec("PRAGMA user_version = " + std::to_string(newer));
  try {
    Store s(db_);
    FAIL() << "opened a newer database";
  } catch (const StoreError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("schema version " + std::to_string(newer)), std::string::npos) << m;
    EXPECT_NE(m.find("version " + std::to_string(Store::latest_schema_version()) + " known"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find(db_), std::string::npos) << m;
  }
}

TEST_F(StoreTest, FailingMigrationRollsBackCompletely) {
  const std::vector<Migration> good = {
      {1, "0001_a.sql", "CREATE TABLE a (x INTEGER);"},
  };
  { Store s(db_, StoreOptions{.migrations = &good}); }
  // Migration 2 creates a table, inserts, then fails: none of it may remain.
  const std::vector<Migration> bad = {
      good[0],
      {2, "0002_bad.sql",
       "CREATE TABLE b (x INTEGER); INSERT INTO a VALUES (1); INSERT INTO nosuch VALUES (1);"},
      {3, "0003_never.sql", "CREATE TABLE c (x INTEGER);"},
  };
  try {
    Store s(db_, StoreOptions{.migrations = &bad});
    FAIL() << "bad migration applied";
  } catch (const StoreError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("0002_bad.sql"), std::string::npos) << m;
    EXPECT_NE(m.find("nosuch"), std::string::npos) << m;
    EXPECT_NE(m.find("stays at schema version 1"), std::string::npos) << m;
  }
  EXPECT_FALSE(table_exists("b"));
  EXPECT_FALSE(table_exists("c"));
  Store s(db_, StoreOptions{.migrations = &good});
  EXPECT_EQ(s.schema_version(), 1);
  // The insert into "a" was rolled back too: open raw and count.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM a", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_F(StoreTest, MigrationsApplyInOrderEachSettingVersion) {
  const std::vector<Migration> list = {
      {1, "0001_a.sql", "CREATE TABLE a (x INTEGER);"},
      {2, "0002_b.sql", "ALTER TABLE a ADD COLUMN y INTEGER NOT NULL DEFAULT 2;"},
  };
  Store s(db_, StoreOptions{.migrations = &list});
  EXPECT_EQ(s.schema_version(), 2);
  const std::vector<Migration> gap = {list[1]};
  EXPECT_THROW(Store(db_, StoreOptions{.migrations = &gap}), StoreError);
}

TEST_F(StoreTest, CommitRoundTripsAndIgnoresDuplicates) {
  Store s(db_);
  const std::vector<ReadingRow> rs = {reading("a", 7, 1, 1000), reading("a", 7, 2, 2000),
                                      reading("b", 1, 1, 1500)};
  const std::vector<EventRow> es = {event("a", 1500, "relay", 7, 3),
                                    event("a", 1600, "command", std::nullopt, std::nullopt)};
  CommitResult r = s.commit(rs, es);
  EXPECT_EQ(r.readings_inserted, 3u);
  EXPECT_EQ(r.readings_duplicate, 0u);
  EXPECT_EQ(r.events_inserted, 2u);
  EXPECT_EQ(r.events_duplicate, 0u);

  // Resent batch (socket did not get the Ack): socket records are duplicates, a gateway event is new.
  r = s.commit(rs, es);
  EXPECT_EQ(r.readings_inserted, 0u);
  EXPECT_EQ(r.readings_duplicate, 3u);
  EXPECT_EQ(r.events_inserted, 1u);
  EXPECT_EQ(r.events_duplicate, 1u);

  // Duplicates inside one batch.
  r = s.commit({reading("c", 1, 1, 10), reading("c", 1, 1, 11)}, {});
  EXPECT_EQ(r.readings_inserted, 1u);
  EXPECT_EQ(r.readings_duplicate, 1u);

  EXPECT_EQ(s.count_readings(), 4u);
  EXPECT_EQ(s.count_readings("a"), 2u);
  EXPECT_EQ(s.count_readings("zz"), 0u);

  const auto got = s.readings("a", 0, 10000);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], rs[0]);
  EXPECT_EQ(got[1], rs[1]);
  EXPECT_EQ(s.readings("c", 0, 100)[0].ts_ms, 10);  // the first copy wins

  const auto ev = s.events("a", 0, 10000);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0], es[0]);
  EXPECT_EQ(ev[1], es[1]);
  EXPECT_FALSE(ev[1].seq.has_value());
}

TEST_F(StoreTest, BadRowsRollBackTheWholeBatch) {
  Store s(db_);
  EventRow half = event("a", 1, "relay", 1, std::nullopt);
  EXPECT_THROW(s.commit({reading("a", 1, 1, 1)}, {half}), StoreError);
  EXPECT_THROW(s.commit({reading("a", 1, 2, 1), reading("", 1, 3, 1)}, {}), StoreError);
  EXPECT_EQ(s.count_readings(), 0u);
  // The connection is usable afterwards.
  EXPECT_EQ(s.commit({reading("a", 1, 1, 1)}, {}).readings_inserted, 1u);
}

TEST_F(StoreTest, LastSeqCoversReadingsAndEventsPerBoot) {
  Store s(db_);
  EXPECT_EQ(s.last_seq("a", 1), 0u);
  s.commit({reading("a", 1, 1, 1), reading("a", 1, 2, 2), reading("a", 2, 1, 3)},
           {event("a", 2, "relay", 1, 5), event("a", 2, "command", std::nullopt, std::nullopt),
            event("b", 2, "relay", 1, 9)});
  EXPECT_EQ(s.last_seq("a", 1), 5u);  // from the event
  EXPECT_EQ(s.last_seq("a", 2), 1u);
  EXPECT_EQ(s.last_seq("a", 3), 0u);
  EXPECT_EQ(s.last_seq("b", 1), 9u);
  s.commit({reading("a", 1, 6, 4)}, {});
  EXPECT_EQ(s.last_seq("a", 1), 6u);
  EXPECT_EQ(s.last_seq("a", 4294967295u), 0u);
  s.commit({reading("a", 4294967295u, 4294967295u, 5)}, {});
  EXPECT_EQ(s.last_seq("a", 4294967295u), 4294967295u);
}

TEST_F(StoreTest, QueriesHonourRangeAndOrder) {
  Store s(db_);
  EXPECT_FALSE(s.latest_reading("a").has_value());
  s.commit(
      {reading("a", 1, 3, 300), reading("a", 1, 1, 100), reading("a", 1, 2, 200), reading("b", 1, 1, 999)},
      {event("a", 250, "relay", 1, 4), event("b", 150, "over_current", 1, 2),
       event("a", 50, "command", std::nullopt, std::nullopt)});
  ASSERT_TRUE(s.latest_reading("a").has_value());
  EXPECT_EQ(s.latest_reading("a")->seq, 3u);
  EXPECT_EQ(s.latest_reading("b")->ts_ms, 999);

  auto r = s.readings("a", 100, 300);  // half-open: 300 excluded
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].seq, 1u);
  EXPECT_EQ(r[1].seq, 2u);
  EXPECT_TRUE(s.readings("a", 301, 1000).empty());

  auto all = s.events("", 0, 1000);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].kind, "command");
  EXPECT_EQ(all[1].kind, "over_current");
  EXPECT_EQ(all[2].kind, "relay");
  EXPECT_EQ(s.events("b", 0, 1000).size(), 1u);
  EXPECT_EQ(s.events("a", 51, 1000).size(), 1u);
}

TEST_F(StoreTest, ReadOnlyOpenWhileAnotherConnectionWrites) {
  Store writer(db_);
  writer.commit({reading("a", 1, 1, 1)}, {});
  Store reader(db_, true);
  EXPECT_EQ(reader.count_readings(), 1u);
  EXPECT_THROW(reader.commit({reading("a", 1, 2, 2)}, {}), StoreError);

  writer.commit({reading("a", 1, 2, 2)}, {});
  EXPECT_EQ(reader.count_readings(), 2u);  // sees the new commit
  EXPECT_EQ(reader.last_seq("a", 1), 2u);

  // A long read does not block the writer in WAL mode.
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open_v2(db_.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "BEGIN; SELECT count(*) FROM readings;", nullptr, nullptr, nullptr),
              SQLITE_OK);
    StoreOptions fast;
    fast.busy_timeout_ms = 0;  // any lock wait would fail immediately
    Store writer2(db_, fast);
    EXPECT_EQ(writer2.commit({reading("a", 1, 3, 3)}, {}).readings_inserted, 1u);
    sqlite3_exec(raw, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(raw);
  }
  EXPECT_EQ(reader.count_readings(), 3u);
}

TEST_F(StoreTest, ReadOnlyRefusesMissingOrOldDatabase) {
  EXPECT_THROW(Store(db_, true), StoreError);
  EXPECT_FALSE(fs::exists(db_));
  raw_exec("CREATE TABLE x (y INTEGER);");
  try {
    Store s(db_, true);
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot migrate"), std::string::npos) << e.what();
  }
}

TEST_F(StoreTest, NotADatabaseIsAClearError) {
  std::ofstream(db_) << std::string(4096, 'x');
  try {
    Store s(db_);
    FAIL() << "opened garbage";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("not a database"), std::string::npos) << e.what();
  }
}

TEST_F(StoreTest, InMemoryDatabaseWorks) {
  Store s(":memory:");
  EXPECT_EQ(s.schema_version(), Store::latest_schema_version());
  EXPECT_EQ(s.commit({reading("a", 1, 1, 1)}, {}).readings_inserted, 1u);
  EXPECT_EQ(s.count_readings("a"), 1u);
}

TEST_F(StoreTest, InvalidSynchronousModeRejected) {
  StoreOptions o;
  o.synchronous = "FULL; DROP TABLE readings";
  EXPECT_THROW(Store(db_, o), StoreError);
}

TEST_F(StoreTest, ThousandReadingsPerCommitIsFast) {
  Store s(db_);
  std::vector<ReadingRow> batch;
  for (uint32_t i = 1; i <= 1000; ++i) batch.push_back(reading("perf", 1, i, i));
  s.commit({reading("warm", 1, 1, 1)}, {});
  const auto t0 = std::chrono::steady_clock::now();
  const CommitResult r = s.commit(batch, {});
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.readings_inserted, 1000u);
  // Target is a few ms on a Pi; the bound is loose for sanitizer builds and slow CI disks.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 500);
  std::cout << "1000 readings committed in "
            << std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() << " us\n";
}

TEST_F(StoreTest, BucketUpsertAddsSumsAndMergesMinMax) {
  Store s(db_);
  EnergyUpdate u1;
  u1.buckets.push_back({"a", 900000, 100, 2, 300, 100, 200, 229000, 231000, 500});
  u1.buckets.push_back({"a", 1800000, 7, 0, 0, 0, 0, 0, 0, 0});  // gap energy only: NULL stats
  u1.states.push_back({"a", 1, 5, 1000, 12345, 2, 107});
  const CommitResult r = s.commit({reading("a", 1, 5, 1000)}, {}, u1);
  EXPECT_EQ(r.readings_inserted, 1u);
  EnergyUpdate u2;
  u2.buckets.push_back({"a", 900000, 50, 1, 50, 50, 50, 232000, 232000, 400});
  u2.buckets.push_back({"a", 1800000, 3, 1, 80, 80, 80, 230000, 230000, 300});
  u2.states.push_back({"a", 1, 6, 2000, 12400, 2, 160});
  s.commit({}, {}, u2);
  const auto b = s.buckets("a", 0, 10'000'000);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], (BucketRow{"a", 900000, 150, 3, 350, 50, 200, 229000, 232000, 500}));
  EXPECT_EQ(b[1], (BucketRow{"a", 1800000, 10, 1, 80, 80, 80, 230000, 230000, 300}));
  EXPECT_EQ(s.energy_sum("a", 0, 1800000), 150);
  EXPECT_EQ(s.energy_sum("a", 0, 1800001), 160);
  EXPECT_EQ(s.energy_sum("b", 0, 1800001), 0);
  const auto states = s.energy_states();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0], (EnergyStateRow{"a", 1, 6, 2000, 12400, 2, 160}));
}

TEST_F(StoreTest, EnergyUpdateRollsBackWithTheReadings) {
  Store s(db_);
  EnergyUpdate u;
  u.buckets.push_back({"a", 0, 100, 1, 1, 1, 1, 1, 1, 1});
  u.states.push_back({"", 1, 1, 0, 0, 0, 0});  // invalid: the whole commit fails
  EXPECT_THROW(s.commit({reading("a", 1, 1, 1)}, {}, u), StoreError);
  EXPECT_EQ(s.count_readings(), 0u);
  EXPECT_TRUE(s.buckets("a", INT64_MIN, INT64_MAX).empty());
  EXPECT_TRUE(s.energy_states().empty());
}

TEST_F(StoreTest, ReadTransactionSeesOneSnapshotWhileAnotherConnectionCommits) {
  Store writer(db_);
  EnergyUpdate u;
  u.buckets = {{"a", 0, 100, 0, 0, 0, 0, 0, 0, 0}, {"b", 0, 100, 0, 0, 0, 0, 0, 0, 0}};
  u.states = {{"a", 1, 1, 0, 0, 0, 100}};
  writer.commit({}, {}, u);
  Store reader(db_, true);
  u.states = {{"a", 1, 2, 0, 0, 0, 200}, {"b", 1, 2, 0, 0, 0, 100}};
  {
    Store::ReadTransaction snapshot(reader);
    writer.commit({reading("a", 1, 2, 1)}, {}, u);  // one commit adding to both sockets
    EXPECT_EQ(reader.energy_sum("a", 0, 900000), 100);
    EXPECT_EQ(reader.energy_sum("b", 0, 900000), 100);
    EXPECT_EQ(reader.energy_states().size(), 1u);
    EXPECT_EQ(reader.count_readings(), 0u);
  }
  EXPECT_EQ(reader.energy_sum("b", 0, 900000), 200);  // ended: the next read sees the commit
  EXPECT_EQ(reader.energy_states().size(), 2u);
  // Without one, each query is its own snapshot.
  EXPECT_EQ(reader.energy_sum("a", 0, 900000), 200);
  writer.commit({}, {}, u);
  EXPECT_EQ(reader.energy_sum("b", 0, 900000), 300);
}

TEST_F(StoreTest, PruneDeletesOldReadingsInBoundedBatches) {
  Store s(db_);
  std::vector<ReadingRow> rows;
  for (uint32_t i = 1; i <= 10; ++i) rows.push_back(reading("a", 1, i, i * 1000));
  rows.push_back(reading("b", 1, 1, 1000));
  s.commit(rows, {});
  EXPECT_EQ(s.prune_readings("a", 8000, 3), 3u);  // oldest first, at most 3
  EXPECT_EQ(s.readings("a", 0, 100000).front().seq, 4u);
  EXPECT_EQ(s.prune_readings("a", 8000, 100), 4u);
  EXPECT_EQ(s.prune_readings("a", 8000, 100), 0u);
  EXPECT_EQ(s.count_readings("a"), 3u);
  EXPECT_EQ(s.count_readings("b"), 1u);  // other sockets untouched
  EXPECT_EQ(s.last_seq("a", 1), 10u);
}

TEST_F(StoreTest, OutboxChangesApplyInOrderAndSurviveReopen) {
  auto row = [](int64_t ord, const std::string& cid, int dp, bool event, const std::string& value) {
    return OutboxRow{ord, cid, dp, event, 1000 * ord, value};
  };
  {
    Store s(db_);
    EXPECT_TRUE(s.outbox_rows().empty());
    s.apply_outbox({{false, row(7, "a", 1, true, "false")},
                    {false, row(3, "a", 3, false, "120000")},
                    {false, row(9, "b", 19, true, "4")},
                    {false, row(3, "a", 3, false, "999")},  // ord already stored: ignored
                    {true, row(9, "", 0, false, "")},       // delete by ord
                    {false, row(9, "b", 19, true, "0")}});  // and again, in order
    // Outbox rows ride in the readings transaction, and roll back with it.
    EXPECT_THROW(s.commit({reading("", 1, 1, 1)}, {}, {}, {{true, row(7, "", 0, false, "")}}), StoreError);
    s.commit({reading("a", 1, 1, 1)}, {}, {}, {{false, row(12, "a", 5, false, "2300000")}});
  }
  Store s(db_);
  const std::vector<OutboxRow> want{row(3, "a", 3, false, "120000"), row(7, "a", 1, true, "false"),
                                    row(9, "b", 19, true, "0"), row(12, "a", 5, false, "2300000")};
  EXPECT_EQ(s.outbox_rows(), want);
  EXPECT_EQ(s.count_readings(), 1u);
  EXPECT_THROW(s.apply_outbox({{false, row(20, "", 1, true, "true")}}), StoreError);
  EXPECT_EQ(s.outbox_rows(), want);  // the failed batch left nothing behind
}

// --- storage faults ---

TEST_F(StoreTest, NotADatabaseIsDamaged) {
  std::ofstream(db_) << std::string(4096, 'x');
  try {
    Store s(db_);
    FAIL() << "opened garbage";
  } catch (const StoreError& e) {
    EXPECT_TRUE(damaged(e)) << e.code();
    const std::string m = damaged_message(db_, e.what());
    EXPECT_NE(m.find("plugbridge db recover"), std::string::npos) << m;
  }
}

TEST_F(StoreTest, FileProblemSeesTheFileDeletedOrReplaced) {
  Store s(db_);
  EXPECT_EQ(s.file_problem(), std::nullopt);
  fs::copy_file(db_, dir_ / "copy.db");
  fs::rename(dir_ / "copy.db", db_);
  ASSERT_TRUE(s.file_problem().has_value());
  EXPECT_NE(s.file_problem()->find("replaced by another file"), std::string::npos) << *s.file_problem();
  fs::remove(db_);
  ASSERT_TRUE(s.file_problem().has_value());
  EXPECT_NE(s.file_problem()->find("was deleted"), std::string::npos) << *s.file_problem();
}

class DamagedStoreTest : public StoreTest {
 protected:
  // A database of a few hundred pages, checkpointed into the main file.
  void fill() {
    Store s(db_);
    std::vector<ReadingRow> rows;
    for (uint32_t i = 1; i <= 5000; ++i) rows.push_back(reading("s" + std::to_string(i % 7), 1, i, i * 1000));
    s.commit(rows, {});
    ASSERT_TRUE(s.checkpoint());
  }
  // Page 20 of 4096 bytes (somewhere in the readings table) overwritten with junk.
  void damage_page_20() {
    std::fstream f(db_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(19 * 4096);
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
};

TEST_F(DamagedStoreTest, QuickCheckFindsADamagedPage) {
  fill();
  EXPECT_TRUE(check_file(db_, std::chrono::seconds(10)).ok);
  damage_page_20();
  const IntegrityReport file = check_file(db_, std::chrono::seconds(10));
  EXPECT_FALSE(file.ok);
  EXPECT_TRUE(file.complete);
  ASSERT_FALSE(file.problems.empty());
  // The daemon's start: either the open itself or its quick_check finds it.
  try {
    Store s(db_);
    const IntegrityReport r = s.quick_check(std::chrono::seconds(10));
    EXPECT_FALSE(r.ok) << "quick_check missed the damaged page";
  } catch (const StoreError& e) {
    EXPECT_TRUE(damaged(e)) << e.what();
  }
}

TEST_F(DamagedStoreTest, RecoverCopiesEveryReadableRowAroundADamagedPage) {
  fill();
  {
    Store s(db_);
    EnergyUpdate e;
    e.buckets.push_back({.cid = "s1", .start_ms = 900000, .energy_mwh = 42, .samples = 1, .power_sum_mw = 5});
    e.states.push_back(
        {.cid = "s1", .boot = 1, .seq = 9, .ts_ms = 900000, .energy_mwh = 42, .total_mwh = 42});
    s.commit({}, {}, e);
    ASSERT_TRUE(s.checkpoint());
  }
  damage_page_20();
  const std::string out = (dir_ / "new.db").string();
  const RecoverReport report = recover_file(db_, out);
  int64_t readings = -1;
  bool damaged_seen = false;
  for (const auto& t : report.tables) {
    if (t.name == "readings") readings = t.rows;
    damaged_seen = damaged_seen || t.damaged;
  }
  EXPECT_TRUE(damaged_seen);
  EXPECT_GT(readings, 4800) << "more than a page lost";
  EXPECT_LT(readings, 5000) << "the damaged page's rows cannot be there";
  EXPECT_TRUE(check_file(out, std::chrono::seconds(10), true).ok);
  // The daemon opens it; energy is whole and the hourly rollup (filled by a trigger) not doubled.
  Store s(out);
  EXPECT_EQ(s.schema_version(), Store::latest_schema_version());
  EXPECT_EQ(s.count_readings(), static_cast<size_t>(readings));
  EXPECT_EQ(s.energy_sum("s1", 0, 3'600'000 * 2), 42);
  EXPECT_EQ(s.energy_states().at(0).total_mwh, 42);
  EXPECT_THROW(recover_file(db_, out), StoreError) << "an existing file is never overwritten";
}

TEST_F(DamagedStoreTest, QuickCheckStopsAtItsTimeBudget) {
  fill();
  Store s(db_);
  const IntegrityReport r = s.quick_check(std::chrono::milliseconds(0));
  EXPECT_FALSE(r.complete);
  EXPECT_TRUE(r.ok) << "an unfinished check is not damage";
  const IntegrityReport all = s.quick_check(std::chrono::seconds(30));
  EXPECT_TRUE(all.complete);
  EXPECT_TRUE(all.ok);
}

TEST_F(StoreTest, AReadOnlyFileSystemIsRefusedAtOpenWithTheReason) {
  if (auto why = test::SmallDisk::unavailable()) GTEST_SKIP() << *why;
  test::SmallDisk disk(1 << 20);
  const std::string path = (disk.path() / "t.db").string();
  { Store s(path); }
  disk.set_read_only(true);
  try {
    Store s(path);
    FAIL() << "a read-only database opened for writing";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("mounted read-only"), std::string::npos) << e.what();
  }
  try {
    Store s((disk.path() / "new.db").string());
    FAIL() << "created a database on a read-only file system";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("mounted read-only"), std::string::npos) << e.what();
  }
}

TEST_F(StoreTest, ADiskFullCommitSaysSo) {
  if (auto why = test::SmallDisk::unavailable()) GTEST_SKIP() << *why;
  test::SmallDisk disk(1 << 20);
  Store s((disk.path() / "t.db").string());
  disk.fill();
  std::vector<ReadingRow> rows;
  for (uint32_t i = 1; i <= 200; ++i) rows.push_back(reading("a", 1, i, i * 1000));
  try {
    s.commit(rows, {});
    FAIL() << "committed on a full disk";
  } catch (const StoreError& e) {
    EXPECT_TRUE(e.disk_full()) << e.what();
  }
  disk.free();
  EXPECT_EQ(s.commit(rows, {}).readings_inserted, 200u) << "the same connection works again";
}

}  // namespace
}  // namespace pb::store
