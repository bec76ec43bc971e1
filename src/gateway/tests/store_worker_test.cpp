// The store worker: long SQLite jobs on a thread of their own while the loop goes on, and the
// loop's writers (commits, retention's deletes) waiting for it instead of for its write lock.
#include "store_worker.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <future>
#include <thread>

#include "fakes.hpp"
#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/energy/totals.hpp"
#include "record_committer.hpp"
#include "retention.hpp"

namespace pb::gateway {
namespace {

using namespace testing;

constexpr int64_t kNow = 1'700'000'000'000;  // 22:13:20 UTC

// A job that holds the database's write lock (a transaction of its own connection, as a long
// roll-up does) until released.
struct LockingJob {
  std::promise<void> locked, release;
  std::thread::id ran_on;

  StoreWorker::Job job(const std::string& path) {
    return [this, path](store::Store&) {
      ran_on = std::this_thread::get_id();
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
      ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
      locked.set_value();
      release.get_future().wait();
      sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
      sqlite3_close(db);
    };
  }
};

class StoreWorkerTest : public ::testing::Test {
 protected:
  StoreWorkerTest()
      : path_(dir_.file("t.db")),
        store_(path_),
        calendar_("UTC"),
        live_totals_(calendar_),
        committer_(io_, store_, accountant_, live_totals_, stats_, {}),
        worker_(io_, path_) {}

  static store::ReadingRow reading(const std::string& cid, uint32_t seq, int64_t ts_ms) {
    store::ReadingRow r;
    r.cid = cid;
    r.boot = 1;
    r.seq = seq;
    r.ts_ms = ts_ms;
    r.flags = kMeasured;
    r.energy_mwh = 1000 + seq;
    return r;
  }

  TempDir dir_;
  std::string path_;
  boost::asio::io_context io_;
  store::Store store_;
  energy::Calendar calendar_;
  energy::Accountant accountant_;
  energy::LiveTotals live_totals_;
  Stats stats_;
  RecordCommitter committer_;
  StoreWorker worker_;
};

TEST_F(StoreWorkerTest, JobsRunOffTheLoopInOrderAndTheirEndComesBackOnTheLoop) {
  std::vector<int> order;
  std::thread::id job_thread, done_thread;
  std::string job_path;
  worker_.run(
      [&](store::Store& s) {
        job_thread = std::this_thread::get_id();
        job_path = s.path();
      },
      [&](const std::exception_ptr& e) {
        EXPECT_FALSE(e);
        done_thread = std::this_thread::get_id();
        order.push_back(1);
      });
  worker_.run([](store::Store&) { throw store::StoreError("no"); },
              [&](const std::exception_ptr& e) {
                EXPECT_TRUE(e);
                order.push_back(2);
              });
  EXPECT_TRUE(worker_.busy());
  bool idle = false;
  worker_.when_idle([&] { idle = true; });
  ASSERT_TRUE(run_until(io_, [&] { return idle; }));
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(job_path, path_);
  EXPECT_NE(job_thread, std::this_thread::get_id());
  EXPECT_EQ(done_thread, std::this_thread::get_id());
  EXPECT_FALSE(worker_.busy());
}

TEST_F(StoreWorkerTest, ACommitWaitsForTheWorkersJobInsteadOfItsWriteLock) {
  committer_.set_worker(&worker_);
  committer_.set_commit_interval(std::chrono::seconds(30));
  LockingJob lock;
  bool job_done = false;
  worker_.run(lock.job(path_), [&](const std::exception_ptr&) { job_done = true; });
  lock.locked.get_future().wait();

  auto a = std::make_shared<FakeLink>("a", 0);
  committer_.add_reading(reading("a", 1, kNow), a);
  store::EventRow e;
  e.cid = "a";
  e.kind = "relay";
  e.boot = 1;
  e.seq = 2;
  committer_.add_event(std::move(e), a);
  // On the loop thread this would wait for the lock (busy_timeout), then fail.
  committer_.flush();
  EXPECT_TRUE(committer_.failure().empty());
  EXPECT_EQ(stats_.commits, 0u) << "committed while the worker held the write lock";
  EXPECT_EQ(stats_.commits_failed, 0u);
  EXPECT_EQ(committer_.waiting(), 2u);

  lock.release.set_value();
  ASSERT_TRUE(run_until(io_, [&] { return job_done && stats_.commits == 1; }));
  EXPECT_EQ(store_.events("a", INT64_MIN, INT64_MAX).size(), 1u);
  EXPECT_EQ(committer_.waiting(), 0u);
  EXPECT_EQ(lock.ran_on == std::this_thread::get_id(), false);
}

TEST_F(StoreWorkerTest, TheRollUpAfterACommitRunsOnTheWorker) {
  committer_.set_worker(&worker_);
  committer_.set_clock([] { return kNow; });
  auto a = std::make_shared<FakeLink>("a", 0);
  for (uint32_t seq = 1; seq <= 5; ++seq)
    committer_.add_reading(reading("a", seq, kNow - 8 * 3'600'000 + seq * 1000), a);
  committer_.flush();
  EXPECT_EQ(stats_.commits, 1u);
  EXPECT_TRUE(worker_.busy()) << "the roll-up was not handed to the worker";
  const int64_t period = energy::roll_up_period_ms(accountant_.options().sample_ms);
  ASSERT_TRUE(run_until(io_, [&] { return committer_.roll_ups() == 1; }));
  EXPECT_EQ(store_.rolled_up_ms(), energy::floor_to(kNow, period));
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, INT64_MAX / 2), 4);

  // Due already: nothing more goes to the worker.
  committer_.add_reading(reading("a", 6, kNow), a);
  committer_.flush();
  EXPECT_FALSE(worker_.busy());
  EXPECT_EQ(committer_.roll_ups(), 1u);
}

TEST_F(StoreWorkerTest, RetentionRollsUpOnTheWorkerAndItsDeletesWaitForIt) {
  // Old samples, rolled up by the pass and then pruned.
  store::EnergyUpdate up;
  for (int i = 0; i < 30; ++i) {
    store::BucketUpdate b;
    b.cid = "s1";
    b.start_ms = energy::floor_to(kNow - 40 * 86'400'000LL, 60'000) + i * 60'000;
    b.energy_mwh = 10;
    b.samples = 1;
    up.samples.push_back(b);
  }
  store_.commit({}, up);
  Retention retention(io_, store_, 35, [] { return kNow; });
  retention.set_worker(&worker_);
  std::thread::id days_on;
  retention.set_roll_up_days([&](store::Store& s) {
    days_on = std::this_thread::get_id();
    return energy::roll_up_days(s, calendar_, 1);
  });
  // A job holding the write lock first: the pass queues behind it and deletes nothing meanwhile.
  LockingJob lock;
  worker_.run(lock.job(path_), {});
  lock.locked.get_future().wait();
  retention.start(std::chrono::seconds(0));
  run_ready(io_);
  EXPECT_EQ(store_.count_samples("s1"), 30u);
  EXPECT_EQ(retention.passes(), 0u);
  lock.release.set_value();
  ASSERT_TRUE(run_until(io_, [&] { return retention.passes() == 1; }));
  EXPECT_EQ(store_.count_samples("s1"), 0u);
  EXPECT_EQ(store_.energy_sum("s1", INT64_MIN / 2, INT64_MAX / 2), 300);
  EXPECT_NE(days_on, std::this_thread::get_id());
  EXPECT_NE(days_on, std::thread::id{});
  retention.stop();
}

TEST_F(StoreWorkerTest, StopWaitsForTheJobAndDropsWhatWaits) {
  // The first job runs until stop() has begun, so the second is still queued when it does.
  std::promise<void> started;
  bool first_done = false, second_ran = false;
  worker_.run(
      [&](store::Store&) {
        started.set_value();
        while (!worker_.stopping()) std::this_thread::yield();
      },
      [&](const std::exception_ptr&) { first_done = true; });
  worker_.run([&](store::Store&) { second_ran = true; }, {});
  started.get_future().wait();
  EXPECT_FALSE(worker_.stopping());
  worker_.stop();
  EXPECT_TRUE(worker_.stopping());
  run_ready(io_);
  EXPECT_FALSE(first_done) << "a done handler ran after stop()";
  EXPECT_FALSE(second_ran);
  EXPECT_FALSE(worker_.busy());
  worker_.run([&](store::Store&) { second_ran = true; }, {});
  EXPECT_FALSE(worker_.busy()) << "stopped: no more jobs";
  bool idle = false;
  worker_.when_idle([&] { idle = true; });
  run_ready(io_);
  EXPECT_TRUE(idle);
}

}  // namespace
}  // namespace pb::gateway
