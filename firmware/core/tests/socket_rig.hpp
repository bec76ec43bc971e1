// The firmware core on fakes: HAL, storage, transport and an observer, driven by a Rig that feeds
// meter frames and acks records. Shared by the core's test files.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <optional>
#include <pbfw/socket_core.hpp>
#include <vector>

#include "hlw8032_frames.hpp"

namespace pbfw::core_test {

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

inline Bytes encode(const proto::Message& m) {
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
    cfg.first_reading_ms = cfg.reading_interval_ms;  // the tests' timelines count whole intervals
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

inline const testing::FrameRegs kLoad100W = testing::regs_for(230000, 500000, 100000, 0);   // 100 W, PF 0.87
inline const testing::FrameRegs kLoad600W = testing::regs_for(230000, 2800000, 600000, 0);  // 600 W
inline const testing::FrameRegs kLoad6A = testing::regs_for(230000, 6000000, 1300000, 0);   // over 5 A
inline const testing::FrameRegs kLoad1500mA = testing::regs_for(230000, 1500000, 300000, 0);

inline int count_events(const Rig& rig, proto::EventType type) {
  int n = 0;
  for (const auto& e : rig.events()) n += e.type == type;
  return n;
}

// Advances time in 10 ms ticks without meter frames (button sampling, countdown, LED).
inline void idle(Rig& rig, uint64_t ms) {
  for (uint64_t t = 0; t < ms; t += 10) {
    rig.hal.now += 10;
    rig.core->tick();
  }
  rig.ack_all();
}

// Presses the button for `ms` (10 ms ticks), then releases it and lets the debounce settle.
inline void press(Rig& rig, uint64_t ms) {
  rig.core->button(true);
  idle(rig, ms);
  rig.core->button(false);
  idle(rig, 100);
}

}  // namespace pbfw::core_test
