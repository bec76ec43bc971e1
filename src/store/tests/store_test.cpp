#include "plugbridge/store/store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
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

  static EnergyUpdate samples(std::vector<SampleRow> rows, std::vector<EnergyStateRow> states = {}) {
    return EnergyUpdate{std::move(rows), std::move(states)};
  }
  // Rows of a query on the file, bypassing the Store: each row's columns joined by '|'.
  std::vector<std::string> dump(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    std::vector<std::string> out;
    while (s != nullptr && sqlite3_step(s) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
        row += (i ? "|" : "") + std::string(t != nullptr ? t : "NULL");
      }
      out.push_back(row);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
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

// A whole UTC hour (2026-09-21T12:00:00Z).
constexpr int64_t kT0 = 1'789'999'200'000;
constexpr int64_t kMinute = 60'000, kQuarter = 900'000, kHour = 3'600'000;

TEST_F(StoreTest, FreshDatabaseIsAtLatestVersion) {
  ASSERT_GE(Store::latest_schema_version(), 5);
  Store s(db_);
  EXPECT_EQ(s.schema_version(), Store::latest_schema_version());
  EXPECT_EQ(s.count_samples(), 0u);
  EXPECT_EQ(s.rolled_up_ms(), 0);
  EXPECT_EQ(s.oldest_sample_ms(), std::nullopt);
  for (const char* t : {"samples", "sockets", "history_marks", "events", "events_record", "energy_buckets",
                        "energy_hours", "energy_state", "outbox", "history_days", "energy_days"})
    EXPECT_TRUE(table_exists(t)) << t;
  EXPECT_FALSE(table_exists("readings"));
  EXPECT_FALSE(table_exists("energy_hours_on_insert"));
  EXPECT_FALSE(table_exists("energy_hours_on_update"));
}

TEST_F(StoreTest, EmbeddedMigrationsAreNumberedInOrder) {
  const auto& list = embedded_migrations();
  ASSERT_FALSE(list.empty());
  for (size_t i = 0; i < list.size(); ++i) {
    EXPECT_EQ(list[i].number, static_cast<int>(i + 1));
    EXPECT_FALSE(list[i].sql.empty());
  }
  EXPECT_EQ(list[0].name, "0001_initial.sql");
  EXPECT_EQ(list[4].name, "0005_samples.sql");
  EXPECT_EQ(list[5].name, "0006_events_index.sql");
  EXPECT_EQ(list[6].name, "0007_energy_days.sql");
}

TEST_F(StoreTest, ReopenIsIdempotentAndKeepsData) {
  {
    Store s(db_);
    s.commit({}, samples({sample("a", kT0, 5, 1, 100)}));
    s.roll_up(kT0 + kHour);
  }
  Store s(db_);
  EXPECT_EQ(s.schema_version(), Store::latest_schema_version());
  EXPECT_EQ(s.count_samples(), 1u);
  EXPECT_EQ(s.rolled_up_ms(), kT0 + kHour);
  EXPECT_EQ(s.energy_sum("a", 0, INT64_MAX), 5);
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
  // The insert into "a" was rolled back too.
  EXPECT_EQ(dump("SELECT count(*) FROM a"), std::vector<std::string>{"0"});
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

// Migration 0005 on a schema-4 database that stored raw readings: they become one-minute samples
// (energy = the counter's increase within a boot and epoch), a socket with readings but no energy
// state gets one from its newest reading, the buckets and hours stay as they were and the mark
// keeps the migrated samples (whose energy is in the buckets already) from being counted again.
TEST_F(StoreTest, MigrationFromSchema4TurnsReadingsIntoMinuteSamples) {
  const std::vector<Migration> v4(embedded_migrations().begin(), embedded_migrations().begin() + 4);
  { Store s(db_, StoreOptions{.migrations = &v4}); }
  auto reading = [&](const std::string& cid, int boot, int seq, int64_t ts, int flags, int v, int i, int p,
                     int64_t mwh, int epoch = 0) {
    raw_exec("INSERT INTO readings VALUES ('" + cid + "'," + std::to_string(boot) + "," +
             std::to_string(seq) + "," + std::to_string(ts) + "," + std::to_string(flags) + "," +
             std::to_string(v) + "," + std::to_string(i) + "," + std::to_string(p) + ",0,0," +
             std::to_string(mwh) + "," + std::to_string(epoch) + ")");
  };
  // a: no energy state. Minute 0: two readings (the first of its boot counts 0); a reading without
  // a meter value is no sample and no baseline; minute 1 counts from the reading before that one;
  // a reboot starts its own count; a counter going down counts 0.
  reading("a", 1, 1, kT0 + 1000, 8, 230000, 1000, 100000, 5000);
  reading("a", 1, 2, kT0 + 30000, 8 | 16, 231000, 2000, 300000, 5100);
  reading("a", 1, 3, kT0 + 50000, 16, 0, 0, 0, 0);
  reading("a", 1, 4, kT0 + 61000, 8, 229000, 1500, 200000, 5250);
  reading("a", 2, 1, kT0 + 125000, 8, 230500, 500, 50000, 40);
  reading("a", 2, 2, kT0 + 130000, 8, 230600, 700, 70000, 90);
  reading("a", 2, 3, kT0 + 180000, 8, 230700, 800, 80000, 80);
  // b: has an energy state, which stays; its newest reading is the newest of all.
  reading("b", 7, 2, kT0 + 2 * kHour + 5000, 8, 230000, 100, 1000, 100, 3);
  reading("b", 7, 3, kT0 + 2 * kHour + 15000, 8, 230000, 300, 3000, 130, 3);
  raw_exec("INSERT INTO energy_state VALUES ('b', 7, 3, " + std::to_string(kT0 + 2 * kHour + 15000) +
           ", 130, 3, 999)");
  // The buckets (and, by the schema-4 triggers, the hours) the daemon had written; c has no readings.
  raw_exec("INSERT INTO energy_buckets VALUES ('a', " + std::to_string(kT0) +
           ", 777, 5, 750000, 50000, 300000, 229000, 231000, 2000), ('c', " + std::to_string(kT0 + kQuarter) +
           ", 11, 0, 0, NULL, NULL, NULL, NULL, NULL)");
  const std::string rollups =
      "SELECT 'b', * FROM energy_buckets UNION ALL SELECT 'h', * FROM energy_hours ORDER BY 1, 2, 3";
  const std::vector<std::string> before = dump(rollups);
  ASSERT_EQ(before.size(), 4u);

  Store s(db_);
  EXPECT_EQ(s.schema_version(), Store::latest_schema_version());
  EXPECT_FALSE(table_exists("readings"));
  EXPECT_FALSE(table_exists("readings_cid_ts"));
  EXPECT_FALSE(table_exists("energy_hours_on_insert"));
  EXPECT_FALSE(table_exists("energy_hours_on_update"));
  EXPECT_EQ(dump(rollups), before);
  EXPECT_EQ(dump("SELECT cid FROM sockets ORDER BY id"), (std::vector<std::string>{"a", "b", "c"}));

  EXPECT_EQ(
      s.samples("a", INT64_MIN, INT64_MAX),
      (std::vector<SampleRow>{{"a", kT0, 100, 2, 400000, 100000, 300000, 230000, 231000, 2000},
                              {"a", kT0 + kMinute, 150, 1, 200000, 200000, 200000, 229000, 229000, 1500},
                              {"a", kT0 + 2 * kMinute, 50, 2, 120000, 50000, 70000, 230500, 230600, 700},
                              {"a", kT0 + 3 * kMinute, 0, 1, 80000, 80000, 80000, 230700, 230700, 800}}));
  EXPECT_EQ(s.samples("b", INT64_MIN, INT64_MAX),
            (std::vector<SampleRow>{{"b", kT0 + 2 * kHour, 30, 2, 4000, 1000, 3000, 230000, 230000, 300}}));
  EXPECT_EQ(s.count_samples("c"), 0u);
  EXPECT_EQ(s.count_samples(), 5u);
  EXPECT_EQ(s.oldest_sample_ms(), kT0);

  const std::vector<EnergyStateRow> states = s.energy_states();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0], (EnergyStateRow{"a", 2, 3, kT0 + 180000, 80, 0, 0}));
  EXPECT_EQ(states[1], (EnergyStateRow{"b", 7, 3, kT0 + 2 * kHour + 15000, 130, 3, 999}));
  EXPECT_EQ(s.last_seq("a", 2), 3u);
  EXPECT_EQ(s.last_seq("b", 7), 3u);

  // The hour after the newest sample: everything migrated counts once, from the buckets.
  EXPECT_EQ(s.rolled_up_ms(), kT0 + 3 * kHour);
  EXPECT_EQ(s.energy_sum("a", INT64_MIN, INT64_MAX), 777);
  EXPECT_EQ(s.energy_sum("b", INT64_MIN, INT64_MAX), 0);
  EXPECT_EQ(s.energy_sum("c", INT64_MIN, INT64_MAX), 11);
  EXPECT_EQ(s.buckets("a", INT64_MIN, INT64_MAX),
            (std::vector<BucketRow>{{"a", kT0, 777, 5, 750000, 50000, 300000, 229000, 231000, 2000}}));
  EXPECT_EQ(s.roll_up(kT0 + 3 * kHour), 0u);
  EXPECT_EQ(dump(rollups), before);
  EXPECT_EQ(s.prune_samples(INT64_MAX, 100), 5u);  // all rolled up: may go
  EXPECT_EQ(dump(rollups), before);

  // A late sample goes into its bucket and its hour, once (no trigger adds it a second time).
  s.commit({}, samples({sample("a", kT0 + 5 * kMinute, 3)}));
  EXPECT_EQ(dump("SELECT energy_mwh FROM energy_hours WHERE cid = 'a'"), std::vector<std::string>{"780"});
  EXPECT_EQ(s.energy_sum("a", INT64_MIN, INT64_MAX), 780);
}

// An event commit writes the table's last page and one index page: the one index de-duplicates
// and serves the per-socket queries.
TEST_F(StoreTest, EventsHaveOneIndexThatServesThePerSocketQueries) {
  { Store s(db_); }
  EXPECT_EQ(
      dump("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL"),
      std::vector<std::string>{"events_record"});
  const auto plan = dump(
      "EXPLAIN QUERY PLAN SELECT * FROM events WHERE cid = 'a' AND ts_ms >= 0 AND ts_ms < 9 "
      "ORDER BY ts_ms, id");
  ASSERT_FALSE(plan.empty());
  EXPECT_NE(plan[0].find("USING INDEX events_record (cid=?)"), std::string::npos) << plan[0];
}

TEST_F(StoreTest, CommitStoresEventsAndIgnoresDuplicates) {
  Store s(db_);
  const std::vector<EventRow> es = {event("a", 1500, "relay", 7, 3),
                                    event("a", 1600, "command", std::nullopt, std::nullopt)};
  CommitResult r = s.commit(es, samples({sample("a", 0, 10, 1, 100), sample("b", 0, 20, 1, 200)}));
  EXPECT_EQ(r.samples_written, 2u);
  EXPECT_EQ(r.events_inserted, 2u);
  EXPECT_EQ(r.events_duplicate, 0u);

  // Resent batch (socket did not get the Ack): socket records are duplicates, a gateway event is new.
  r = s.commit(es);
  EXPECT_EQ(r.samples_written, 0u);
  EXPECT_EQ(r.events_inserted, 1u);
  EXPECT_EQ(r.events_duplicate, 1u);

  // Duplicates inside one batch.
  r = s.commit({event("c", 10, "relay", 1, 1), event("c", 11, "relay", 1, 1)});
  EXPECT_EQ(r.events_inserted, 1u);
  EXPECT_EQ(r.events_duplicate, 1u);
  EXPECT_EQ(s.events("c", 0, 100).at(0).ts_ms, 10);  // the first copy wins

  EXPECT_EQ(s.count_samples(), 2u);
  EXPECT_EQ(s.count_samples("a"), 1u);
  EXPECT_EQ(s.count_samples("zz"), 0u);

  const auto ev = s.events("a", 0, 10000);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0], es[0]);
  EXPECT_EQ(ev[1], es[1]);
  EXPECT_FALSE(ev[1].seq.has_value());
  EXPECT_EQ(s.commit({}).events_inserted, 0u);  // nothing to do
}

// A sample of a (cid, start) already stored is added to it: sums added, minima and maxima merged;
// a sample without readings (energy only) leaves them NULL until one with readings comes.
// The voltage and current are NULL exactly when no reading measured them, whatever the power did.
TEST_F(StoreTest, SamplesOfTheSameIntervalAddUp) {
  Store s(db_);
  EnergyUpdate u1;
  u1.samples.push_back({"a", kT0, 100, 2, 300, 100, 200, 229000, 231000, 500});
  u1.samples.push_back({"a", kT0 + kMinute, 7, 0, 0, 0, 0, {}, {}, {}});
  u1.samples.push_back({"b", kT0, 1, 1, 10, 10, 10, 230000, 230000, 1});
  u1.states.push_back({"a", 1, 5, 1000, 12345, 2, 107});
  EXPECT_EQ(s.commit({}, u1).samples_written, 3u);
  EnergyUpdate u2;
  u2.samples.push_back({"a", kT0, 50, 1, 50, 50, 50, 232000, 232000, 400});
  u2.samples.push_back({"a", kT0 + kMinute, 3, 1, 80, 80, 80, 230000, 230000, 300});
  u2.samples.push_back({"a", kT0 + 2 * kMinute, 4, 0, 0, 0, 0, {}, {}, {}});
  u2.states.push_back({"a", 1, 6, 2000, 12400, 2, 160});
  EXPECT_EQ(s.commit({}, u2).samples_written, 3u);
  EXPECT_EQ(s.samples("a", INT64_MIN, INT64_MAX),
            (std::vector<SampleRow>{{"a", kT0, 150, 3, 350, 50, 200, 229000, 232000, 500},
                                    {"a", kT0 + kMinute, 10, 1, 80, 80, 80, 230000, 230000, 300},
                                    {"a", kT0 + 2 * kMinute, 4, 0, 0, 0, 0, {}, {}, {}}}));
  EXPECT_EQ(dump("SELECT count(*) FROM samples WHERE power_min_mw IS NULL"), std::vector<std::string>{"1"});
  EXPECT_EQ(dump("SELECT count(*) FROM samples WHERE voltage_min_mv IS NULL"), std::vector<std::string>{"1"});
  EXPECT_EQ(s.count_samples("a"), 3u);
  // Read as a bucket: the samples of its quarter-hour summed.
  EXPECT_EQ(s.buckets("a", INT64_MIN, INT64_MAX),
            (std::vector<BucketRow>{{"a", kT0, 164, 4, 430, 50, 200, 229000, 232000, 500}}));
  EXPECT_EQ(s.energy_sum("a", kT0, kT0 + 1), 164);
  EXPECT_EQ(s.energy_sum("a", kT0 + 1, INT64_MAX), 0);  // the bucket starts before
  EXPECT_EQ(s.energy_sum("b", INT64_MIN, INT64_MAX), 1);
  const auto states = s.energy_states();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0], (EnergyStateRow{"a", 1, 6, 2000, 12400, 2, 160}));
  // The same once rolled up.
  EXPECT_GT(s.roll_up(kT0 + kHour), 0u);
  EXPECT_EQ(s.buckets("a", INT64_MIN, INT64_MAX),
            (std::vector<BucketRow>{{"a", kT0, 164, 4, 430, 50, 200, 229000, 232000, 500}}));
  EXPECT_EQ(s.energy_sum("a", INT64_MIN, INT64_MAX), 164);
  EXPECT_EQ(s.count_samples(), 4u);  // rolling up keeps the samples
}

TEST_F(StoreTest, BadRowsRollBackTheWholeBatch) {
  Store s(db_);
  EventRow half = event("a", 1, "relay", 1, std::nullopt);
  EXPECT_THROW(s.commit({half}, samples({sample("a", 0, 1)})), StoreError);
  EXPECT_THROW(s.commit({}, samples({sample("a", 0, 1), sample("", 0, 1)})), StoreError);
  EXPECT_THROW(s.commit({event("", 1, "relay", 1, 1)}, samples({sample("a", 0, 1)})), StoreError);
  EXPECT_EQ(s.count_samples(), 0u);
  EXPECT_TRUE(s.events("", INT64_MIN, INT64_MAX).empty());
  // The connection is usable afterwards.
  EXPECT_EQ(s.commit({}, samples({sample("a", 0, 1)})).samples_written, 1u);
  EXPECT_EQ(s.energy_sum("a", INT64_MIN, INT64_MAX), 1);
}

// A failed commit rolls back the socket ids it added; the ids this connection remembers must go
// with them, or the next new socket would get an id that another cid is remembered by.
TEST_F(StoreTest, SocketIdsOfAFailedCommitAreForgotten) {
  Store s(db_);
  s.commit({}, samples({sample("a", kT0, 1)}));
  // Fails after "new" got its id: on the energy state, on the outbox row.
  EXPECT_THROW(s.commit({}, samples({sample("new", kT0, 2)}, {{"", 1, 1, 0, 0, 0, 0}})), StoreError);
  EXPECT_THROW(s.commit({}, samples({sample("new", kT0, 2)}), {{false, {1, "", 1, true, 0, "1", ""}}}),
               StoreError);
  // "b" gets the id "new" had in the failed transactions.
  s.commit({}, samples({sample("b", kT0, 3)}));
  s.commit({}, samples({sample("new", kT0, 4), sample("b", kT0 + kMinute, 5)}));
  EXPECT_EQ(s.samples("new", INT64_MIN, INT64_MAX), (std::vector<SampleRow>{sample("new", kT0, 4)}));
  EXPECT_EQ(s.samples("b", INT64_MIN, INT64_MAX),
            (std::vector<SampleRow>{sample("b", kT0, 3), sample("b", kT0 + kMinute, 5)}));
  EXPECT_EQ(s.samples("a", INT64_MIN, INT64_MAX), (std::vector<SampleRow>{sample("a", kT0, 1)}));
  EXPECT_EQ(dump("SELECT cid FROM sockets ORDER BY id"), (std::vector<std::string>{"a", "b", "new"}));
  // Another connection reads the same ids.
  Store other(db_, true);
  EXPECT_EQ(other.samples("new", INT64_MIN, INT64_MAX), (std::vector<SampleRow>{sample("new", kT0, 4)}));
  EXPECT_EQ(other.count_samples("b"), 2u);
}

TEST_F(StoreTest, LastSeqCoversTheEnergyStateAndEventsPerBoot) {
  Store s(db_);
  EXPECT_EQ(s.last_seq("a", 1), 0u);
  s.commit({event("a", 2, "relay", 1, 5), event("a", 2, "command", std::nullopt, std::nullopt),
            event("b", 2, "relay", 1, 9)},
           samples({}, {{"a", 1, 2, 1, 0, 0, 0}}));
  EXPECT_EQ(s.last_seq("a", 1), 5u);  // from the event
  EXPECT_EQ(s.last_seq("a", 2), 0u);
  EXPECT_EQ(s.last_seq("b", 1), 9u);
  s.commit({}, samples({}, {{"a", 1, 6, 4, 0, 0, 0}}));
  EXPECT_EQ(s.last_seq("a", 1), 6u);  // from the state
  // A state of another boot says nothing about boot 1; the events of boot 1 still do.
  s.commit({}, samples({}, {{"a", 2, 1, 5, 0, 0, 0}}));
  EXPECT_EQ(s.last_seq("a", 1), 5u);
  EXPECT_EQ(s.last_seq("a", 2), 1u);
  s.commit({event("a", 6, "relay", 2, 3)});
  EXPECT_EQ(s.last_seq("a", 2), 3u);
  EXPECT_EQ(s.last_seq("a", 4294967295u), 0u);
  s.commit({}, samples({}, {{"a", 4294967295u, 4294967295u, 5, 0, 0, 0}}));
  EXPECT_EQ(s.last_seq("a", 4294967295u), 4294967295u);
}

TEST_F(StoreTest, QueriesHonourRangeAndOrder) {
  Store s(db_);
  EXPECT_FALSE(s.latest_sample("a").has_value());
  s.commit({event("a", 250, "relay", 1, 4), event("b", 150, "over_current", 1, 2),
            event("a", 50, "command", std::nullopt, std::nullopt)},
           samples({sample("a", kT0 + 2 * kMinute, 3), sample("a", kT0, 1), sample("a", kT0 + kMinute, 2),
                    sample("b", kT0 + 9 * kMinute, 9)},
                   {{"a", 1, 3, kT0 + 2 * kMinute, 0, 0, 0}, {"b", 1, 1, kT0 + 9 * kMinute, 0, 0, 0}}));
  ASSERT_TRUE(s.latest_sample("a").has_value());
  EXPECT_EQ(s.latest_sample("a"), sample("a", kT0 + 2 * kMinute, 3));
  EXPECT_EQ(s.latest_sample("b")->start_ms, kT0 + 9 * kMinute);

  auto r = s.samples("a", kT0, kT0 + 2 * kMinute);  // half-open: the end excluded
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].energy_mwh, 1);
  EXPECT_EQ(r[1].energy_mwh, 2);
  EXPECT_TRUE(s.samples("a", kT0 + 2 * kMinute + 1, INT64_MAX).empty());

  auto all = s.events("", 0, 1000);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].kind, "command");
  EXPECT_EQ(all[1].kind, "over_current");
  EXPECT_EQ(all[2].kind, "relay");
  EXPECT_EQ(s.events("b", 0, 1000).size(), 1u);
  EXPECT_EQ(s.events("a", 51, 1000).size(), 1u);
  EXPECT_EQ(s.newest_time_ms(), kT0 + 9 * kMinute);
}

// latest_sample looks back a day from the socket's energy state (not through every sample).
TEST_F(StoreTest, LatestSampleIsFoundNearTheEnergyState) {
  Store s(db_);
  s.commit({}, samples({sample("a", kT0, 1, 1, 100), sample("a", kT0 + kMinute, 2, 1, 200),
                        sample("b", kT0 - 2 * 86'400'000, 3, 1, 300)},
                       {{"a", 1, 1, kT0 + kMinute + 5000, 0, 0, 0}, {"b", 1, 1, kT0, 0, 0, 0}}));
  EXPECT_EQ(s.latest_sample("a"), sample("a", kT0 + kMinute, 2, 1, 200));
  EXPECT_EQ(s.latest_sample("b"), std::nullopt);  // two days before its state
  s.commit({}, samples({sample("b", kT0 - 86'400'000, 4, 1, 400)}));
  EXPECT_EQ(s.latest_sample("b"), sample("b", kT0 - 86'400'000, 4, 1, 400));
  EXPECT_EQ(s.latest_sample("zz"), std::nullopt);
}

TEST_F(StoreTest, ReadOnlyOpenWhileAnotherConnectionWrites) {
  Store writer(db_);
  writer.commit({}, samples({sample("a", 0, 1)}, {{"a", 1, 1, 0, 0, 0, 0}}));
  Store reader(db_, true);
  EXPECT_EQ(reader.count_samples(), 1u);
  EXPECT_THROW(reader.commit({}, samples({sample("a", kMinute, 1)})), StoreError);

  writer.commit({}, samples({sample("a", kMinute, 1)}, {{"a", 1, 2, 0, 0, 0, 0}}));
  EXPECT_EQ(reader.count_samples(), 2u);  // sees the new commit
  EXPECT_EQ(reader.last_seq("a", 1), 2u);

  // A long read does not block the writer in WAL mode.
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open_v2(db_.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "BEGIN; SELECT count(*) FROM samples;", nullptr, nullptr, nullptr),
              SQLITE_OK);
    StoreOptions fast;
    fast.busy_timeout_ms = 0;  // any lock wait would fail immediately
    Store writer2(db_, fast);
    EXPECT_EQ(writer2.commit({}, samples({sample("a", 2 * kMinute, 1)})).samples_written, 1u);
    EXPECT_GT(writer2.roll_up(kHour), 0u);
    sqlite3_exec(raw, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(raw);
  }
  EXPECT_EQ(reader.count_samples(), 3u);
  EXPECT_EQ(reader.rolled_up_ms(), kHour);
  EXPECT_EQ(reader.energy_sum("a", INT64_MIN, INT64_MAX), 3);
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
  EXPECT_EQ(s.commit({}, samples({sample("a", 0, 1)})).samples_written, 1u);
  EXPECT_EQ(s.count_samples("a"), 1u);
}

TEST_F(StoreTest, InvalidSynchronousModeRejected) {
  StoreOptions o;
  o.synchronous = "FULL; DROP TABLE samples";
  EXPECT_THROW(Store(db_, o), StoreError);
}

TEST_F(StoreTest, AThousandSocketsSamplesGoInOneCommit) {
  // The daemon's worst commit of samples; its speed is pb-bench-load's to measure.
  Store s(db_);
  auto batch = [](int64_t start) {
    EnergyUpdate u;
    for (int i = 0; i < 1000; ++i)
      u.samples.push_back(sample("perf-" + std::to_string(i), start, 5, 6, 1000));
    return u;
  };
  s.commit({}, batch(kT0));  // the first batch adds the socket ids
  const CommitResult r = s.commit({}, batch(kT0 + kMinute));
  EXPECT_EQ(r.samples_written, 1000u);
  EXPECT_EQ(s.count_samples(), 2000u);
}

TEST_F(StoreTest, EnergyUpdateRollsBackAsAWhole) {
  Store s(db_);
  EnergyUpdate u;
  u.samples.push_back({"a", 0, 100, 1, 1, 1, 1, 1, 1, 1});
  u.states.push_back({"", 1, 1, 0, 0, 0, 0});  // invalid: the whole commit fails
  EXPECT_THROW(s.commit({event("a", 1, "relay", 1, 1)}, u), StoreError);
  EXPECT_EQ(s.count_samples(), 0u);
  EXPECT_TRUE(s.buckets("a", INT64_MIN, INT64_MAX).empty());
  EXPECT_TRUE(s.energy_states().empty());
  EXPECT_TRUE(s.events("", INT64_MIN, INT64_MAX).empty());
  // Also a late sample's bucket and hour.
  s.commit({}, samples({sample("a", 0, 1)}));
  s.roll_up(kHour);
  EXPECT_THROW(s.commit({}, samples({sample("a", kMinute, 100)}, {{"", 1, 1, 0, 0, 0, 0}})), StoreError);
  EXPECT_EQ(s.energy_sum("a", INT64_MIN, INT64_MAX), 1);
  EXPECT_EQ(dump("SELECT energy_mwh FROM energy_hours"), std::vector<std::string>{"1"});
}

TEST_F(StoreTest, ReadTransactionSeesOneSnapshotWhileAnotherConnectionCommits) {
  Store writer(db_);
  EnergyUpdate u;
  u.samples = {{"a", 0, 100, 0, 0, 0, 0, 0, 0, 0}, {"b", 0, 100, 0, 0, 0, 0, 0, 0, 0}};
  u.states = {{"a", 1, 1, 0, 0, 0, 100}};
  writer.commit({}, u);
  Store reader(db_, true);
  u.states = {{"a", 1, 2, 0, 0, 0, 200}, {"b", 1, 2, 0, 0, 0, 100}};
  {
    Store::ReadTransaction snapshot(reader);
    writer.commit({event("a", 1, "relay", 1, 2)}, u);  // one commit adding to both sockets
    EXPECT_EQ(reader.energy_sum("a", 0, 900000), 100);
    EXPECT_EQ(reader.energy_sum("b", 0, 900000), 100);
    EXPECT_EQ(reader.energy_states().size(), 1u);
    EXPECT_TRUE(reader.events("", INT64_MIN, INT64_MAX).empty());
    // A roll-up committed meanwhile is not seen either: the same energy, not twice.
    writer.roll_up(kHour);
    EXPECT_EQ(reader.energy_sum("b", 0, 900000), 100);
    EXPECT_EQ(reader.buckets("b", 0, 900000).at(0).energy_mwh, 100);
  }
  EXPECT_EQ(reader.energy_sum("b", 0, 900000), 200);  // ended: the next read sees the commit
  EXPECT_EQ(reader.energy_states().size(), 2u);
  // Without one, each query is its own snapshot.
  EXPECT_EQ(reader.energy_sum("a", 0, 900000), 200);
  writer.commit({}, u);  // late now: into the bucket directly
  EXPECT_EQ(reader.energy_sum("b", 0, 900000), 300);
  EXPECT_EQ(reader.buckets("b", 0, 900000), (std::vector<BucketRow>{{"b", 0, 300, 0, 0, 0, 0, 0, 0, 0}}));
}

// Retention deletes the oldest samples of all sockets, in bounded batches, and never one that is
// not rolled up yet: its energy is in no bucket. What readers answer does not change.
TEST_F(StoreTest, PruneSamplesOldestFirstNeverPastTheMark) {
  Store s(db_);
  EnergyUpdate u;
  for (int64_t i = 0; i < 10; ++i) u.samples.push_back(sample("a", kT0 + i * 10 * kMinute, 1 + i, 1, 100));
  u.samples.push_back(sample("b", kT0 + 5 * kMinute, 100, 1, 100));
  s.commit({}, u);
  EXPECT_EQ(s.oldest_sample_ms(), kT0);
  EXPECT_EQ(s.prune_samples(INT64_MAX, 100), 0u) << "nothing is rolled up yet";
  s.roll_up(kT0 + kHour);  // a: 6 samples before, 4 after
  const int64_t a_total = s.energy_sum("a", INT64_MIN, INT64_MAX), b_total = s.energy_sum("b", 0, INT64_MAX);
  EXPECT_EQ(a_total, 55);
  EXPECT_EQ(s.prune_samples(kT0 + 5 * kMinute, 100), 1u);  // before the cut-off only
  EXPECT_EQ(s.oldest_sample_ms(), kT0 + 5 * kMinute);
  EXPECT_EQ(s.prune_samples(INT64_MAX, 2), 2u);  // oldest first, across sockets: b, then a at 10 min
  EXPECT_EQ(s.count_samples("b"), 0u);
  EXPECT_EQ(s.samples("a", INT64_MIN, INT64_MAX).front().start_ms, kT0 + 20 * kMinute);
  EXPECT_EQ(s.prune_samples(INT64_MAX, 100), 4u);
  EXPECT_EQ(s.prune_samples(INT64_MAX, 100), 0u);
  EXPECT_EQ(s.count_samples("a"), 4u);  // those at and after the mark
  EXPECT_EQ(s.oldest_sample_ms(), kT0 + kHour);
  EXPECT_EQ(s.energy_sum("a", INT64_MIN, INT64_MAX), a_total);
  EXPECT_EQ(s.energy_sum("b", INT64_MIN, INT64_MAX), b_total);
  s.roll_up(kT0 + 2 * kHour);
  EXPECT_EQ(s.prune_samples(INT64_MAX, 100), 4u);
  EXPECT_EQ(s.oldest_sample_ms(), std::nullopt);
  EXPECT_EQ(s.energy_sum("a", INT64_MIN, INT64_MAX), a_total);
}

TEST_F(StoreTest, OutboxChangesApplyInOrderAndSurviveReopen) {
  auto row = [](int64_t ord, const std::string& cid, int dp, bool event, const std::string& value) {
    return OutboxRow{ord, cid, dp, event, 1000 * ord, value, ""};
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
    // Outbox rows ride in the commit's transaction, and roll back with it.
    EXPECT_THROW(s.commit({}, samples({sample("", 0, 1)}), {{true, row(7, "", 0, false, "")}}), StoreError);
    s.commit({}, samples({sample("a", 0, 1)}), {{false, row(12, "a", 5, false, "2300000")}});
  }
  Store s(db_);
  const std::vector<OutboxRow> want{row(3, "a", 3, false, "120000"), row(7, "a", 1, true, "false"),
                                    row(9, "b", 19, true, "0"), row(12, "a", 5, false, "2300000")};
  EXPECT_EQ(s.outbox_rows(), want);
  EXPECT_EQ(s.count_samples(), 1u);
  EXPECT_THROW(s.apply_outbox({{false, row(20, "", 1, true, "true")}}), StoreError);
  EXPECT_EQ(s.outbox_rows(), want);  // the failed batch left nothing behind
}

TEST_F(StoreTest, EachUplinkReadsItsOwnOutboxRowsAndOrdsAreSharedAcrossThem) {
  {
    Store s(db_);
    EXPECT_EQ(s.next_outbox_ord(), 1);
    EXPECT_EQ(s.next_outbox_ord(), 2);  // handed out, not stored: still never given again
    s.apply_outbox({{false, OutboxRow{5, "a", 1, true, 5000, "1", ""}},
                    {false, OutboxRow{6, "a", 1, true, 6000, "0", "aliyun"}},
                    {false, OutboxRow{8, "b", 3, false, 8000, "12.5", "tencent"}}});
    EXPECT_EQ(s.next_outbox_ord(), 3);
    EXPECT_EQ(s.outbox_rows(), (std::vector<OutboxRow>{{5, "a", 1, true, 5000, "1", ""}}));
    EXPECT_EQ(s.outbox_rows("aliyun"), (std::vector<OutboxRow>{{6, "a", 1, true, 6000, "0", "aliyun"}}));
    EXPECT_EQ(s.outbox_rows("tencent"),
              (std::vector<OutboxRow>{{8, "b", 3, false, 8000, "12.5", "tencent"}}));
    EXPECT_TRUE(s.outbox_rows("other").empty());
    // A delete is by ord alone: one uplink's delete never touches another's row.
    s.apply_outbox({{true, OutboxRow{6, "", 0, false, 0, "", "aliyun"}}});
    EXPECT_TRUE(s.outbox_rows("aliyun").empty());
    EXPECT_EQ(s.outbox_rows("tencent").size(), 1u);
  }
  Store s(db_);
  EXPECT_EQ(s.next_outbox_ord(), 9) << "above every stored row, whichever uplink it is for";
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
  static constexpr int kSamples = 10000;
  // A database of a few hundred pages, checkpointed into the main file: a minute of samples of 7
  // sockets after another (1 mWh each), rolled up but for the last hour.
  void fill() {
    Store s(db_);
    EnergyUpdate u;
    for (int i = 0; i < kSamples; ++i)
      u.samples.push_back(sample("s" + std::to_string(i % 7), kT0 + (i / 7) * kMinute, 1, 1, 1000 + i));
    s.commit({}, u);
    s.roll_up(kT0 + (kSamples / 7 / 60) * kHour);
    ASSERT_TRUE(s.checkpoint());
  }
  // Page 20 of 4096 bytes (somewhere in the samples table) overwritten with junk.
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
  int64_t s1_total = 0, s1_hours = 0, rolled_up = 0;
  {
    Store s(db_);
    EnergyUpdate e;
    e.samples.push_back({.cid = "s1", .start_ms = kT0, .energy_mwh = 42, .samples = 1, .power_sum_mw = 5});
    e.states.push_back({.cid = "s1", .boot = 1, .seq = 9, .ts_ms = kT0, .energy_mwh = 42, .total_mwh = 42});
    s.commit({}, e);  // a late sample: into its bucket and hour as well
    s1_total = s.energy_sum("s1", INT64_MIN, INT64_MAX);
    s1_hours = s.energy_sum("s1", kT0, kT0 + 3 * kHour);
    rolled_up = s.rolled_up_ms();
    ASSERT_TRUE(s.checkpoint());
  }
  EXPECT_EQ(s1_total, (kSamples + 6) / 7 + 42);
  damage_page_20();
  const std::string out = (dir_ / "new.db").string();
  const RecoverReport report = recover_file(db_, out);
  int64_t rows = -1;
  bool damaged_seen = false;
  for (const auto& t : report.tables) {
    if (t.name == "samples") rows = t.rows;
    damaged_seen = damaged_seen || t.damaged;
  }
  EXPECT_TRUE(damaged_seen);
  EXPECT_GT(rows, kSamples - 300) << "more than a page lost";
  EXPECT_LT(rows, kSamples) << "the damaged page's rows cannot be there";
  EXPECT_TRUE(check_file(out, std::chrono::seconds(10), true).ok);
  // The daemon opens it; energy is whole (the lost samples were rolled up, the mark came along),
  // the late sample in the hours once.
  Store s(out);
  EXPECT_EQ(s.schema_version(), Store::latest_schema_version());
  EXPECT_EQ(s.count_samples(), static_cast<size_t>(rows));
  EXPECT_EQ(s.rolled_up_ms(), rolled_up);
  EXPECT_EQ(s.energy_sum("s1", INT64_MIN, INT64_MAX), s1_total);
  EXPECT_EQ(s.energy_sum("s1", kT0, kT0 + 3 * kHour), s1_hours);
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
  EnergyUpdate u;
  for (int i = 0; i < 2000; ++i)
    u.samples.push_back(sample("s" + std::to_string(i % 50), i / 50 * kMinute, 1, 1, i));
  try {
    s.commit({}, u);
    FAIL() << "committed on a full disk";
  } catch (const StoreError& e) {
    EXPECT_TRUE(e.disk_full()) << e.what();
  }
  disk.free();
  EXPECT_EQ(s.commit({}, u).samples_written, 2000u) << "the same connection works again";
  EXPECT_EQ(s.samples("s1", INT64_MIN, INT64_MAX).size(), 40u) << "with the socket ids it had to forget";
}

}  // namespace
}  // namespace pb::store
