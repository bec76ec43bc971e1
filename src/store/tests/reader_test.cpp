// store::Reader against a temporary database written through Store::commit: each query, the
// snapshot guarantee, and the schema checks of a read-only open.
#include "plugbridge/store/reader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "temp_db.hpp"

namespace pb::store {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kQuarterMs = 900'000, kHourMs = 3'600'000;
// 2026-03-28T00:00:00Z; Berlin leaves CET for CEST at 2026-03-29T01:00:00Z.
constexpr int64_t kMar28 = 1'774'656'000'000;

class ReaderTest : public TempDbTest {
 protected:
  static BucketUpdate bucket(const std::string& cid, int64_t start_ms, int64_t mwh, int64_t samples = 0,
                             int64_t power_mw = 0) {
    BucketUpdate b;
    b.cid = cid;
    b.start_ms = start_ms;
    b.energy_mwh = mwh;
    b.samples = samples;
    b.power_sum_mw = power_mw * samples;
    if (samples > 0) {
      b.power_min_mw = power_mw - 10;
      b.power_max_mw = power_mw + 10;
      b.voltage_min_mv = 229000 + power_mw % 7;
      b.voltage_max_mv = 231000 + power_mw % 5;
      b.current_max_ua = power_mw * 5;
    }
    return b;
  }
  static ReadingRow reading(const std::string& cid, uint32_t seq, int64_t ts) {
    ReadingRow r;
    r.cid = cid;
    r.boot = 2;
    r.seq = seq;
    r.ts_ms = ts;
    r.flags = 1u << 3;
    r.voltage_mv = 230000 + seq;
    r.current_ua = 1000 * seq;
    r.power_mw = 500 * seq;
    r.apparent_mva = 510 * seq;
    r.power_factor_e4 = 9800;
    r.energy_mwh = 0x1'0000'0000ull + seq;
    r.energy_epoch = 3;
    return r;
  }
  void commit_buckets(std::vector<BucketUpdate> buckets, std::vector<EnergyStateRow> states = {}) {
    Store s(db_);
    s.commit({}, {}, EnergyUpdate{std::move(buckets), std::move(states)});
  }
  static std::vector<BucketRow> rows(const Reader& r, Reader::Rollup table, const std::string& cid,
                                     int64_t from, int64_t to, bool energy_only = false) {
    std::vector<BucketRow> out;
    r.each_row(
        table, cid, from, to, [&](const BucketRow& b) { out.push_back(b); }, energy_only);
    return out;
  }
};

TEST_F(ReaderTest, RefusesAMissingANewerAndAnOlderSchema) {
  EXPECT_THROW(Reader{db_}, StoreError);  // never creates the file
  EXPECT_FALSE(fs::exists(db_));

  { Store s(db_); }
  EXPECT_EQ(Reader(db_).path(), db_);
  const int newer = Store::latest_schema_version() + 1;
  raw_exec("PRAGMA user_version = " + std::to_string(newer));
  try {
    Reader r(db_);
    FAIL() << "opened a newer database";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("schema version " + std::to_string(newer) + ", newer than"),
              std::string::npos)
        << e.what();
  }

  fs::remove(db_);
  const std::vector<Migration> older(embedded_migrations().begin(), embedded_migrations().end() - 1);
  { Store s(db_, StoreOptions{.migrations = &older}); }
  try {
    Reader r(db_);
    FAIL() << "opened an older database";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot migrate"), std::string::npos) << e.what();
  }
  Store check(db_, StoreOptions{.read_only = true, .migrations = &older});
  EXPECT_EQ(check.schema_version(), static_cast<int>(older.size()));  // the Reader left it as it was
}

TEST_F(ReaderTest, DevicesStatesAndLatestReading) {
  {
    Store s(db_);
    EnergyUpdate up;
    up.states = {{"b", 2, 9, 5000, 777, 1, 4242}, {"a", 1, 1, 100, 5, 0, 10}};
    s.commit({reading("a", 1, 1000), reading("a", 2, 3000), reading("a", 3, 2000)}, {}, up);
  }
  const Reader r(db_);
  const std::vector<EnergyStateRow> states = r.energy_states();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].cid, "a");  // by cid
  EXPECT_EQ(states[1], (EnergyStateRow{"b", 2, 9, 5000, 777, 1, 4242}));
  EXPECT_EQ(r.latest_reading("a"), reading("a", 2, 3000));  // newest by time, not by seq
  EXPECT_FALSE(r.latest_reading("b").has_value());
}

// energy_sum over local days: Berlin's 23-hour day of the spring change and Kathmandu's days
// (UTC+5:45, starting at a quarter past the hour) come out as the sum of their quarter-hours.
TEST_F(ReaderTest, EnergySumOverLocalDaysAcrossTheDstChangeAndOffHourZones) {
  std::vector<BucketUpdate> buckets;
  for (int64_t t = kMar28; t < kMar28 + 3 * 86'400'000; t += kQuarterMs)
    buckets.push_back(bucket("a", t, 1 + (t / kQuarterMs) % 5));
  commit_buckets(buckets);
  const Reader r(db_);
  auto quarters = [&](int64_t from, int64_t to) {
    int64_t sum = 0;
    for (const BucketRow& b : rows(r, Reader::Rollup::kQuarter, "a", from, to)) sum += b.energy_mwh;
    return sum;
  };
  const int64_t berlin_29 = kMar28 + 23 * kHourMs;                   // 2026-03-29 00:00 CET
  const int64_t berlin_30 = berlin_29 + 23 * kHourMs;                // 2026-03-30 00:00 CEST
  const int64_t kathmandu_29 = kMar28 + 18 * kHourMs + 15 * 60'000;  // 2026-03-29 00:00 +05:45
  EXPECT_EQ(rows(r, Reader::Rollup::kQuarter, "a", berlin_29, berlin_30).size(), 92u);
  for (const auto& [from, to] :
       {std::pair{berlin_29, berlin_30}, std::pair{kathmandu_29, kathmandu_29 + 86'400'000},
        std::pair{kathmandu_29, kathmandu_29 + kQuarterMs},
        std::pair{kMar28 + kHourMs, kMar28 + 5 * kHourMs}}) {
    SCOPED_TRACE(std::to_string(from) + " " + std::to_string(to));
    EXPECT_GT(quarters(from, to), 0);
    EXPECT_EQ(r.energy_sum("a", from, to), quarters(from, to));
  }
  EXPECT_EQ(r.energy_sum("a", INT64_MIN, INT64_MAX), quarters(INT64_MIN, INT64_MAX));
  EXPECT_EQ(r.energy_sum("a", berlin_30, berlin_29), 0);
  EXPECT_EQ(r.energy_sum("b", berlin_29, berlin_30), 0);
}

// The hourly rollup holds per hour what its quarter-hours hold: sums added, minima and maxima
// over the quarter-hours with samples (a quarter-hour without samples adds energy only).
TEST_F(ReaderTest, HourlyRowsAreTheirQuarterHoursRolledUp) {
  std::mt19937 rng(5);
  std::vector<BucketUpdate> buckets;
  for (int64_t t = kMar28; t < kMar28 + 30 * kHourMs; t += kQuarterMs) {
    if (rng() % 5 == 0) continue;
    const int64_t samples = rng() % 4 == 0 ? 0 : 1 + rng() % 90;
    buckets.push_back(bucket("a", t, rng() % 100000, samples, 1000 + rng() % 500000));
    buckets.push_back(bucket("b", t, 7, 1, 99));
  }
  commit_buckets(buckets);
  const Reader r(db_);
  const int64_t from = kMar28 + 2 * kHourMs, to = kMar28 + 26 * kHourMs;
  const std::vector<BucketRow> hours = rows(r, Reader::Rollup::kHour, "a", from, to);
  ASSERT_EQ(hours.size(), 24u);
  for (const BucketRow& h : hours) {
    SCOPED_TRACE(h.start_ms);
    EXPECT_EQ(h.cid, "a");
    BucketRow want;
    want.cid = "a";
    want.start_ms = h.start_ms;
    for (const BucketRow& q : rows(r, Reader::Rollup::kQuarter, "a", h.start_ms, h.start_ms + kHourMs)) {
      want.energy_mwh += q.energy_mwh;
      if (q.samples == 0) continue;
      const bool first = want.samples == 0;
      want.power_min_mw = first ? q.power_min_mw : std::min(want.power_min_mw, q.power_min_mw);
      want.power_max_mw = std::max(want.power_max_mw, q.power_max_mw);
      want.voltage_min_mv = first ? q.voltage_min_mv : std::min(want.voltage_min_mv, q.voltage_min_mv);
      want.voltage_max_mv = std::max(want.voltage_max_mv, q.voltage_max_mv);
      want.current_max_ua = std::max(want.current_max_ua, q.current_max_ua);
      want.samples += q.samples;
      want.power_sum_mw += q.power_sum_mw;
    }
    EXPECT_EQ(h, want);
  }
  // energy_only reads start and energy, the rest stays 0.
  const std::vector<BucketRow> light = rows(r, Reader::Rollup::kHour, "a", from, to, true);
  ASSERT_EQ(light.size(), hours.size());
  for (size_t i = 0; i < light.size(); ++i)
    EXPECT_EQ(light[i], (BucketRow{"a", hours[i].start_ms, hours[i].energy_mwh}));
  // Quarter-hours: one socket, by time, in range.
  const std::vector<BucketRow> q = rows(r, Reader::Rollup::kQuarter, "b", from, from + kHourMs);
  ASSERT_FALSE(q.empty());
  for (size_t i = 0; i < q.size(); ++i) {
    EXPECT_EQ(q[i], bucket("b", q[i].start_ms, 7, 1, 99));
    EXPECT_GE(q[i].start_ms, from);
    EXPECT_LT(q[i].start_ms, from + kHourMs);
    if (i > 0) {
      EXPECT_GT(q[i].start_ms, q[i - 1].start_ms);
    }
  }
}

TEST_F(ReaderTest, EventsOfOneOrAllSocketsInRange) {
  {
    Store s(db_);
    s.commit({}, {{"b", 300, "relay", 1, 4, 1, R"({"cause":"button"})"},
                  {"a", 100, "command", std::nullopt, std::nullopt, 2001, "x"},
                  {"a", 300, "over_current", 1, 5, 5230, ""},
                  {"a", 900, "relay", 1, 6, 0, ""}});
  }
  const Reader r(db_);
  const std::vector<EventRow> all = r.events("", 100, 900);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0], (EventRow{"a", 100, "command", std::nullopt, std::nullopt, 2001, "x"}));
  EXPECT_EQ(all[1].cid, "b");  // same time: in insertion order
  EXPECT_EQ(all[2].kind, "over_current");
  const std::vector<EventRow> a = r.events("a", 101, 1000);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1], (EventRow{"a", 900, "relay", 1, 6, 0, ""}));
}

TEST_F(ReaderTest, ExportStreamsBucketsAndReadings) {
  {
    Store s(db_);
    EnergyUpdate up;
    up.buckets = {bucket("b", 0, 5, 3, 1000), bucket("a", kQuarterMs, 6), bucket("a", 0, 4, 2, 2000),
                  bucket("a", 2 * kQuarterMs, 9, 1, 10)};
    s.commit({reading("b", 1, 50), reading("a", 2, 70), reading("a", 1, 60), reading("b", 2, 5000)}, {}, up);
  }
  const Reader r(db_);
  std::vector<BucketRow> all;
  r.each_bucket("", 0, 2 * kQuarterMs, [&](const BucketRow& b) { all.push_back(b); });
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].start_ms, 0);
  EXPECT_EQ(all[1].start_ms, 0);
  EXPECT_NE(all[0].cid, all[1].cid);
  EXPECT_EQ(all[2], bucket("a", kQuarterMs, 6));  // no samples: minima and maxima read as 0
  std::vector<BucketRow> a;
  r.each_bucket("a", kQuarterMs, 3 * kQuarterMs, [&](const BucketRow& b) { a.push_back(b); });
  EXPECT_EQ(a, (std::vector<BucketRow>{bucket("a", kQuarterMs, 6), bucket("a", 2 * kQuarterMs, 9, 1, 10)}));

  EXPECT_EQ(r.count_readings("", 0, 5000), 3u);
  EXPECT_EQ(r.count_readings("b", 0, 5001), 2u);
  EXPECT_EQ(r.count_readings("c", 0, 5001), 0u);
  std::vector<ReadingRow> seen;
  r.each_reading("", 0, 10000, [&](const ReadingRow& x) {
    seen.push_back(x);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<ReadingRow>{reading("a", 1, 60), reading("a", 2, 70), reading("b", 1, 50),
                                           reading("b", 2, 5000)}));  // by cid, then time
  seen.clear();
  r.each_reading("b", 0, 10000, [&](const ReadingRow& x) {
    seen.push_back(x);
    return false;  // stop after the first
  });
  EXPECT_EQ(seen, (std::vector<ReadingRow>{reading("b", 1, 50)}));
  // A stopped scan leaves the statement ready for the next.
  EXPECT_EQ(r.count_readings("a", 0, 10000), 2u);
}

// A commit (adding to two sockets) made while a Snapshot lives is in none of its reads; made
// without one, the next read has it.
TEST_F(ReaderTest, ASnapshotSeesNoCommitMadeWhileItLives) {
  commit_buckets({bucket("a", kMar28, 10), bucket("b", kMar28, 20)}, {{"a", 1, 1, 0, 0, 0, 10}});
  Store writer(db_);
  const Reader r(db_);
  auto commit_more = [&](int64_t a_total) {
    writer.commit({}, {},
                  EnergyUpdate{{bucket("a", kMar28 + kHourMs, 1), bucket("b", kMar28 + kHourMs, 2)},
                               {{"a", 1, 1, 0, 0, 0, a_total}}});
  };
  auto read_all = [&] {
    int64_t hour_rows = 0;
    r.each_row(Reader::Rollup::kHour, "b", 0, INT64_MAX,
               [&](const BucketRow& b) { hour_rows += b.energy_mwh; });
    return std::vector<int64_t>{r.energy_sum("a", 0, INT64_MAX), hour_rows,
                                r.energy_states().at(0).total_mwh};
  };
  {
    const Reader::Snapshot snapshot(r);
    const std::vector<int64_t> before = read_all();
    EXPECT_EQ(before, (std::vector<int64_t>{10, 20, 10}));
    commit_more(11);
    EXPECT_EQ(read_all(), before);
  }
  EXPECT_EQ(read_all(), (std::vector<int64_t>{11, 22, 11}));
  commit_more(12);
  EXPECT_EQ(read_all(), (std::vector<int64_t>{12, 24, 12}));
}

// A Reader over a Store reads that Store's connection, its commits included.
TEST_F(ReaderTest, AReaderOverAStoreReadsItsConnection) {
  Store s(db_);
  const Reader r(s);
  EXPECT_EQ(r.path(), db_);
  EXPECT_EQ(r.energy_sum("a", 0, INT64_MAX), 0);
  s.commit({reading("a", 1, 10)}, {}, EnergyUpdate{{bucket("a", 0, 42)}, {}});
  EXPECT_EQ(r.energy_sum("a", 0, INT64_MAX), 42);
  EXPECT_EQ(r.latest_reading("a"), reading("a", 1, 10));
}

}  // namespace
}  // namespace pb::store
