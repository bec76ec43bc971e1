#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <optional>
#include <pbfw/socket_core.hpp>
#include <vector>

#include "hlw8032_frames.hpp"

namespace pbfw {
namespace {

using Bytes = std::vector<uint8_t>;

class FakeHal final : public Hal {
 public:
  uint64_t now_ms() override { return now; }
  void set_relay(bool on) override {
    if (relay && !on) relay_off_at = now;
    relay = on;
    ++relay_calls;
  }
  void start_provisioning() override { ++provisioning_starts; }
  void stop_provisioning() override { ++provisioning_stops; }
  uint64_t relay_off_at = 0;
  int provisioning_starts = 0;
  int provisioning_stops = 0;
  void set_led(uint8_t r, uint8_t g, uint8_t b) override {
    led = LedColor{r, g, b};
    ++led_calls;
  }
  uint64_t now = 1000;  // not 0: the core must not assume boot at t = 0
  bool relay = false;
  int relay_calls = 0;
  LedColor led{0, 0, 0};
  int led_calls = 0;
};

class FakeStorage final : public Storage {
 public:
  bool load(PersistentState& out) override {
    if (!stored) return false;
    out = *stored;
    return true;
  }
  void save(const PersistentState& s) override {
    stored = s;
    ++saves;
  }
  std::optional<PersistentState> stored;
  int saves = 0;
};

class FakeTransport final : public LanTransport {
 public:
  bool send(const uint8_t* data, size_t len) override {
    if (refuse) return false;
    proto::Message m{};
    size_t consumed = 0;
    EXPECT_EQ(proto::decode(data, len, m, consumed), proto::DecodeStatus::Ok);
    sent.push_back(m);
    return true;
  }
  void close() override { ++closes; }
  bool refuse = false;
  int closes = 0;
  std::vector<proto::Message> sent;
};

class Observer final : public SocketObserver {
 public:
  void on_relay_changed(bool on, proto::Cause cause) override { relay.push_back({on, cause}); }
  void on_command_handled(const proto::Command&, proto::CommandStatus status) override {
    statuses.push_back(status);
  }
  std::vector<std::pair<bool, proto::Cause>> relay;
  std::vector<proto::CommandStatus> statuses;
};

Bytes encode(const proto::Message& m) {
  uint8_t buf[proto::kMaxFrame];
  const size_t n = proto::encode(m, buf, sizeof buf);
  EXPECT_GT(n, 0u);
  return Bytes(buf, buf + n);
}

// One socket with its fake hardware, plus a minimal gateway that acks everything.
class Rig {
 public:
  Rig() {
    cfg.cid = "sock-1";
    cfg.fw_version = "1.0.0";
  }
  // A fresh core on the same storage = the socket after a power cut.
  void power_on() {
    core.reset();
    hal = FakeHal{};
    hal.now = 1000;
    transport.sent.clear();
    acked_upto_ = 0;
    core = std::make_unique<SocketCore>(hal, storage, transport, cfg, records.data(), records.size());
    core->set_observer(&observer);
    core->boot();
  }
  void session_up() {
    core->on_transport_connected();
    proto::Message m{};
    m.type = proto::MsgType::HelloAck;
    m.hello_ack = proto::HelloAck{1'700'000'000'000, 0, 600};
    deliver(m);
  }
  void deliver(const proto::Message& m) {
    const Bytes b = encode(m);
    core->on_transport_bytes(b.data(), b.size());
  }
  void command(uint32_t id, proto::CommandKind kind, int32_t value) {
    proto::Message m{};
    m.type = proto::MsgType::Command;
    m.command = proto::Command{id, kind, value};
    deliver(m);
  }
  void feed(const testing::Hlw8032Frame& f) {
    for (uint8_t b : f) core->on_meter_byte(b, false);
  }
  // Advances time in 50 ms steps, one meter frame (if given) and one tick per step; acks all records.
  void run(uint64_t ms, const testing::FrameRegs* regs = nullptr, uint16_t pulses_per_frame = 0) {
    for (uint64_t t = 0; t < ms; t += 50) {
      hal.now += 50;
      if (regs != nullptr) {
        testing::FrameRegs r = *regs;
        pf_count = static_cast<uint16_t>(pf_count + pulses_per_frame);
        r.pf_count = pf_count;
        feed(testing::build_frame(r));
      }
      core->tick();
      ack_all();
    }
  }
  void ack_all() {
    uint32_t max_seq = 0;
    for (size_t k = acked_upto_; k < transport.sent.size(); ++k) {
      const proto::Message& m = transport.sent[k];
      if (m.type == proto::MsgType::Reading) max_seq = std::max(max_seq, m.reading.seq);
      if (m.type == proto::MsgType::Event) max_seq = std::max(max_seq, m.event.seq);
    }
    acked_upto_ = transport.sent.size();
    if (max_seq == 0) return;
    proto::Message a{};
    a.type = proto::MsgType::Ack;
    a.ack = proto::Ack{max_seq};
    deliver(a);
  }
  std::vector<proto::Reading> readings() const {
    std::vector<proto::Reading> out;
    for (const auto& m : transport.sent)
      if (m.type == proto::MsgType::Reading) out.push_back(m.reading);
    return out;
  }
  std::vector<proto::Event> events() const {
    std::vector<proto::Event> out;
    for (const auto& m : transport.sent)
      if (m.type == proto::MsgType::Event) out.push_back(m.event);
    return out;
  }
  std::vector<proto::CommandResult> results() const {
    std::vector<proto::CommandResult> out;
    for (const auto& m : transport.sent)
      if (m.type == proto::MsgType::CommandResult) out.push_back(m.command_result);
    return out;
  }

  FakeHal hal;
  FakeStorage storage;
  FakeTransport transport;
  Observer observer;
  SocketConfig cfg{};
  std::array<Record, 64> records{};
  std::unique_ptr<SocketCore> core;
  uint16_t pf_count = 0;

 private:
  size_t acked_upto_ = 0;
};

const testing::FrameRegs kLoad100W = testing::regs_for(230000, 500000, 100000, 0);   // 100 W, PF 0.87
const testing::FrameRegs kLoad600W = testing::regs_for(230000, 2800000, 600000, 0);  // 600 W
const testing::FrameRegs kLoad6A = testing::regs_for(230000, 6000000, 1300000, 0);   // over 5 A
const testing::FrameRegs kLoad1500mA = testing::regs_for(230000, 1500000, 300000, 0);

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

// --- issue 3: protection, countdown, switch count, button, LED, calibration ---

int count_events(const Rig& rig, proto::EventType type) {
  int n = 0;
  for (const auto& e : rig.events()) n += e.type == type;
  return n;
}

// Advances time in 10 ms ticks without meter frames (button sampling, countdown, LED).
void idle(Rig& rig, uint64_t ms) {
  for (uint64_t t = 0; t < ms; t += 10) {
    rig.hal.now += 10;
    rig.core->tick();
  }
  rig.ack_all();
}

// Presses the button for `ms` (10 ms ticks), then releases it and lets the debounce settle.
void press(Rig& rig, uint64_t ms) {
  rig.core->button(true);
  idle(rig, ms);
  rig.core->button(false);
  idle(rig, 100);
}

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
