// The socket registry and the session state a socket's frames change.
#include "socket_registry.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"

namespace pb::gateway {
namespace {

using namespace testing;

constexpr uint32_t kV1 = proto::kCapRelay | proto::kCapMeter | proto::kCapCountdown;

class SocketRegistryTest : public ::testing::Test {
 protected:
  SocketRegistryTest() : cfg_(make_cfg()), sockets_(io_, cfg_) {}
  static config::Config make_cfg() {
    config::Config cfg = roster_config(3);
    cfg.sockets[1].limits.current_max_ma = 2500;
    cfg.sockets[1].limits.power_max_w = 1000;
    return cfg;
  }
  boost::asio::io_context io_;
  config::Config cfg_;
  SocketRegistry sockets_;
};

TEST_F(SocketRegistryTest, TheRosterInItsOrderWithItsLimits) {
  ASSERT_EQ(sockets_.roster().size(), 3u);
  EXPECT_EQ(sockets_.roster()[0]->entry.cid, "s1");
  EXPECT_EQ(sockets_.roster()[2]->entry.cid, "s3");
  EXPECT_EQ(sockets_.find("s2"), sockets_.roster()[1]);
  EXPECT_EQ(sockets_.find("s4"), nullptr);
  EXPECT_EQ(sockets_.find("s1")->current_limit_ma, kDefaultCurrentLimitMa);
  EXPECT_EQ(sockets_.find("s2")->current_limit_ma, 2500u);
  EXPECT_EQ(sockets_.find("s2")->desired_power_limit_w, 1000u);
  auto live = sockets_.live_status();
  ASSERT_EQ(live.size(), 3u);
  EXPECT_EQ(live[1].cid, "s2");
  EXPECT_EQ(live[1].name, "socket 2");
  EXPECT_FALSE(live[1].online);
}

TEST_F(SocketRegistryTest, ANewSessionReplacesTheOldOneWhoseCloseIsThenIgnored) {
  auto first = std::make_shared<FakeLink>("s1", kV1, 4);
  auto a = sockets_.attach(first);
  ASSERT_EQ(a.socket, sockets_.find("s1"));
  EXPECT_EQ(a.replaced, nullptr);
  EXPECT_EQ(a.socket->boot, 4u);
  EXPECT_EQ(sockets_.current(*first), a.socket);

  auto second = std::make_shared<FakeLink>("s1", kV1, 5);
  auto b = sockets_.attach(second);
  EXPECT_EQ(b.replaced, first);
  EXPECT_EQ(b.socket->boot, 5u);
  EXPECT_EQ(sockets_.current(*first), nullptr);
  EXPECT_EQ(sockets_.detach(*first), nullptr) << "the replaced session took the socket offline";
  EXPECT_EQ(b.socket->link, second);
  EXPECT_EQ(sockets_.detach(*second), b.socket);
  EXPECT_EQ(b.socket->link, nullptr);

  auto stranger = std::make_shared<FakeLink>("zz", kV1);
  EXPECT_EQ(sockets_.attach(stranger).socket, nullptr);
}

TEST_F(SocketRegistryTest, AReadingBecomesARowAndCarriesTheV1State) {
  SocketState& st = *sockets_.attach(std::make_shared<FakeLink>("s1", kV1 | proto::kCapSwitchLock, 7)).socket;
  auto m = reading(12, kMeasured | proto::kSwitchDisabled);
  m.reading.age_ms = 500;
  m.reading.countdown_s = 30;
  m.reading.switch_count = 9;
  const store::ReadingRow row = apply_reading(st, m.reading, 10'000);
  EXPECT_EQ(row.cid, "s1");
  EXPECT_EQ(row.boot, 7u);
  EXPECT_EQ(row.seq, 12u);
  EXPECT_EQ(row.ts_ms, 9'500);
  EXPECT_EQ(row.power_mw, 23'000u);
  EXPECT_EQ(st.switch_count, 9u);
  EXPECT_EQ(st.countdown_ends_ms, 9'500 + 30'000);
  EXPECT_EQ(st.switch_enabled, false);

  // Sampled before a confirmed SetSwitchEnabled: its flag is older than the socket's state.
  st.switch_enabled = true;
  st.switch_confirmed_ms = 20'000;
  apply_reading(st, m.reading, 15'000);
  EXPECT_EQ(st.switch_enabled, true);
}

TEST_F(SocketRegistryTest, ALegacyReadingLeavesTheV1StateAlone) {
  SocketState& st = *sockets_.attach(std::make_shared<FakeLink>("s1", proto::kCapRelay)).socket;
  auto m = reading(1);
  m.reading.countdown_s = 30;
  m.reading.switch_count = 9;
  apply_reading(st, m.reading, 10'000);
  EXPECT_EQ(st.switch_count, std::nullopt);
  EXPECT_EQ(st.countdown_ends_ms, std::nullopt);
  EXPECT_EQ(st.switch_enabled, std::nullopt);
}

TEST_F(SocketRegistryTest, EventsChangeRelayFaultsAndAfterAResetTheLimits) {
  SocketState& st = *sockets_.find("s2");
  proto::Event e{};
  e.type = proto::EventType::OverCurrent;
  e.value = 6000;
  EventEffect fx = apply_event(st, e);
  EXPECT_TRUE(fx.report);
  EXPECT_NE(st.faults, 0u);
  EXPECT_FALSE(st.fault_detail.empty());

  e.type = proto::EventType::RelayChanged;
  e.value = 1;
  fx = apply_event(st, e);
  EXPECT_TRUE(fx.report);
  EXPECT_EQ(st.faults, 0u) << "switching on clears the fault";
  EXPECT_EQ(st.relay_on, true);

  st.desired_current_limit_ma = 1200;  // set by the cloud meanwhile
  st.desired_switch_enabled = false;
  e.type = proto::EventType::FactoryReset;
  fx = apply_event(st, e);
  EXPECT_FALSE(fx.reapply_limits) << "offline: the limits go at its next session";
  EXPECT_EQ(st.desired_current_limit_ma, 2500u);
  EXPECT_EQ(st.desired_switch_enabled, std::nullopt);
  EXPECT_EQ(st.current_limit_ma, kDefaultCurrentLimitMa);
  sockets_.attach(std::make_shared<FakeLink>("s2", kV1));
  EXPECT_TRUE(apply_event(st, e).reapply_limits);
}

TEST_F(SocketRegistryTest, AnEventBecomesARowWithItsKindAndCauseInText) {
  SocketState& st = *sockets_.attach(std::make_shared<FakeLink>("s3", kV1, 9)).socket;
  proto::Event e{};
  e.seq = 5;
  e.age_ms = 250;
  e.type = proto::EventType::OverPower;
  e.cause = proto::Cause::Protection;
  e.value = 4000;
  const store::EventRow row = event_row(st, e, 10'000);
  EXPECT_EQ(row.cid, "s3");
  EXPECT_EQ(row.ts_ms, 9'750);
  EXPECT_EQ(row.kind, "over_power");
  EXPECT_EQ(row.boot, 9u);
  EXPECT_EQ(row.seq, 5u);
  EXPECT_EQ(row.value, 4000);
  EXPECT_EQ(row.detail, R"({"cause":"protection"})");
}

TEST_F(SocketRegistryTest, OnlyTheNewestCommittedReadingIsTheLast) {
  SocketState& st = *sockets_.find("s1");
  store::ReadingRow newer;
  newer.boot = 3;
  newer.seq = 20;
  newer.ts_ms = 2000;
  newer.flags = proto::kRelayOn;
  store::ReadingRow older = newer;  // resent after a reconnect
  older.seq = 19;
  older.ts_ms = 1000;
  older.flags = 0;
  EXPECT_TRUE(apply_committed(st, newer));
  EXPECT_FALSE(apply_committed(st, older));
  EXPECT_FALSE(apply_committed(st, newer)) << "the same record again";
  EXPECT_EQ(st.last->ts_ms, 2000);
  EXPECT_EQ(st.relay_on, true);
}

TEST_F(SocketRegistryTest, AClockSteppedBackDoesNotFreezeTheLiveState) {
  SocketState& st = *sockets_.find("s1");
  store::ReadingRow r;
  r.boot = 3;
  r.seq = 20;
  r.ts_ms = 10'000'000;
  r.flags = proto::kRelayOn;
  ASSERT_TRUE(apply_committed(st, r));
  // NTP steps the gateway's clock back an hour: the next readings are stamped earlier.
  r.seq = 21;
  r.ts_ms -= 3'600'000;
  r.flags = 0;
  EXPECT_TRUE(apply_committed(st, r));
  EXPECT_EQ(st.last->seq, 21u);
  EXPECT_EQ(st.relay_on, false);
  // A new boot of the socket is newer whatever its time; a boot counter that went back (reset) is
  // newer only by time.
  r.boot = 4;
  r.seq = 1;
  r.ts_ms -= 1000;
  EXPECT_TRUE(apply_committed(st, r));
  r.boot = 1;
  r.seq = 500;
  EXPECT_FALSE(apply_committed(st, r));
  r.ts_ms += 5000;
  EXPECT_TRUE(apply_committed(st, r));
}

}  // namespace
}  // namespace pb::gateway
