#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <pbfw/lan_client.hpp>
#include <string>
#include <vector>

namespace pbfw {
namespace {

using Bytes = std::vector<uint8_t>;

// Records every frame it accepts; can be told to refuse.
class FakeTransport final : public LanTransport {
 public:
  bool send(const uint8_t* data, size_t len) override {
    if (refuse) return false;
    frames.emplace_back(data, data + len);
    return true;
  }
  void close() override { ++closes; }

  // Decodes every accepted frame (each send() must carry exactly one whole frame).
  std::vector<proto::Message> messages() const {
    std::vector<proto::Message> out;
    for (const Bytes& f : frames) {
      proto::Message m{};
      size_t consumed = 0;
      EXPECT_EQ(proto::decode(f.data(), f.size(), m, consumed), proto::DecodeStatus::Ok);
      EXPECT_EQ(consumed, f.size());
      out.push_back(m);
    }
    return out;
  }
  std::vector<proto::Message> take() {
    auto out = messages();
    frames.clear();
    return out;
  }

  bool refuse = false;
  int closes = 0;
  std::vector<Bytes> frames;
};

class FakeListener final : public LanClientListener {
 public:
  void on_command(const proto::Command& cmd) override {
    commands.push_back(cmd);
    if (client != nullptr && auto_reply) {
      replied = client->send_command_result(proto::CommandResult{cmd.cmd_id, proto::CommandStatus::Ok, 1});
    }
  }
  void on_session_up() override { ++ups; }
  void on_session_down() override { ++downs; }

  LanClient* client = nullptr;
  bool auto_reply = false;
  bool replied = false;
  std::vector<proto::Command> commands;
  int ups = 0;
  int downs = 0;
};

Bytes frame(const proto::Message& m) {
  uint8_t buf[proto::kMaxFrame];
  const size_t n = proto::encode(m, buf, sizeof buf);
  EXPECT_GT(n, 0u);
  return Bytes(buf, buf + n);
}

Bytes hello_ack(uint32_t committed, uint16_t keepalive_s = 10, uint64_t unix_ms = 1'700'000'000'000) {
  proto::Message m{};
  m.type = proto::MsgType::HelloAck;
  m.hello_ack = proto::HelloAck{unix_ms, committed, keepalive_s};
  return frame(m);
}

Bytes ack(uint32_t up_to) {
  proto::Message m{};
  m.type = proto::MsgType::Ack;
  m.ack.up_to_seq = up_to;
  return frame(m);
}

Bytes command(uint32_t id, proto::CommandKind kind, int32_t value) {
  proto::Message m{};
  m.type = proto::MsgType::Command;
  m.command = proto::Command{id, kind, value};
  return frame(m);
}

Bytes keepalive(uint64_t uptime) {
  proto::Message m{};
  m.type = proto::MsgType::Keepalive;
  m.keepalive.uptime_ms = uptime;
  return frame(m);
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

proto::Reading reading(uint32_t power_mw) {
  proto::Reading r{};
  r.flags = proto::kMeterOk | proto::kPowerValid;
  r.power_mw = power_mw;
  r.seq = 999;  // must be overwritten by the client
  return r;
}

std::vector<uint32_t> record_seqs(const std::vector<proto::Message>& msgs) {
  std::vector<uint32_t> seqs;
  for (const auto& m : msgs) {
    if (m.type == proto::MsgType::Reading) seqs.push_back(m.reading.seq);
    if (m.type == proto::MsgType::Event) seqs.push_back(m.event.seq);
  }
  return seqs;
}

std::vector<uint32_t> range(uint32_t first, uint32_t last) {
  std::vector<uint32_t> v;
  for (uint32_t s = first; s <= last; ++s) v.push_back(s);
  return v;
}

class LanClientTest : public ::testing::Test {
 protected:
  static constexpr size_t kCapacity = 1000;

  LanClientTest() { make(kCapacity); }

  void make(size_t capacity, uint16_t max_in_flight = 32) {
    storage_.assign(capacity, Record{});
    cfg_ = LanClientConfig{"sock-0001", "1.2.0", proto::kCapRelay | proto::kCapMeter, 7};
    cfg_.default_keepalive_s = 30;
    cfg_.max_in_flight = max_in_flight;
    client_.emplace(transport_, listener_, storage_.data(), storage_.size(), cfg_);
    listener_.client = &*client_;
  }

  void feed(const Bytes& b, uint64_t now) { client_->on_bytes(b.data(), b.size(), now); }

  // Connects and completes the handshake; drops the Hello from the transport log.
  void bring_up(uint64_t now, uint32_t committed = 0, uint16_t keepalive_s = 10) {
    client_->on_connected(now);
    ASSERT_EQ(transport_.frames.size(), 1u);
    transport_.frames.clear();
    feed(hello_ack(committed, keepalive_s), now);
    ASSERT_TRUE(client_->session_up());
  }

  FakeTransport transport_;
  FakeListener listener_;
  std::vector<Record> storage_;
  LanClientConfig cfg_{};
  std::optional<LanClient> client_;
};

TEST_F(LanClientTest, HelloContent) {
  client_->on_connected(5000);
  const auto msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 1u);
  ASSERT_EQ(msgs[0].type, proto::MsgType::Hello);
  const proto::Hello& h = msgs[0].hello;
  EXPECT_EQ(h.proto_version, proto::kVersion);
  EXPECT_STREQ(h.cid, "sock-0001");
  EXPECT_STREQ(h.fw_version, "1.2.0");
  EXPECT_EQ(h.capabilities, proto::kCapRelay | proto::kCapMeter);
  EXPECT_EQ(h.boot_counter, 7u);
  EXPECT_EQ(h.uptime_ms, 5000u);
  EXPECT_TRUE(client_->connected());
  EXPECT_FALSE(client_->session_up());
}

TEST_F(LanClientTest, NoRecordsBeforeHelloAckThenAllInOrderWithAge) {
  EXPECT_EQ(client_->add_reading(reading(1), 1000), 1u);
  EXPECT_EQ(client_->add_event(proto::EventType::RelayChanged, proto::Cause::Button, 1, 1500), 2u);
  EXPECT_TRUE(transport_.frames.empty());  // not connected

  client_->on_connected(2000);
  EXPECT_EQ(client_->add_reading(reading(3), 2500), 3u);
  client_->tick(2600);
  auto msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 1u);  // just the Hello
  EXPECT_EQ(msgs[0].type, proto::MsgType::Hello);

  feed(hello_ack(0), 4000);
  EXPECT_TRUE(client_->session_up());
  EXPECT_EQ(listener_.ups, 1);
  msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(record_seqs(msgs), (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_EQ(msgs[0].reading.age_ms, 3000u);
  EXPECT_EQ(msgs[0].reading.power_mw, 1u);
  EXPECT_EQ(msgs[1].event.age_ms, 2500u);
  EXPECT_EQ(msgs[1].event.type, proto::EventType::RelayChanged);
  EXPECT_EQ(msgs[1].event.cause, proto::Cause::Button);
  EXPECT_EQ(msgs[1].event.value, 1);
  EXPECT_EQ(msgs[2].reading.age_ms, 1500u);
  EXPECT_EQ(client_->unacked(), 3u);

  // New records go out immediately once the session is up.
  EXPECT_EQ(client_->add_reading(reading(4), 4100), 4u);
  msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].reading.seq, 4u);
  EXPECT_EQ(msgs[0].reading.age_ms, 0u);
}

TEST_F(LanClientTest, CumulativeAckReleases) {
  bring_up(0);
  for (int i = 0; i < 5; ++i) client_->add_reading(reading(0), 10);
  EXPECT_EQ(client_->unacked(), 5u);
  feed(ack(2), 20);
  EXPECT_EQ(client_->unacked(), 3u);
  EXPECT_EQ(client_->last_acked_seq(), 2u);
  feed(ack(1), 30);  // stale ack changes nothing
  EXPECT_EQ(client_->unacked(), 3u);
  EXPECT_EQ(client_->last_acked_seq(), 2u);
  feed(ack(5), 40);
  EXPECT_EQ(client_->unacked(), 0u);
  EXPECT_EQ(client_->last_acked_seq(), 5u);
  EXPECT_EQ(client_->in_flight(), 0u);
  EXPECT_EQ(transport_.closes, 0);
}

TEST_F(LanClientTest, ResendUnackedAfterReconnect) {
  bring_up(0);
  for (int i = 0; i < 3; ++i) client_->add_reading(reading(0), 100);
  feed(ack(1), 200);
  transport_.take();

  client_->on_disconnected();
  EXPECT_FALSE(client_->session_up());
  EXPECT_EQ(listener_.downs, 1);
  EXPECT_EQ(client_->unacked(), 2u);  // records survive the disconnect
  client_->add_event(proto::EventType::MeterLost, proto::Cause::Unknown, 0, 300);
  client_->on_disconnected();  // idempotent
  EXPECT_EQ(listener_.downs, 1);

  client_->on_connected(1000);
  feed(hello_ack(1), 1000);
  const auto msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0].type, proto::MsgType::Hello);
  EXPECT_EQ(record_seqs(msgs), (std::vector<uint32_t>{2, 3, 4}));
  EXPECT_EQ(msgs[1].reading.age_ms, 900u);  // age recomputed at resend time
  EXPECT_EQ(msgs[3].event.age_ms, 700u);
}

TEST_F(LanClientTest, HelloAckSkipsCommittedSeqs) {
  for (int i = 0; i < 5; ++i) client_->add_reading(reading(0), 0);
  client_->on_connected(10);
  transport_.take();
  feed(hello_ack(3), 10);
  const auto msgs = transport_.take();
  EXPECT_EQ(record_seqs(msgs), (std::vector<uint32_t>{4, 5}));
  EXPECT_EQ(client_->unacked(), 2u);
  EXPECT_EQ(client_->last_acked_seq(), 3u);
}

TEST_F(LanClientTest, HelloAckAheadOfLocalSeqMovesSeqForward) {
  client_->add_reading(reading(0), 0);
  client_->on_connected(10);
  feed(hello_ack(40), 10);
  EXPECT_EQ(client_->unacked(), 0u);
  EXPECT_EQ(client_->add_reading(reading(0), 20), 41u);
}

TEST_F(LanClientTest, BufferFullCoarsensThenDropsOldestReadingKeepsEvents) {
  make(4);
  client_->add_event(proto::EventType::RelayChanged, proto::Cause::Button, 1, 0);        // 1
  client_->add_reading(reading(2), 0);                                                   // 2
  client_->add_reading(reading(3), 0);                                                   // 3
  client_->add_event(proto::EventType::OverCurrent, proto::Cause::Protection, 5100, 0);  // 4
  EXPECT_EQ(client_->dropped(), 0u);
  client_->add_reading(reading(5), 0);  // reading 2 merged into 3
  EXPECT_EQ(client_->dropped(), 0u);
  EXPECT_EQ(client_->coarsened(), 1u);
  // E1 R3 E4 R5: no two readings are adjacent, so the oldest reading goes.
  client_->add_event(proto::EventType::MeterLost, proto::Cause::Unknown, 0, 0);
  EXPECT_EQ(client_->dropped(), 1u);
  EXPECT_EQ(client_->unacked(), 4u);

  bring_up(0);
  EXPECT_EQ(record_seqs(transport_.take()), (std::vector<uint32_t>{1, 4, 5, 6}));
  EXPECT_EQ(client_->dropped_events(), 0u);
}

proto::Reading metered(uint32_t i, uint16_t epoch = 0) {
  proto::Reading r = reading(i * 1000);
  r.flags |= proto::kVoltageValid;
  r.voltage_mv = 230000 + i;
  r.energy_mwh = 1000ull * i * i;  // cumulative, strictly increasing
  r.energy_epoch = epoch;
  return r;
}

TEST_F(LanClientTest, OfflineReadingsAreCoarsenedOldestFirstAndKeepEnergy) {
  make(8);
  const uint32_t n = 100;
  for (uint32_t i = 1; i <= n; ++i) client_->add_reading(metered(i), i * 1000ull);
  EXPECT_EQ(client_->unacked(), 8u);
  EXPECT_EQ(client_->dropped(), 0u);
  EXPECT_EQ(client_->coarsened(), n - 8);

  bring_up(200000);
  const auto msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 8u);
  // Each surviving reading stands for the readings since the previous one: its power is their mean,
  // its energy the counter at its own (newest) sample.
  uint32_t prev = 0;
  uint32_t prev_span = UINT32_MAX;
  for (const auto& m : msgs) {
    ASSERT_EQ(m.type, proto::MsgType::Reading);
    const proto::Reading& r = m.reading;
    const uint32_t span = r.seq - prev;
    double mean_power = 0, mean_volts = 0;
    for (uint32_t i = prev + 1; i <= r.seq; ++i) {
      mean_power += i * 1000.0 / span;
      mean_volts += (230000.0 + i) / span;
    }
    EXPECT_NEAR(r.power_mw, mean_power, span) << r.seq;  // rounding per merge
    EXPECT_NEAR(r.voltage_mv, mean_volts, span) << r.seq;
    EXPECT_EQ(r.energy_mwh, 1000ull * r.seq * r.seq);
    EXPECT_EQ(r.age_ms, 200000 - r.seq * 1000ull);
    EXPECT_LE(span, prev_span) << "older records must be at least as coarse";
    prev_span = span;
    prev = r.seq;
  }
  EXPECT_EQ(prev, n);  // the newest reading, and so the energy total, survives
  EXPECT_EQ(msgs.back().reading.power_mw, n * 1000);
}

TEST_F(LanClientTest, CoarseningNeverMergesAcrossAnEnergyEpoch) {
  make(4);
  client_->add_reading(metered(1), 0);
  client_->add_reading(metered(2), 0);  // last reading before a factory reset
  client_->add_reading(metered(1, 1), 0);
  client_->add_reading(metered(2, 1), 0);
  client_->add_reading(metered(3, 1), 0);  // merges 1+2 (lightest, oldest)
  client_->add_reading(metered(4, 1), 0);  // epoch-1 pair 3+4 is next: the epoch boundary stays
  bring_up(0);
  const auto msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0].reading.energy_epoch, 0u);
  EXPECT_EQ(msgs[0].reading.energy_mwh, 4000u);  // epoch 0 total kept
  EXPECT_EQ(msgs[1].reading.energy_epoch, 1u);
  EXPECT_EQ(msgs.back().reading.energy_mwh, 16000u);
  EXPECT_EQ(client_->coarsened(), 2u);
  EXPECT_EQ(client_->dropped(), 0u);
}

TEST_F(LanClientTest, CoarseningLeavesInFlightRecordsAlone) {
  make(4);
  bring_up(0);
  transport_.refuse = false;
  client_->add_reading(metered(1), 0);  // 1, 2 in flight
  client_->add_reading(metered(2), 0);
  transport_.refuse = true;  // the link stalls: 3, 4, 5 stay queued
  client_->add_reading(metered(3), 0);
  client_->add_reading(metered(4), 0);
  client_->add_reading(metered(5), 0);  // merges 3 into 4, not the in-flight 1+2
  EXPECT_EQ(client_->coarsened(), 1u);
  EXPECT_EQ(client_->in_flight(), 2u);
  transport_.refuse = false;
  transport_.take();
  feed(ack(2), 1);
  EXPECT_EQ(record_seqs(transport_.take()), (std::vector<uint32_t>{4, 5}));
}

TEST_F(LanClientTest, BufferFullOfEventsDropsOldestEventOrNewReading) {
  make(3);
  for (int i = 0; i < 3; ++i) client_->add_event(proto::EventType::RelayChanged, proto::Cause::Button, i, 0);
  // A new reading is the oldest reading there is: it is the one dropped.
  EXPECT_EQ(client_->add_reading(reading(0), 0), 4u);
  EXPECT_EQ(client_->dropped(), 1u);
  // A new event pushes out the oldest event.
  client_->add_event(proto::EventType::RelayChanged, proto::Cause::Button, 9, 0);  // 5
  EXPECT_EQ(client_->dropped_events(), 1u);
  bring_up(0);
  EXPECT_EQ(record_seqs(transport_.take()), (std::vector<uint32_t>{2, 3, 5}));
}

TEST_F(LanClientTest, DropOfInFlightRecordKeepsWindowConsistent) {
  make(3);
  bring_up(0);
  for (int i = 0; i < 3; ++i) client_->add_reading(reading(0), 0);  // 1..3 in flight
  EXPECT_EQ(client_->in_flight(), 3u);
  client_->add_reading(reading(0), 0);  // drops in-flight 1, sends 4
  EXPECT_EQ(client_->in_flight(), 3u);
  EXPECT_EQ(record_seqs(transport_.take()), (std::vector<uint32_t>{1, 2, 3, 4}));
  feed(ack(4), 1);
  EXPECT_EQ(client_->unacked(), 0u);
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(LanClientTest, FlowControlWindow) {
  for (int i = 0; i < 1000; ++i) client_->add_reading(reading(0), 0);
  EXPECT_EQ(client_->unacked(), 1000u);
  EXPECT_EQ(client_->dropped(), 0u);
  bring_up(0);
  EXPECT_EQ(record_seqs(transport_.take()), range(1, 32));
  client_->tick(1);
  EXPECT_TRUE(transport_.frames.empty());  // window full: nothing more
  feed(ack(10), 2);
  EXPECT_EQ(record_seqs(transport_.take()), range(33, 42));
  EXPECT_EQ(client_->in_flight(), 32u);
  // Drain the rest ack by ack.
  uint32_t acked = 10;
  while (client_->unacked() > 0) {
    acked += 32;
    feed(ack(acked), 3);
  }
  EXPECT_EQ(client_->last_acked_seq(), acked);
  EXPECT_EQ(record_seqs(transport_.take()), range(43, 1000));
}

TEST_F(LanClientTest, RefusedSendsAreRetriedFromTick) {
  transport_.refuse = true;
  client_->on_connected(0);
  EXPECT_TRUE(transport_.frames.empty());
  feed(hello_ack(0), 0);  // HelloAck before our Hello went out: the peer is broken
  EXPECT_EQ(transport_.closes, 1);

  client_->on_connected(100);
  transport_.refuse = false;
  client_->tick(200);
  auto msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type, proto::MsgType::Hello);
  EXPECT_EQ(msgs[0].hello.uptime_ms, 200u);
  feed(hello_ack(0), 300);
  ASSERT_TRUE(client_->session_up());

  transport_.refuse = true;
  client_->add_reading(reading(0), 400);
  client_->add_reading(reading(0), 400);
  EXPECT_EQ(client_->in_flight(), 0u);
  transport_.refuse = false;
  client_->tick(500);
  msgs = transport_.take();
  EXPECT_EQ(record_seqs(msgs), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(msgs[0].reading.age_ms, 100u);
}

TEST_F(LanClientTest, KeepaliveWhenIdle) {
  bring_up(0, 0, 10);
  EXPECT_EQ(client_->keepalive_s(), 10);
  client_->tick(9'999);
  EXPECT_TRUE(transport_.frames.empty());
  client_->tick(10'000);
  auto msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type, proto::MsgType::Keepalive);
  EXPECT_EQ(msgs[0].keepalive.uptime_ms, 10'000u);

  // Any sent frame restarts the idle timer.
  client_->add_reading(reading(0), 15'000);
  transport_.take();
  feed(keepalive(1), 20'000);  // keeps the liveness check out of the way
  client_->tick(24'999);
  EXPECT_TRUE(transport_.frames.empty());
  client_->tick(25'000);
  EXPECT_EQ(transport_.take().size(), 1u);

  // A refused keepalive is retried at the next tick.
  transport_.refuse = true;
  client_->tick(35'000);
  transport_.refuse = false;
  client_->tick(35'100);
  msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type, proto::MsgType::Keepalive);
}

TEST_F(LanClientTest, LivenessTimeoutClosesAndKeepsRecords) {
  bring_up(0, 0, 10);
  client_->add_reading(reading(0), 0);
  feed(keepalive(1), 20'000);  // anything received refreshes liveness
  client_->tick(49'999);
  EXPECT_EQ(transport_.closes, 0);
  EXPECT_TRUE(client_->session_up());
  client_->tick(50'000);
  EXPECT_EQ(transport_.closes, 1);
  EXPECT_FALSE(client_->session_up());
  EXPECT_FALSE(client_->connected());
  EXPECT_EQ(listener_.downs, 1);
  EXPECT_EQ(client_->unacked(), 1u);
  // The port reporting the close afterwards is harmless.
  client_->on_disconnected();
  EXPECT_EQ(listener_.downs, 1);
  client_->tick(100'000);
  EXPECT_EQ(transport_.closes, 1);
}

TEST_F(LanClientTest, HelloAckTimeout) {
  client_->on_connected(0);
  client_->tick(89'999);  // 3 x default_keepalive_s (30 s)
  EXPECT_EQ(transport_.closes, 0);
  client_->tick(90'000);
  EXPECT_EQ(transport_.closes, 1);
  EXPECT_EQ(listener_.downs, 0);  // the session never came up
}

TEST_F(LanClientTest, ZeroKeepaliveFallsBackToDefault) {
  bring_up(0, 0, 0);
  EXPECT_EQ(client_->keepalive_s(), 30);
}

TEST_F(LanClientTest, CommandDeliveryAndResult) {
  EXPECT_FALSE(client_->send_command_result(proto::CommandResult{1, proto::CommandStatus::Ok, 0}));
  bring_up(0);
  listener_.auto_reply = true;
  feed(command(77, proto::CommandKind::SetRelay, 1), 10);
  ASSERT_EQ(listener_.commands.size(), 1u);
  EXPECT_EQ(listener_.commands[0].cmd_id, 77u);
  EXPECT_EQ(listener_.commands[0].kind, proto::CommandKind::SetRelay);
  EXPECT_EQ(listener_.commands[0].value, 1);
  EXPECT_TRUE(listener_.replied);
  const auto msgs = transport_.take();
  ASSERT_EQ(msgs.size(), 1u);
  ASSERT_EQ(msgs[0].type, proto::MsgType::CommandResult);
  EXPECT_EQ(msgs[0].command_result.cmd_id, 77u);
  EXPECT_EQ(msgs[0].command_result.status, proto::CommandStatus::Ok);
  EXPECT_EQ(msgs[0].command_result.relay_on, 1);

  transport_.refuse = true;
  EXPECT_FALSE(client_->send_command_result(proto::CommandResult{78, proto::CommandStatus::Refused, 0}));
}

TEST_F(LanClientTest, CommandBeforeHelloAckIsProtocolError) {
  client_->on_connected(0);
  feed(command(1, proto::CommandKind::SetRelay, 1), 0);
  EXPECT_TRUE(listener_.commands.empty());
  EXPECT_EQ(transport_.closes, 1);
}

TEST_F(LanClientTest, SplitAndMergedChunks) {
  client_->on_connected(0);
  client_->add_reading(reading(0), 0);
  client_->add_reading(reading(0), 0);
  const Bytes stream = concat({hello_ack(0), ack(1), command(5, proto::CommandKind::RequestReading, 0),
                               keepalive(3), command(6, proto::CommandKind::SetCurrentLimit, 4000), ack(2)});
  // One byte at a time.
  for (uint8_t b : stream) client_->on_bytes(&b, 1, 10);
  EXPECT_TRUE(client_->session_up());
  EXPECT_EQ(client_->unacked(), 0u);
  ASSERT_EQ(listener_.commands.size(), 2u);
  EXPECT_EQ(listener_.commands[1].value, 4000);

  // Odd-sized chunks straddling frame boundaries, then everything at once.
  client_->on_disconnected();
  for (size_t chunk : {size_t{3}, size_t{7}, stream.size()}) {
    listener_.commands.clear();
    client_->on_connected(20);
    for (size_t off = 0; off < stream.size(); off += chunk) {
      const size_t n = std::min(chunk, stream.size() - off);
      client_->on_bytes(stream.data() + off, n, 30);
    }
    EXPECT_TRUE(client_->session_up()) << chunk;
    EXPECT_EQ(listener_.commands.size(), 2u) << chunk;
    client_->on_disconnected();
  }
  EXPECT_EQ(transport_.closes, 0);
}

TEST_F(LanClientTest, ChunkLargerThanReceiveBuffer) {
  bring_up(0);
  Bytes stream;
  for (int i = 0; i < 100; ++i) {
    const Bytes ka = keepalive(static_cast<uint64_t>(i));
    stream.insert(stream.end(), ka.begin(), ka.end());
  }
  const Bytes cmd = command(9, proto::CommandKind::SetRelay, 0);
  stream.insert(stream.end(), cmd.begin(), cmd.end());
  ASSERT_GT(stream.size(), 2 * proto::kMaxFrame);
  feed(stream, 10);
  ASSERT_EQ(listener_.commands.size(), 1u);
  EXPECT_EQ(listener_.commands[0].cmd_id, 9u);
  EXPECT_EQ(transport_.closes, 0);
}

TEST_F(LanClientTest, GarbageClosesConnection) {
  bring_up(0);
  feed({0x00, 0x01, 0x02}, 10);
  EXPECT_EQ(transport_.closes, 1);
  EXPECT_FALSE(client_->session_up());
  EXPECT_EQ(listener_.downs, 1);
  // Later bytes on the dead connection are ignored.
  feed(command(1, proto::CommandKind::SetRelay, 1), 20);
  EXPECT_TRUE(listener_.commands.empty());
}

TEST_F(LanClientTest, BadFramesCloseConnection) {
  Bytes corrupt = ack(1);
  corrupt.back() ^= 0xFF;
  Bytes unknown_type = keepalive(1);
  unknown_type[2] = 0x42;
  const uint16_t crc = proto::crc16_ccitt(unknown_type.data() + 1, unknown_type.size() - 3);
  unknown_type[unknown_type.size() - 2] = static_cast<uint8_t>(crc >> 8);
  unknown_type[unknown_type.size() - 1] = static_cast<uint8_t>(crc);
  proto::Message rd{};
  rd.type = proto::MsgType::Reading;  // a socket-to-gateway message coming from the "gateway"
  const Bytes too_large = {proto::kSof, proto::kVersion, 5, 0xFF, 0xFF};

  int expected_closes = 0;
  for (const Bytes& bad : {corrupt, unknown_type, frame(rd), too_large, hello_ack(0)}) {
    bring_up(0);
    feed(bad, 1);  // a second HelloAck is also a protocol error
    EXPECT_EQ(transport_.closes, ++expected_closes);
    EXPECT_FALSE(client_->connected());
    transport_.frames.clear();
  }
}

TEST_F(LanClientTest, InvalidEventRejectedAndLongCidNotSent) {
  EXPECT_EQ(client_->add_event(static_cast<proto::EventType>(0), proto::Cause::Button, 0, 0), 0u);
  EXPECT_EQ(client_->unacked(), 0u);

  const std::string long_cid(proto::kCidMax + 1, 'x');
  cfg_.cid = long_cid.c_str();
  client_.emplace(transport_, listener_, storage_.data(), storage_.size(), cfg_);
  client_->on_connected(0);
  EXPECT_TRUE(transport_.frames.empty());  // refused to encode rather than truncating the identity
}

}  // namespace
}  // namespace pbfw
