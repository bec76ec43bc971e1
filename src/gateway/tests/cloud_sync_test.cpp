// Cloud sync against a fake uplink, a real store (the outbox's) and an injected steady clock:
// devices/sync after a connect, status of synced sockets only, reports through the outbox,
// periodic full reports, all offline at shutdown.
#include "cloud_sync.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::gateway {
namespace {

using namespace testing;
using namespace std::chrono_literals;
using json = nlohmann::json;

class CloudSyncTest : public ::testing::Test {
 protected:
  explicit CloudSyncTest(size_t sockets = 2)
      : cfg_(roster_config(sockets)),
        store_(dir_.file("t.db")),
        registry_(io_, cfg_),
        calendar_("UTC"),
        live_totals_(calendar_),
        uplink_(io_) {
    clocks_.steady = [this] { return steady_; };
  }
  CloudSync& make(UplinkPort* uplink) {
    cloud_ = std::make_unique<CloudSync>(io_, cfg_, store_, registry_, uplink,
                                         EnergyView{calendar_, accountant_, live_totals_}, stats_, clocks_);
    return *cloud_;
  }
  SocketState& online(const std::string& cid) {
    auto link = std::make_shared<FakeLink>(cid, proto::kCapRelay);
    links_.push_back(link);
    SocketState& st = *registry_.attach(link).socket;
    cloud_->set_online(st, true);
    return st;
  }
  std::string sync_request(const std::string& cid) const {
    for (const json& j : uplink_.on("devices/sync"))
      if (j.dump().find("\"" + cid + "\"") != std::string::npos) return j["request_id"];
    return {};
  }
  static std::string response(const std::string& request_id, int code) {
    return json{{"request_id", request_id}, {"param", {{"code", code}}}}.dump();
  }
  std::set<std::string> reported_cids() const {
    std::set<std::string> out;
    for (const json& j : uplink_.on("properties/report")) out.insert(j["param"]["cid"].get<std::string>());
    return out;
  }

  TempDir dir_;
  boost::asio::io_context io_;
  config::Config cfg_;
  store::Store store_;
  SocketRegistry registry_;
  energy::Calendar calendar_;
  energy::Accountant accountant_;
  energy::LiveTotals live_totals_;
  FakeUplink uplink_;
  Stats stats_;
  Clocks clocks_;
  std::chrono::milliseconds steady_{1'000'000};
  std::vector<std::shared_ptr<FakeLink>> links_;
  std::unique_ptr<CloudSync> cloud_;
};

TEST_F(CloudSyncTest, AConnectSyncsEverySocketAndASyncedOneGetsItsStatusAndAFullReport) {
  CloudSync& cloud = make(&uplink_);
  SocketState& s1 = online("s1");
  s1.relay_on = true;
  cloud.on_connected();
  ASSERT_EQ(uplink_.on("devices/sync").size(), 2u);
  ASSERT_FALSE(sync_request("s1").empty());
  ASSERT_FALSE(sync_request("s2").empty());

  cloud.on_sync_response(response(sync_request("s1"), tuya::code::kSuccess));
  EXPECT_TRUE(s1.synced);
  EXPECT_FALSE(registry_.find("s2")->synced);
  ASSERT_TRUE(
      run_until(io_, [&] { return !uplink_.on("devices/status").empty() && !reported_cids().empty(); }));
  const json status = uplink_.on("devices/status").at(0);
  ASSERT_EQ(status["param"].size(), 1u) << status.dump();
  EXPECT_EQ(status["param"][0]["cid"], "s1");
  EXPECT_EQ(status["param"][0]["status"], true);
  EXPECT_EQ(reported_cids(), std::set<std::string>{"s1"});
  EXPECT_GT(stats_.reports_sent, 0u);
}

TEST_F(CloudSyncTest, ARefusedSyncLeavesTheSocketUnsyncedAndTheHeartbeatNamesSyncedOnesOnly) {
  CloudSync& cloud = make(&uplink_);
  online("s1");
  online("s2");
  cloud.on_connected();
  cloud.on_sync_response(response(sync_request("s1"), tuya::code::kSystem));
  cloud.on_sync_response(response(sync_request("s2"), tuya::code::kSuccess));
  cloud.on_sync_response(response("unknown", tuya::code::kSuccess));
  EXPECT_FALSE(registry_.find("s1")->synced);
  EXPECT_TRUE(registry_.find("s2")->synced);
  uplink_.sent.clear();
  cloud.heartbeat();
  const auto status = uplink_.on("devices/status");
  ASSERT_EQ(status.size(), 1u);
  ASSERT_EQ(status[0]["param"].size(), 1u);
  EXPECT_EQ(status[0]["param"][0]["cid"], "s2");

  cloud.on_disconnected("test");
  EXPECT_FALSE(registry_.find("s2")->synced);
  uplink_.sent.clear();
  cloud.heartbeat();
  EXPECT_TRUE(uplink_.on("devices/status").empty());
}

TEST_F(CloudSyncTest, FullReportsFallDueAfterThePeriodOnTheInjectedClock) {
  cfg_.report.period_s = 300;
  CloudSync& cloud = make(&uplink_);
  SocketState& s1 = online("s1");
  s1.relay_on = true;
  cloud.on_connected();
  cloud.on_sync_response(response(sync_request("s1"), tuya::code::kSuccess));
  ASSERT_TRUE(run_until(io_, [&] { return !reported_cids().empty(); }));
  const uint64_t after_sync = stats_.reports_sent;

  steady_ += 299s;
  cloud.report_tick(steady_);
  EXPECT_EQ(stats_.reports_sent, after_sync) << "a full report before the period ended";
  steady_ += 2s;
  cloud.report_tick(steady_);
  EXPECT_GT(stats_.reports_sent, after_sync);
}

// The DPs of the properties/report messages sent for cid, with their values.
std::map<int, json> reported_dps(const FakeUplink& uplink, const std::string& cid) {
  std::map<int, json> out;
  for (const json& j : uplink.on("properties/report"))
    if (j["param"]["cid"] == cid) out[std::stoi(j["param"]["id"].get<std::string>())] = j["param"]["value"];
  return out;
}

TEST_F(CloudSyncTest, AQuantityTheMeterDidNotMeasureIsNotReported) {
  CloudSync& cloud = make(&uplink_);
  SocketState& s1 = online("s1");
  s1.relay_on = true;
  store::ReadingRow r;
  r.cid = "s1";
  r.flags = proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid;  // power not measured
  r.voltage_mv = 230'000;
  r.current_ua = 100'000;
  r.power_mw = 0;
  s1.last = r;
  cloud.on_connected();
  cloud.on_sync_response(response(sync_request("s1"), tuya::code::kSuccess));
  ASSERT_TRUE(run_until(io_, [&] { return reported_dps(uplink_, "s1").count(1) > 0; }));
  std::map<int, json> dps = reported_dps(uplink_, "s1");
  EXPECT_FALSE(dps.count(3)) << "power reported as " << dps[3];
  EXPECT_FALSE(dps.count(37));
  EXPECT_FALSE(dps.count(30));
  EXPECT_EQ(dps.at(5), 2'300'000);  // V x 10^4
  EXPECT_EQ(dps.at(7), 1'000'000);  // mA x 10^4
  EXPECT_EQ(dps.at(19), 0);

  // The next reading measures it: it goes out.
  uplink_.sent.clear();
  r.flags |= proto::kPowerValid;
  r.power_mw = 23'000;
  s1.last = r;
  cloud.report(s1, false);
  ASSERT_TRUE(run_until(io_, [&] { return reported_dps(uplink_, "s1").count(3) > 0; }));
  EXPECT_EQ(reported_dps(uplink_, "s1").at(3), 230'000);
}

TEST_F(CloudSyncTest, WhileTheUplinkIsBackedUpOnlyRelayAndFaultsGoAndTheRestFollowsWithTheValuesOfThen) {
  CloudSync& cloud = make(&uplink_);
  store::ReadingRow r;
  r.flags = proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid;
  r.voltage_mv = 230'000;
  r.current_ua = 100'000;
  r.power_mw = 23'000;
  for (const char* cid : {"s1", "s2"}) {
    SocketState& st = online(cid);
    st.relay_on = true;
    r.cid = cid;
    st.last = r;
  }
  SocketState& s1 = *registry_.find("s1");
  cloud.on_connected();
  uplink_.waiting = CloudSync::kBacklogHigh;  // thousands of sockets' syncs and reports ahead
  cloud.on_sync_response(response(sync_request("s2"), tuya::code::kSuccess));
  cloud.on_sync_response(response(sync_request("s1"), tuya::code::kSuccess));
  run_for(io_, 100ms);
  for (const char* cid : {"s1", "s2"}) {
    std::map<int, json> dps = reported_dps(uplink_, cid);
    EXPECT_EQ(dps.count(1), 1u) << cid << ": the relay goes at once";
    EXPECT_EQ(dps.count(19), 1u) << cid << ": and the faults";
    for (const auto& [dp, value] : dps)
      EXPECT_TRUE(dp == 1 || dp == 19 || dp == 57) << cid << ": DP " << dp << " went out while backed up";
  }
  // A switch while backed up goes at once too; a new power waits.
  const size_t before = uplink_.on("properties/report").size();
  s1.relay_on = false;
  r.cid = "s1";
  r.power_mw = 46'000;
  s1.last = r;
  cloud.report(s1, false);
  run_for(io_, 100ms);
  const auto reports = uplink_.on("properties/report");
  ASSERT_GE(reports.size(), before + 1);
  EXPECT_EQ(reports[before]["param"]["id"], "1");
  EXPECT_EQ(reports[before]["param"]["value"], false);
  EXPECT_FALSE(reported_dps(uplink_, "s1").count(3));

  // Room again: the rest, in full, with the values of now, s2 (waiting first) before s1.
  uplink_.sent.clear();
  uplink_.waiting = CloudSync::kBacklogLow - 1;
  ASSERT_TRUE(run_until(io_, [&] { return reported_dps(uplink_, "s1").count(3) > 0; }));
  run_for(io_, 50ms);
  for (const char* cid : {"s1", "s2"}) {
    std::map<int, json> dps = reported_dps(uplink_, cid);
    EXPECT_EQ(dps.at(5), 2'300'000) << cid;
    EXPECT_EQ(dps.at(7), 1'000'000) << cid;
    EXPECT_TRUE(dps.count(20) && dps.count(21)) << cid << ": the full report's alarm DPs";
    EXPECT_EQ(dps.at(1), cid == std::string("s2")) << cid << ": a full report repeats the relay";
  }
  EXPECT_EQ(reported_dps(uplink_, "s1").at(3), 460'000);  // 46 W, not the 23 W of the sync
  EXPECT_EQ(reported_dps(uplink_, "s2").at(3), 230'000);
  EXPECT_EQ(uplink_.on("properties/report").front()["param"]["cid"], "s2");
}

TEST_F(CloudSyncTest, NoMainsIsTheOutageAlarmWithoutVoltageCurrentOrPower) {
  CloudSync& cloud = make(&uplink_);
  SocketState& s1 = online("s1");
  s1.relay_on = true;
  store::ReadingRow r;
  r.cid = "s1";
  r.flags = proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid;
  r.voltage_mv = 230'000;
  r.current_ua = 100'000;
  r.power_mw = 23'000;
  s1.last = r;
  cloud.on_connected();
  cloud.on_sync_response(response(sync_request("s1"), tuya::code::kSuccess));
  ASSERT_TRUE(run_until(io_, [&] { return reported_dps(uplink_, "s1").count(3) > 0; }));

  // The mains go: the chip still calls current and power measured (0, below its threshold).
  uplink_.sent.clear();
  r.flags = proto::kMeterOk | proto::kNoMains | proto::kCurrentValid | proto::kPowerValid | proto::kRelayOn;
  r.voltage_mv = r.current_ua = r.power_mw = 0;
  s1.last = r;
  cloud.report(s1, true);
  ASSERT_TRUE(run_until(io_, [&] { return reported_dps(uplink_, "s1").count(19) > 0; }));
  const std::map<int, json> dps = reported_dps(uplink_, "s1");
  for (int dp : {3, 5, 7, 37, 38, 40, 52, 30})
    EXPECT_FALSE(dps.count(dp)) << "DP " << dp << " " << dps.at(dp);
  EXPECT_EQ(dps.at(19), fault_bit::kOutage);
  EXPECT_EQ(dps.at(20), "urgent");
  EXPECT_EQ(dps.at(21), "no mains: the socket measures no supply voltage");
  EXPECT_TRUE(dps.count(44)) << "energy still reported";
}

TEST_F(CloudSyncTest, WithoutAnUplinkNothingIsReportedAndShutdownFinishesAtOnce) {
  CloudSync& cloud = make(nullptr);
  EXPECT_EQ(cloud.outbox(), nullptr);
  SocketState& s1 = online("s1");
  cloud.report(s1, true);
  EXPECT_EQ(stats_.reports_sent, 0u);
  bool done = false;
  cloud.publish_all_offline([&] { done = true; });
  EXPECT_FALSE(done) << "done ran inside the call";
  run_ready(io_);
  EXPECT_TRUE(done);
}

class CloudSyncManySockets : public CloudSyncTest {
 protected:
  CloudSyncManySockets() : CloudSyncTest(250) {}
};

TEST_F(CloudSyncManySockets, ShutdownReportsEverySocketOfflineInChunksAndFinishesOnTheAcks) {
  CloudSync& cloud = make(&uplink_);
  cloud.stop();
  bool done = false;
  cloud.publish_all_offline([&] { done = true; });
  const auto status = uplink_.on("devices/status");
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[0]["param"].size(), CloudSync::kStatusChunk);
  EXPECT_EQ(status[1]["param"].size(), 250u - CloudSync::kStatusChunk);
  for (const json& s : status[1]["param"]) EXPECT_EQ(s["status"], false);
  EXPECT_FALSE(done) << "finished before the broker acked";
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
}

}  // namespace
}  // namespace pb::gateway
