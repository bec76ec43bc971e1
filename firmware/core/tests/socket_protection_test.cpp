// Protection trips (over-current, over-power, voltage) and the countdown.
#include "socket_rig.hpp"

namespace pbfw {
namespace {

using namespace core_test;

TEST(SocketProtection, OverCurrentRelayOffWithin100msOfTheFrame) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.core->button_click();
  rig.run(500, &kLoad1500mA, 1);
  ASSERT_TRUE(rig.hal.relay);
  const testing::Hlw8032Frame f = testing::build_frame(kLoad6A);
  rig.hal.now += 50;
  for (size_t k = 0; k + 1 < f.size(); ++k) rig.core->on_meter_byte(f[k], false);
  EXPECT_TRUE(rig.hal.relay);  // the frame is not complete yet
  const uint64_t frame_done = rig.hal.now;
  rig.core->on_meter_byte(f.back(), false);
  ASSERT_FALSE(rig.hal.relay);
  EXPECT_LE(rig.hal.relay_off_at, frame_done + 100);
  EXPECT_EQ(count_events(rig, proto::EventType::OverCurrent), 1);
}

TEST(SocketProtection, OverCurrentDurationMustPersist) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.command(1, proto::CommandKind::SetOverCurrentDuration, 1000);
  EXPECT_EQ(rig.core->over_current_duration_ms(), 1000u);
  rig.core->button_click();
  // A 500 ms spike is tolerated, and the timer restarts after it.
  rig.run(500, &kLoad6A, 1);
  rig.run(100, &kLoad1500mA, 1);
  EXPECT_TRUE(rig.hal.relay);
  const uint64_t first_offending = rig.hal.now + 50;
  rig.run(1000, &kLoad6A, 1);  // frames at +0 .. +950 ms
  EXPECT_TRUE(rig.hal.relay);
  rig.run(50, &kLoad6A, 1);  // the frame at +1000 ms
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_EQ(rig.hal.relay_off_at, first_offending + 1000);
  EXPECT_EQ(rig.core->last_trip(), Trip::OverCurrent);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Ok);
}

TEST(SocketProtection, OverPowerAndVoltageLimits) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  const auto load_260v = testing::regs_for(260000, 500000, 100000, 0);
  const auto load_180v = testing::regs_for(180000, 500000, 80000, 0);
  rig.core->button_click();
  rig.run(200, &load_260v, 1);  // voltage limits are off by default
  EXPECT_TRUE(rig.hal.relay);

  rig.command(1, proto::CommandKind::SetPowerLimit, 500);
  rig.run(100, &kLoad600W, 1);
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_EQ(rig.core->last_trip(), Trip::OverPower);
  auto events = rig.events();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2].type, proto::EventType::OverPower);
  EXPECT_NEAR(events[events.size() - 2].value, 600, 2);
  EXPECT_EQ(events.back().cause, proto::Cause::Protection);

  rig.command(2, proto::CommandKind::SetVoltageMax, 250);
  rig.command(3, proto::CommandKind::SetRelay, 1);
  EXPECT_FALSE(rig.core->over_current_tripped());
  rig.run(100, &load_260v, 1);
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_EQ(rig.core->last_trip(), Trip::OverVoltage);
  events = rig.events();
  EXPECT_EQ(events[events.size() - 2].type, proto::EventType::OverVoltage);
  EXPECT_NEAR(events[events.size() - 2].value, 260000, 300);

  rig.command(4, proto::CommandKind::SetVoltageMin, 200);
  rig.command(5, proto::CommandKind::SetRelay, 1);
  rig.run(100, &kLoad100W, 1);  // 230 V: within both limits
  EXPECT_TRUE(rig.hal.relay);
  rig.run(100, &load_180v, 1);
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_EQ(rig.core->last_trip(), Trip::UnderVoltage);
  EXPECT_EQ(count_events(rig, proto::EventType::UnderVoltage), 1);

  // Out-of-range settings are refused and change nothing.
  rig.command(6, proto::CommandKind::SetPowerLimit, 6001);
  rig.command(7, proto::CommandKind::SetVoltageMax, -1);
  rig.command(8, proto::CommandKind::SetOverCurrentDuration, 600001);
  const auto results = rig.results();
  for (size_t k = results.size() - 3; k < results.size(); ++k)
    EXPECT_EQ(results[k].status, proto::CommandStatus::InvalidValue);
  EXPECT_EQ(rig.core->power_limit_w(), 500u);
  EXPECT_EQ(rig.core->voltage_max_v(), 250u);
}

TEST(SocketProtection, LimitsPersistAndTripSurvivesPowerCut) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.command(1, proto::CommandKind::SetCurrentLimit, 2000);
  rig.command(2, proto::CommandKind::SetOverCurrentDuration, 300);
  rig.command(3, proto::CommandKind::SetPowerLimit, 900);
  rig.command(4, proto::CommandKind::SetVoltageMax, 255);
  rig.command(5, proto::CommandKind::SetVoltageMin, 190);
  rig.core->button_click();
  rig.run(500, &kLoad6A, 1);
  ASSERT_TRUE(rig.core->over_current_tripped());

  rig.power_on();
  EXPECT_EQ(rig.core->current_limit_ma(), 2000u);
  EXPECT_EQ(rig.core->over_current_duration_ms(), 300u);
  EXPECT_EQ(rig.core->power_limit_w(), 900u);
  EXPECT_EQ(rig.core->voltage_max_v(), 255u);
  EXPECT_EQ(rig.core->voltage_min_v(), 190u);
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_TRUE(rig.core->over_current_tripped());  // still flashing red until switched on
  rig.core->button_click();
  EXPECT_FALSE(rig.core->over_current_tripped());
}

TEST(SocketCountdown, FlipsRelayAtZeroAndIsReported) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.command(1, proto::CommandKind::SetCountdown, 3);
  ASSERT_FALSE(rig.readings().empty());
  EXPECT_EQ(rig.readings().back().countdown_s, 3u);  // reported at once
  EXPECT_EQ(rig.core->countdown_remaining_s(), 3u);
  rig.run(1000);
  EXPECT_EQ(rig.readings().back().countdown_s, 2u);
  // Survives a lost connection: it runs in the socket.
  rig.core->on_transport_disconnected();
  rig.run(1900);
  EXPECT_FALSE(rig.hal.relay);
  rig.run(100);
  EXPECT_TRUE(rig.hal.relay);  // off -> on
  EXPECT_EQ(rig.core->countdown_remaining_s(), 0u);
  ASSERT_FALSE(rig.observer.relay.empty());
  EXPECT_EQ(rig.observer.relay.back(), std::make_pair(true, proto::Cause::Countdown));
  rig.session_up();
  rig.run(1000);
  EXPECT_EQ(rig.readings().back().countdown_s, 0u);

  rig.command(2, proto::CommandKind::SetCountdown, 1);
  rig.run(1000);
  EXPECT_FALSE(rig.hal.relay);  // on -> off
  const auto events = rig.events();
  EXPECT_EQ(events.back().type, proto::EventType::RelayChanged);
  EXPECT_EQ(events.back().cause, proto::Cause::Countdown);

  rig.command(3, proto::CommandKind::SetCountdown, 86401);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::InvalidValue);
}

TEST(SocketCountdown, CancelledByOtherRelayChangesAndTrips) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.core->button_click();
  ASSERT_TRUE(rig.core->set_countdown(2));
  rig.core->button_click();  // manual off: countdown cancelled
  EXPECT_EQ(rig.core->countdown_remaining_s(), 0u);
  rig.run(3000);
  EXPECT_FALSE(rig.hal.relay);

  rig.core->button_click();
  ASSERT_TRUE(rig.core->set_countdown(2));
  rig.run(100, &kLoad6A, 1);  // trips
  EXPECT_FALSE(rig.hal.relay);
  rig.run(3000);
  EXPECT_FALSE(rig.hal.relay);  // a countdown never re-energises a tripped load
  EXPECT_TRUE(rig.core->set_countdown(0));
}

}  // namespace
}  // namespace pbfw
