// The wired Gateway in-process: a fake LAN, a fake uplink and a real store on a temporary file.
#include "plugbridge/gateway/gateway.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::gateway {
namespace {

using namespace std::chrono_literals;
using namespace testing;
using json = nlohmann::json;

constexpr uint32_t kCaps = proto::kCapRelay | proto::kCapMeter | proto::kCapCountdown;

class WiredGateway : public ::testing::Test {
 protected:
  // Readings committed every commit_interval_ms (roster_config's 20 ms: before the ack delay).
  explicit WiredGateway(int commit_interval_ms = roster_config(0).history.commit_interval_ms)
      : cfg_(roster_config(2)), store_(dir_.file("t.db")), uplink_(io_) {
    cfg_.database = dir_.file("t.db");
    cfg_.history.commit_interval_ms = commit_interval_ms;
    auto lan = std::make_unique<FakeLan>(io_);
    lan_ = lan.get();
    gw_ = std::make_unique<Gateway>(io_, cfg_, store_, &uplink_, std::move(lan));
    gw_->start();
    gw_->on_uplink_connected();
  }
  ~WiredGateway() override { shutdown(); }
  bool shutdown() {
    if (shut_down_) return true;
    shut_down_ = true;
    bool done = false;
    gw_->shutdown([&] { done = true; });
    return run_until(io_, [&] { return done; });
  }

  // A new session of cid (replacing its current one): the last_committed_seq of its HelloAck.
  uint32_t hello_seq(const std::string& cid, uint32_t boot = 1) {
    auto link = std::make_shared<FakeLink>(cid, kCaps, boot);
    EXPECT_TRUE(lan_->connect(link));
    links_.push_back(link);
    return link->of(proto::MsgType::HelloAck).at(0).hello_ack.last_committed_seq;
  }

  std::optional<json> response(const std::string& request_id) const {
    for (const json& j : uplink_.on("commands/response"))
      if (j["request_id"] == request_id) return j;
    return std::nullopt;
  }

  TempDir dir_;
  boost::asio::io_context io_;
  config::Config cfg_;
  store::Store store_;
  FakeUplink uplink_;
  FakeLan* lan_ = nullptr;
  std::unique_ptr<Gateway> gw_;
  bool shut_down_ = false;
  std::vector<std::shared_ptr<FakeLink>> links_;
};

// The daemon's own commit interval (a minute): readings are acked long before they are stored.
class WiredGatewayDefaultInterval : public WiredGateway {
 protected:
  WiredGatewayDefaultInterval() : WiredGateway(config::Config{}.history.commit_interval_ms) {}
};

TEST_F(WiredGateway, CloudCommandGoesToTheSocketAndItsResultIsTheResponse) {
  auto link = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(link));
  ASSERT_EQ(link->of(proto::MsgType::HelloAck).size(), 1u);

  gw_->on_uplink_message("commands", cloud_command("s1", "r1", 1, true));
  auto commands = link->of(proto::MsgType::Command);
  ASSERT_EQ(commands.size(), 1u);
  EXPECT_EQ(commands[0].command.kind, proto::CommandKind::SetRelay);
  EXPECT_EQ(commands[0].command.value, 1);
  EXPECT_FALSE(response("r1")) << "answered before the socket confirmed";

  lan_->deliver(link, command_result(commands[0].command.cmd_id, proto::CommandStatus::Ok, true));
  ASSERT_TRUE(run_until(io_, [&] { return response("r1").has_value(); }));
  const json r = *response("r1");
  EXPECT_EQ(r["cid"], "s1");
  EXPECT_EQ(r["param"]["code"], tuya::code::kSuccess);
  EXPECT_EQ(gw_->live_status()[0].relay_on, true);
}

TEST_F(WiredGateway, ACloudCommandGoesOutBeforeTheReadingsQueuedAheadOfIt) {
  uplink_.on_message = [this](const std::string& suffix, const std::string& payload) {
    gw_->on_uplink_message(suffix, payload);
  };
  auto s1 = std::make_shared<FakeLink>("s1", kCaps);
  auto s2 = std::make_shared<FakeLink>("s2", kCaps);
  ASSERT_TRUE(lan_->connect(s1));
  ASSERT_TRUE(lan_->connect(s2));
  // A backlog of socket messages waits on the loop (thousands of sockets reading), then the
  // command arrives from the broker.
  constexpr uint32_t kBacklog = 2000;
  uint32_t handled = 0;
  for (uint32_t seq = 1; seq <= kBacklog; ++seq)
    boost::asio::post(io_, [&, seq] {
      lan_->deliver(s2, reading(seq));
      ++handled;
    });
  std::optional<uint32_t> handled_at_command;
  s1->on_send = [&](const proto::Message& m) {
    if (m.type == proto::MsgType::Command) handled_at_command = handled;
  };
  uplink_.arrive("commands", cloud_command("s1", "r1", 1, true));
  ASSERT_TRUE(run_until(io_, [&] { return handled == kBacklog && handled_at_command.has_value(); }));
  EXPECT_EQ(*handled_at_command, 0u) << "the command waited behind " << *handled_at_command << " readings";
}

TEST_F(WiredGateway, CommandForAnOfflineSocketIsAnswered2001) {
  auto link = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(link));
  gw_->on_uplink_message("commands", cloud_command("s2", "r2", 1, false));
  ASSERT_TRUE(run_until(io_, [&] { return response("r2").has_value(); }));
  EXPECT_EQ((*response("r2"))["param"]["code"], tuya::code::kOffline);
  EXPECT_TRUE(link->of(proto::MsgType::Command).empty()) << "sent to another socket";

  // Gone offline: the same for the socket that was connected.
  link->close("test");
  ASSERT_TRUE(run_until(io_, [&] { return !gw_->live_status()[0].online; }));
  gw_->on_uplink_message("commands", cloud_command("s1", "r3", 1, true));
  ASSERT_TRUE(run_until(io_, [&] { return response("r3").has_value(); }));
  EXPECT_EQ((*response("r3"))["param"]["code"], tuya::code::kOffline);
}

TEST_F(WiredGateway, ReadingsAreCommittedAsSamplesAndAckedAndAReconnectLearnsTheSeq) {
  auto link = std::make_shared<FakeLink>("s1", kCaps);
  std::vector<int64_t> rows_at_ack;
  link->on_send = [&](const proto::Message& m) {
    if (m.type == proto::MsgType::Ack) rows_at_ack.push_back(readings_stored(store_, "s1"));
  };
  ASSERT_TRUE(lan_->connect(link));
  EXPECT_EQ(link->of(proto::MsgType::HelloAck).at(0).hello_ack.last_committed_seq, 0u);

  for (uint32_t seq = 1; seq <= 3; ++seq) lan_->deliver(link, reading(seq));
  EXPECT_TRUE(link->of(proto::MsgType::Ack).empty()) << "acked before the commit";
  ASSERT_TRUE(run_until(io_, [&] { return !link->of(proto::MsgType::Ack).empty(); }));
  auto acks = link->of(proto::MsgType::Ack);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].ack.up_to_seq, 3u);
  ASSERT_EQ(rows_at_ack.size(), 1u);
  EXPECT_EQ(rows_at_ack[0], 3) << "the commit interval (20 ms) is shorter than the ack delay";
  EXPECT_EQ(gw_->stats().readings_committed, 3u);
  EXPECT_EQ(store_.last_seq("s1", 1), 3u);

  // A reconnect learns what is committed.
  link->close("test");
  ASSERT_TRUE(run_until(io_, [&] { return !gw_->live_status()[0].online; }));
  auto again = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(again));
  EXPECT_EQ(again->of(proto::MsgType::HelloAck).at(0).hello_ack.last_committed_seq, 3u);
}

TEST_F(WiredGateway, HelloAckCarriesTheHighestSeqOfTheEnergyStateAndTheEvents) {
  auto link = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(link));
  lan_->deliver(link, reading(1));
  lan_->deliver(link, reading(2));
  proto::Message e = button_relay_event(3);
  lan_->deliver(link, e);
  ASSERT_TRUE(run_until(
      io_, [&] { return gw_->stats().readings_committed == 2 && gw_->stats().events_committed == 1; }));
  ASSERT_EQ(store_.energy_states().at(0).seq, 2u);
  EXPECT_EQ(hello_seq("s1"), 3u) << "the event's seq, above the energy state's";

  // Readings after the event: the energy state's seq.
  auto again = links_.back();
  lan_->deliver(again, reading(4));
  lan_->deliver(again, reading(5));
  ASSERT_TRUE(run_until(io_, [&] { return gw_->stats().readings_committed == 4; }));
  EXPECT_EQ(hello_seq("s1"), 5u);
  EXPECT_EQ(readings_stored(store_, "s1"), 4);
  EXPECT_EQ(hello_seq("s1", 2), 0u) << "another boot has nothing committed";

  // A socket with events only.
  auto s2 = std::make_shared<FakeLink>("s2", kCaps);
  ASSERT_TRUE(lan_->connect(s2));
  e.event.seq = 7;
  lan_->deliver(s2, e);
  ASSERT_TRUE(run_until(io_, [&] { return gw_->stats().events_committed == 2; }));
  EXPECT_EQ(hello_seq("s2"), 7u);
  EXPECT_EQ(store_.count_samples("s2"), 0u);
}

TEST_F(WiredGatewayDefaultInterval, ReadingsAreAckedAndLiveBeforeTheirCommitAndStoredAtShutdown) {
  auto link = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(link));
  for (uint32_t seq = 1; seq <= 3; ++seq) lan_->deliver(link, reading(seq));
  // The live state follows each reading as it arrives.
  const LiveSocket live = gw_->live_status().at(0);
  ASSERT_TRUE(live.last);
  EXPECT_EQ(live.last->seq, 3u);
  EXPECT_EQ(live.relay_on, true);

  ASSERT_TRUE(run_until(io_, [&] { return !link->of(proto::MsgType::Ack).empty(); }));
  EXPECT_EQ(link->of(proto::MsgType::Ack).back().ack.up_to_seq, 3u);
  EXPECT_EQ(store_.count_samples(), 0u) << "committed before the commit interval";
  EXPECT_EQ(gw_->stats().commits, 0u);
  EXPECT_EQ(gw_->records_waiting(), 3u);

  ASSERT_TRUE(shutdown());
  EXPECT_EQ(readings_stored(store_, "s1"), 3) << "the shutdown's flush";
  EXPECT_EQ(store_.last_seq("s1", 1), 3u);
  const auto samples = store_.samples("s1", INT64_MIN, INT64_MAX);
  ASSERT_FALSE(samples.empty());
  EXPECT_EQ(samples.back().power_max_mw, 23'000);
  EXPECT_EQ(samples.back().voltage_min_mv, 230'000);
}

// A quantity the meter did not measure is stored as not measured (NULL, out of the power's count),
// never as 0; the energy counter counts as before.
TEST_F(WiredGatewayDefaultInterval, AQuantityNotMeasuredIsStoredAsMissing) {
  auto link = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(link));
  lan_->deliver(link, reading(1));
  auto no_power = reading(2, proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid);
  no_power.reading.power_mw = 0;
  lan_->deliver(link, no_power);
  auto no_mains = reading(3, proto::kMeterOk | proto::kNoMains | proto::kCurrentValid | proto::kPowerValid);
  no_mains.reading.voltage_mv = no_mains.reading.current_ua = no_mains.reading.power_mw = 0;
  lan_->deliver(link, no_mains);
  ASSERT_TRUE(shutdown());
  const auto samples = store_.samples("s1", INT64_MIN, INT64_MAX);
  int64_t counted = 0, energy = 0;
  std::optional<int64_t> power_min, voltage_min, current_max;
  for (const auto& s : samples) {
    counted += s.samples;
    energy += s.energy_mwh;
    if (s.samples > 0) power_min = std::min(power_min.value_or(INT64_MAX), s.power_min_mw);
    store::merge_min(voltage_min, s.voltage_min_mv);
    store::merge_max(current_max, s.current_max_ua);
  }
  EXPECT_EQ(counted, 1) << "only the first reading measured the power";
  EXPECT_EQ(power_min, 23'000) << "not 0 from the readings that did not measure it";
  EXPECT_EQ(voltage_min, 230'000) << "not 0 from the reading without mains";
  EXPECT_EQ(current_max, 100'000);
  EXPECT_EQ(energy, 2) << "the counter's increments, whatever the meter measured";
}

TEST_F(WiredGateway, EventsAreStoredWithTheirCauseAndTheLastReadingIsLive) {
  auto link = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(link));
  lan_->deliver(link, reading(1, kMeasured));
  proto::Message e = button_relay_event(2);
  lan_->deliver(link, e);
  ASSERT_TRUE(run_until(io_, [&] { return !link->of(proto::MsgType::Ack).empty(); }));
  EXPECT_EQ(link->of(proto::MsgType::Ack).back().ack.up_to_seq, 2u);
  const auto events = store_.events("s1", 0, INT64_MAX);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, "relay");
  EXPECT_EQ(events[0].detail, R"({"cause":"button"})");
  const LiveSocket live = gw_->live_status().at(0);
  EXPECT_TRUE(live.online);
  ASSERT_TRUE(live.last);
  EXPECT_EQ(live.last->seq, 1u);
  EXPECT_EQ(live.last->power_mw, 23'000u);

  // A frame a socket must not send ends its session.
  proto::Message wrong{};
  wrong.type = proto::MsgType::Ack;
  lan_->deliver(link, wrong);
  EXPECT_FALSE(link->open());
  ASSERT_TRUE(run_until(io_, [&] { return !gw_->live_status().at(0).online; }));
}

TEST_F(WiredGateway, LocalCommandsAreValidatedAndQueuedLikeCloudOnes) {
  auto link = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(link));
  std::optional<LocalResult> bad, ok;
  gw_->local_command("s1", "countdown", 86401, [&](LocalResult r) { bad = r; });
  gw_->local_command("s1", "countdown", 60, [&](LocalResult r) { ok = r; });
  EXPECT_FALSE(bad) << "answered inside local_command()";
  ASSERT_TRUE(run_until(io_, [&] { return bad.has_value(); }));
  EXPECT_EQ(bad->status, LocalResult::Status::BadRequest);
  EXPECT_EQ(bad->why, "countdown wants 0..86400 s");

  auto commands = link->of(proto::MsgType::Command);
  ASSERT_EQ(commands.size(), 1u);
  EXPECT_EQ(commands[0].command.kind, proto::CommandKind::SetCountdown);
  EXPECT_EQ(commands[0].command.value, 60);
  lan_->deliver(link, command_result(commands[0].command.cmd_id, proto::CommandStatus::Ok, false));
  ASSERT_TRUE(run_until(io_, [&] { return ok.has_value(); }));
  EXPECT_EQ(ok->status, LocalResult::Status::Confirmed);
  EXPECT_TRUE(uplink_.on("commands/response").empty()) << "a local command answered to the cloud";
}

TEST_F(WiredGateway, ShutdownAnswersWaitingCommandsAndReportsEverySocketOffline) {
  auto link = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(link));
  gw_->on_uplink_message("commands", cloud_command("s1", "r9", 1, true));
  ASSERT_EQ(link->of(proto::MsgType::Command).size(), 1u);
  ASSERT_TRUE(shutdown());
  ASSERT_TRUE(response("r9"));
  EXPECT_EQ((*response("r9"))["param"]["code"], tuya::code::kOffline);
  EXPECT_TRUE(lan_->stopped);
  const auto status = uplink_.on("devices/status");
  ASSERT_FALSE(status.empty());
  ASSERT_EQ(status.back()["param"].size(), 2u) << status.back().dump();
  for (const json& s : status.back()["param"]) EXPECT_EQ(s["status"], false) << status.back().dump();
}

TEST_F(WiredGateway, ReloadAddsSyncsRemovesAndRekeysWithoutTouchingTheOthers) {
  auto s1 = std::make_shared<FakeLink>("s1", kCaps);
  auto s2 = std::make_shared<FakeLink>("s2", kCaps);
  ASSERT_TRUE(lan_->connect(s1));
  ASSERT_TRUE(lan_->connect(s2));
  auto s3_early = std::make_shared<FakeLink>("s3", kCaps);
  EXPECT_FALSE(lan_->connect(s3_early)) << "not in the roster yet";
  const size_t syncs_before = uplink_.on("devices/sync").size();

  config::Config next = roster_config(3);   // s3 added
  next.sockets[1].secret.assign(16, 0xee);  // s2 re-keyed
  next.database = cfg_.database;
  const ConfigDiff d = gw_->reload(next);
  EXPECT_EQ(d.added, std::vector<std::string>{"s3"});
  EXPECT_EQ(d.rekeyed, std::vector<std::string>{"s2"});
  EXPECT_TRUE(s1->open()) << "an unchanged socket keeps its session";
  EXPECT_FALSE(s2->open());
  EXPECT_EQ(s2->closed, "key changed in the roster");
  const auto syncs = uplink_.on("devices/sync");
  ASSERT_EQ(syncs.size(), syncs_before + 1);
  EXPECT_EQ(syncs.back()["param"]["cid"], "s3");
  auto s3 = std::make_shared<FakeLink>("s3", kCaps);
  EXPECT_TRUE(lan_->connect(s3)) << "accepted at once";
  ASSERT_EQ(gw_->live_status().size(), 3u);

  // s1 removed: its session closed, gone from the live view.
  config::Config last = next;
  last.sockets.erase(last.sockets.begin());
  const ConfigDiff d2 = gw_->reload(last);
  EXPECT_EQ(d2.removed, std::vector<std::string>{"s1"});
  EXPECT_FALSE(s1->open());
  EXPECT_TRUE(s3->open());
  const auto live = gw_->live_status();
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0].cid, "s2");
  EXPECT_EQ(live[1].cid, "s3");
  bool done = false;
  gw_->local_command("s1", "relay", 1, [&](LocalResult r) {
    EXPECT_EQ(r.status, LocalResult::Status::UnknownCid);
    done = true;
  });
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
}

// What a second uplink sees: a mark per change, the state read through socket_view.
struct RecordingObserver final : Observer {
  std::vector<std::pair<std::string, unsigned>> changes;
  int rosters = 0;
  int delivered = 0;
  void socket_changed(const std::string& cid, unsigned c) override { changes.emplace_back(cid, c); }
  void roster_changed() override { ++rosters; }
  void deliver_waiting() override { ++delivered; }
  bool saw(const std::string& cid, unsigned c) const {
    return std::any_of(changes.begin(), changes.end(),
                       [&](const auto& e) { return e.first == cid && (e.second & c) == c; });
  }
};

TEST_F(WiredGateway, ObserversSeeEveryChangeAndReadTheStateThroughTheView) {
  RecordingObserver obs;
  gw_->add_observer(obs);
  EXPECT_EQ(gw_->roster(), (std::vector<std::string>{"s1", "s2"}));
  auto before = gw_->socket_view("s1");
  ASSERT_TRUE(before);
  EXPECT_FALSE(before->online);
  EXPECT_FALSE(before->energy_known);
  EXPECT_EQ(before->fw_version, "");
  EXPECT_FALSE(gw_->socket_view("nope"));

  auto link = std::make_shared<FakeLink>("s1", kCaps);
  ASSERT_TRUE(lan_->connect(link));
  EXPECT_TRUE(obs.saw("s1", Observer::kOnline | Observer::kSettings));
  lan_->deliver(link, reading(1));
  EXPECT_TRUE(obs.saw("s1", Observer::kReading));
  EXPECT_GE(obs.delivered, 1) << "asked for its waiting messages before the socket's";
  ASSERT_TRUE(run_until(io_, [&] { return gw_->stats().readings_committed == 1; }));
  lan_->deliver(link, reading(2));
  ASSERT_TRUE(run_until(io_, [&] { return gw_->stats().readings_committed == 2; }));

  const auto v = gw_->socket_view("s1");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->online);
  EXPECT_EQ(v->fw_version, "1.0.0");
  EXPECT_EQ(v->relay_on, true);
  ASSERT_TRUE(v->last);
  EXPECT_EQ(v->last->power_mw, 23'000u);
  EXPECT_TRUE(v->energy_known);
  EXPECT_EQ(v->energy_total_mwh, 1) << "1001 -> 1002 mWh accounted";
  EXPECT_GT(v->last_seen_ms, 0);

  obs.changes.clear();
  lan_->deliver(link, button_relay_event(3));
  EXPECT_TRUE(obs.saw("s1", Observer::kRelay));
  link->close("test");
  ASSERT_TRUE(run_until(io_, [&] { return obs.saw("s1", Observer::kOnline); }));
  EXPECT_FALSE(gw_->socket_view("s1")->online);

  config::Config next = roster_config(3);
  next.database = cfg_.database;
  gw_->reload(next);
  EXPECT_EQ(obs.rosters, 1);
  EXPECT_EQ(gw_->roster().size(), 3u);
  gw_->reload(next);
  EXPECT_EQ(obs.rosters, 1) << "nothing changed in the roster";
  gw_->remove_observer(obs);
}

}  // namespace
}  // namespace pb::gateway
