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
    relay = on;
    ++relay_calls;
  }
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

TEST(SocketCore, RelayRestoredAfterPowerCut) {
  Rig rig;
  rig.power_on();
  EXPECT_FALSE(rig.hal.relay);
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
  EXPECT_EQ(rig.hal.led, SocketCore::kLedLow);
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
  EXPECT_EQ(rig.hal.led, SocketCore::kLedOverCurrent);
  EXPECT_EQ(rig.storage.stored->relay_on, 0u);
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
  EXPECT_EQ(rig.hal.led, SocketCore::kLedOverCurrent);

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

TEST(SocketCore, LedColourByPower) {
  Rig rig;
  rig.power_on();
  EXPECT_EQ(rig.hal.led, SocketCore::kLedStandby);
  rig.core->button_click();
  rig.run(100, &kLoad100W, 0);
  EXPECT_EQ(rig.hal.led, SocketCore::kLedLow);
  const int calls = rig.hal.led_calls;
  rig.run(1000, &kLoad100W, 0);
  EXPECT_EQ(rig.hal.led_calls, calls);  // only on change
  rig.run(100, &kLoad600W, 0);
  EXPECT_EQ(rig.hal.led, SocketCore::kLedHigh);
  rig.core->button_click();
  EXPECT_EQ(rig.hal.led, SocketCore::kLedStandby);
}

}  // namespace
}  // namespace pbfw
