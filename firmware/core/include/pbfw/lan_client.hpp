// Socket side of the LAN protocol session (see docs/lan-protocol.md): Hello/HelloAck, durable
// records with a resend buffer, cumulative acks, commands, keepalive and liveness.
// Transport-agnostic and single-threaded: the port calls every method from one context.
// No heap, no exceptions, no RTTI. Times are a monotonic millisecond clock since boot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <pbfw/proto.hpp>

namespace pbfw {

// Implemented by the port (ESP-AT driver on the MCU, TLS socket in plugsim).
class LanTransport {
 public:
  // Sends one whole frame; false = cannot take it now (nothing was sent, retry later).
  virtual bool send(const uint8_t* data, size_t len) = 0;
  // Drops the connection after a protocol error or liveness timeout. The client already considers
  // itself disconnected; calling LanClient::on_disconnected() from here or later is harmless.
  virtual void close() = 0;

 protected:
  ~LanTransport() = default;
};

class LanClientListener {
 public:
  virtual void on_command(const proto::Command& cmd) = 0;  // answer later via LanClient::send_command_result
  virtual void on_session_up() {}                          // HelloAck received
  virtual void on_session_down() {}

 protected:
  ~LanClientListener() = default;
};

struct LanClientConfig {
  const char* cid;         // 1..kCidMax bytes
  const char* fw_version;  // 0..kFwVersionMax bytes
  uint32_t capabilities;   // proto::Capability bits
  uint32_t boot_counter;
  // Keepalive period assumed until HelloAck says otherwise (and if it says 0); the HelloAck must
  // arrive within 3x this after connecting.
  uint16_t default_keepalive_s = 30;
  // Records sent but not yet acked, at most (flow control).
  uint16_t max_in_flight = 32;
};

// One durable record held until the gateway acks it. `type` is Reading or Event; the seq lives in the
// reading/event; age_ms is filled in at send time from sampled_at_ms.
struct Record {
  proto::MsgType type;
  union {
    proto::Reading reading;
    proto::Event event;
  };
  uint64_t sampled_at_ms;
  uint16_t weight;  // readings merged into this one by coarsening (0 means 1)

  uint32_t seq() const { return type == proto::MsgType::Reading ? reading.seq : event.seq; }
};

class LanClient {
 public:
  // `storage[0..capacity)` is the resend buffer, owned by the caller and outliving the client.
  LanClient(LanTransport& t, LanClientListener& l, Record* storage, size_t capacity,
            const LanClientConfig& cfg);
  LanClient(const LanClient&) = delete;
  LanClient& operator=(const LanClient&) = delete;

  void on_connected(uint64_t now_ms);  // transport up: send Hello
  void on_disconnected();              // transport gone: session down, keep records
  void on_bytes(const uint8_t* data, size_t len, uint64_t now_ms);  // feed received bytes (any chunking)
  void tick(uint64_t now_ms);                                       // keepalive, (re)send, liveness timeout

  uint32_t add_reading(const proto::Reading& r, uint64_t now_ms);  // assigns seq (age filled at send time)
  uint32_t add_event(proto::EventType type, proto::Cause cause, int32_t value, uint64_t now_ms);
  bool send_command_result(const proto::CommandResult& r);  // false if no session or the transport refused

  bool connected() const { return state_ != State::Disconnected; }
  bool session_up() const { return state_ == State::Up; }
  size_t unacked() const { return count_; }   // records held
  size_t in_flight() const { return sent_; }  // records sent in this session and not yet acked
  // Buffer full: readings merged into their neighbour (energy kept), and readings dropped when no
  // neighbour could take them (only events or in-flight records around).
  uint32_t coarsened() const { return coarsened_readings_; }
  uint32_t dropped() const { return dropped_readings_; }
  uint32_t dropped_events() const { return dropped_events_; }
  uint32_t last_acked_seq() const { return last_acked_seq_; }
  uint32_t next_seq() const { return next_seq_; }
  uint16_t keepalive_s() const { return keepalive_s_; }
  uint64_t gateway_clock_offset_ms() const { return clock_offset_ms_; }  // HelloAck.unix_ms - now at receipt

 private:
  enum class State : uint8_t { Disconnected, AwaitHelloAck, Up };

  Record& at(size_t i) { return storage_[(head_ + i) % capacity_]; }
  void push(const Record& r);
  void remove_at(size_t i);
  bool coarsen();  // merges the lightest allowed pair of adjacent unsent readings; false if none
  void release_up_to(uint32_t seq);
  void pump(uint64_t now_ms);
  bool send_msg(const proto::Message& m, uint64_t now_ms);
  bool send_hello(uint64_t now_ms);
  void handle(const proto::Message& m, uint64_t now_ms);
  void fail();  // protocol error / timeout: close the transport, session down
  void go_down();

  LanTransport& transport_;
  LanClientListener& listener_;
  Record* storage_;
  size_t capacity_;
  LanClientConfig cfg_;

  size_t head_ = 0;
  size_t count_ = 0;
  size_t sent_ = 0;  // records [0, sent_) of the buffer were sent in this session
  uint32_t next_seq_ = 1;
  uint32_t last_acked_seq_ = 0;
  uint32_t coarsened_readings_ = 0;
  uint32_t dropped_readings_ = 0;
  uint32_t dropped_events_ = 0;

  State state_ = State::Disconnected;
  bool hello_pending_ = false;
  uint16_t keepalive_s_;
  uint64_t last_tx_ms_ = 0;
  uint64_t last_rx_ms_ = 0;
  uint64_t clock_offset_ms_ = 0;
  uint64_t now_ms_ = 0;      // latest time seen, for calls that take none
  uint32_t generation_ = 0;  // bumped on every connect/disconnect to detect re-entrant teardown

  uint8_t rx_[proto::kMaxFrame * 2];
  size_t rx_len_ = 0;
};

}  // namespace pbfw
