// The switch lock, the button, the LED and calibration.
#include "socket_rig.hpp"

namespace pbfw {
namespace {

using namespace core_test;

// DP 17 switch_enabled = false: the relay stays as it is for the button and the gateway, not for the
// protections.
TEST(SocketSwitchLock, ButtonAndRemoteSwitchingIgnoredWhileDisabled) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  EXPECT_NE(SocketCore::kCapabilities & proto::kCapSwitchLock, 0u);
  EXPECT_TRUE(rig.core->switch_enabled());
  rig.command(1, proto::CommandKind::SetRelay, 1);
  ASSERT_TRUE(rig.hal.relay);
  ASSERT_TRUE(rig.core->set_countdown(60));
  const size_t readings_before = rig.readings().size();

  rig.command(2, proto::CommandKind::SetSwitchEnabled, 0);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Ok);
  EXPECT_FALSE(rig.core->switch_enabled());
  EXPECT_EQ(rig.storage.stored->switch_disabled, 1);
  ASSERT_EQ(rig.readings().size(), readings_before + 1);  // the new flag goes out at once
  EXPECT_NE(rig.readings().back().flags & proto::kSwitchDisabled, 0);
  EXPECT_EQ(rig.readings().back().countdown_s, 0u) << "disabling cancels a running countdown";
  EXPECT_EQ(rig.core->countdown_remaining_s(), 0u);

  const uint32_t switches = rig.core->switch_count();
  const size_t relay_events = rig.observer.relay.size();
  press(rig, 200);  // debounced click
  rig.core->button_click();
  EXPECT_TRUE(rig.hal.relay);
  rig.command(3, proto::CommandKind::SetRelay, 0);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Refused);
  EXPECT_EQ(rig.results().back().relay_on, 1);
  rig.command(4, proto::CommandKind::SetCountdown, 5);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Refused);
  rig.command(5, proto::CommandKind::SetCountdown, 0);  // cancelling is not a switching
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Ok);
  rig.command(6, proto::CommandKind::SetSwitchEnabled, 2);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::InvalidValue);
  idle(rig, 6000);
  EXPECT_TRUE(rig.hal.relay);
  EXPECT_EQ(rig.core->switch_count(), switches);
  EXPECT_EQ(rig.observer.relay.size(), relay_events);
  EXPECT_NE(rig.readings().back().flags & proto::kSwitchDisabled, 0);

  rig.command(7, proto::CommandKind::SetSwitchEnabled, 1);
  EXPECT_TRUE(rig.core->switch_enabled());
  EXPECT_EQ(rig.readings().back().flags & proto::kSwitchDisabled, 0);
  press(rig, 200);
  EXPECT_FALSE(rig.hal.relay);
  rig.command(8, proto::CommandKind::SetRelay, 1);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Ok);
  EXPECT_TRUE(rig.hal.relay);
}

TEST(SocketSwitchLock, PersistsAcrossPowerCutsAndFactoryResetEnables) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.core->button_click();
  rig.command(1, proto::CommandKind::SetSwitchEnabled, 0);
  rig.power_on();
  EXPECT_FALSE(rig.core->switch_enabled());
  EXPECT_TRUE(rig.hal.relay);  // restored as it was
  rig.core->button_click();
  EXPECT_TRUE(rig.hal.relay);
  rig.session_up();
  rig.run(1000);
  EXPECT_NE(rig.readings().back().flags & proto::kSwitchDisabled, 0);

  rig.core->factory_reset();  // the 10-s hold: a deliberate local reset, back to the defaults
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_TRUE(rig.core->switch_enabled());
  EXPECT_EQ(rig.storage.stored->switch_disabled, 0);
  rig.core->button_click();
  EXPECT_TRUE(rig.hal.relay);
}

TEST(SocketSwitchLock, ProtectionStillTripsAndTheLoadStaysOffUntilEnabled) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.core->button_click();
  rig.run(200, &kLoad1500mA, 1);
  rig.command(1, proto::CommandKind::SetSwitchEnabled, 0);
  rig.feed(testing::build_frame(kLoad6A));
  EXPECT_FALSE(rig.hal.relay);  // safety first: the lock never keeps a load on
  EXPECT_TRUE(rig.core->over_current_tripped());
  EXPECT_EQ(count_events(rig, proto::EventType::OverCurrent), 1);
  press(rig, 200);
  EXPECT_FALSE(rig.hal.relay);
  rig.command(2, proto::CommandKind::SetRelay, 1);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Refused);
  EXPECT_FALSE(rig.hal.relay);
  rig.command(3, proto::CommandKind::SetSwitchEnabled, 1);
  rig.command(4, proto::CommandKind::SetRelay, 1);
  EXPECT_TRUE(rig.hal.relay);
  EXPECT_FALSE(rig.core->over_current_tripped());
}

TEST(SocketButton, DebouncedClickToggles) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  press(rig, 20);  // shorter than the 30 ms debounce: a glitch
  EXPECT_FALSE(rig.hal.relay);
  // Contact bounce: several short changes, then held.
  for (int k = 0; k < 4; ++k) {
    rig.core->button(k % 2 == 0);
    idle(rig, 10);
  }
  press(rig, 200);
  EXPECT_TRUE(rig.hal.relay);
  EXPECT_EQ(rig.core->switch_count(), 1u);
  EXPECT_EQ(rig.observer.relay.back(), std::make_pair(true, proto::Cause::Button));
  press(rig, 4000);  // under 5 s: still a click
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_EQ(rig.hal.provisioning_starts, 0);
}

TEST(SocketButton, HoldFiveSecondsStartsProvisioningWithTimeout) {
  Rig rig;
  rig.cfg.provisioning_timeout_ms = 60000;
  rig.power_on();
  rig.session_up();
  rig.core->button(true);
  idle(rig, 6000);
  EXPECT_FALSE(rig.core->provisioning());  // starts on release
  rig.core->button(false);
  idle(rig, 100);
  EXPECT_TRUE(rig.core->provisioning());
  EXPECT_EQ(rig.hal.provisioning_starts, 1);
  EXPECT_FALSE(rig.hal.relay);  // not a click
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedConnecting}));
  idle(rig, 59000);
  EXPECT_TRUE(rig.core->provisioning());
  idle(rig, 1000);
  EXPECT_FALSE(rig.core->provisioning());
  EXPECT_EQ(rig.hal.provisioning_stops, 1);
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Steady, SocketCore::kLedStandby}));

  rig.core->start_provisioning();
  rig.core->provisioning_done();
  EXPECT_FALSE(rig.core->provisioning());
}

TEST(SocketButton, HoldTenSecondsFactoryResets) {
  Rig rig;
  rig.cfg.reset_flash_ms = 2000;
  rig.power_on();
  rig.session_up();
  rig.command(1, proto::CommandKind::SetCurrentLimit, 3000);
  rig.command(2, proto::CommandKind::SetKv, 2000000);
  rig.core->button_click();
  rig.run(1000, &kLoad600W, 50);
  const uint64_t energy = rig.core->energy().energy_mwh();
  ASSERT_GT(energy, 0u);
  const uint16_t epoch = rig.core->energy().epoch();

  rig.core->button(true);
  idle(rig, 9900);
  EXPECT_TRUE(rig.hal.relay);
  idle(rig, 200);  // 10 s reached while still held: reset without waiting for the release
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_EQ(rig.core->energy().energy_mwh(), 0u);
  EXPECT_EQ(rig.core->energy().epoch(), epoch + 1);
  EXPECT_EQ(rig.core->current_limit_ma(), 5000u);
  EXPECT_EQ(rig.core->kv_e6(), kDefaultKvE6);
  EXPECT_EQ(rig.core->switch_count(), 0u);
  EXPECT_EQ(rig.storage.stored->energy_mwh, 0u);
  EXPECT_EQ(rig.storage.stored->current_limit_ma, 5000u);
  EXPECT_EQ(rig.storage.stored->boot_counter, 1u);  // not an identity reset
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedReset}));
  EXPECT_EQ(count_events(rig, proto::EventType::FactoryReset), 1);
  EXPECT_EQ(rig.events().back().value, epoch + 1);
  rig.core->button(false);
  idle(rig, 100);
  EXPECT_FALSE(rig.hal.relay);  // the release does nothing more
  EXPECT_EQ(rig.hal.provisioning_starts, 0);
  idle(rig, 2000);
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Steady, SocketCore::kLedStandby}));
  rig.power_on();
  EXPECT_EQ(rig.core->energy().energy_mwh(), 0u);
  EXPECT_EQ(rig.core->kv_e6(), kDefaultKvE6);
}

// While the button is held the LED says what a release would do: nothing new before 5 s (a click),
// steady blue from 5 s (provisioning), flashing white once the 10 s reset has fired.
TEST(SocketButton, LedShowsTheHoldThresholds) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  const LedPattern standby{LedMode::Steady, SocketCore::kLedStandby};
  const LedPattern armed{LedMode::Steady, SocketCore::kLedConnecting};
  rig.core->button(true);
  idle(rig, 4950);
  EXPECT_EQ(rig.core->led_pattern(), standby);
  idle(rig, 100);
  EXPECT_EQ(rig.core->led_pattern(), armed);
  // Steady, so also in what a flashing pattern's dark half would be; and written to the LED.
  while (rig.hal.now % SocketCore::kFlashPeriodMs < SocketCore::kFlashPeriodMs / 2 + 100) idle(rig, 10);
  EXPECT_EQ(rig.hal.led, SocketCore::kLedConnecting);
  rig.core->button(false);
  idle(rig, 100);
  EXPECT_TRUE(rig.core->provisioning());
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedConnecting}));
  rig.core->provisioning_done();

  rig.core->button(true);
  idle(rig, 9000);
  EXPECT_EQ(rig.core->led_pattern(), armed);
  idle(rig, 1100);
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedReset}));
  rig.core->button(false);
  idle(rig, 100);
  EXPECT_FALSE(rig.core->provisioning());
}

TEST(SocketLed, StateToPattern) {
  const testing::FrameRegs kLoad400W = testing::regs_for(230000, 2000000, 400000, 0);
  Rig rig;
  rig.power_on();
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedConnecting}));
  rig.session_up();
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Steady, SocketCore::kLedStandby}));
  rig.core->button_click();
  const std::pair<const testing::FrameRegs*, LedColor> by_power[] = {
      {&kLoad100W, SocketCore::kLedLow},
      {&kLoad400W, SocketCore::kLedMedium},
      {&kLoad600W, SocketCore::kLedHigh},
      {&kLoad6A, SocketCore::kLedVeryHigh},  // 1300 W (limit raised so it does not trip)
  };
  rig.command(1, proto::CommandKind::SetCurrentLimit, 10000);
  for (const auto& [regs, colour] : by_power) {
    rig.run(100, regs, 1);
    EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Breathing, colour}));
  }
  rig.core->on_transport_disconnected();
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedConnecting}));
  EXPECT_EQ(rig.hal.led, SocketCore::led_output(rig.core->led_pattern(), rig.hal.now));
}

TEST(SocketLed, OutputAtSampledTimes) {
  const LedPattern steady{LedMode::Steady, SocketCore::kLedStandby};
  for (uint64_t t : {0u, 250u, 999u, 123456u})
    EXPECT_EQ(SocketCore::led_output(steady, t), SocketCore::kLedStandby);

  const LedPattern flash{LedMode::Flashing, SocketCore::kLedOverCurrent};
  const LedColor off{0, 0, 0};
  EXPECT_EQ(SocketCore::led_output(flash, 0), SocketCore::kLedOverCurrent);
  EXPECT_EQ(SocketCore::led_output(flash, 499), SocketCore::kLedOverCurrent);
  EXPECT_EQ(SocketCore::led_output(flash, 500), off);
  EXPECT_EQ(SocketCore::led_output(flash, 999), off);
  EXPECT_EQ(SocketCore::led_output(flash, 1000), SocketCore::kLedOverCurrent);

  // Breathing: dimmest at the period start, full colour at mid-period, rising then falling smoothly.
  const LedPattern breathe{LedMode::Breathing, SocketCore::kLedHigh};  // yellow
  constexpr uint64_t kPeriod = SocketCore::kBreathingPeriodMs;
  EXPECT_EQ(SocketCore::led_output(breathe, 0).r, SocketCore::kBreathingMinLevel);
  EXPECT_EQ(SocketCore::led_output(breathe, kPeriod / 2), SocketCore::kLedHigh);
  int previous = -1;
  int max_step = 0;
  for (uint64_t t = 0; t <= kPeriod / 2; t += 20) {
    const LedColor c = SocketCore::led_output(breathe, t);
    EXPECT_EQ(c.r, c.g);  // hue kept
    EXPECT_EQ(c.b, 0);
    EXPECT_GE(c.r, previous) << t;
    if (previous >= 0) max_step = std::max(max_step, c.r - previous);
    previous = c.r;
    EXPECT_EQ(c, SocketCore::led_output(breathe, kPeriod - t)) << t;  // symmetric
    EXPECT_EQ(c, SocketCore::led_output(breathe, t + 7 * kPeriod));   // periodic
  }
  EXPECT_LE(max_step, 8);  // smooth at 50 Hz
  // Eases in and out: slow near the ends, fast in the middle.
  const auto r_at = [&](uint64_t t) { return int{SocketCore::led_output(breathe, t).r}; };
  EXPECT_LT(r_at(100) - r_at(0), r_at(800) - r_at(700));
  EXPECT_LT(r_at(1500) - r_at(1400), r_at(800) - r_at(700));
}

TEST(SocketCalibration, FromAKnownResistiveLoad) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  // The board's true constants differ from the defaults the core starts with.
  constexpr uint32_t kTrueKv = 2'050'000, kTrueKi = 1'120'000;
  const testing::FrameRegs load = testing::regs_for(230000, 4000000, 920000, 0, false, kTrueKv, kTrueKi);
  rig.command(1, proto::CommandKind::CalibrateVoltage, 230000);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Refused);  // no meter reading yet
  rig.run(200, &load, 1);
  EXPECT_NEAR(rig.core->meter().sample().voltage_mv, 230000.0 * 1.88 / 2.05, 300);

  rig.command(2, proto::CommandKind::CalibrateVoltage, 230000);
  rig.command(3, proto::CommandKind::CalibratePower, 920000);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Ok);
  EXPECT_NEAR(rig.core->kv_e6(), kTrueKv, kTrueKv / 2000);
  EXPECT_NEAR(rig.core->ki_e6(), kTrueKi, kTrueKi / 2000);
  rig.run(100, &load, 1);
  const MeterSample& s = rig.core->meter().sample();
  EXPECT_NEAR(s.voltage_mv, 230000, 230);
  EXPECT_NEAR(s.current_ua, 4000000, 4000);
  EXPECT_NEAR(s.power_mw, 920000, 920);

  rig.command(4, proto::CommandKind::CalibrateCurrent, 4000);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Ok);
  EXPECT_NEAR(rig.core->ki_e6(), kTrueKi, kTrueKi / 2000);
  rig.command(5, proto::CommandKind::CalibrateVoltage, 1);  // would give Kv below 0.01
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Refused);
  rig.command(6, proto::CommandKind::SetKi, 0);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::InvalidValue);

  const uint32_t kv = rig.core->kv_e6(), ki = rig.core->ki_e6();
  rig.power_on();
  EXPECT_EQ(rig.core->kv_e6(), kv);
  EXPECT_EQ(rig.core->ki_e6(), ki);
  EXPECT_EQ(rig.storage.stored->kv_e6, kv);
}

}  // namespace
}  // namespace pbfw
