// The record committer against a real store on a temporary file and fake links: batching, one
// transaction, acks only after the commit, none after a failed one.
#include "record_committer.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"
#include "plugbridge/energy/calendar.hpp"

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
            [this](const std::vector<store::ReadingRow>& rows) { committed_.push_back(rows.size()); }) {}

  static store::ReadingRow row(const std::string& cid, uint32_t seq) {
    store::ReadingRow r;
    r.cid = cid;
    r.boot = 1;
    r.seq = seq;
    r.ts_ms = 1'700'000'000'000 + seq * 1000;
    r.flags = proto::kMeterOk;
    r.energy_mwh = 1000 + seq;
    return r;
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

TEST_F(RecordCommitterTest, EachSessionIsAckedItsHighestSeqOnceTheBatchIsCommitted) {
  auto a = std::make_shared<FakeLink>("a", 0);
  auto b = std::make_shared<FakeLink>("b", 0);
  std::vector<size_t> rows_at_ack;
  a->on_send = [&](const proto::Message&) { rows_at_ack.push_back(store_.count_readings()); };
  for (uint32_t seq = 1; seq <= 3; ++seq) committer_.add_reading(row("a", seq), a);
  committer_.add_reading(row("b", 1), b);
  store::EventRow e;
  e.cid = "a";
  e.kind = "relay";
  e.boot = 1;
  e.seq = 4;
  committer_.add_event(std::move(e), a);
  EXPECT_TRUE(a->sent.empty());
  EXPECT_EQ(committer_.waiting(), 5u);

  ASSERT_TRUE(run_until(io_, [&] { return !a->sent.empty() && !b->sent.empty(); }));
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{4});
  EXPECT_EQ(acked(*b), std::vector<uint32_t>{1});
  EXPECT_EQ(rows_at_ack, std::vector<size_t>{4}) << "acked before the rows were stored";
  EXPECT_EQ(stats_.commits, 1u) << "one transaction";
  EXPECT_EQ(stats_.readings_committed, 4u);
  EXPECT_EQ(stats_.events_committed, 1u);
  EXPECT_EQ(committed_, std::vector<size_t>{4});
  EXPECT_EQ(committer_.waiting(), 0u);
}

TEST_F(RecordCommitterTest, AFullBatchIsCommittedAtOnce) {
  auto a = std::make_shared<FakeLink>("a", 0);
  for (uint32_t seq = 1; seq <= RecordCommitter::kMaxBatch; ++seq) committer_.add_reading(row("a", seq), a);
  // No loop turn: the batch went at its size.
  EXPECT_EQ(acked(*a), std::vector<uint32_t>{static_cast<uint32_t>(RecordCommitter::kMaxBatch)});
  EXPECT_EQ(store_.count_readings("a"), RecordCommitter::kMaxBatch);
}

TEST_F(RecordCommitterTest, DuplicatesAreAckedAgainAndClosedSessionsNotAtAll) {
  auto a = std::make_shared<FakeLink>("a", 0);
  auto gone = std::make_shared<FakeLink>("b", 0);
  committer_.add_reading(row("a", 1), a);
  committer_.flush();
  committer_.add_reading(row("a", 1), a);  // resent after a lost ack
  committer_.add_reading(row("b", 1), gone);
  gone->close("test");
  committer_.flush();
  EXPECT_EQ(acked(*a), (std::vector<uint32_t>{1, 1}));
  EXPECT_TRUE(acked(*gone).empty());
  EXPECT_EQ(stats_.readings_duplicate, 1u);
  EXPECT_EQ(store_.count_readings("b"), 1u);
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

TEST_F(RecordCommitterTest, AFailedCommitAcksNothingAndClosesTheSessions) {
  store::Store read_only(dir_.file("t.db"), true);
  energy::Accountant accountant;
  RecordCommitter committer(io_, read_only, accountant, live_totals_, stats_, {});
  auto a = std::make_shared<FakeLink>("a", 0);
  committer.add_reading(row("a", 1), a);
  committer.flush();
  EXPECT_TRUE(acked(*a).empty());
  EXPECT_EQ(a->closed, "database write failed");
  EXPECT_EQ(store_.count_readings(), 0u);
  EXPECT_EQ(stats_.commits, 0u);
}

}  // namespace
}  // namespace pb::gateway
