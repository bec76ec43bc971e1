// store::Reader against a temporary database written through Store::commit: each query, the
// snapshot guarantee, and the schema checks of a read-only open.
#include "plugbridge/store/reader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <tuple>
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
    return sample(cid, start_ms, mwh, samples, power_mw);
  }
  // b's values added to a's (as the store merges samples into a bucket).
  static BucketRow merge(BucketRow a, const BucketRow& b) {
    a.energy_mwh += b.energy_mwh;
    if (b.samples > 0) {
      const bool first = a.samples == 0;
      a.power_min_mw = first ? b.power_min_mw : std::min(a.power_min_mw, b.power_min_mw);
      a.power_max_mw = first ? b.power_max_mw : std::max(a.power_max_mw, b.power_max_mw);
      a.voltage_min_mv = first ? b.voltage_min_mv : std::min(a.voltage_min_mv, b.voltage_min_mv);
      a.voltage_max_mv = first ? b.voltage_max_mv : std::max(a.voltage_max_mv, b.voltage_max_mv);
      a.current_max_ua = first ? b.current_max_ua : std::max(a.current_max_ua, b.current_max_ua);
      a.samples += b.samples;
      a.power_sum_mw += b.power_sum_mw;
    }
    return a;
  }
  // Commits rows of bucket shape as samples (not rolled up yet: readers sum them from the samples).
  void commit_buckets(std::vector<BucketUpdate> buckets, std::vector<EnergyStateRow> states = {}) {
    Store s(db_);
    s.commit({}, EnergyUpdate{std::move(buckets), std::move(states)});
  }
  // Rolls every sample up into the buckets and hours.
  void roll_up_all() {
    Store s(db_);
    s.roll_up(kMar28 + int64_t{400} * 86'400'000);
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

TEST_F(ReaderTest, DevicesStatesAndLatestSample) {
  {
    Store s(db_);
    EnergyUpdate up;
    up.samples = {bucket("a", kMar28 + 60'000, 1, 1, 100), bucket("a", kMar28 + 180'000, 2, 1, 300),
                  bucket("a", kMar28 + 120'000, 3, 1, 200)};
    up.states = {{"b", 2, 9, 5000, 777, 1, 4242}, {"a", 1, 1, kMar28 + 185'000, 5, 0, 10}};
    s.commit({}, up);
  }
  const Reader r(db_);
  const std::vector<EnergyStateRow> states = r.energy_states();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].cid, "a");  // by cid
  EXPECT_EQ(states[1], (EnergyStateRow{"b", 2, 9, 5000, 777, 1, 4242}));
  EXPECT_EQ(r.latest_sample("a"), bucket("a", kMar28 + 180'000, 2, 1, 300));  // newest by time
  EXPECT_FALSE(r.latest_sample("b").has_value());
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
  for (const bool rolled_up : {false, true}) {
    SCOPED_TRACE(rolled_up ? "rolled up" : "samples");
    if (rolled_up) roll_up_all();
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
  for (const bool rolled_up : {false, true}) {
    SCOPED_TRACE(rolled_up ? "rolled up" : "samples");
    if (rolled_up) roll_up_all();
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
}

TEST_F(ReaderTest, EventsOfOneOrAllSocketsInRange) {
  {
    Store s(db_);
    s.commit({{"b", 300, "relay", 1, 4, 1, R"({"cause":"button"})"},
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

// Export: the buckets of the rolled-up hours from energy_buckets, those of the samples not rolled
// up yet after them; the samples by time, then socket.
TEST_F(ReaderTest, ExportStreamsBucketsAndSamples) {
  {
    Store s(db_);
    // b is stored first: at the same start its samples come first.
    s.commit({}, EnergyUpdate{{bucket("b", 0, 5, 3, 1000)}, {}});
    s.commit({}, EnergyUpdate{{bucket("a", kQuarterMs, 6), bucket("a", 0, 4, 2, 2000),
                               bucket("a", 60'000, 1, 1, 20), bucket("a", 2 * kQuarterMs, 9, 1, 10),
                               bucket("b", 5 * 60'000, 2, 1, 30), bucket("a", kHourMs, 8, 1, 50)},
                              {}});
    s.roll_up(kHourMs);
  }
  const BucketRow a0 = merge(bucket("a", 0, 4, 2, 2000), bucket("a", 60'000, 1, 1, 20));
  const BucketRow b0 = merge(bucket("b", 0, 5, 3, 1000), bucket("b", 5 * 60'000, 2, 1, 30));
  EXPECT_EQ(a0, (BucketRow{"a", 0, 5, 3, 4020, 10, 2010, 229005, 231000, 10000}));
  const Reader r(db_);
  std::vector<BucketRow> all;
  r.each_bucket("", 0, 2 * kHourMs, [&](const BucketRow& b) { all.push_back(b); });
  ASSERT_EQ(all.size(), 5u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const BucketRow& x, const BucketRow& y) { return x.start_ms < y.start_ms; }));
  std::sort(all.begin(), all.begin() + 2,
            [](const BucketRow& x, const BucketRow& y) { return x.cid < y.cid; });
  // Without samples, minima and maxima read as 0.
  EXPECT_EQ(all,
            (std::vector<BucketRow>{a0, b0, bucket("a", kQuarterMs, 6), bucket("a", 2 * kQuarterMs, 9, 1, 10),
                                    bucket("a", kHourMs, 8, 1, 50)}));
  std::vector<BucketRow> a;
  r.each_bucket("a", kQuarterMs, kHourMs + 1, [&](const BucketRow& b) { a.push_back(b); });
  EXPECT_EQ(a, (std::vector<BucketRow>{bucket("a", kQuarterMs, 6), bucket("a", 2 * kQuarterMs, 9, 1, 10),
                                       bucket("a", kHourMs, 8, 1, 50)}));

  EXPECT_EQ(r.count_samples("", 0, kQuarterMs), 4u);
  EXPECT_EQ(r.count_samples("b", 0, kHourMs), 2u);
  EXPECT_EQ(r.count_samples("a", 0, INT64_MAX), 5u);
  EXPECT_EQ(r.count_samples("c", 0, INT64_MAX), 0u);
  std::vector<SampleRow> seen;
  r.each_sample("", 0, kQuarterMs + 1, [&](const SampleRow& x) {
    seen.push_back(x);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<SampleRow>{bucket("b", 0, 5, 3, 1000), bucket("a", 0, 4, 2, 2000),
                                          bucket("a", 60'000, 1, 1, 20), bucket("b", 5 * 60'000, 2, 1, 30),
                                          bucket("a", kQuarterMs, 6)}));  // by time, then socket
  seen.clear();
  r.each_sample("a", kQuarterMs, INT64_MAX, [&](const SampleRow& x) {
    seen.push_back(x);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<SampleRow>{bucket("a", kQuarterMs, 6), bucket("a", 2 * kQuarterMs, 9, 1, 10),
                                          bucket("a", kHourMs, 8, 1, 50)}));
  seen.clear();
  r.each_sample("b", 0, INT64_MAX, [&](const SampleRow& x) {
    seen.push_back(x);
    return false;  // stop after the first
  });
  EXPECT_EQ(seen, (std::vector<SampleRow>{bucket("b", 0, 5, 3, 1000)}));
  // A stopped scan leaves the statement ready for the next.
  EXPECT_EQ(r.count_samples("b", 0, INT64_MAX), 2u);
}

// Every reader answers the same whether the samples are rolled up or not, partly, with samples
// committed late (before the mark) and added to ones not rolled up yet: against the samples
// summed here. Reading only the rollup tables, or rolling a sample up twice, fails this.
TEST_F(ReaderTest, ReadersGiveTheSameAnswerBeforeAndAfterRollUp) {
  std::mt19937 rng(3);
  std::vector<SampleRow> all;  // every sample committed; a (cid, start) may come more than once
  auto random_samples = [&](int64_t from, int64_t to) {
    EnergyUpdate u;
    for (int64_t t = from; t < to; t += 60'000)
      for (const char* cid : {"a", "b"}) {
        if (rng() % 10 < 3) continue;
        const int64_t n = rng() % 5 == 0 ? 0 : 1 + rng() % 6;
        const int64_t mwh = rng() % 5000, power = 1000 + rng() % 100000;
        u.samples.push_back(bucket(cid, t, mwh, n, power));
      }
    all.insert(all.end(), u.samples.begin(), u.samples.end());
    return u;
  };
  // The samples summed into rows of width with from <= start < to.
  auto want = [&](const std::string& cid, int64_t width, int64_t from, int64_t to) {
    std::map<int64_t, BucketRow> sums;
    for (const SampleRow& x : all) {
      const int64_t start = x.start_ms - x.start_ms % width;  // times are positive
      if (x.cid != cid || start < from || start >= to) continue;
      BucketRow& b = sums[start];
      b.cid = cid;
      b.start_ms = start;
      b = merge(b, x);
    }
    std::vector<BucketRow> out;
    for (const auto& [start, b] : sums) out.push_back(b);
    return out;
  };
  auto energy = [](const std::vector<BucketRow>& rows) {
    int64_t sum = 0;
    for (const BucketRow& b : rows) sum += b.energy_mwh;
    return sum;
  };
  const int64_t t0 = kMar28 + 30 * 60'000, end = kMar28 + 5 * kHourMs;
  Store s(db_);
  s.commit({}, random_samples(t0, end));
  const Reader r(db_);  // a connection of its own
  const std::vector<std::pair<int64_t, int64_t>> ranges = {
      {INT64_MIN, INT64_MAX},
      {t0, t0 + kHourMs},
      {kMar28 + kHourMs, kMar28 + 3 * kHourMs},
      {kMar28 + kHourMs + 7 * 60'000, kMar28 + 3 * kHourMs + 50 * 60'000},
      {kMar28 + 2 * kHourMs + kQuarterMs, kMar28 + 4 * kHourMs},
      {kMar28 + 2 * kHourMs, kMar28 + 2 * kHourMs},
      {end, t0}};
  auto check = [&](const std::string& phase) {
    SCOPED_TRACE(phase);
    for (const auto& [from, to] : ranges) {
      SCOPED_TRACE(std::to_string(from) + " " + std::to_string(to));
      for (const char* cid : {"a", "b"}) {
        const std::vector<BucketRow> quarters = want(cid, kQuarterMs, from, to);
        ASSERT_EQ(rows(r, Reader::Rollup::kQuarter, cid, from, to), quarters);
        ASSERT_EQ(rows(r, Reader::Rollup::kHour, cid, from, to), want(cid, kHourMs, from, to));
        ASSERT_EQ(s.buckets(cid, from, to), quarters);
        std::vector<BucketRow> light;
        for (const BucketRow& b : want(cid, kHourMs, from, to))
          light.push_back({cid, b.start_ms, b.energy_mwh});
        ASSERT_EQ(rows(r, Reader::Rollup::kHour, cid, from, to, true), light);
        ASSERT_EQ(r.energy_sum(cid, from, to), energy(quarters));
        ASSERT_EQ(s.energy_sum(cid, from, to), energy(quarters));
        std::vector<BucketRow> exported;
        r.each_bucket(cid, from, to, [&](const BucketRow& b) { exported.push_back(b); });
        ASSERT_EQ(exported, quarters);
      }
      std::vector<BucketRow> both = want("a", kQuarterMs, from, to), exported;
      for (const BucketRow& b : want("b", kQuarterMs, from, to)) both.push_back(b);
      auto by_time = [](const BucketRow& x, const BucketRow& y) {
        return std::tie(x.start_ms, x.cid) < std::tie(y.start_ms, y.cid);
      };
      std::sort(both.begin(), both.end(), by_time);
      r.each_bucket("", from, to, [&](const BucketRow& b) { exported.push_back(b); });
      ASSERT_TRUE(
          std::is_sorted(exported.begin(), exported.end(),
                         [](const BucketRow& x, const BucketRow& y) { return x.start_ms < y.start_ms; }));
      std::sort(exported.begin(), exported.end(), by_time);
      ASSERT_EQ(exported, both);
    }
    // Energy over ranges on and off the quarter-hour and the hour.
    std::mt19937_64 pick(11);
    for (int i = 0; i < 200; ++i) {
      const int64_t a = kMar28 + static_cast<int64_t>(pick() % (6 * kHourMs)) / (i % 2 ? 1 : kQuarterMs) *
                                     (i % 2 ? 1 : kQuarterMs);
      const int64_t b = a + static_cast<int64_t>(pick() % (3 * kHourMs));
      ASSERT_EQ(r.energy_sum("a", a, b), energy(want("a", kQuarterMs, a, b))) << a << " " << b;
    }
  };

  check("samples only");
  EXPECT_EQ(s.rolled_up_ms(), 0);
  EXPECT_GT(s.roll_up(kMar28 + 2 * kHourMs), 0u);
  EXPECT_EQ(r.count_samples("", INT64_MIN, INT64_MAX), all.size() - 0) << "rolling up keeps the samples";
  check("rolled up to 02:00");
  // Late samples (before the mark) and samples added to ones not rolled up yet.
  s.commit({}, random_samples(t0 + 10 * 60'000, kMar28 + 3 * kHourMs));
  check("late samples");
  EXPECT_GT(s.roll_up(kMar28 + 3 * kHourMs), 0u);
  check("rolled up to 03:00");
  EXPECT_EQ(s.roll_up(kMar28 + 2 * kHourMs), 0u);  // never back
  EXPECT_EQ(s.rolled_up_ms(), kMar28 + 3 * kHourMs);
  check("rolled up to 03:00, again");
  EXPECT_GT(s.roll_up(kMar28 + 24 * kHourMs), 0u);
  EXPECT_EQ(s.roll_up(kMar28 + 24 * kHourMs), 0u);
  check("all rolled up");
  // Retention takes samples, not energy.
  EXPECT_GT(s.prune_samples(INT64_MAX, 1'000'000), 0u);
  EXPECT_EQ(r.count_samples("", INT64_MIN, INT64_MAX), 0u);
  check("samples pruned");
}

// A sample committed for an interval already rolled up goes into its bucket and its hour (once),
// whichever connection rolled up.
TEST_F(ReaderTest, RolledUpDaysAnswerExactlyAsTheHoursAndQuarterHoursDo) {
  std::mt19937 rng(5);
  std::vector<SampleRow> all;
  auto random_samples = [&](int64_t from, int64_t to) {
    EnergyUpdate u;
    for (int64_t t = from; t < to; t += 60'000)
      for (const char* cid : {"a", "b"}) {
        if (rng() % 10 < 3 || (cid[0] == 'b' && t >= kMar28 + 2 * kHourMs && t < kMar28 + 5 * kHourMs))
          continue;
        const int64_t n = rng() % 5 == 0 ? 0 : 1 + rng() % 6;
        u.samples.push_back(bucket(cid, t, rng() % 5000, n, 1000 + rng() % 100000));
      }
    all.insert(all.end(), u.samples.begin(), u.samples.end());
    return u;
  };
  // Everything of cid with from <= start < to summed into one row starting at from (none if empty).
  auto want = [&](const std::string& cid, int64_t from, int64_t to) {
    std::optional<BucketRow> row;
    for (const SampleRow& x : all) {
      if (x.cid != cid || x.start_ms < from || x.start_ms >= to) continue;
      if (!row) row = BucketRow{.cid = cid, .start_ms = from};
      row = merge(*row, x);
    }
    return row;
  };
  // "Days" of the store's kind, shorter than real ones: local midnights of a :15 zone (not on an
  // hour), then of a whole-hour zone; b has nothing stored in the third.
  const std::vector<DaySpan> days = {{kMar28 + kQuarterMs, kMar28 + 105 * 60'000},
                                     {kMar28 + 105 * 60'000, kMar28 + 2 * kHourMs},
                                     {kMar28 + 2 * kHourMs, kMar28 + 5 * kHourMs},
                                     {kMar28 + 5 * kHourMs, kMar28 + 8 * kHourMs}};
  const int64_t t0 = kMar28, end = kMar28 + 9 * kHourMs;
  Store s(db_);
  s.commit({}, random_samples(t0, end));
  const Reader r(db_);
  auto check = [&](const std::string& phase) {
    SCOPED_TRACE(phase);
    std::mt19937_64 pick(13);
    for (int i = 0; i < 300; ++i) {
      const int64_t a =
          t0 - kHourMs +
          static_cast<int64_t>(pick() % (11 * kHourMs)) / (i % 2 ? 1 : kQuarterMs) * (i % 2 ? 1 : kQuarterMs);
      const int64_t b = a + static_cast<int64_t>(pick() % (8 * kHourMs));
      // energy_sum takes whole buckets: those starting in [a, b), whose samples are those in
      // [ceil(a), ceil(b)) to the quarter-hour.
      auto ceil_q = [](int64_t t) { return (t + kQuarterMs - 1) / kQuarterMs * kQuarterMs; };
      const auto w = want("a", ceil_q(a), ceil_q(b));
      const int64_t expect = w ? w->energy_mwh : 0;
      ASSERT_EQ(r.energy_sum("a", a, b), expect) << a << " " << b;
      ASSERT_EQ(s.energy_sum("a", a, b), expect) << a << " " << b;
      const Reader::Snapshot snapshot(r);
      ASSERT_EQ(r.energy_sum("a", a, b), expect) << a << " " << b << " in a snapshot";
    }
    // Each listed day is one row of each socket that has something stored in it.
    for (const char* cid : {"a", "b"}) {
      std::vector<BucketRow> expect;
      for (const DaySpan& d : r.rolled_days(INT64_MIN, INT64_MAX))
        if (const auto w = want(cid, d.from_ms, d.to_ms)) expect.push_back(*w);
      ASSERT_EQ(rows(r, Reader::Rollup::kDay, cid, INT64_MIN, INT64_MAX), expect) << cid;
    }
  };

  check("nothing rolled up");
  EXPECT_EQ(s.roll_up_days(days), 0U) << "a day is rolled up only once its samples are";
  EXPECT_EQ(s.days_rolled_up_to(), std::nullopt);
  ASSERT_GT(s.roll_up(kMar28 + 5 * kHourMs), 0U);
  EXPECT_EQ(s.next_bucket_ms(INT64_MIN), t0);
  EXPECT_EQ(s.next_bucket_ms(kMar28 + 4 * kHourMs + 1), kMar28 + 4 * kHourMs + kQuarterMs);
  EXPECT_EQ(s.next_bucket_ms(kMar28 + 5 * kHourMs), std::nullopt) << "samples not rolled up are no buckets";
  EXPECT_EQ(s.roll_up_days(days), 3U) << "the fourth ends after the samples rolled up";
  EXPECT_EQ(s.days_rolled_up_to(), kMar28 + 5 * kHourMs);
  EXPECT_EQ(r.rolled_days(kMar28, kMar28 + 2 * kHourMs), (std::vector<DaySpan>{days[0], days[1]}));
  EXPECT_EQ(r.rolled_days(kMar28 + kHourMs, kMar28 + 5 * kHourMs), (std::vector<DaySpan>{days[1], days[2]}));
  EXPECT_EQ(s.roll_up_days({days[1]}), 0U) << "a day listed already";
  EXPECT_EQ(s.roll_up_days({{kMar28 + 4 * kHourMs, kMar28 + 5 * kHourMs}}), 0U) << "overlapping a listed day";
  EXPECT_THROW(s.roll_up_days({{kMar28 + 5 * kHourMs, kMar28 + 5 * kHourMs + 1000}}), StoreError);
  check("three days rolled up");
  s.commit({}, random_samples(kMar28 + 10 * 60'000, kMar28 + 6 * kHourMs));
  check("late samples into the days");
  ASSERT_GT(s.roll_up(kMar28 + 9 * kHourMs), 0U);
  EXPECT_EQ(s.roll_up_days({days[3]}), 1U);
  check("four days rolled up");
  EXPECT_GT(s.prune_samples(INT64_MAX, 1'000'000), 0U);
  check("samples pruned");
}

TEST_F(ReaderTest, ALateSampleLandsInItsBucketAndHour) {
  Store s(db_);
  s.commit({}, EnergyUpdate{{bucket("a", kMar28 + 60'000, 10, 2, 1000)}, {}});
  EXPECT_GT(s.roll_up(kMar28 + kHourMs), 0u);
  const Reader r(db_);
  s.commit({},
           EnergyUpdate{{bucket("a", kMar28 + 120'000, 5, 1, 3000),
                         bucket("a", kMar28 + kQuarterMs, 7, 1, 500), bucket("a", kMar28 + kHourMs, 1, 1, 1)},
                        {}});
  const BucketRow q0 = merge(bucket("a", kMar28, 10, 2, 1000), bucket("a", kMar28 + 120'000, 5, 1, 3000));
  const BucketRow q1 = bucket("a", kMar28 + kQuarterMs, 7, 1, 500);
  EXPECT_EQ(rows(r, Reader::Rollup::kQuarter, "a", 0, kMar28 + kHourMs), (std::vector<BucketRow>{q0, q1}));
  EXPECT_EQ(rows(r, Reader::Rollup::kHour, "a", 0, kMar28 + kHourMs),
            (std::vector<BucketRow>{merge(q0, q1)}));
  EXPECT_EQ(r.energy_sum("a", 0, INT64_MAX), 23);
  EXPECT_EQ(s.samples("a", 0, INT64_MAX).size(), 4u);
  s.roll_up(kMar28 + 2 * kHourMs);  // from the mark on: the late samples are not added again
  EXPECT_EQ(r.energy_sum("a", 0, INT64_MAX), 23);
  EXPECT_EQ(r.energy_sum("a", 0, kMar28 + kHourMs), 22);
  EXPECT_EQ(rows(r, Reader::Rollup::kHour, "a", 0, INT64_MAX),
            (std::vector<BucketRow>{merge(q0, q1), bucket("a", kMar28 + kHourMs, 1, 1, 1)}));

  // Another connection rolls up further; this one's next late sample still finds its bucket.
  {
    Store other(db_);
    other.commit({}, EnergyUpdate{{bucket("b", kMar28 + 2 * kHourMs, 4)}, {}});
    other.roll_up(kMar28 + 3 * kHourMs);
  }
  s.commit({}, EnergyUpdate{{bucket("b", kMar28 + 2 * kHourMs + 60'000, 6)}, {}});
  EXPECT_EQ(r.energy_sum("b", 0, INT64_MAX), 10);
  EXPECT_EQ(rows(r, Reader::Rollup::kHour, "b", 0, INT64_MAX),
            (std::vector<BucketRow>{bucket("b", kMar28 + 2 * kHourMs, 10)}));
  s.roll_up(kMar28 + 4 * kHourMs);
  EXPECT_EQ(r.energy_sum("b", 0, INT64_MAX), 10);
  EXPECT_EQ(r.energy_sum("a", 0, INT64_MAX), 23);
}

// A commit (adding to two sockets) made while a Snapshot lives is in none of its reads; made
// without one, the next read has it.
TEST_F(ReaderTest, ASnapshotSeesNoCommitMadeWhileItLives) {
  commit_buckets({bucket("a", kMar28, 10), bucket("b", kMar28, 20)}, {{"a", 1, 1, 0, 0, 0, 10}});
  Store writer(db_);
  const Reader r(db_);
  auto commit_more = [&](int64_t a_total) {
    writer.commit({}, EnergyUpdate{{bucket("a", kMar28 + kHourMs, 1), bucket("b", kMar28 + kHourMs, 2)},
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

// The samples not rolled up yet are read once and summed per socket and quarter-hour; every query
// gives, inside a snapshot and outside one, what it gives once everything is rolled up into the
// tables: random samples (some rolled up, some not, one-minute and ten-second ones, several
// sockets), random ranges (aligned or not), every reader.
TEST_F(ReaderTest, TheTailOfSamplesAnswersExactlyAsTheRolledUpTablesDo) {
  std::mt19937_64 rng(42);
  std::vector<BucketUpdate> samples;
  const std::vector<std::string> cids = {"a", "b", "c"};
  for (int64_t k = 0; k < 600; ++k) {
    const std::string& cid = cids[rng() % cids.size()];
    const int64_t width = rng() % 2 ? 60'000 : 10'000;
    const int64_t start = kMar28 + static_cast<int64_t>(rng() % (8 * 360)) * 10'000 / width * width;
    BucketUpdate u = bucket(cid, start, static_cast<int64_t>(rng() % 50), 1 + static_cast<int64_t>(rng() % 6),
                            static_cast<int64_t>(rng() % 3000));
    u.power_min_mw = static_cast<int64_t>(rng() % 1000);
    u.power_max_mw = u.power_min_mw + static_cast<int64_t>(rng() % 1000);
    const int64_t v = 220'000 + static_cast<int64_t>(rng() % 5000);
    const int64_t v_span = static_cast<int64_t>(rng() % 5000);
    const int64_t i = static_cast<int64_t>(rng() % 900'000);
    if (k % 5 != 0) {  // else the meter measured neither voltage nor current: NULL
      u.voltage_min_mv = v;
      u.voltage_max_mv = v + v_span;
      u.current_max_ua = i;
    }
    samples.push_back(u);
  }
  commit_buckets(samples);
  {
    Store s(db_);
    s.roll_up(kMar28 + 3 * kHourMs);  // the first three hours rolled up, five not
  }
  const Reader r(db_);
  struct Answers {
    std::vector<int64_t> sums;
    std::vector<std::vector<BucketRow>> rows;
    bool operator==(const Answers&) const = default;
  };
  std::vector<std::pair<int64_t, int64_t>> ranges = {{INT64_MIN / 2, INT64_MAX / 2},
                                                     {kMar28 + 3 * kHourMs, kMar28 + 8 * kHourMs}};
  for (int i = 0; i < 40; ++i) {
    const int64_t from = kMar28 - kHourMs + static_cast<int64_t>(rng() % (10 * 3600)) * 1000;
    ranges.push_back({from, from + static_cast<int64_t>(rng() % (6 * 3600)) * 1000});
  }
  auto answer = [&] {
    Answers out;
    for (const auto& [from, to] : ranges) {
      for (const std::string cid : {"a", "b", "c", "zz"}) {
        out.sums.push_back(r.energy_sum(cid, from, to));
        out.rows.push_back(rows(r, Reader::Rollup::kQuarter, cid, from, to));
        out.rows.push_back(rows(r, Reader::Rollup::kHour, cid, from, to));
        out.rows.push_back(rows(r, Reader::Rollup::kHour, cid, from, to, true));
      }
      std::vector<BucketRow> all;
      r.each_bucket("", from, to, [&](const BucketRow& b) { all.push_back(b); });
      std::sort(all.begin(), all.end(), [](const BucketRow& x, const BucketRow& y) {
        return std::tie(x.start_ms, x.cid) < std::tie(y.start_ms, y.cid);
      });
      out.rows.push_back(all);
    }
    return out;
  };
  const Answers single = answer();
  ASSERT_GT(single.sums[0], 0);
  Answers snapshot;
  {
    const Reader::Snapshot snap(r);
    snapshot = answer();
  }
  roll_up_all();
  const Answers rolled = answer();  // from the tables alone
  for (const Answers* a : std::vector<const Answers*>{&single, &snapshot}) {
    EXPECT_EQ(a->sums, rolled.sums);
    ASSERT_EQ(a->rows.size(), rolled.rows.size());
    for (size_t i = 0; i < rolled.rows.size(); ++i) EXPECT_EQ(a->rows[i], rolled.rows[i]) << "query " << i;
  }
}

// The tail read for one query serves the next ones only while nothing was written: a commit through
// the same connection, or through another one, is seen by the next query.
TEST_F(ReaderTest, TheTailFollowsWritesOfThisAndOtherConnections) {
  Store own(db_);
  const Reader r(db_);
  own.commit({}, EnergyUpdate{{bucket("a", kMar28, 5)}, {}});
  EXPECT_EQ(own.energy_sum("a", kMar28, kMar28 + kHourMs), 5);
  EXPECT_EQ(r.energy_sum("a", kMar28, kMar28 + kHourMs), 5);
  own.commit({}, EnergyUpdate{{bucket("a", kMar28 + 60'000, 7)}, {}});
  EXPECT_EQ(own.energy_sum("a", kMar28, kMar28 + kHourMs), 12) << "its own commit";
  EXPECT_EQ(r.energy_sum("a", kMar28, kMar28 + kHourMs), 12) << "another connection's commit";
  own.roll_up(kMar28 + kHourMs);
  EXPECT_EQ(own.energy_sum("a", kMar28, kMar28 + kHourMs), 12) << "rolled up, counted once";
  EXPECT_EQ(r.energy_sum("a", kMar28, kMar28 + kHourMs), 12);
}

// A Reader over a Store reads that Store's connection, its commits included.
TEST_F(ReaderTest, AReaderOverAStoreReadsItsConnection) {
  Store s(db_);
  const Reader r(s);
  EXPECT_EQ(r.path(), db_);
  EXPECT_EQ(r.energy_sum("a", 0, INT64_MAX), 0);
  s.commit({}, EnergyUpdate{{bucket("a", 0, 42, 1, 10)}, {{"a", 1, 1, 5000, 0, 0, 42}}});
  EXPECT_EQ(r.energy_sum("a", 0, INT64_MAX), 42);
  EXPECT_EQ(r.latest_sample("a"), bucket("a", 0, 42, 1, 10));
  s.roll_up(kHourMs);
  EXPECT_EQ(r.energy_sum("a", 0, INT64_MAX), 42);
  EXPECT_EQ(rows(r, Reader::Rollup::kHour, "a", 0, INT64_MAX),
            (std::vector<BucketRow>{bucket("a", 0, 42, 1, 10)}));
}

}  // namespace
}  // namespace pb::store
