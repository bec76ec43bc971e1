// Retention against a real store on a temporary file, with the wall clock injected.
#include "retention.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"
#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/energy/totals.hpp"

namespace pb::gateway {
namespace {

using namespace testing;
using namespace date::literals;  // NOLINT(google-build-using-namespace)

constexpr int64_t kDay = 86'400'000;
constexpr int64_t kNow = 1'700'000'000'000;

// n one-minute samples of cid from start on (each 10 mWh), committed in one transaction.
void add_samples(store::Store& store, const std::string& cid, size_t n, int64_t start,
                 int64_t width = 60'000) {
  store::EnergyUpdate up;
  for (size_t i = 0; i < n; ++i) {
    store::BucketUpdate b;
    b.cid = cid;
    b.start_ms = energy::floor_to(start, width) + static_cast<int64_t>(i) * width;
    b.energy_mwh = 10;
    b.samples = 6;
    b.power_sum_mw = 6 * 5000;
    b.power_min_mw = 4000;
    b.power_max_mw = 6000;
    b.voltage_min_mv = 229'000;
    b.voltage_max_mv = 231'000;
    b.current_max_ua = 30'000;
    up.samples.push_back(b);
  }
  store.commit({}, up);
}

TEST(Retention, RollsUpThenPrunesOldSamplesOfEverySocketInBatches) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  // More old samples than one delete takes, and recent ones; a socket known to nothing else.
  add_samples(store, "s1", Retention::kPruneBatch + 500, kNow - 40 * kDay);
  add_samples(store, "s1", 10, kNow - kDay);
  add_samples(store, "gone", 20, kNow - 40 * kDay);
  const int64_t s1_energy = store.energy_sum("s1", INT64_MIN / 2, INT64_MAX / 2);
  ASSERT_EQ(s1_energy, static_cast<int64_t>(Retention::kPruneBatch + 510) * 10);
  ASSERT_EQ(store.rolled_up_ms(), 0);

  Retention retention(io, store, 35, [] { return kNow; });
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(store.rolled_up_ms(), energy::floor_to(kNow, 3'600'000));
  EXPECT_EQ(store.count_samples("s1"), 10u);
  EXPECT_EQ(store.count_samples("gone"), 0u);
  // The energy stays, in the buckets now.
  EXPECT_EQ(store.energy_sum("s1", INT64_MIN / 2, INT64_MAX / 2), s1_energy);
  EXPECT_EQ(store.energy_sum("gone", INT64_MIN / 2, INT64_MAX / 2), 200);
  retention.stop();
}

TEST(Retention, EachPassRollsTheBucketsUpIntoLocalDaysADayPerTurn) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  // Three days of minutes from 2023-11-04 22:13 UTC: Berlin's 4th to 7th (UTC+1); and today's.
  add_samples(store, "s1", 3 * 1440, kNow - 10 * kDay);
  add_samples(store, "s1", 10, kNow - 600'000);
  const int64_t energy = store.energy_sum("s1", INT64_MIN / 2, INT64_MAX / 2);
  const energy::Calendar cal("Europe/Berlin");
  Retention retention(io, store, 35, [] { return kNow; });
  size_t calls = 0;
  retention.set_roll_up_days([&](store::Store& s) {
    ++calls;
    return energy::roll_up_days(s, cal, 1);
  });
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  const std::vector<store::DaySpan> days = store.rolled_days(INT64_MIN, INT64_MAX);
  ASSERT_EQ(days.size(), 4U) << "today is not over";
  EXPECT_EQ(days.front().from_ms, cal.day(2023_y / date::November / 4).from_ms);
  EXPECT_EQ(days.back().to_ms, cal.day(2023_y / date::November / 7).to_ms);
  EXPECT_EQ(calls, 5U) << "a day per turn, then one that finds none";
  EXPECT_EQ(store.energy_sum("s1", INT64_MIN / 2, INT64_MAX / 2), energy);
  retention.stop();
}

TEST(Retention, KeepsWhatIsYoungerThanRawDays) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  add_samples(store, "s1", 3, kNow - 34 * kDay);
  add_samples(store, "s1", 2, kNow - 36 * kDay);
  Retention retention(io, store, 35, [] { return kNow; });
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(store.count_samples("s1"), 3u);
}

TEST(Retention, SamplesNotRolledUpAreNeverPruned) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  add_samples(store, "s1", 5, kNow - 40 * kDay);
  // The gateway's time is before them (a clock corrected back): the roll-up leaves them after the
  // mark, and nothing after the mark may go, whatever the cut-off.
  Retention retention(io, store, 35, [] { return kNow - 45 * kDay; });
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_LT(store.rolled_up_ms(), kNow - 40 * kDay);
  EXPECT_EQ(store.prune_samples(kNow, 100), 0u) << "samples after the mark";
  EXPECT_EQ(store.count_samples("s1"), 5u);
}

TEST(Retention, StoppedBeforeItsTimeItDoesNothing) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  add_samples(store, "s1", 3, kNow - 40 * kDay);
  Retention retention(io, store, 35, [] { return kNow; });
  retention.start(std::chrono::seconds(0));
  retention.stop();
  run_ready(io);
  EXPECT_EQ(retention.passes(), 0u);
  EXPECT_EQ(store.count_samples("s1"), 3u);
}

TEST(Retention, NothingIsPrunedByAgeWhileTheClockIsNotTrustworthy) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  add_samples(store, "s1", 3, kNow - 40 * kDay);
  bool trusted = false;
  Retention retention(io, store, 35, [] { return kNow; });
  retention.set_may_prune([&] { return trusted; });
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(store.count_samples("s1"), 3u);
  EXPECT_EQ(store.rolled_up_ms(), 0) << "rolled up by an untrusted clock";
  trusted = true;
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 2; }));
  EXPECT_EQ(store.count_samples("s1"), 0u);
}

TEST(Retention, OverTheSizeBudgetTheOldestRawSamplesGoFirstAndNothingElse) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  // Ten days of two sockets, a sample every 30 s, with their energy states.
  constexpr size_t kPerDay = 2880;
  for (int day = 10; day >= 1; --day)
    for (const char* cid : {"s1", "s2"}) add_samples(store, cid, kPerDay, kNow - day * kDay, 30'000);
  store.commit({}, store::EnergyUpdate{{}, {{"s1", 1, 9, kNow, 100, 0, 10}, {"s2", 1, 9, kNow, 100, 0, 10}}});
  store.roll_up(energy::floor_to(kNow, 3'600'000));
  const auto buckets_before = store.buckets("s1", 0, INT64_MAX);
  const auto states_before = store.energy_states();
  const int64_t used = store.used_bytes();
  ASSERT_GT(used, 1 << 20);

  Retention retention(io, store, 35, [] { return kNow; });
  const int64_t budget = used * 6 / 10;
  retention.set_max_bytes(budget);
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(
      io, [&] { return retention.passes() == 1; }, std::chrono::seconds(30)));
  EXPECT_LE(store.used_bytes(), budget);
  EXPECT_GT(retention.thinned(), 0u);
  // The oldest days went, the newest are all there, for both sockets.
  EXPECT_GT(*store.oldest_sample_ms(), kNow - 9 * kDay);
  for (const char* cid : {"s1", "s2"})
    EXPECT_EQ(store.samples(cid, energy::floor_to(kNow - 3 * kDay, 30'000), kNow).size(), 3 * kPerDay) << cid;
  // About as much as needed: not everything.
  EXPECT_GT(store.count_samples(), 8 * kPerDay);
  EXPECT_EQ(store.buckets("s1", 0, INT64_MAX), buckets_before);
  EXPECT_EQ(store.energy_states(), states_before);

  // Under the budget: the next pass prunes nothing.
  const size_t left = store.count_samples();
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 2; }));
  EXPECT_EQ(store.count_samples(), left);
}

TEST(Retention, OverTheBudgetSamplesNotRolledUpAreKept) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  // Two days of one-minute samples of two sockets before the gateway's hour, and the 13 minutes
  // of it so far.
  const int64_t hour = energy::floor_to(kNow, 3'600'000);
  constexpr size_t kBefore = 2 * 1440, kAfter = 13;
  for (const char* cid : {"s1", "s2"}) {
    add_samples(store, cid, kBefore, hour - 2 * kDay);
    add_samples(store, cid, kAfter, hour);
  }
  ASSERT_EQ(store.rolled_up_ms(), 0);
  const int64_t energy = static_cast<int64_t>(kBefore + kAfter) * 10;

  bool trusted = false;
  Retention retention(io, store, 35, [] { return kNow; });
  retention.set_may_prune([&] { return trusted; });
  retention.set_max_bytes(1);
  // Without a trustworthy clock nothing is rolled up by retention, so nothing may go.
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(retention.thinned(), 0u);
  EXPECT_EQ(store.count_samples(), 2 * (kBefore + kAfter));

  // Rolled up to the gateway's hour: everything before it goes (in several deletes), nothing after.
  trusted = true;
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(
      io, [&] { return retention.passes() == 2; }, std::chrono::seconds(30)));
  EXPECT_EQ(store.rolled_up_ms(), hour);
  EXPECT_EQ(retention.thinned(), 2 * kBefore);
  EXPECT_GT(retention.thinned(), Retention::kPruneBatch);
  EXPECT_EQ(store.oldest_sample_ms(), hour);
  for (const char* cid : {"s1", "s2"}) {
    EXPECT_EQ(store.count_samples(cid), kAfter) << cid;
    EXPECT_EQ(store.energy_sum(cid, INT64_MIN / 2, INT64_MAX / 2), energy) << cid;
    EXPECT_EQ(store.energy_sum(cid, INT64_MIN / 2, hour), static_cast<int64_t>(kBefore) * 10) << cid;
  }

  // Still over the budget, with nothing left to thin: the next pass ends without pruning.
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 3; }));
  EXPECT_EQ(store.count_samples(), 2 * kAfter);
  EXPECT_EQ(retention.thinned(), 2 * kBefore);
  retention.stop();
}

TEST(Retention, NoBudgetNoThinning) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  add_samples(store, "s1", 3000, kNow - 3 * kDay);
  Retention retention(io, store, 35, [] { return kNow; });
  retention.set_max_bytes(0);
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(store.count_samples("s1"), 3000u);
}

}  // namespace
}  // namespace pb::gateway
