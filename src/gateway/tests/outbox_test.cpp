// The uplink outbox against a fake uplink and a real SQLite file: coalescing, order, deletion only
// after the PUBACK, the drain rate, resends of failed publishes and refused reports, restarts.
#include "plugbridge/gateway/outbox.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace pb::gateway {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

class FakeUplink : public UplinkPort {
 public:
  struct Sent {
    json j;
    std::function<void(bool)> done;
    Clock::time_point at;
  };
  explicit FakeUplink(boost::asio::io_context& io) : io_(io) {}
  bool connected() const override { return up; }
  void publish(const std::string& suffix, std::string payload, std::function<void(bool)> done) override {
    EXPECT_EQ(suffix, "properties/report");
    sent.push_back({json::parse(payload), std::move(done), Clock::now()});
    if (auto_ack) complete(sent.size() - 1, true);
  }
  // The broker's answer to publish i: PUBACK (true) or link lost (false), on the loop like Paho's.
  void complete(size_t i, bool ok) {
    auto done = std::move(sent.at(i).done);
    ASSERT_TRUE(done) << "publish " << i << " completed twice";
    boost::asio::post(io_, [done = std::move(done), ok] { done(ok); });
  }
  std::string value(size_t i) const { return sent.at(i).j["param"]["value"].dump(); }
  std::string id(size_t i) const { return sent.at(i).j["param"]["id"]; }
  std::string cid(size_t i) const { return sent.at(i).j["param"]["cid"]; }

  bool up = false;
  bool auto_ack = false;
  std::vector<Sent> sent;

 private:
  boost::asio::io_context& io_;
};

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "pboutboxXXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    open_store();
    opt_.rate_per_s = 1000;
    opt_.tick = 5ms;
    opt_.write_delay = 10ms;
    opt_.backoff_min = 300ms;  // long enough that settle() below surely ends within it
    opt_.backoff_max = 1200ms;
  }
  void TearDown() override {
    outbox_.reset();
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void open_store() {
    store::StoreOptions so;
    so.synchronous = "OFF";
    store_ = std::make_unique<store::Store>((dir_ / "t.db").string(), so);
  }
  Outbox& make(std::set<std::string> roster = {"a", "b"}) {
    outbox_ = std::make_unique<Outbox>(io_, *store_, uplink_, opt_, [this](const std::string& cid) {
      return uplink_.up && synced_.count(cid) != 0;
    });
    outbox_->load(roster);
    return *outbox_;
  }
  // Runs the loop until pred holds (or the deadline passes); returns pred().
  bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds deadline = 5s) {
    const auto end = Clock::now() + deadline;
    while (!pred() && Clock::now() < end) {
      io_.restart();
      io_.run_for(2ms);
    }
    return pred();
  }
  void settle(std::chrono::milliseconds d = 30ms) {
    io_.restart();
    io_.run_for(d);
  }
  std::vector<store::OutboxRow> rows() {
    outbox_->write_now();
    return store_->outbox_rows();
  }
  void connect(std::set<std::string> synced = {"a", "b"}) {
    uplink_.up = true;
    synced_ = std::move(synced);
    outbox_->kick();
  }

  fs::path dir_;
  boost::asio::io_context io_;
  std::unique_ptr<store::Store> store_;
  FakeUplink uplink_{io_};
  std::set<std::string> synced_;
  OutboxOptions opt_;
  std::unique_ptr<Outbox> outbox_;
};

TEST(OutboxClasses, EventDps) {
  for (int dp : {1, 17, 19, 20, 21, 57}) EXPECT_TRUE(is_event_dp(dp)) << dp;
  for (int dp : {3, 5, 6, 7, 30, 44, 45, 48, 58}) EXPECT_FALSE(is_event_dp(dp)) << dp;
}

TEST_F(OutboxTest, WhileDownStatesCoalesceAndEventsKeepTheirOrderAndTime) {
  Outbox& ob = make();
  ob.report("a", 3, "1000", 1'000);
  ob.report("a", 1, "true", 2'000);
  ob.report("a", 3, "2000", 3'000);
  ob.report("a", 1, "false", 4'000);
  ob.report("a", 19, "4", 5'000);
  ob.report("a", 3, "3000", 6'000);
  ob.report("a", 1, "false", 7'000);  // a repeat (full report): a state, not another event
  ob.report("b", 5, "2300000", 8'000);
  settle();
  EXPECT_TRUE(uplink_.sent.empty());
  EXPECT_EQ(ob.queued("a"), 5u);
  EXPECT_EQ(ob.queued("b"), 1u);
  std::vector<std::string> got;
  for (const auto& r : rows())
    got.push_back(r.cid + ":" + std::to_string(r.dp) + (r.event ? "!" : "=") + r.value + "@" +
                  std::to_string(r.t_ms));
  EXPECT_EQ(got, (std::vector<std::string>{"a:1!true@2000", "a:1!false@4000", "a:19!4@5000", "a:3=3000@6000",
                                           "a:1=false@7000", "b:5=2300000@8000"}));
}

TEST_F(OutboxTest, AnEventReplacesAnOlderWaitingStateOfItsDp) {
  Outbox& ob = make();
  ob.report("a", 1, "true", 1);
  ob.report("a", 1, "true", 2);   // state (repeat)
  ob.report("a", 1, "false", 3);  // event: the waiting "true" state must not be sent after it
  auto r = rows();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].value, "true");
  EXPECT_EQ(r[1].value, "false");
  EXPECT_TRUE(r[1].event);
}

TEST_F(OutboxTest, AfterTheSyncEventsGoFirstInOrderThenStatesAndRowsGoOnlyAfterThePuback) {
  Outbox& ob = make();
  ob.report("a", 3, "10", 1);
  ob.report("a", 1, "true", 2);
  ob.report("a", 5, "20", 3);
  ob.report("a", 1, "false", 4);
  ob.report("b", 3, "30", 5);
  connect({"a"});  // b is not synced yet
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() >= 4; }));
  settle();
  ASSERT_EQ(uplink_.sent.size(), 4u);
  EXPECT_EQ(uplink_.value(0), "true");
  EXPECT_EQ(uplink_.value(1), "false");
  EXPECT_EQ(uplink_.id(2), "3");  // states by age
  EXPECT_EQ(uplink_.id(3), "5");
  EXPECT_EQ(uplink_.sent[0].j["t"], 0);  // the original time (2 ms after the epoch)
  // Nothing acknowledged yet: every row is still stored.
  EXPECT_EQ(rows().size(), 5u);
  uplink_.complete(0, true);
  uplink_.complete(1, true);
  uplink_.complete(2, false);  // the link dropped before this PUBACK
  uplink_.complete(3, true);
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() >= 5; }));  // goes again
  EXPECT_EQ(uplink_.id(4), "3");
  auto r = rows();
  ASSERT_EQ(r.size(), 2u);  // a:3 (in flight again) and b's
  EXPECT_EQ(r[0].dp, 3);
  EXPECT_EQ(r[1].cid, "b");
  uplink_.complete(4, true);
  synced_.insert("b");
  ob.kick();
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() >= 6; }));
  uplink_.complete(5, true);
  ASSERT_TRUE(run_until([&] { return ob.queued() == 0 && ob.in_flight() == 0; }));
  EXPECT_TRUE(rows().empty());
}

TEST_F(OutboxTest, DrainKeepsToTheRate) {
  opt_.rate_per_s = 100;
  opt_.tick = 20ms;  // at most 2 per tick
  Outbox& ob = make();
  for (int i = 0; i < 40; ++i) ob.report(i % 2 ? "a" : "b", 1, i % 4 < 2 ? "true" : "false", i);
  ASSERT_EQ(ob.queued(), 40u);
  uplink_.auto_ack = true;
  connect();
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() == 40; }, 10s));
  // 40 messages at 100/s with a burst of 2: at least (40 - 2) / 100 s from the first to the last.
  const auto span = uplink_.sent.back().at - uplink_.sent.front().at;
  EXPECT_GE(span, 370ms) << "drained faster than outbox_rate_per_s";
  // And never more than rate x 0.2 s + burst in any 200 ms.
  for (size_t i = 0; i < uplink_.sent.size(); ++i) {
    size_t n = 0;
    for (size_t j = i; j < uplink_.sent.size() && uplink_.sent[j].at - uplink_.sent[i].at < 200ms; ++j) ++n;
    EXPECT_LE(n, 22u) << "burst at message " << i;
  }
  ASSERT_TRUE(run_until([&] { return ob.in_flight() == 0; }));
  EXPECT_TRUE(rows().empty());
  EXPECT_EQ(ob.stats().published_queued, 40u);
}

TEST_F(OutboxTest, LiveReportsQueueBehindTheSocketsBacklog) {
  Outbox& ob = make();
  ob.report("a", 1, "true", 1);
  ob.report("a", 1, "false", 2);
  connect();
  ob.report("a", 1, "true", 3);  // ready, but older reports of a still wait: behind them
  ob.report("b", 1, "true", 4);  // b has nothing waiting: straight out
  ASSERT_EQ(uplink_.sent.size(), 1u);
  EXPECT_EQ(uplink_.cid(0), "b");
  uplink_.auto_ack = true;
  uplink_.complete(0, true);
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() == 4 && ob.in_flight() == 0; }));
  EXPECT_EQ(uplink_.value(1), "true");
  EXPECT_EQ(uplink_.value(2), "false");
  EXPECT_EQ(uplink_.value(3), "true");
  ob.report("a", 1, "false", 5);  // backlog gone: straight out again
  EXPECT_EQ(uplink_.sent.size(), 5u);
  EXPECT_EQ(ob.stats().published_live, 2u);
}

TEST_F(OutboxTest, APublishLostWithTheLinkGoesBackBeforeWhatCameAfterIt) {
  Outbox& ob = make();
  connect();
  ob.report("a", 1, "false", 1);  // live, in flight when the link drops
  ob.report("a", 3, "500", 2);    // live too
  ASSERT_EQ(uplink_.sent.size(), 2u);
  uplink_.up = false;
  ob.report("a", 1, "true", 3);
  ob.report("a", 1, "false", 4);
  ob.report("a", 3, "700", 5);
  // At the reconnect Paho fails what the new session does not have.
  uplink_.complete(0, false);
  uplink_.complete(1, false);
  settle();
  uplink_.auto_ack = true;
  connect();
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() == 6 && ob.in_flight() == 0; }));
  std::vector<std::string> got;
  for (size_t i = 2; i < uplink_.sent.size(); ++i) got.push_back(uplink_.id(i) + "=" + uplink_.value(i));
  // The lost "500" is not sent: "700" superseded it.
  EXPECT_EQ(got, (std::vector<std::string>{"1=false", "1=true", "1=false", "3=700"}));
  EXPECT_TRUE(rows().empty());
}

TEST_F(OutboxTest, EventsAreWrittenAheadUnlessAckedFirstStatesOnlyWhenTheyWait) {
  Outbox& ob = make();
  connect();
  ob.report("a", 1, "true", 1);
  ob.report("a", 3, "100", 2);
  uplink_.complete(0, true);
  uplink_.complete(1, true);
  settle();
  EXPECT_TRUE(store_->outbox_rows().empty());  // acked before any write: no database work at all
  ob.report("a", 1, "false", 3);
  ob.report("a", 3, "200", 4);
  {
    auto batch = ob.begin_write();  // the gateway's reading commit comes first
    store_->commit({}, {}, batch.changes());
    batch.committed();
  }
  auto r = store_->outbox_rows();
  ASSERT_EQ(r.size(), 1u);  // the event, for a crash before its PUBACK
  EXPECT_EQ(r[0].value, "false");
  uplink_.complete(2, true);
  uplink_.complete(3, true);
  settle();
  EXPECT_TRUE(rows().empty());
}

TEST_F(OutboxTest, AFailedCommitKeepsTheRowsForTheNextOne) {
  Outbox& ob = make();
  ob.report("a", 1, "true", 1);
  {
    auto batch = ob.begin_write();
    EXPECT_EQ(batch.changes().size(), 1u);
    // destroyed without committed(): the commit failed
  }
  EXPECT_EQ(rows().size(), 1u);
}

TEST_F(OutboxTest, SurvivesARestartWithOrderAndTimes) {
  {
    Outbox& ob = make();
    ob.report("a", 1, "false", 11'000);
    ob.report("a", 19, "4", 12'000);
    ob.report("a", 3, "100", 13'000);
    ob.report("a", 3, "200", 14'000);
    ob.report("gone", 3, "1", 15'000);
    connect({});
    ob.report("b", 5, "2300000", 16'000);  // connected, but b is not synced: waits too
    ASSERT_EQ(uplink_.sent.size(), 0u);
    outbox_.reset();  // writes what is pending
  }
  store_.reset();
  open_store();
  uplink_.up = false;
  Outbox& ob = make({"a", "b"});  // "gone" left the roster
  EXPECT_EQ(ob.queued("a"), 3u);
  EXPECT_EQ(ob.queued("b"), 1u);
  EXPECT_EQ(ob.queued(), 4u);
  uplink_.auto_ack = true;
  connect();
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() == 4 && ob.in_flight() == 0; }));
  std::vector<std::string> got;
  for (const auto& s : uplink_.sent)
    got.push_back(s.j["param"]["cid"].get<std::string>() + ":" + s.j["param"]["id"].get<std::string>() + "=" +
                  s.j["param"]["value"].dump() + "@" + std::to_string(s.j["t"].get<int64_t>()));
  std::sort(got.begin(), got.end());  // a's order is checked below; b interleaves
  EXPECT_EQ(got, (std::vector<std::string>{"a:19=4@12", "a:1=false@11", "a:3=200@14", "b:5=2300000@16"}));
  std::vector<std::string> a_order;
  for (size_t i = 0; i < uplink_.sent.size(); ++i)
    if (uplink_.cid(i) == "a") a_order.push_back(uplink_.id(i));
  EXPECT_EQ(a_order, (std::vector<std::string>{"1", "19", "3"}));
  EXPECT_TRUE(rows().empty());
}

TEST_F(OutboxTest, InFlightAtExitIsStoredAndSentAfterTheRestart) {
  {
    Outbox& ob = make();
    connect();
    ob.report("a", 3, "100", 1'000);
    ob.report("a", 1, "true", 2'000);
    ASSERT_EQ(uplink_.sent.size(), 2u);  // no PUBACK before the daemon stops
    outbox_.reset();
  }
  auto r = store_->outbox_rows();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].value, "100");
  EXPECT_EQ(r[1].value, "true");
}

TEST_F(OutboxTest, RefusedReportsAreRetriedAfterABackoffOrAfterTheResync) {
  Outbox& ob = make();
  connect();
  uplink_.auto_ack = true;
  ob.report("a", 3, "100", 1);
  ob.report("b", 3, "200", 2);
  ob.report("a", 5, "300", 3);
  settle();
  ASSERT_EQ(uplink_.sent.size(), 3u);
  auto response = [&](size_t i, int code) {
    return tuya::Response{uplink_.sent[i].j["request_id"], uplink_.cid(i), code, ""};
  };
  EXPECT_EQ(ob.on_response(response(0, 500)), Outbox::Verdict::Retry);
  EXPECT_TRUE(ob.paused());
  EXPECT_EQ(ob.queued("a"), 1u);
  EXPECT_EQ(ob.on_response(response(1, 2003)), Outbox::Verdict::Resync);
  EXPECT_EQ(ob.queued("b"), 1u);
  EXPECT_EQ(ob.on_response(response(2, 1101)), Outbox::Verdict::Rejected);  // not retried
  EXPECT_EQ(ob.queued("a"), 1u);
  EXPECT_EQ(ob.on_response(response(2, 0)), Outbox::Verdict::Ok);  // unknown by now: fine
  synced_.erase("b");                                              // the gateway resyncs b
  settle(50ms);
  EXPECT_EQ(uplink_.sent.size(), 3u);  // paused
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() == 4; }, 2s));
  EXPECT_EQ(uplink_.value(3), "100");
  EXPECT_FALSE(ob.paused());
  synced_.insert("b");
  ob.kick();
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() == 5; }, 2s));
  EXPECT_EQ(uplink_.value(4), "200");
  EXPECT_EQ(ob.stats().retried, 2u);
  EXPECT_EQ(ob.stats().refused, 3u);
}

TEST_F(OutboxTest, ARefusalThatOvertakesThePubackIsRetriedOnceThePubackComes) {
  Outbox& ob = make();
  connect();
  ob.report("a", 1, "false", 1);
  ob.report("b", 1, "true", 2);
  settle();
  ASSERT_EQ(uplink_.sent.size(), 2u);
  // The platform answers both before the broker's PUBACKs reached the gateway.
  EXPECT_EQ(ob.on_response({uplink_.sent[0].j["request_id"], "a", 500, ""}), Outbox::Verdict::Retry);
  EXPECT_EQ(ob.on_response({uplink_.sent[1].j["request_id"], "b", 1101, ""}), Outbox::Verdict::Rejected);
  uplink_.complete(0, true);
  uplink_.complete(1, false);  // the link dropped, but the platform had it and refused it for good
  settle();
  EXPECT_EQ(ob.queued("a"), 1u) << "the refused report is back in the outbox";
  EXPECT_EQ(ob.queued("b"), 0u) << "a report refused for good is not sent again";
  EXPECT_EQ(uplink_.sent.size(), 2u);  // paused
  uplink_.auto_ack = true;
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() == 3; }, 2s));
  EXPECT_EQ(uplink_.cid(2), "a");
  EXPECT_EQ(uplink_.value(2), "false");
  EXPECT_EQ(uplink_.sent[2].j["t"], 0);  // its own time (1 ms)
  settle();
  EXPECT_EQ(uplink_.sent.size(), 3u);
  EXPECT_EQ(ob.stats().retried, 1u);
  EXPECT_TRUE(rows().empty());
}

TEST_F(OutboxTest, NothingGoesLiveDuringTheBackoff) {
  Outbox& ob = make();
  connect();
  uplink_.auto_ack = true;
  ob.report("a", 3, "100", 1);
  settle();
  ASSERT_EQ(uplink_.sent.size(), 1u);
  ASSERT_EQ(ob.on_response({uplink_.sent[0].j["request_id"], "a", 500, ""}), Outbox::Verdict::Retry);
  ASSERT_TRUE(ob.paused());
  // b has nothing waiting, but the platform just had a bad moment: b's report waits too.
  ob.report("b", 3, "200", 2000);
  settle();
  EXPECT_EQ(uplink_.sent.size(), 1u);
  EXPECT_EQ(ob.queued("b"), 1u);
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() == 3; }, 2s));
  EXPECT_FALSE(ob.paused());
  std::set<std::string> after{uplink_.cid(1), uplink_.cid(2)};
  EXPECT_EQ(after, (std::set<std::string>{"a", "b"}));
}

TEST_F(OutboxTest, ARetriedEventIsFollowedByTheCurrentValue) {
  Outbox& ob = make();
  connect();
  uplink_.auto_ack = true;
  ob.report("a", 1, "false", 1);
  ob.report("a", 1, "true", 2);
  settle();
  ASSERT_EQ(uplink_.sent.size(), 2u);
  // The platform refuses the older one after it accepted the newer.
  ASSERT_EQ(ob.on_response({uplink_.sent[0].j["request_id"], "a", 500, ""}), Outbox::Verdict::Retry);
  ASSERT_TRUE(run_until([&] { return uplink_.sent.size() == 4; }, 2s));
  EXPECT_EQ(uplink_.value(2), "false");
  EXPECT_EQ(uplink_.value(3), "true");  // ends on the current value
}

TEST_F(OutboxTest, TooManyEventsForOneSocketDropTheOldest) {
  opt_.max_events_per_socket = 3;
  Outbox& ob = make();
  for (int i = 0; i < 5; ++i) ob.report("a", 1, i % 2 ? "true" : "false", i);
  EXPECT_EQ(ob.queued("a"), 3u);
  EXPECT_EQ(ob.stats().dropped, 2u);
  auto r = rows();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].t_ms, 2);
}

}  // namespace
}  // namespace pb::gateway
