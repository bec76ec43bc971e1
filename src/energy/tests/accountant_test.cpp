// Accounting rules against a real (temporary) SQLite store: every prepared batch goes through
// Store::commit like in the daemon, so restarts are tested by reopening the file.
#include "plugbridge/energy/accountant.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

#include "plugbridge/energy/totals.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::energy {
namespace {

constexpr int64_t kT0 = 1'790'000'100'000;  // a UTC quarter-hour + 100 s (2026-09-21)
// A reading as the firmware sends it with every quantity measured.
constexpr uint8_t kOk = kMeterOkFlag | kVoltageValidFlag | kCurrentValidFlag | kPowerValidFlag;

class TempDb {
 public:
  TempDb() {
    path_ = (std::filesystem::temp_directory_path() /
             ("pb_energy_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++) + ".db"))
                .string();
    std::filesystem::remove(path_);
  }
  ~TempDb() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

store::ReadingRow reading(uint32_t boot, uint32_t seq, int64_t ts_ms, uint64_t mwh, uint16_t epoch = 0,
                          uint32_t power_mw = 100'000, uint8_t flags = kOk) {
  store::ReadingRow r;
  r.cid = "s1";
  r.boot = boot;
  r.seq = seq;
  r.ts_ms = ts_ms;
  r.flags = flags;
  r.voltage_mv = 230'000 + seq;
  r.current_ua = 400'000 + seq;
  r.power_mw = power_mw;
  r.energy_mwh = mwh;
  r.energy_epoch = epoch;
  return r;
}

class AccountantTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void open() {
    store_ = std::make_unique<store::Store>(db_.path(), store::StoreOptions{.synchronous = "OFF"});
    acc_ = Accountant(options_);
    acc_.load(*store_);
  }
  // One gateway flush: prepare, commit together, adopt.
  Prepared feed(const std::vector<store::ReadingRow>& rows) {
    Prepared p = acc_.prepare(rows);
    store_->commit(p.events, p.update);
    acc_.committed(p);
    return p;
  }
  int64_t total() const { return all_time_total(*store_, "s1"); }

  TempDb db_;
  AccountantOptions options_;
  std::unique_ptr<store::Store> store_;
  Accountant acc_;
};

TEST_F(AccountantTest, FirstReadingIsTheBaselineAndIncrementsAdd) {
  feed({reading(1, 1, kT0, 5'000'000)});
  EXPECT_EQ(total(), 0);  // energy before the first reading is not ours to count
  feed({reading(1, 2, kT0 + 10'000, 5'000'300), reading(1, 3, kT0 + 20'000, 5'000'600)});
  EXPECT_EQ(total(), 600);
  EXPECT_EQ(acc_.total_mwh("s1"), 600);
  ASSERT_TRUE(acc_.state("s1"));
  EXPECT_EQ(acc_.state("s1")->seq, 3u);
}

// A quantity the meter did not measure is not stored as 0: the power is out of the sample's count,
// sum and extremes, a voltage or current stays NULL; the energy counter counts as before.
TEST_F(AccountantTest, QuantitiesNotMeasuredStayOutOfTheSampleButTheEnergyCounts) {
  const uint8_t no_power = kOk & ~kPowerValidFlag;
  const uint8_t no_mains = kMeterOkFlag | kNoMainsFlag | kCurrentValidFlag | kPowerValidFlag;
  feed({reading(1, 1, kT0, 1000), reading(1, 2, kT0 + 5'000, 1010, 0, 0, no_power),
        reading(1, 3, kT0 + 10'000, 1020, 0, 0, no_mains)});
  EXPECT_EQ(total(), 20) << "the counter is the energy, whatever the meter measured";
  const auto stored = store_->samples("s1", INT64_MIN, INT64_MAX);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].samples, 1) << "only reading 1 measured the power";
  EXPECT_EQ(stored[0].power_sum_mw, 100'000);
  EXPECT_EQ(stored[0].power_min_mw, 100'000) << "not 0 from the readings without power";
  EXPECT_EQ(stored[0].voltage_min_mv, 230'001) << "not 0 from the reading without mains";
  EXPECT_EQ(stored[0].voltage_max_mv, 230'002);
  EXPECT_EQ(stored[0].current_max_ua, 400'002);

  // An interval in which nothing was measured: its energy, and NULL for every quantity.
  feed({reading(1, 4, kT0 + 120'000, 1030, 0, 0, no_mains)});
  const auto later = store_->samples("s1", kT0 + 60'000, INT64_MAX);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].energy_mwh, 10);
  EXPECT_EQ(later[0].samples, 0);
  EXPECT_FALSE(later[0].voltage_min_mv.has_value());
  EXPECT_FALSE(later[0].voltage_max_mv.has_value());
  EXPECT_FALSE(later[0].current_max_ua.has_value());
}

TEST_F(AccountantTest, CountersPastTheirRangeAreIgnoredNotWrapped) {
  feed({reading(1, 1, kT0, kWrapMwh - 100)});
  // Past the range, up to the top of 64 bits, in a new epoch (the wrap branch) and in the same one.
  for (const uint64_t bad :
       {kWrapMwh, kWrapMwh + 5, uint64_t{INT64_MAX}, uint64_t{INT64_MAX} + 1, UINT64_MAX - 1, UINT64_MAX}) {
    for (const uint16_t epoch : {0, 1}) {
      const Prepared p = acc_.prepare({reading(1, 2, kT0 + 10'000, bad, epoch)});
      EXPECT_EQ(p.accepted_mwh, 0) << bad;
      EXPECT_EQ(p.out_of_range, 1u) << bad;
      EXPECT_TRUE(p.update.samples.empty()) << bad;
      EXPECT_TRUE(p.update.states.empty()) << "the baseline must not move: " << bad;
    }
  }
  // A real wrap still counts: 100 mWh to the top, 50 after.
  const Prepared w = feed({reading(1, 3, kT0 + 20'000, 50, 1)});
  EXPECT_EQ(w.accepted_mwh, 150);
  EXPECT_EQ(total(), 150);
  EXPECT_GE(acc_.total_mwh("s1"), 0);
}

TEST_F(AccountantTest, DuplicatesAndResendsAreIgnored) {
  feed({reading(1, 1, kT0, 1000), reading(1, 2, kT0 + 10'000, 1200)});
  const auto before = store_->buckets("s1", 0, INT64_MAX);
  // The same records again (lost Ack), also repeated inside one batch.
  feed({reading(1, 1, kT0, 1000), reading(1, 2, kT0 + 10'000, 1200), reading(1, 2, kT0 + 10'000, 1200)});
  EXPECT_EQ(total(), 200);
  EXPECT_EQ(store_->buckets("s1", 0, INT64_MAX), before);  // samples not counted twice either
  feed({reading(1, 3, kT0 + 20'000, 1300), reading(1, 3, kT0 + 20'000, 1300)});
  EXPECT_EQ(total(), 300);
}

TEST_F(AccountantTest, OutOfOrderRecordsCountOnce) {
  feed({reading(1, 1, kT0, 1000)});
  // Arrives 3 before 2 in one batch: sorted by seq, same result as in order.
  feed({reading(1, 3, kT0 + 20'000, 1500), reading(1, 2, kT0 + 10'000, 1200)});
  EXPECT_EQ(total(), 500);
  // A late record older than what is accounted adds nothing (the later counter contains it).
  feed({reading(1, 4, kT0 + 40'000, 1900)});
  store::ReadingRow late = reading(1, 0, kT0 + 5'000, 1100);
  feed({late});
  EXPECT_EQ(total(), 900);
  EXPECT_EQ(acc_.state("s1")->seq, 4u);
}

TEST_F(AccountantTest, WrapAt10000KwhIsCountedAcross) {
  const uint64_t near_end = kWrapMwh - 200;
  feed({reading(1, 1, kT0, near_end, 3)});
  feed({reading(1, 2, kT0 + 10'000, 50, 4)});
  EXPECT_EQ(total(), 250);  // 200 to the wrap + 50 after it
  feed({reading(1, 3, kT0 + 20'000, 350, 4)});
  EXPECT_EQ(total(), 550);
}

TEST_F(AccountantTest, FactoryResetCountsTheNewEpochFromZero) {
  feed({reading(1, 1, kT0, 123'456'789, 0), reading(1, 2, kT0 + 10'000, 123'457'089, 0)});
  EXPECT_EQ(total(), 300);
  // Reset: counter back to near 0 with a new epoch; the 40 mWh since the reset count, the old
  // counter value is neither lost from history nor subtracted.
  feed({reading(1, 3, kT0 + 20'000, 40, 1)});
  EXPECT_EQ(total(), 340);
  // Reset that comes with a reboot (new boot, seq from 1).
  feed({reading(2, 1, kT0 + 60'000, 25, 2)});
  EXPECT_EQ(total(), 365);
  feed({reading(2, 2, kT0 + 70'000, 125, 2)});
  EXPECT_EQ(total(), 465);
}

TEST_F(AccountantTest, CounterGoingBackWithinAnEpochInventsNothing) {
  feed({reading(1, 1, kT0, 10'000), reading(1, 2, kT0 + 10'000, 10'500)});
  // Reboot restoring an older persisted value: no negative increment, no re-count later.
  feed({reading(2, 1, kT0 + 30'000, 10'100)});
  EXPECT_EQ(total(), 500);
  feed({reading(2, 2, kT0 + 40'000, 10'400)});
  EXPECT_EQ(total(), 800);
}

TEST_F(AccountantTest, ImplausibleJumpIsRejectedAndRecordedAsEvent) {
  feed({reading(1, 1, kT0, 1'000'000)});
  // 10 s later +50 Wh = 18 kW: impossible for a 1 100 W socket (limit 3 500 W).
  Prepared p = feed({reading(1, 2, kT0 + 10'000, 1'050'000)});
  EXPECT_EQ(total(), 0);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].kind, "rejected_jump");
  EXPECT_EQ(p.events[0].value, 50'000);
  const auto ev = store_->events("s1", 0, INT64_MAX);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, "rejected_jump");
  // The baseline moved: normal increments after the jump count again.
  feed({reading(1, 3, kT0 + 20'000, 1'050'800)});
  EXPECT_EQ(total(), 800);
  // Just below the limit is accepted: 3 500 W over 10 s (+10 s slack) + 1 Wh = 20 444 mWh.
  feed({reading(1, 4, kT0 + 30'000, 1'050'800 + 20'444)});
  EXPECT_EQ(total(), 800 + 20'444);
  feed({reading(1, 5, kT0 + 40'000, 1'050'800 + 20'444 + 20'445)});
  EXPECT_EQ(total(), 800 + 20'444);
}

TEST_F(AccountantTest, MaxPowerIsConfigurable) {
  options_.max_power_w = 100;
  open();
  feed({reading(1, 1, kT0, 0)});
  // 100 W over 10+10 s + 1 Wh = 1 555 mWh; 2 000 mWh is rejected.
  Prepared p = feed({reading(1, 2, kT0 + 10'000, 2'000)});
  EXPECT_EQ(p.events.size(), 1u);
  EXPECT_EQ(total(), 0);
}

TEST_F(AccountantTest, PerSocketMaxPowerOverridesTheGlobalLimit) {
  options_.socket_max_power_w = {{"s1", 100}, {"s2", 20'000}};  // s3: the global 3 500 W
  open();
  auto as = [](const char* cid, store::ReadingRow r) {
    r.cid = cid;
    return r;
  };
  feed({reading(1, 1, kT0, 0), as("s2", reading(1, 1, kT0, 0)), as("s3", reading(1, 1, kT0, 0))});
  // +2 Wh in 10 s: within 3 500 W (20 444 mWh) but over s1's 100 W (1 555 mWh).
  Prepared p = feed({reading(1, 2, kT0 + 10'000, 2'000), as("s2", reading(1, 2, kT0 + 10'000, 2'000)),
                     as("s3", reading(1, 2, kT0 + 10'000, 2'000))});
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].cid, "s1");
  EXPECT_NE(p.events[0].detail.find("limit 100 W"), std::string::npos) << p.events[0].detail;
  // +50 Wh in 10 s: over the global 3 500 W, within s2's 20 kW (112 111 mWh).
  p = feed({as("s2", reading(1, 3, kT0 + 20'000, 52'000)), as("s3", reading(1, 3, kT0 + 20'000, 52'000))});
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].cid, "s3");
  EXPECT_NE(p.events[0].detail.find("limit 3500 W"), std::string::npos) << p.events[0].detail;
  EXPECT_EQ(acc_.total_mwh("s1"), 0);
  EXPECT_EQ(acc_.total_mwh("s2"), 52'000);
  EXPECT_EQ(acc_.total_mwh("s3"), 2'000);
}

TEST_F(AccountantTest, UnavailableReadingsContributeNothingAndKeepTheBaseline) {
  feed({reading(1, 1, kT0, 7'000)});
  // Meter unavailable: zeros that must not become a drop and a jump back.
  feed({reading(1, 2, kT0 + 10'000, 0, 0, 0, 0), reading(1, 3, kT0 + 20'000, 0, 0, 0, 0)});
  EXPECT_EQ(total(), 0);
  EXPECT_EQ(acc_.state("s1")->seq, 1u);
  feed({reading(1, 4, kT0 + 30'000, 7'300)});
  EXPECT_EQ(total(), 300);
  const auto b = store_->buckets("s1", 0, INT64_MAX);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].samples, 2);  // the unavailable readings are not samples either
  EXPECT_EQ(b[0].power_min_mw, 100'000);
}

// Readings missing over an interval that crosses quarter-hours (the socket merged them while it could
// not reach the gateway): the increment is shared over those quarter-hours by time, as the socket's
// mean power over the interval. Whole in the closing reading's quarter-hour, a day-long outage at a
// near-rated load put hours of one day's energy into the next: a day above rated power x 24 h.
TEST_F(AccountantTest, GapEnergyIsSharedOverTheQuarterHoursItSpans) {
  const int64_t q = bucket_start(kT0);
  feed({reading(1, 1, q + 5 * 60'000, 0)});
  // 2 h later, 1 000 Wh at a steady 500 W: 10 min of it in the first quarter-hour, 5 in the last.
  const int64_t after = q + 5 * 60'000 + 2 * 3600 * 1000;
  feed({reading(1, 2, after, 1'000'000)});
  const auto b = store_->buckets("s1", 0, INT64_MAX);
  ASSERT_EQ(b.size(), 9u);
  int64_t sum = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(b[i].start_ms, q + static_cast<int64_t>(i) * kBucketMs);
    sum += b[i].energy_mwh;
  }
  EXPECT_EQ(b[0].energy_mwh, 83'333);  // 10 of 120 minutes
  for (size_t i = 1; i < 8; ++i) EXPECT_EQ(b[i].energy_mwh, 125'000) << i;
  EXPECT_EQ(b[8].energy_mwh, 41'667);  // 5 minutes, and the rounding
  EXPECT_EQ(sum, 1'000'000);
  EXPECT_EQ(total(), 1'000'000);
  EXPECT_EQ(b[0].samples, 1);  // the readings' power stays with their own intervals
  EXPECT_EQ(b[4].samples, 0);
  EXPECT_EQ(b[8].samples, 1);
  EXPECT_EQ(energy_between(*store_, "s1", q + kBucketMs, q + 2 * 3600 * 1000), 875'000);

  // A gap of less than a sample stays with the closing reading, also across a quarter-hour.
  const int64_t next = bucket_start(after) + kBucketMs + 10'000;
  feed({reading(1, 3, next - 50'000, 1'100'000), reading(1, 4, next, 1'100'700)});
  EXPECT_EQ(energy_between(*store_, "s1", bucket_start(next), bucket_start(next) + kBucketMs), 700);
}

TEST_F(AccountantTest, BucketStatisticsAcrossBuckets) {
  const int64_t q = bucket_start(kT0);
  feed({reading(1, 1, q + 1000, 0, 0, 50'000), reading(1, 2, q + 2000, 10, 0, 150'000),
        reading(1, 3, q + kBucketMs - 1, 30, 0, 100'000), reading(1, 4, q + kBucketMs, 45, 0, 20'000)});
  const auto b = store_->buckets("s1", 0, INT64_MAX);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].start_ms, q);
  EXPECT_EQ(b[0].energy_mwh, 30);
  EXPECT_EQ(b[0].samples, 3);
  EXPECT_EQ(b[0].power_sum_mw, 300'000);
  EXPECT_EQ(b[0].power_min_mw, 50'000);
  EXPECT_EQ(b[0].power_max_mw, 150'000);
  EXPECT_EQ(b[0].voltage_min_mv, 230'001);
  EXPECT_EQ(b[0].voltage_max_mv, 230'003);
  EXPECT_EQ(b[0].current_max_ua, 400'003);
  EXPECT_EQ(b[1].start_ms, q + kBucketMs);
  EXPECT_EQ(b[1].energy_mwh, 15);
  EXPECT_EQ(b[1].samples, 1);
}

TEST_F(AccountantTest, DaemonRestartInTheMiddleOfABucket) {
  const int64_t q = bucket_start(kT0);
  feed({reading(1, 1, q + 1000, 100, 0, 80'000), reading(1, 2, q + 11'000, 300, 0, 120'000)});
  // Restart: new Store and Accountant on the same file; the same bucket continues.
  open();
  ASSERT_TRUE(acc_.state("s1"));
  EXPECT_EQ(acc_.state("s1")->energy_mwh, 300u);
  EXPECT_EQ(acc_.total_mwh("s1"), 200);
  // The socket resends what was not acked before the restart plus new records.
  feed({reading(1, 2, q + 11'000, 300, 0, 120'000), reading(1, 3, q + 21'000, 600, 0, 60'000)});
  const auto b = store_->buckets("s1", 0, INT64_MAX);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].energy_mwh, 500);
  EXPECT_EQ(b[0].samples, 3);
  EXPECT_EQ(b[0].power_min_mw, 60'000);
  EXPECT_EQ(b[0].power_max_mw, 120'000);
  EXPECT_EQ(total(), 500);
  EXPECT_EQ(acc_.total_mwh("s1"), 500);
}

TEST_F(AccountantTest, FailedCommitLeavesTheStateUntouched) {
  feed({reading(1, 1, kT0, 100)});
  Prepared p = acc_.prepare({reading(1, 2, kT0 + 10'000, 400)});
  EXPECT_EQ(p.accepted_mwh, 300);
  // Not committed: the resend is accounted again, once.
  feed({reading(1, 2, kT0 + 10'000, 400)});
  EXPECT_EQ(total(), 300);
}

TEST(AccountantLoad, StartsFromTheStoredStates) {
  TempDb db;
  {
    store::Store s(db.path(), store::StoreOptions{.synchronous = "OFF"});
    s.commit({}, store::EnergyUpdate{{}, {{"s1", 1, 2, kT0 + 10'000, 2000, 0, 700}}});
  }
  store::Store s(db.path(), store::StoreOptions{.synchronous = "OFF"});
  Accountant acc;
  acc.load(s);
  ASSERT_TRUE(acc.state("s1"));
  EXPECT_EQ(acc.state("s1")->energy_mwh, 2000u);
  EXPECT_EQ(acc.total_mwh("s1"), 700);
  EXPECT_FALSE(acc.state("never-seen"));
  EXPECT_EQ(acc.prepare({reading(1, 2, kT0 + 10'000, 2000)}).accepted_mwh, 0);  // already accounted
  Prepared p = acc.prepare({reading(1, 3, kT0 + 20'000, 2100)});
  EXPECT_EQ(p.accepted_mwh, 100);
  ASSERT_EQ(p.update.states.size(), 1u);
  EXPECT_EQ(p.update.states[0].total_mwh, 800);
}

// The readings are summed into samples of options.sample_ms (history.raw_resolution_s); the width
// changes the samples, not the energy or the buckets the store makes of them.
TEST(AccountantSamples, SamplesHaveTheConfiguredWidth) {
  const int64_t q = bucket_start(kT0);
  // Every 10 s for 3 minutes and a half, from 5 s into the quarter-hour, 10 mWh each.
  std::vector<store::ReadingRow> rows;
  for (uint32_t i = 0; i < 21; ++i)
    rows.push_back(reading(1, i + 1, q + 5'000 + i * 10'000, 1000 + i * 10, 0, 100'000 + i * 1000));
  std::map<int64_t, std::vector<store::BucketRow>> buckets;
  std::map<int64_t, int64_t> totals;
  for (const int64_t width : {int64_t{60'000}, int64_t{10'000}, int64_t{900'000}}) {
    SCOPED_TRACE(width);
    TempDb db;
    store::Store s(db.path(), store::StoreOptions{.synchronous = "OFF"});
    AccountantOptions options;
    options.sample_ms = width;
    Accountant acc(options);
    EXPECT_EQ(acc.options().sample_ms, width);
    // In two batches, split inside a sample: the second adds to the stored sample.
    const std::vector<store::ReadingRow> first(rows.begin(), rows.begin() + 8),
        second(rows.begin() + 8, rows.end());
    std::vector<store::SampleRow> prepared;
    for (const auto* batch : {&first, &second}) {
      Prepared p = acc.prepare(*batch);
      for (const store::SampleRow& x : p.update.samples) {
        EXPECT_EQ(x.start_ms % width, 0) << x.start_ms;
        EXPECT_EQ(x.cid, "s1");
        prepared.push_back(x);
      }
      s.commit(p.events, p.update);
      acc.committed(p);
    }
    const std::vector<store::SampleRow> stored = s.samples("s1", INT64_MIN, INT64_MAX);
    // The readings 5 s into each interval: 21 readings over 205 s.
    const size_t want = width == 10'000 ? 21u : width == 60'000 ? 4u : 1u;
    EXPECT_EQ(stored.size(), want);
    EXPECT_EQ(prepared.size(), width == 60'000 ? 5u : width == 10'000 ? 21u : 2u);  // one split
    int64_t samples = 0;
    for (const store::SampleRow& x : stored) {
      samples += x.samples;
      EXPECT_EQ(x.samples, width == 10'000 ? 1 : width == 60'000 ? (x.start_ms == q + 180'000 ? 3 : 6) : 21);
    }
    EXPECT_EQ(samples, 21);
    if (width == 60'000) {
      // The first minute: readings 1..6 (5 s to 55 s), the first one the baseline (no energy).
      EXPECT_EQ(stored[0],
                (store::SampleRow{"s1", q, 50, 6, 615'000, 100'000, 105'000, 230'001, 230'006, 400'006}));
      EXPECT_EQ(stored[1].energy_mwh, 60);
    }
    totals[width] = all_time_total(s, "s1");
    buckets[width] = s.buckets("s1", INT64_MIN, INT64_MAX);
    s.roll_up(q + 3'600'000);
    EXPECT_EQ(s.buckets("s1", INT64_MIN, INT64_MAX), buckets[width]) << "rolled up";
  }
  EXPECT_EQ(totals[60'000], 200);
  EXPECT_EQ(totals[10'000], 200);
  EXPECT_EQ(totals[900'000], 200);
  ASSERT_EQ(buckets[60'000].size(), 1u);
  EXPECT_EQ(buckets[60'000][0].samples, 21);
  EXPECT_EQ(buckets[10'000], buckets[60'000]);
  EXPECT_EQ(buckets[900'000], buckets[60'000]);
}

TEST(AccountantBatch, AThousandSocketBatchCommitsTwiceIntoOneSamplePerSocket) {
  // The daemon's worst batch: one reading from each of 1 000 sockets (1 000 sample UPSERTs and
  // 1 000 state rows in the commit). Its speed is pb-bench-load's to measure.
  TempDb db;
  store::Store s(db.path(), store::StoreOptions{.synchronous = "OFF"});
  Accountant acc;
  auto batch = [](uint32_t seq) {
    std::vector<store::ReadingRow> rows;
    for (int i = 0; i < 1000; ++i) {
      store::ReadingRow r = reading(1, seq, kT0 + seq * 1000, seq * 100ull);
      r.cid = "sock-" + std::to_string(i);
      rows.push_back(r);
    }
    return rows;
  };
  for (uint32_t seq = 1; seq <= 2; ++seq) {  // the first batch creates the rows
    const auto rows = batch(seq);
    Prepared p = acc.prepare(rows);
    s.commit(p.events, p.update);
    acc.committed(p);
  }
  EXPECT_EQ(acc.total_mwh("sock-7"), 100);
  EXPECT_EQ(s.count_samples(), 1000u);  // both batches in the same minute: one sample per socket
}

TEST(BucketStart, FloorsToUtcQuarterHours) {
  EXPECT_EQ(bucket_start(0), 0);
  EXPECT_EQ(bucket_start(899'999), 0);
  EXPECT_EQ(bucket_start(900'000), 900'000);
  EXPECT_EQ(bucket_start(-1), -900'000);
}

}  // namespace
}  // namespace pb::energy

namespace pb::energy {
namespace {

TEST(RollUpPeriod, AboutThreeHundredSixtySamplesAnHourToADayDividingTheDay) {
  constexpr int64_t kHour = 3'600'000;
  EXPECT_EQ(roll_up_period_ms(1'000), kHour);
  EXPECT_EQ(roll_up_period_ms(10'000), kHour);
  EXPECT_EQ(roll_up_period_ms(30'000), 3 * kHour);
  EXPECT_EQ(roll_up_period_ms(45'000), 4 * kHour);  // 4.5 h is no divisor of a day
  EXPECT_EQ(roll_up_period_ms(60'000), 6 * kHour);
  EXPECT_EQ(roll_up_period_ms(300'000), 24 * kHour);
  EXPECT_EQ(roll_up_period_ms(900'000), 24 * kHour);
}

}  // namespace
}  // namespace pb::energy
