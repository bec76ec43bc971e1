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

}  // namespace
}  // namespace pb::gateway
