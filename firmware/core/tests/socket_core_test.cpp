// The core's boot, readings, commands, energy persistence, factory reset and switch count.
#include "socket_rig.hpp"

namespace pbfw {
namespace {

using namespace core_test;

TEST(SocketCore, BootCounterIncrementsAcrossBoots) {
  Rig rig;
  rig.power_on();
  ASSERT_TRUE(rig.storage.stored);
  EXPECT_EQ(rig.storage.stored->boot_counter, 1u);
  EXPECT_EQ(rig.core->boot_counter(), 1u);
  rig.power_on();
  EXPECT_EQ(rig.storage.stored->boot_counter, 2u);
  rig.session_up();
  ASSERT_FALSE(rig.transport.sent.empty());
  ASSERT_EQ(rig.transport.sent[0].type, proto::MsgType::Hello);
  EXPECT_EQ(rig.transport.sent[0].hello.boot_counter, 2u);
  EXPECT_STREQ(rig.transport.sent[0].hello.cid, "sock-1");
  EXPECT_EQ(rig.transport.sent[0].hello.capabilities, SocketCore::kCapabilities);
}

// Without a valid device-information page the port never starts the link; the LED must not pretend to be
// connecting. The socket still switches locally, and Wi-Fi provisioning still shows blue.
TEST(SocketCore, UnprovisionedSocketFlashesPurpleAndStillSwitches) {
  Rig rig;
  rig.cfg.provisioned = false;
  rig.power_on();
  const LedPattern not_provisioned{LedMode::Flashing, SocketCore::kLedNotProvisioned};
  EXPECT_EQ(rig.core->led_pattern(), not_provisioned);
  rig.core->button_click();
  EXPECT_TRUE(rig.core->relay_on());
  EXPECT_EQ(rig.core->led_pattern(), not_provisioned);
  rig.core->start_provisioning();
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedConnecting}));
}

TEST(SocketCore, RelayRestoredAfterPowerCut) {
  Rig rig;
  rig.power_on();
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedConnecting}));
  rig.session_up();
  EXPECT_EQ(rig.hal.led, SocketCore::kLedStandby);
  rig.core->button_click();
  EXPECT_TRUE(rig.core->relay_on());
  EXPECT_TRUE(rig.hal.relay);
  EXPECT_EQ(rig.storage.stored->relay_on, 1u);

  rig.power_on();
  EXPECT_TRUE(rig.hal.relay);
  EXPECT_TRUE(rig.core->relay_on());
  rig.session_up();
  const auto events = rig.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, proto::EventType::RelayChanged);
  EXPECT_EQ(events[0].cause, proto::Cause::PowerOn);
  EXPECT_EQ(events[0].value, 1);
}

TEST(SocketCore, ReadingsCadenceAndContent) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.core->button_click();
  rig.run(5000, &kLoad100W, 3);
  const auto readings = rig.readings();
  ASSERT_EQ(readings.size(), 5u);
  const MeterSample& s = rig.core->meter().sample();
  for (size_t k = 1; k < readings.size(); ++k) EXPECT_EQ(readings[k].seq, readings[k - 1].seq + 1);
  const proto::Reading& r = readings.back();
  EXPECT_EQ(r.flags, proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid |
                         proto::kRelayOn);
  EXPECT_EQ(r.voltage_mv, s.voltage_mv);
  EXPECT_NEAR(r.voltage_mv, 230000, 230);
  EXPECT_NEAR(r.current_ua, 500000, 500);
  EXPECT_NEAR(r.power_mw, 100000, 100);
  EXPECT_EQ(r.apparent_mva, s.apparent_mva);
  EXPECT_NEAR(r.power_factor_e4, 8696, 10);
  // 99 frames after the baseline x 3 pulses x 2.7746 mWh, minus the last second's frames not yet sent.
  EXPECT_GT(r.energy_mwh, 0u);
  EXPECT_LE(r.energy_mwh, rig.core->energy().energy_mwh());
  EXPECT_EQ(rig.core->energy().energy_mwh(), uint64_t{99} * 3 * 5313000 * 188 / 100 / 3600000);  // 824
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Breathing, SocketCore::kLedLow}));
}

TEST(SocketCore, RequestReadingSendsOneNow) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.run(300, &kLoad100W, 0);
  EXPECT_EQ(rig.readings().size(), 0u);
  rig.command(7, proto::CommandKind::RequestReading, 0);
  ASSERT_EQ(rig.readings().size(), 1u);
  EXPECT_TRUE(rig.readings()[0].flags & proto::kMeterOk);
  ASSERT_EQ(rig.results().size(), 1u);
  EXPECT_EQ(rig.results()[0].cmd_id, 7u);
  EXPECT_EQ(rig.results()[0].status, proto::CommandStatus::Ok);
}

TEST(SocketCore, UnavailableAfterMeterTimeout) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.run(3500);  // no meter at all since boot: lost after the timeout
  for (const auto& r : rig.readings()) {
    EXPECT_EQ(r.flags & proto::kMeterOk, 0);
    EXPECT_EQ(r.voltage_mv + r.current_ua + r.power_mw + r.apparent_mva + r.power_factor_e4, 0u);
  }
  rig.run(2000, &kLoad100W, 1);
  EXPECT_TRUE(rig.core->meter_ok());
  EXPECT_NE(rig.readings().back().flags & proto::kMeterOk, 0);
  EXPECT_GT(rig.readings().back().voltage_mv, 0u);

  const size_t before = rig.readings().size();
  rig.run(2900);  // meter silent, still within the 3 s timeout
  EXPECT_NE(rig.readings().back().flags & proto::kMeterOk, 0);
  rig.run(2000);
  const auto readings = rig.readings();
  ASSERT_GT(readings.size(), before + 3);
  const proto::Reading& r = readings.back();
  EXPECT_EQ(r.flags & (proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid),
            0);
  EXPECT_EQ(r.voltage_mv + r.current_ua + r.power_mw + r.apparent_mva + r.power_factor_e4, 0u);

  int lost = 0, restored = 0;
  for (const auto& e : rig.events()) {
    lost += e.type == proto::EventType::MeterLost;
    restored += e.type == proto::EventType::MeterRestored;
  }
  EXPECT_EQ(lost, 2);  // never came up after boot, then lost again
  EXPECT_EQ(restored, 1);
}

TEST(SocketCore, OverCurrentTripsInTheSameCall) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.core->button_click();
  rig.run(200, &kLoad1500mA, 1);
  ASSERT_TRUE(rig.hal.relay);
  const size_t events_before = rig.events().size();

  rig.feed(testing::build_frame(kLoad6A));
  EXPECT_FALSE(rig.hal.relay);  // no tick needed
  EXPECT_FALSE(rig.core->relay_on());
  EXPECT_TRUE(rig.core->over_current_tripped());
  EXPECT_EQ(rig.core->last_trip(), Trip::OverCurrent);
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedOverCurrent}));
  EXPECT_EQ(rig.storage.stored->relay_on, 0u);
  EXPECT_EQ(rig.storage.stored->tripped, 1u);
  const auto events = rig.events();
  ASSERT_EQ(events.size(), events_before + 2);
  EXPECT_EQ(events[events_before].type, proto::EventType::OverCurrent);
  EXPECT_EQ(events[events_before].cause, proto::Cause::Protection);
  EXPECT_NEAR(events[events_before].value, 6000, 5);
  EXPECT_EQ(events[events_before + 1].type, proto::EventType::RelayChanged);
  EXPECT_EQ(events[events_before + 1].cause, proto::Cause::Protection);
  EXPECT_EQ(events[events_before + 1].value, 0);

  // Stays off (and red) while the meter still sees the load; no repeated trips.
  rig.run(500, &kLoad6A, 1);
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_EQ(rig.events().size(), events_before + 2);
  EXPECT_EQ(rig.core->led_pattern(), (LedPattern{LedMode::Flashing, SocketCore::kLedOverCurrent}));
  EXPECT_NE(rig.core->current_reading().flags & proto::kTripped, 0);

  // Switched on again: back to normal.
  rig.core->button_click();
  EXPECT_TRUE(rig.hal.relay);
  EXPECT_FALSE(rig.core->over_current_tripped());
  rig.run(200, &kLoad1500mA, 1);
  EXPECT_TRUE(rig.hal.relay);
}

TEST(SocketCore, NoTripWhenRelayOffOrAtLimit) {
  Rig rig;
  rig.cfg.current_limit_ma = 1500;
  rig.power_on();
  rig.run(200, &kLoad6A, 1);  // relay off: the meter reading alone does nothing
  EXPECT_FALSE(rig.core->over_current_tripped());
  rig.core->button_click();
  rig.run(200, &kLoad1500mA, 1);  // about the limit (1.5 A +- register rounding)
  const uint32_t ua = rig.core->meter().sample().current_ua;
  EXPECT_EQ(rig.core->relay_on(), ua <= 1500000u) << ua;
}

TEST(SocketCore, Commands) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.command(1, proto::CommandKind::SetRelay, 1);
  EXPECT_TRUE(rig.hal.relay);
  rig.command(2, proto::CommandKind::SetRelay, 2);
  EXPECT_TRUE(rig.hal.relay);
  rig.command(3, proto::CommandKind::SetCurrentLimit, 99);
  rig.command(4, proto::CommandKind::SetCurrentLimit, 20001);
  rig.command(5, proto::CommandKind::SetCurrentLimit, 1000);
  EXPECT_EQ(rig.core->current_limit_ma(), 1000u);
  rig.command(6, proto::CommandKind::SetRelay, 0);
  EXPECT_FALSE(rig.hal.relay);

  const auto results = rig.results();
  ASSERT_EQ(results.size(), 6u);
  const proto::CommandStatus expected[] = {
      proto::CommandStatus::Ok,           proto::CommandStatus::InvalidValue,
      proto::CommandStatus::InvalidValue, proto::CommandStatus::InvalidValue,
      proto::CommandStatus::Ok,           proto::CommandStatus::Ok};
  const uint8_t relay[] = {1, 1, 1, 1, 1, 0};
  for (size_t k = 0; k < results.size(); ++k) {
    EXPECT_EQ(results[k].cmd_id, k + 1);
    EXPECT_EQ(results[k].status, expected[k]) << k;
    EXPECT_EQ(results[k].relay_on, relay[k]) << k;
  }
  EXPECT_EQ(rig.observer.statuses.size(), 6u);
  const auto events = rig.events();
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[1].type, proto::EventType::RelayChanged);
  EXPECT_EQ(events[1].cause, proto::Cause::Command);
  EXPECT_EQ(events[1].value, 1);

  // The new limit is enforced: 1.5 A trips at 1000 mA.
  rig.command(7, proto::CommandKind::SetRelay, 1);
  rig.run(100, &kLoad1500mA, 1);
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_TRUE(rig.core->over_current_tripped());
}

TEST(SocketCore, CommandResultRetriedWhenTransportBusy) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.transport.refuse = true;
  rig.command(9, proto::CommandKind::SetRelay, 1);
  EXPECT_TRUE(rig.hal.relay);
  EXPECT_TRUE(rig.results().empty());
  rig.transport.refuse = false;
  rig.run(50);
  ASSERT_EQ(rig.results().size(), 1u);
  EXPECT_EQ(rig.results()[0].cmd_id, 9u);
}

TEST(SocketCore, EnergyPersistedAtIntervalAndRestored) {
  Rig rig;
  rig.cfg.persist_interval_ms = 10000;
  rig.power_on();
  rig.core->button_click();
  const int saves_after_click = rig.storage.saves;
  rig.run(5000, &kLoad600W, 50);  // ~139 mWh per frame
  EXPECT_GT(rig.core->energy().energy_mwh(), 0u);
  EXPECT_EQ(rig.storage.saves, saves_after_click);  // not yet: flash wear
  rig.run(5100, &kLoad600W, 50);
  EXPECT_EQ(rig.storage.saves, saves_after_click + 1);
  EXPECT_GT(rig.storage.stored->energy_mwh, 0u);
  rig.run(2000, &kLoad600W, 50);
  EXPECT_EQ(rig.storage.saves, saves_after_click + 1);
  // A relay change persists at once, energy included.
  rig.core->button_click();
  EXPECT_EQ(rig.storage.saves, saves_after_click + 2);
  const uint64_t energy = rig.core->energy().energy_mwh();
  EXPECT_EQ(rig.storage.stored->energy_mwh, energy);

  rig.power_on();
  EXPECT_EQ(rig.core->energy().energy_mwh(), energy);
  rig.session_up();
  rig.run(1000);
  ASSERT_FALSE(rig.readings().empty());
  EXPECT_EQ(rig.readings()[0].energy_mwh, energy);
}

TEST(SocketCore, FactoryResetClearsEnergyKeepsBootCounter) {
  Rig rig;
  rig.power_on();
  rig.core->button_click();
  rig.run(1000, &kLoad600W, 50);
  ASSERT_GT(rig.core->energy().energy_mwh(), 0u);
  const uint16_t epoch = rig.core->energy().epoch();
  rig.core->factory_reset();
  EXPECT_EQ(rig.core->energy().energy_mwh(), 0u);
  EXPECT_EQ(rig.core->energy().epoch(), epoch + 1);
  EXPECT_FALSE(rig.hal.relay);
  EXPECT_EQ(rig.storage.stored->energy_mwh, 0u);
  EXPECT_EQ(rig.storage.stored->boot_counter, 1u);
}

TEST(SocketCore, SwitchCountPersistedAndReported) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  for (int k = 0; k < 5; ++k) rig.core->button_click();
  EXPECT_EQ(rig.core->switch_count(), 5u);
  EXPECT_EQ(rig.storage.stored->switch_count, 5u);
  rig.power_on();  // the restore at boot is not a switching
  EXPECT_EQ(rig.core->switch_count(), 5u);
  rig.session_up();
  rig.run(1000);
  EXPECT_EQ(rig.readings().back().switch_count, 5u);
  rig.core->factory_reset();
  EXPECT_EQ(rig.core->switch_count(), 0u);
}

// Sockets powered up together (a power cut) must not report in step: each takes its first reading
// at a point of the interval of its own, from its cid, and keeps that phase.
TEST(SocketCore, SocketsPoweredUpTogetherTakeTheirReadingsApart) {
  constexpr uint32_t kInterval = 10'000;
  std::set<uint64_t> firsts;
  for (const char* cid : {"flat-1", "flat-2", "flat-3", "flat-4", "flat-5", "flat-6", "flat-7", "flat-8"}) {
    Rig rig;
    rig.cfg.cid = cid;
    rig.cfg.reading_interval_ms = kInterval;
    rig.cfg.first_reading_ms = 0;
    rig.power_on();
    rig.session_up();
    const uint64_t boot = rig.hal.now;
    uint64_t first = 0;
    while (rig.readings().empty() && rig.hal.now - boot <= kInterval) rig.run(50);
    ASSERT_EQ(rig.readings().size(), 1u) << cid << ": no reading within one interval of boot";
    first = rig.hal.now - boot;
    firsts.insert(first / 50);
    rig.run(kInterval);
    EXPECT_EQ(rig.readings().size(), 2u) << cid << ": then one every interval";
  }
  EXPECT_GE(firsts.size(), 7u) << "readings in step";
  EXPECT_GT(*firsts.rbegin() - *firsts.begin(), kInterval / 50 / 2) << "not spread over the interval";
}

}  // namespace
}  // namespace pbfw
