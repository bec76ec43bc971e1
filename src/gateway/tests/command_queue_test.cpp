// The command queue against a fake port and fake links: validation, one command in flight,
// answers in order, timeouts, the queue bound, offline sockets and shutdown.
#include "command_queue.hpp"

#include <gtest/gtest.h>

#include <pbfw/limits.hpp>

#include "fakes.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::gateway {
namespace {

using namespace testing;
using json = nlohmann::json;

constexpr uint32_t kCaps = proto::kCapRelay | proto::kCapMeter | proto::kCapCountdown;

class FakeCommandPort final : public CommandPort {
 public:
  void report(SocketState& st, bool full) override {
    log.push_back("report " + st.entry.cid + (full ? " full" : ""));
  }
  void record(const std::string& cid, int code, std::string detail) override {
    log.push_back("event " + cid + " " + std::to_string(code));
    events.push_back(json::parse(detail));
  }
  void respond(const std::string& cid, const std::string& request_id, int code) override {
    log.push_back("respond " + cid + " " + request_id + " " + std::to_string(code));
    responses.push_back({request_id, code});
  }
  int64_t now_unix_ms() const override { return 1'700'000'000'000; }

  std::vector<std::string> log;
  std::vector<json> events;
  std::vector<std::pair<std::string, int>> responses;
};

class CommandQueueTest : public ::testing::Test {
 protected:
  CommandQueueTest()
      : cfg_(roster_config(2)),
        sockets_(io_, cfg_),
        queue_(io_, sockets_, port_, std::chrono::seconds(5), stats_) {}

  SocketState& connect(const std::string& cid, uint32_t caps = kCaps) {
    auto link = std::make_shared<FakeLink>(cid, caps);
    links_[cid] = link;
    SocketState* st = sockets_.attach(link).socket;
    EXPECT_NE(st, nullptr);
    return *st;
  }
  FakeLink& link(const std::string& cid) { return *links_.at(cid); }
  std::vector<proto::Command> sent(const std::string& cid) {
    std::vector<proto::Command> out;
    for (const auto& m : link(cid).of(proto::MsgType::Command)) out.push_back(m.command);
    return out;
  }
  proto::CommandResult result(uint32_t cmd_id, proto::CommandStatus s = proto::CommandStatus::Ok,
                              bool on = true) {
    return command_result(cmd_id, s, on).command_result;
  }

  boost::asio::io_context io_;
  config::Config cfg_;
  Stats stats_;
  FakeCommandPort port_;
  SocketRegistry sockets_;
  CommandQueue queue_;
  std::map<std::string, std::shared_ptr<FakeLink>> links_;
};

TEST_F(CommandQueueTest, LocalKindsAndRangesAreCheckedInOnePlace) {
  EXPECT_EQ(CommandQueue::check_local("countdown", 0), std::nullopt);
  EXPECT_EQ(CommandQueue::check_local("countdown", int64_t{pbfw::proto::kMaxCountdownS}), std::nullopt);
  EXPECT_EQ(CommandQueue::check_local("countdown", int64_t{pbfw::proto::kMaxCountdownS} + 1),
            "countdown wants 0..86400 s");
  EXPECT_EQ(CommandQueue::check_local("countdown", -1), "countdown wants 0..86400 s");
  EXPECT_EQ(CommandQueue::check_local("relay", -1), std::nullopt);
  EXPECT_EQ(CommandQueue::check_local("relay", 2), "relay wants on, off or toggle");
  EXPECT_EQ(CommandQueue::check_local("calibrate_voltage", 230'000), std::nullopt);
  EXPECT_EQ(CommandQueue::check_local("calibrate_voltage", 49'999),
            "calibrate_voltage wants 50000..300000 mV");
  EXPECT_EQ(CommandQueue::check_local("set_ki", 5),
            "set_ki wants 10000..100000000 (the constant x 10^6, 0.01..100)");
  EXPECT_EQ(CommandQueue::check_local("dim", 1), "unknown command kind 'dim'");
}

TEST_F(CommandQueueTest, CloudCommandIsSentAndAnsweredWithTheSocketsResult) {
  SocketState& st = connect("s1");
  queue_.cloud(cloud_command("s1", "r1", 1, true));
  ASSERT_EQ(sent("s1").size(), 1u);
  EXPECT_EQ(sent("s1")[0].kind, proto::CommandKind::SetRelay);
  EXPECT_EQ(sent("s1")[0].value, 1);
  EXPECT_TRUE(port_.responses.empty());

  queue_.on_result(st, result(sent("s1")[0].cmd_id));
  // The confirmed state is reported before the answer, and the answer is recorded as an event.
  EXPECT_EQ(port_.log, (std::vector<std::string>{"report s1", "event s1 0", "respond s1 r1 0"}));
  EXPECT_EQ(st.relay_on, true);
  EXPECT_EQ(port_.events.at(0)["request_id"], "r1");
  EXPECT_EQ(stats_.commands_answered, 1u);
}

TEST_F(CommandQueueTest, OfflineUnknownAndUnreadableCommandsAreAnsweredAtOnce) {
  queue_.cloud(cloud_command("s2", "r1", 1, true));  // in the roster, offline
  queue_.cloud(cloud_command("zz", "r2", 1, true));  // not in the roster: no event
  queue_.cloud(R"({"request_id":"r3","cid":"s1","param":{}})");
  ASSERT_EQ(port_.responses.size(), 3u);
  EXPECT_EQ(port_.responses[0], (std::pair<std::string, int>{"r1", tuya::code::kOffline}));
  EXPECT_EQ(port_.responses[1], (std::pair<std::string, int>{"r2", tuya::code::kNoDevice}));
  EXPECT_EQ(port_.responses[2], (std::pair<std::string, int>{"r3", tuya::code::kParamsEmpty}));
  EXPECT_EQ(port_.events.size(), 2u);
}

TEST_F(CommandQueueTest, OneCommandInFlightAnswersInArrivalOrder) {
  SocketState& st = connect("s1");
  queue_.cloud(cloud_command("s1", "r1", 1, true));
  queue_.cloud(cloud_command("s1", "r2", 1, false));
  ASSERT_EQ(sent("s1").size(), 1u) << "the second went out before the first was confirmed";
  queue_.on_result(st, result(sent("s1")[0].cmd_id));
  ASSERT_EQ(sent("s1").size(), 2u);
  EXPECT_EQ(sent("s1")[1].value, 0);
  EXPECT_NE(sent("s1")[1].cmd_id, sent("s1")[0].cmd_id);
  queue_.on_result(st, result(sent("s1")[1].cmd_id, proto::CommandStatus::Ok, false));
  ASSERT_EQ(port_.responses.size(), 2u);
  EXPECT_EQ(port_.responses[0].first, "r1");
  EXPECT_EQ(port_.responses[1].first, "r2");
  EXPECT_EQ(st.relay_on, false);
}

TEST_F(CommandQueueTest, TimeoutAnswers2001ThenTheNextGoesAndTheLateResultIsIgnored) {
  SocketState& st = connect("s1");
  queue_.cloud(cloud_command("s1", "r1", 1, true));
  queue_.cloud(cloud_command("s1", "r2", 1, true));
  const uint32_t first = sent("s1")[0].cmd_id;
  queue_.on_timeout(st, first + 100);  // not the one in flight
  EXPECT_TRUE(port_.responses.empty());
  queue_.on_timeout(st, first);
  ASSERT_EQ(port_.responses.size(), 1u);
  EXPECT_EQ(port_.responses[0], (std::pair<std::string, int>{"r1", tuya::code::kOffline}));
  ASSERT_EQ(sent("s1").size(), 2u);
  queue_.on_result(st, result(first));  // late
  EXPECT_EQ(port_.responses.size(), 1u);
  queue_.on_result(st, result(sent("s1")[1].cmd_id));
  ASSERT_EQ(port_.responses.size(), 2u);
  EXPECT_EQ(port_.responses[1], (std::pair<std::string, int>{"r2", tuya::code::kSuccess}));
}

TEST_F(CommandQueueTest, TheQueueIsBoundedAndEmptiedWhenTheSocketGoes) {
  SocketState& st = connect("s1");
  for (size_t i = 0; i <= CommandQueue::kMaxQueued; ++i)
    queue_.cloud(cloud_command("s1", "r" + std::to_string(i), 1, true));
  ASSERT_EQ(port_.responses.size(), 1u);
  EXPECT_EQ(port_.responses[0], (std::pair<std::string, int>{"r16", tuya::code::kSystem}));
  sockets_.detach(link("s1"));
  queue_.fail_all(st, "socket disconnected before confirming");
  ASSERT_EQ(port_.responses.size(), 1u + CommandQueue::kMaxQueued);
  for (size_t i = 1; i <= CommandQueue::kMaxQueued; ++i) {
    EXPECT_EQ(port_.responses[i].first, "r" + std::to_string(i - 1));
    EXPECT_EQ(port_.responses[i].second, tuya::code::kOffline);
  }
  EXPECT_TRUE(st.commands.empty());
}

TEST_F(CommandQueueTest, LocalCommandsAreAnsweredOnTheLoopNeverInsideTheCall) {
  connect("s1", proto::kCapRelay);  // no countdown support
  std::vector<LocalResult> got;
  auto keep = [&](LocalResult r) { got.push_back(std::move(r)); };
  queue_.local("s1", "countdown", int64_t{pbfw::proto::kMaxCountdownS} + 1, keep);
  queue_.local("s1", "countdown", 10, keep);
  queue_.local("s2", "relay", 1, keep);
  queue_.local("s9", "relay", 1, keep);
  queue_.local("s1", "relay", -1, keep);  // toggle without a known state
  EXPECT_TRUE(got.empty());
  run_ready(io_);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].status, LocalResult::Status::BadRequest);
  EXPECT_EQ(got[1].status, LocalResult::Status::Unsupported);
  EXPECT_EQ(got[2].status, LocalResult::Status::Offline);
  EXPECT_EQ(got[3].status, LocalResult::Status::UnknownCid);
  EXPECT_EQ(got[4].status, LocalResult::Status::Rejected);
  EXPECT_TRUE(port_.responses.empty()) << "a local command answered to the cloud";
  EXPECT_TRUE(sent("s1").empty());
}

TEST_F(CommandQueueTest, LocalToggleUsesTheKnownStateAndTheTimeoutIsReported) {
  SocketState& st = connect("s1");
  st.relay_on = true;
  std::optional<LocalResult> got;
  queue_.local("s1", "relay", -1, [&](LocalResult r) { got = r; });
  ASSERT_EQ(sent("s1").size(), 1u);
  EXPECT_EQ(sent("s1")[0].value, 0);
  queue_.on_timeout(st, sent("s1")[0].cmd_id);
  run_ready(io_);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, LocalResult::Status::Timeout);
  EXPECT_EQ(port_.events.at(0)["from"], "local");
}

TEST_F(CommandQueueTest, ASessionGetsTheSettingsItShouldHave) {
  cfg_.sockets[0].limits.current_max_ma = 3000;
  SocketRegistry sockets(io_, cfg_);
  CommandQueue queue(io_, sockets, port_, std::chrono::seconds(5), stats_);
  auto l = std::make_shared<FakeLink>("s1", kCaps | proto::kCapSwitchLock);
  SocketState& st = *sockets.attach(l).socket;
  st.desired_switch_enabled = false;
  queue.on_session(st);
  auto cmds = l->of(proto::MsgType::Command);
  ASSERT_EQ(cmds.size(), 1u);
  EXPECT_EQ(cmds[0].command.kind, proto::CommandKind::SetSwitchEnabled);
  EXPECT_EQ(cmds[0].command.value, 0);
  queue.on_result(st, result(cmds[0].command.cmd_id));
  cmds = l->of(proto::MsgType::Command);
  ASSERT_EQ(cmds.size(), 2u);
  EXPECT_EQ(cmds[1].command.kind, proto::CommandKind::SetCurrentLimit);
  EXPECT_EQ(cmds[1].command.value, 3000);
  EXPECT_EQ(st.switch_enabled, false);
  EXPECT_TRUE(port_.responses.empty()) << "the gateway's own commands are answered to nobody";
}

TEST_F(CommandQueueTest, ShutdownAnswersEverythingShuttingDown) {
  connect("s1");
  std::optional<LocalResult> first, second, later;
  queue_.local("s1", "relay", 1, [&](LocalResult r) { first = r; });
  queue_.local("s1", "relay", 0, [&](LocalResult r) { second = r; });
  queue_.shutdown();
  queue_.local("s1", "relay", 1, [&](LocalResult r) { later = r; });
  run_ready(io_);
  ASSERT_TRUE(first && second && later);
  EXPECT_EQ(first->status, LocalResult::Status::ShuttingDown);
  EXPECT_EQ(second->status, LocalResult::Status::ShuttingDown);
  EXPECT_EQ(later->status, LocalResult::Status::ShuttingDown);
}

}  // namespace
}  // namespace pb::gateway
