// Retention against a real store on a temporary file, with the wall clock injected.
#include "retention.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"
#include "plugbridge/energy/accountant.hpp"

namespace pb::gateway {
namespace {

using namespace testing;

constexpr int64_t kDay = 86'400'000;
constexpr int64_t kNow = 1'700'000'000'000;

std::vector<store::ReadingRow> rows(const std::string& cid, uint32_t first_seq, size_t n, int64_t ts) {
  std::vector<store::ReadingRow> out;
  for (size_t i = 0; i < n; ++i) {
    store::ReadingRow r;
    r.cid = cid;
    r.boot = 1;
    r.seq = first_seq + static_cast<uint32_t>(i);
    r.ts_ms = ts + static_cast<int64_t>(i);
    r.flags = proto::kMeterOk;
    r.energy_mwh = r.seq;
    out.push_back(r);
  }
  return out;
}

TEST(Retention, PrunesOldReadingsOfTheRosterAndOfRemovedSocketsInBatches) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  // s1 in the roster: more old readings than one delete takes, and recent ones.
  store.commit(rows("s1", 1, Retention::kPruneBatch + 500, kNow - 40 * kDay), {});
  store.commit(rows("s1", 100'000, 10, kNow - kDay), {});
  // gone: no longer in the roster, known by its energy state.
  energy::Accountant accountant;
  auto gone = rows("gone", 1, 20, kNow - 40 * kDay);
  auto prepared = accountant.prepare(gone);
  store.commit(gone, {}, prepared.update);
  ASSERT_FALSE(store.energy_states().empty());
  // other: neither in the roster nor in the energy states, so not known to retention.
  store.commit(rows("other", 1, 5, kNow - 40 * kDay), {});

  Retention retention(io, store, 35, {"s1", "s2"}, [] { return kNow; });
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(store.count_readings("s1"), 10u);
  EXPECT_EQ(store.count_readings("gone"), 0u);
  EXPECT_EQ(store.count_readings("other"), 5u);
  retention.stop();
}

TEST(Retention, KeepsWhatIsYoungerThanRawDays) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  store.commit(rows("s1", 1, 3, kNow - 34 * kDay), {});
  store.commit(rows("s1", 10, 2, kNow - 36 * kDay), {});
  Retention retention(io, store, 35, {"s1"}, [] { return kNow; });
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(store.count_readings("s1"), 3u);
}

TEST(Retention, StoppedBeforeItsTimeItDoesNothing) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  store.commit(rows("s1", 1, 3, kNow - 40 * kDay), {});
  Retention retention(io, store, 35, {"s1"}, [] { return kNow; });
  retention.start(std::chrono::seconds(0));
  retention.stop();
  run_ready(io);
  EXPECT_EQ(retention.passes(), 0u);
  EXPECT_EQ(store.count_readings("s1"), 3u);
}

TEST(Retention, NothingIsPrunedByAgeWhileTheClockIsNotTrustworthy) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  store.commit(rows("s1", 1, 3, kNow - 40 * kDay), {});
  bool trusted = false;
  Retention retention(io, store, 35, {"s1"}, [] { return kNow; });
  retention.set_may_prune([&] { return trusted; });
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(store.count_readings("s1"), 3u);
  trusted = true;
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 2; }));
  EXPECT_EQ(store.count_readings("s1"), 0u);
}

TEST(Retention, OverTheSizeBudgetTheOldestRawReadingsGoFirstAndNothingElse) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  energy::Accountant accountant;
  // Ten days of two sockets, a reading every 43.2 s, with their energy accounting.
  constexpr size_t kPerDay = 2000;
  for (int day = 10; day >= 1; --day)
    for (const char* cid : {"s1", "s2"}) {
      auto batch = rows(cid, static_cast<uint32_t>((10 - day) * kPerDay + 1), kPerDay, kNow - day * kDay);
      for (size_t i = 0; i < batch.size(); ++i) {
        batch[i].ts_ms = kNow - day * kDay + static_cast<int64_t>(i) * 43'200;
        batch[i].energy_mwh = batch[i].seq * 10;
      }
      auto prepared = accountant.prepare(batch);
      store.commit(batch, {}, prepared.update);
      accountant.committed(prepared);
    }
  const auto buckets_before = store.buckets("s1", 0, INT64_MAX);
  const auto states_before = store.energy_states();
  const int64_t used = store.used_bytes();
  ASSERT_GT(used, 1 << 20);

  Retention retention(io, store, 35, {"s1", "s2"}, [] { return kNow; });
  const int64_t budget = used * 6 / 10;
  retention.set_max_bytes(budget);
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(
      io, [&] { return retention.passes() == 1; }, std::chrono::seconds(30)));
  EXPECT_LE(store.used_bytes(), budget);
  EXPECT_GT(retention.thinned(), 0u);
  for (const char* cid : {"s1", "s2"}) {
    // The oldest days went, the newest are all there.
    EXPECT_GT(*store.oldest_reading_ms(cid), kNow - 9 * kDay) << cid;
    EXPECT_EQ(store.readings(cid, kNow - 3 * kDay, kNow).size(), 3 * kPerDay) << cid;
  }
  // About as much as needed: not everything.
  EXPECT_GT(store.count_readings(), 8 * kPerDay);
  EXPECT_EQ(store.buckets("s1", 0, INT64_MAX), buckets_before);
  EXPECT_EQ(store.energy_states(), states_before);

  // Under the budget: the next pass prunes nothing.
  const size_t left = store.count_readings();
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 2; }));
  EXPECT_EQ(store.count_readings(), left);
}

TEST(Retention, NoBudgetNoThinning) {
  TempDir dir;
  boost::asio::io_context io;
  store::Store store(dir.file("t.db"));
  store.commit(rows("s1", 1, 3000, kNow - kDay), {});
  Retention retention(io, store, 35, {"s1"}, [] { return kNow; });
  retention.set_max_bytes(0);
  retention.start(std::chrono::seconds(0));
  ASSERT_TRUE(run_until(io, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(store.count_readings("s1"), 3000u);
}

}  // namespace
}  // namespace pb::gateway
