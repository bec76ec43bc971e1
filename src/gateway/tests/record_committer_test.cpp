// The record committer against a real store on a temporary file and fake links: batching, events
// acked only after their commit, readings within the ack delay while commits succeed, nothing
// acked while they fail.
#include "record_committer.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fakes.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "support/small_disk.hpp"

namespace pb::gateway {
namespace {

using namespace testing;

class RecordCommitterTest : public ::testing::Test {
 protected:
  RecordCommitterTest()
      : store_(dir_.file("t.db")),
        calendar_("UTC"),
        live_totals_(calendar_),
        committer_(
            io_, store_, accountant_, live_totals_, stats_,
            [this](const RecordCommitter::ReadingsCommitted& c) { committed_.push_back(c.readings); }) {}

  static store::ReadingRow row(const std::string& cid, uint32_t seq) {
    store::ReadingRow r;
    r.cid = cid;
    r.boot = 1;
    r.seq = seq;
    r.ts_ms = 1'700'000'000'000 + seq * 1000;
    r.flags = kMeasured;
    r.energy_mwh = 1000 + seq;
    return r;
  }
  // A socket's relay event of boot 1.
  static store::EventRow relay_event(const std::string& cid, uint32_t seq) {
    store::EventRow e;
    e.cid = cid;
    e.kind = "relay";
    e.boot = 1;
    e.seq = seq;
    return e;
  }
  static std::vector<uint32_t> acked(const FakeLink& l) {
    std::vector<uint32_t> out;
    for (const auto& m : l.of(proto::MsgType::Ack)) out.push_back(m.ack.up_to_seq);
    return out;
  }

  TempDir dir_;
  boost::asio::io_context io_;
  store::Store store_;
  energy::Calendar calendar_;
  energy::Accountant accountant_;
  energy::LiveTotals live_totals_;
  Stats stats_;
  std::vector<size_t> committed_;
  RecordCommitter committer_;
};

TEST_F(RecordCommitterTest, AnEventIsAckedOnceCommittedWithTheReadingsAroundIt) {
  committer_.set_commit_interval(std::chrono::seconds(30));
  auto a = std::make_shared<FakeLink>("a", 0);
  auto b = std::make_shared<FakeLink>("b", 0);
  std::vector<size_t> events_at_ack;
  a->on_send = [&](const proto::Message&) {
    events_at_ack.push_back(store_.events("a", 0, INT64_MAX).size());
  };
  for (uint32_t seq = 1; seq <= 3; ++seq) committer_.add_reading(row("a", seq), a);
  committer_.add_reading(row("b", 1), b);
  committer_.add_event(relay_event("a", 4), a);
  committer_.add_reading(row("a", 5), a);
  EXPECT_TRUE(a->sent.empty());
  EXPECT_EQ(committer_.waiting(), 6u);

  ASSERT_TRUE(run_until(io_, [&] { return !a->sent.empty() && !b->sent.empty(); }));
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{5});
  EXPECT_EQ(acked(*b), std::vector<uint32_t>{1});
  EXPECT_EQ(events_at_ack, std::vector<size_t>{1}) << "the event was acked before it was stored";
  EXPECT_EQ(stats_.commits, 1u) << "the event alone";
  EXPECT_EQ(stats_.events_committed, 1u);
  EXPECT_EQ(store_.count_samples(), 0u) << "the readings wait for their interval";
  EXPECT_EQ(committer_.waiting(), 5u);

  committer_.flush();
  EXPECT_EQ(stats_.commits, 2u);
  EXPECT_EQ(stats_.readings_committed, 5u);
  EXPECT_EQ(readings_stored(store_, "a"), 4);
  EXPECT_EQ(readings_stored(store_, "b"), 1);
  EXPECT_EQ(store_.last_seq("a", 1), 5u);
  EXPECT_EQ(committed_, std::vector<size_t>{5});
  EXPECT_EQ(committer_.waiting(), 0u);
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{5}) << "nothing new to ack";
}

TEST_F(RecordCommitterTest, ReadingsAreAckedWithinTheAckDelayBeforeTheirCommit) {
  committer_.set_commit_interval(std::chrono::seconds(30));
  auto a = std::make_shared<FakeLink>("a", 0);
  for (uint32_t seq = 1; seq <= 3; ++seq) committer_.add_reading(row("a", seq), a);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until(io_, [&] { return !a->sent.empty(); }));
  EXPECT_LT(std::chrono::steady_clock::now() - start, RecordCommitter::kAckDelay * 4);
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{3});
  EXPECT_EQ(store_.count_samples(), 0u) << "committed before the interval";
  EXPECT_EQ(stats_.commits, 0u);
  committer_.flush();
  EXPECT_EQ(readings_stored(store_, "a"), 3);
}

TEST_F(RecordCommitterTest, AnEventsSeqIsNeverAckedBeforeItsCommit) {
  committer_.set_commit_interval(std::chrono::seconds(30));
  auto a = std::make_shared<FakeLink>("a", 0);
  struct Acked {
    uint32_t seq;
    size_t events_stored;
    bool operator==(const Acked&) const = default;
  };
  std::vector<Acked> acks;
  a->on_send = [&](const proto::Message& m) {
    acks.push_back({m.ack.up_to_seq, store_.events("a", INT64_MIN, INT64_MAX).size()});
  };
  const auto first = std::chrono::steady_clock::now();
  for (uint32_t seq = 1; seq <= 3; ++seq) committer_.add_reading(row("a", seq), a);
  // The loop runs until shortly before the ack timer is due, so the event arrives too late for its
  // commit (kFlushDelay after it) to come first: the ack finds it waiting.
  io_.run_until(first + RecordCommitter::kAckDelay - RecordCommitter::kFlushDelay / 2);
  committer_.add_event(relay_event("a", 4), a);
  committer_.add_reading(row("a", 5), a);
  ASSERT_TRUE(run_until(io_, [&] { return !acks.empty() && acks.back().seq == 5; }));
  EXPECT_EQ(acks, (std::vector<Acked>{{3, 0}, {5, 1}}))
      << "a reading after the event acked before the event's commit";
  EXPECT_EQ(stats_.commits, 1u) << "the event alone";
  EXPECT_EQ(store_.count_samples(), 0u);
  committer_.flush();
  EXPECT_EQ(readings_stored(store_, "a"), 4);
  EXPECT_EQ(acks.size(), 2u);
}

TEST_F(RecordCommitterTest, AFullBatchOfSamplesIsCommittedAtOnce) {
  auto a = std::make_shared<FakeLink>("a", 0);
  committer_.set_commit_interval(std::chrono::hours(1));
  // One reading per minute: each its own sample.
  const auto minute_apart = [](uint32_t seq) {
    auto r = row("a", seq);
    r.ts_ms = 1'700'000'040'000 + int64_t{seq} * 60'000;
    return r;
  };
  for (uint32_t seq = 1; seq <= RecordCommitter::kMaxBatch; ++seq)
    committer_.add_reading(minute_apart(seq), a);
  // No loop turn: the batch went at its size.
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{static_cast<uint32_t>(RecordCommitter::kMaxBatch)});
  EXPECT_EQ(readings_stored(store_, "a"), static_cast<int64_t>(RecordCommitter::kMaxBatch));
  EXPECT_EQ(store_.count_samples(), RecordCommitter::kMaxBatch);
}

TEST_F(RecordCommitterTest, ReadingsAreSummedOnArrivalSoManyWaitForTheInterval) {
  auto a = std::make_shared<FakeLink>("a", 0);
  committer_.set_commit_interval(std::chrono::hours(1));
  // Many more readings than a batch, all in one minute: one sample waits, nothing is committed yet.
  for (uint32_t seq = 1; seq <= 3 * RecordCommitter::kMaxBatch; ++seq) {
    auto r = row("a", seq);
    r.ts_ms = 1'700'000'040'000 + seq;
    committer_.add_reading(std::move(r), a);
  }
  EXPECT_EQ(committer_.waiting(), 3 * RecordCommitter::kMaxBatch);
  EXPECT_EQ(store_.count_samples(), 0u);
  committer_.flush();
  EXPECT_EQ(committed_, std::vector<size_t>{3 * RecordCommitter::kMaxBatch});
  const auto samples = store_.samples("a", INT64_MIN, INT64_MAX);
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].samples, static_cast<int64_t>(3 * RecordCommitter::kMaxBatch));
  EXPECT_EQ(samples[0].energy_mwh, static_cast<int64_t>(3 * RecordCommitter::kMaxBatch - 1));
  EXPECT_EQ(committer_.waiting(), 0u);
}

TEST_F(RecordCommitterTest, DuplicatesCountOnceAndClosedSessionsAreNotAcked) {
  auto a = std::make_shared<FakeLink>("a", 0);
  auto gone = std::make_shared<FakeLink>("b", 0);
  committer_.add_reading(row("a", 1), a);
  committer_.flush();
  auto again = std::make_shared<FakeLink>("a", 0);  // a new session resends after a lost ack
  committer_.add_reading(row("a", 1), again);
  committer_.add_reading(row("b", 1), gone);
  gone->close("test");
  committer_.flush();
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{1});
  EXPECT_EQ(acked(*again), std::vector<uint32_t>{1});
  EXPECT_TRUE(acked(*gone).empty());
  EXPECT_EQ(readings_stored(store_, "a"), 1) << "a resent reading counted twice";
  EXPECT_EQ(readings_stored(store_, "b"), 1);
}

TEST_F(RecordCommitterTest, GatewayEventsAreCommittedAndAckedToNobody) {
  store::EventRow e;
  e.cid = "a";
  e.kind = "command";
  e.ts_ms = 1'700'000'000'000;
  e.value = 2001;
  committer_.add_gateway_event(std::move(e));
  committer_.flush();
  EXPECT_EQ(store_.events("a", 0, INT64_MAX).size(), 1u);
  EXPECT_TRUE(committed_.at(0) == 0u);
}

TEST_F(RecordCommitterTest, ARecordTheStoreRefusesIsDroppedNotRetried) {
  auto a = std::make_shared<FakeLink>("a", 0);
  committer_.add_reading(row("", 1), a);  // no cid: the store's own check, not the disk
  committer_.flush();
  EXPECT_TRUE(acked(*a).empty());
  EXPECT_EQ(a->closed, "database write failed");
  EXPECT_EQ(committer_.waiting(), 0u);
  EXPECT_TRUE(committer_.failure().empty()) << "not a storage failure to retry";
  EXPECT_EQ(stats_.commits, 0u);
}

// The store on a small file system of its own, filled up and freed again.
class DiskFullTest : public RecordCommitterTest {
 protected:
  void SetUp() override {
    if (auto why = test::SmallDisk::unavailable()) GTEST_SKIP() << *why;
    disk_ = std::make_unique<test::SmallDisk>(1 << 20);
    db_ = std::make_unique<store::Store>((disk_->path() / "t.db").string());
    committer_on_disk_ = std::make_unique<RecordCommitter>(
        io_, *db_, accountant_on_disk_, live_totals_, stats_,
        [this](const RecordCommitter::ReadingsCommitted& c) { committed_.push_back(c.readings); });
  }
  std::unique_ptr<test::SmallDisk> disk_;
  std::unique_ptr<store::Store> db_;
  energy::Accountant accountant_on_disk_;
  std::unique_ptr<RecordCommitter> committer_on_disk_;
};

TEST_F(DiskFullTest, RecordsWaitUnackedAndAreCommittedWhenSpaceReturns) {
  RecordCommitter& c = *committer_on_disk_;
  auto a = std::make_shared<FakeLink>("a", 0);
  c.add_reading(row("a", 1), a);
  c.flush();
  ASSERT_EQ(acked(*a), std::vector<uint32_t>{1});
  ASSERT_GT(disk_->fill(), 0u);

  for (uint32_t seq = 2; seq <= 300; ++seq) c.add_reading(row("a", seq), a);
  c.flush();
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{1}) << "acked while the disk is full";
  EXPECT_TRUE(a->open()) << "the session stays: its records wait in memory";
  EXPECT_NE(c.failure().find("full"), std::string::npos) << c.failure();
  EXPECT_EQ(c.waiting(), 299u);
  // It keeps trying on its own, and keeps failing while the disk is full.
  ASSERT_TRUE(run_until(
      io_, [&] { return stats_.commits_failed >= 3; }, std::chrono::seconds(10)));
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{1});
  c.add_reading(row("a", 301), a);  // still accepted: far below the bound

  disk_->free();
  ASSERT_TRUE(run_until(
      io_, [&] { return acked(*a).size() == 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(acked(*a).back(), 301u);
  EXPECT_TRUE(c.failure().empty());
  EXPECT_EQ(c.waiting(), 0u);
  EXPECT_EQ(readings_stored(*db_, "a"), 301) << "every acked record is stored";
  EXPECT_EQ(accountant_on_disk_.state("a")->energy_mwh, 1301u) << "the energy baseline moved with the commit";
}

TEST_F(DiskFullTest, WhileCommitsFailReadingsAreAckedOnlyAfterTheirCommit) {
  RecordCommitter& c = *committer_on_disk_;
  c.set_commit_interval(std::chrono::seconds(30));
  auto a = std::make_shared<FakeLink>("a", 0);
  c.add_reading(row("a", 1), a);
  ASSERT_TRUE(run_until(io_, [&] { return !acked(*a).empty(); }));
  ASSERT_EQ(acked(*a), std::vector<uint32_t>{1}) << "acked early while commits succeed";
  ASSERT_EQ(db_->count_samples(), 0u);

  ASSERT_GT(disk_->fill(), 0u);
  c.add_reading(row("a", 2), a);
  c.flush();
  ASSERT_FALSE(c.failure().empty());
  c.add_reading(row("a", 3), a);
  // Retries at 250 and 500 ms after the failure: longer than the ack delay.
  ASSERT_TRUE(run_until(
      io_, [&] { return stats_.commits_failed >= 3; }, std::chrono::seconds(10)));
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{1}) << "acked before its commit while commits fail";
  EXPECT_EQ(db_->count_samples(), 0u);

  disk_->free();
  ASSERT_TRUE(run_until(
      io_, [&] { return acked(*a).size() == 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(acked(*a).back(), 3u);
  EXPECT_EQ(readings_stored(*db_, "a"), 3) << "the ack went out before the commit";
  EXPECT_TRUE(c.failure().empty());
}

TEST_F(DiskFullTest, BeyondTheBoundNewRecordsAreRefusedAndTheirSessionsClosed) {
  RecordCommitter& c = *committer_on_disk_;
  c.set_max_waiting(10);
  auto a = std::make_shared<FakeLink>("a", 0);
  auto b = std::make_shared<FakeLink>("b", 0);
  c.add_reading(row("a", 1), a);
  c.flush();
  disk_->fill();
  for (uint32_t seq = 2; seq <= 11; ++seq) c.add_reading(row("a", seq), a);
  c.flush();  // fails: 10 records wait
  ASSERT_FALSE(c.failure().empty());
  c.add_reading(row("b", 1), b);
  EXPECT_EQ(c.waiting(), 10u);
  EXPECT_EQ(b->closed.rfind("database not writable", 0), 0u) << b->closed;
  EXPECT_EQ(stats_.records_refused, 1u);
  store::EventRow e;  // the gateway's own events have nobody to send them again: kept
  e.cid = "a";
  e.kind = "command";
  c.add_gateway_event(std::move(e));
  EXPECT_EQ(c.waiting(), 11u);
  disk_->free();
  ASSERT_TRUE(run_until(
      io_, [&] { return acked(*a).size() == 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(acked(*a).back(), 11u);
  EXPECT_EQ(readings_stored(*db_, "b"), 0);
  EXPECT_EQ(db_->events("a", INT64_MIN, INT64_MAX).size(), 1u);
}

TEST_F(RecordCommitterTest, SamplesAreRolledUpOnceTheGatewaysTimeIsInANewPeriod) {
  // One-minute samples (the default): rolled up every 6 h, at 00, 06, 12 and 18 UTC.
  const int64_t period = energy::roll_up_period_ms(accountant_.options().sample_ms);
  ASSERT_EQ(period, 6 * 3'600'000);
  int64_t now = 1'700'000'000'000;  // 22:13:20 UTC
  committer_.set_clock([&] { return now; });
  auto a = std::make_shared<FakeLink>("a", 0);
  for (uint32_t seq = 1; seq <= 5; ++seq) committer_.add_reading(row("a", seq), a);
  committer_.flush();
  EXPECT_EQ(store_.rolled_up_ms(), energy::floor_to(now, period)) << "the first commit rolls up to 18:00";
  const int64_t total = store_.energy_sum("a", INT64_MIN / 2, INT64_MAX / 2);
  EXPECT_EQ(total, 4);
  EXPECT_TRUE(store_.samples("a", INT64_MIN, store_.rolled_up_ms()).empty());

  now += 3'600'000;  // 23:13: a new hour, not a new period
  committer_.add_reading(row("a", 6), a);
  committer_.flush();
  EXPECT_EQ(store_.rolled_up_ms(), energy::floor_to(1'700'000'000'000, period));
  EXPECT_EQ(store_.samples("a", store_.rolled_up_ms(), INT64_MAX).size(), 1u) << "the sample waits";
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, INT64_MAX / 2), 5) << "readers add the waiting samples";

  now += 6 * 3'600'000;  // 05:13 the next day
  committer_.add_reading(row("a", 7), a);
  committer_.flush();
  EXPECT_EQ(store_.rolled_up_ms(), energy::floor_to(now, period));
  EXPECT_TRUE(store_.samples("a", store_.rolled_up_ms(), INT64_MAX).empty());
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, INT64_MAX / 2), 6);
  EXPECT_EQ(store_.buckets("a", INT64_MIN, INT64_MAX).size(), 1u) << "in one quarter-hour";
}

TEST_F(RecordCommitterTest, TheRollUpFollowsTheClockAfterCommitsAndKeepsTheTotals) {
  // Ten-second samples: rolled up every hour.
  energy::AccountantOptions ten_seconds;
  ten_seconds.sample_ms = 10'000;
  accountant_.set_options(ten_seconds);
  ASSERT_EQ(energy::roll_up_period_ms(10'000), 3'600'000);
  auto a = std::make_shared<FakeLink>("a", 0);
  // At ts (ms), the counter at mwh.
  const auto reading_at = [](uint32_t seq, int64_t ts, uint64_t mwh) {
    store::ReadingRow r = row("a", seq);
    r.ts_ms = ts;
    r.energy_mwh = mwh;
    return r;
  };
  // The energy of the samples with start_ms < to.
  const auto samples_mwh = [&](int64_t to) {
    int64_t sum = 0;
    for (const auto& s : store_.samples("a", INT64_MIN / 2, to)) sum += s.energy_mwh;
    return sum;
  };
  constexpr int64_t kHour = 3'600'000;
  const int64_t h0 = energy::floor_to(1'700'000'000'000, kHour);  // 22:00 UTC
  committer_.add_reading(reading_at(1, h0 + 60'000, 1000), a);
  committer_.add_reading(reading_at(2, h0 + 120'000, 1010), a);
  committer_.flush();
  EXPECT_EQ(store_.rolled_up_ms(), 0) << "rolled up without a clock";

  int64_t now = h0 + 30 * 60'000;
  committer_.set_clock([&] { return now; });
  committer_.add_reading(reading_at(3, h0 + 30 * 60'000, 1030), a);
  committer_.flush();
  EXPECT_EQ(store_.rolled_up_ms(), h0);
  committer_.add_reading(reading_at(4, h0 + 59 * 60'000, 1100), a);
  committer_.flush();
  EXPECT_EQ(store_.rolled_up_ms(), h0) << "rolled up before the hour was over";
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, INT64_MAX / 2), 100);
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, h0 + kHour), samples_mwh(INT64_MAX / 2));

  // The hour is over: the next commit rolls it up, not the clock alone.
  now = h0 + kHour + 5 * 60'000;
  EXPECT_EQ(store_.rolled_up_ms(), h0);
  committer_.add_reading(reading_at(5, now, 1150), a);
  committer_.flush();
  EXPECT_EQ(store_.rolled_up_ms(), h0 + kHour);
  // Samples before the mark are in the buckets now: their energy counted there, once (with 8 of
  // reading 5's 50 mWh: the minute of its six before the hour).
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, store_.rolled_up_ms()), 108);
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, store_.rolled_up_ms()), samples_mwh(h0 + kHour));
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, INT64_MAX / 2), 150);
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, INT64_MAX / 2), samples_mwh(INT64_MAX / 2));
  int64_t bucket_mwh = 0;
  for (const auto& b : store_.buckets("a", INT64_MIN / 2, INT64_MAX / 2)) bucket_mwh += b.energy_mwh;
  EXPECT_EQ(bucket_mwh, 150);

  // A reading stamped in the hour rolled up (a later seq, an earlier time) goes into its bucket
  // directly.
  committer_.add_reading(reading_at(6, now + 1000, 1160), a);
  committer_.add_reading(reading_at(7, h0 + 59 * 60'000 + 30'000, 1170), a);
  committer_.flush();
  EXPECT_EQ(store_.rolled_up_ms(), h0 + kHour);
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, INT64_MAX / 2), 170);
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, INT64_MAX / 2), samples_mwh(INT64_MAX / 2));
  EXPECT_EQ(store_.energy_sum("a", INT64_MIN / 2, h0 + kHour), samples_mwh(h0 + kHour));
}

TEST_F(RecordCommitterTest, WhileTimesAreProvisionalRecordsAreHeldUnackedThenRestamped) {
  committer_.set_time_settled(false);
  auto a = std::make_shared<FakeLink>("a", 0);
  for (uint32_t seq = 1; seq <= 3; ++seq) committer_.add_reading(row("a", seq), a);
  store::EventRow e;
  e.cid = "a";
  e.kind = "command";
  e.ts_ms = 1'700'000'000'500;
  committer_.add_gateway_event(std::move(e));
  committer_.flush();
  io_.run_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(a->sent.empty()) << "acked with a provisional time";
  EXPECT_EQ(store_.count_samples(), 0u);
  EXPECT_EQ(committer_.waiting(), 4u);

  committer_.restamp(86'400'000);
  committer_.set_time_settled(true);
  ASSERT_TRUE(run_until(io_, [&] { return !a->sent.empty(); }));
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{3});
  committer_.flush();  // the readings, if the event went first
  const auto rows = store_.samples("a", INT64_MIN, INT64_MAX);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].start_ms, energy::floor_to(1'700'000'001'000 + 86'400'000, 60'000));
  EXPECT_EQ(rows[0].samples, 3);
  EXPECT_EQ(store_.events("a", INT64_MIN, INT64_MAX).at(0).ts_ms, 1'700'000'000'500 + 86'400'000);
}

TEST_F(RecordCommitterTest, HeldRecordsReachingTheBoundAskForTheTimeToBeSettled) {
  committer_.set_time_settled(false);
  committer_.set_max_waiting(5);
  int asked = 0;
  committer_.set_on_hold_full([&] {
    ++asked;
    committer_.set_time_settled(true);
  });
  auto a = std::make_shared<FakeLink>("a", 0);
  for (uint32_t seq = 1; seq <= 5; ++seq) committer_.add_reading(row("a", seq), a);
  EXPECT_EQ(asked, 0);
  committer_.add_reading(row("a", 6), a);
  EXPECT_EQ(asked, 1);
  EXPECT_TRUE(a->closed.empty()) << "not refused: " << a->closed;
  ASSERT_TRUE(run_until(io_, [&] { return !a->sent.empty(); }));
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{6});
}

TEST_F(RecordCommitterTest, ADeletedDatabaseFileIsFatalAndNothingIsAckedIntoIt) {
  std::string fatal;
  committer_.set_on_fatal([&](const std::string& why) { fatal = why; });
  auto a = std::make_shared<FakeLink>("a", 0);
  committer_.add_reading(row("a", 1), a);
  committer_.flush();
  ASSERT_EQ(acked(*a), std::vector<uint32_t>{1});
  std::filesystem::remove(dir_.file("t.db"));
  committer_.add_reading(row("a", 2), a);
  committer_.flush();  // commits into the unlinked file, which is gone at close
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{1});
  EXPECT_NE(fatal.find("was deleted"), std::string::npos) << fatal;
  EXPECT_EQ(a->closed, "database lost");
  committer_.add_reading(row("a", 3), a);
  EXPECT_EQ(committer_.waiting(), 0u) << "nothing is taken any more";
}

TEST_F(RecordCommitterTest, AReplacedDatabaseFileIsNoticedWithoutAnyCommit) {
  std::string fatal;
  committer_.set_on_fatal([&](const std::string& why) { fatal = why; });
  committer_.start();
  {
    std::ofstream other(dir_.file("other.db"));
    other << "not the database";
  }
  std::filesystem::rename(dir_.file("other.db"), dir_.file("t.db"));
  ASSERT_TRUE(run_until(
      io_, [&] { return !fatal.empty(); }, RecordCommitter::kFileCheckEvery * 3));
  EXPECT_NE(fatal.find("replaced by another file"), std::string::npos) << fatal;
}

}  // namespace
}  // namespace pb::gateway
