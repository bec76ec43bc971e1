#include <cstring>
#include <pbfw/lan_client.hpp>

namespace pbfw {
namespace {

constexpr uint16_t kFallbackKeepaliveS = 30;

uint64_t elapsed(uint64_t now_ms, uint64_t since_ms) {
  return now_ms > since_ms ? now_ms - since_ms : 0;
}

// Copies a C string into a fixed field; a string that does not fit leaves the field empty so that
// encode() refuses it rather than sending a silently truncated identity.
template <size_t N>
void copy_field(char (&dst)[N], const char* src) {
  dst[0] = '\0';
  if (src == nullptr) return;
  size_t n = 0;
  while (n < N && src[n] != '\0') ++n;
  if (n == N) return;
  std::memcpy(dst, src, n);
  dst[n] = '\0';
}

bool valid_event(proto::EventType t, proto::Cause c) {
  return t >= proto::EventType::RelayChanged && t <= proto::EventType::FactoryReset &&
         c <= proto::Cause::PowerOn;
}

}  // namespace

LanClient::LanClient(LanTransport& t, LanClientListener& l, Record* storage, size_t capacity,
                     const LanClientConfig& cfg)
    : transport_(t),
      listener_(l),
      storage_(storage),
      capacity_(storage == nullptr ? 0 : capacity),
      cfg_(cfg),
      keepalive_s_(cfg.default_keepalive_s != 0 ? cfg.default_keepalive_s : kFallbackKeepaliveS) {
  if (cfg_.default_keepalive_s == 0) cfg_.default_keepalive_s = kFallbackKeepaliveS;
  if (cfg_.max_in_flight == 0) cfg_.max_in_flight = 1;
}

void LanClient::on_connected(uint64_t now_ms) {
  if (state_ != State::Disconnected) go_down();  // a new connection replaces a stale one
  ++generation_;
  state_ = State::AwaitHelloAck;
  rx_len_ = 0;
  sent_ = 0;  // everything unacked is resent after the next HelloAck
  keepalive_s_ = cfg_.default_keepalive_s;
  last_rx_ms_ = now_ms;
  last_tx_ms_ = now_ms;
  now_ms_ = now_ms;
  hello_pending_ = !send_hello(now_ms);
}

void LanClient::on_disconnected() {
  go_down();
}

void LanClient::go_down() {
  if (state_ == State::Disconnected) return;
  const bool was_up = state_ == State::Up;
  ++generation_;
  state_ = State::Disconnected;
  rx_len_ = 0;
  sent_ = 0;
  hello_pending_ = false;
  if (was_up) listener_.on_session_down();
}

void LanClient::fail() {
  if (state_ == State::Disconnected) return;
  go_down();
  transport_.close();
}

void LanClient::on_bytes(const uint8_t* data, size_t len, uint64_t now_ms) {
  if (state_ == State::Disconnected || data == nullptr) return;
  now_ms_ = now_ms;
  const uint32_t generation = generation_;
  while (len > 0) {
    // After the decode loop fewer than kMaxFrame bytes remain, so there is always room here.
    const size_t room = sizeof rx_ - rx_len_;
    const size_t n = len < room ? len : room;
    std::memcpy(rx_ + rx_len_, data, n);
    rx_len_ += n;
    data += n;
    len -= n;

    size_t off = 0;
    for (;;) {
      proto::Message msg;
      size_t consumed = 0;
      const proto::DecodeStatus status = proto::decode(rx_ + off, rx_len_ - off, msg, consumed);
      if (status == proto::DecodeStatus::NeedMore) break;
      if (status != proto::DecodeStatus::Ok) {
        fail();  // no resynchronisation: a bad frame means a broken or hostile peer
        return;
      }
      off += consumed;
      last_rx_ms_ = now_ms;
      handle(msg, now_ms);
      if (generation_ != generation) return;  // a callback or error ended this connection
    }
    std::memmove(rx_, rx_ + off, rx_len_ - off);
    rx_len_ -= off;
  }
}

void LanClient::handle(const proto::Message& m, uint64_t now_ms) {
  switch (m.type) {
    case proto::MsgType::HelloAck: {
      if (state_ != State::AwaitHelloAck || hello_pending_) {
        fail();
        return;
      }
      const proto::HelloAck& ack = m.hello_ack;
      keepalive_s_ = ack.keepalive_s != 0 ? ack.keepalive_s : cfg_.default_keepalive_s;
      clock_offset_ms_ = ack.unix_ms - now_ms;
      release_up_to(ack.last_committed_seq);
      // The gateway would discard new records with seqs it already holds as duplicates.
      if (ack.last_committed_seq >= next_seq_ && ack.last_committed_seq != UINT32_MAX) {
        next_seq_ = ack.last_committed_seq + 1;
      }
      state_ = State::Up;
      const uint32_t generation = generation_;
      pump(now_ms);
      if (generation_ == generation) listener_.on_session_up();
      return;
    }
    case proto::MsgType::Ack:
      if (state_ != State::Up) {
        fail();
        return;
      }
      release_up_to(m.ack.up_to_seq);
      pump(now_ms);
      return;
    case proto::MsgType::Command:
      if (state_ != State::Up) {
        fail();
        return;
      }
      listener_.on_command(m.command);
      return;
    case proto::MsgType::Keepalive:
      return;  // liveness already refreshed by the caller
    case proto::MsgType::Hello:
    case proto::MsgType::Reading:
    case proto::MsgType::Event:
    case proto::MsgType::CommandResult:
      break;  // socket-to-gateway messages: the peer is not a gateway
  }
  fail();
}

void LanClient::tick(uint64_t now_ms) {
  if (state_ == State::Disconnected) return;
  now_ms_ = now_ms;
  if (elapsed(now_ms, last_rx_ms_) >= 3000ull * keepalive_s_) {
    fail();
    return;
  }
  if (hello_pending_) {
    hello_pending_ = !send_hello(now_ms);
    return;
  }
  if (state_ != State::Up) return;
  pump(now_ms);
  if (state_ == State::Up && elapsed(now_ms, last_tx_ms_) >= 1000ull * keepalive_s_) {
    proto::Message m;
    m.type = proto::MsgType::Keepalive;
    m.keepalive.uptime_ms = now_ms;
    send_msg(m, now_ms);  // refused: retried at the next tick since last_tx did not move
  }
}

uint32_t LanClient::add_reading(const proto::Reading& r, uint64_t now_ms) {
  Record rec{};
  rec.type = proto::MsgType::Reading;
  rec.reading = r;
  rec.reading.seq = next_seq_++;
  rec.reading.age_ms = 0;
  rec.sampled_at_ms = now_ms;
  push(rec);
  pump(now_ms);
  return rec.reading.seq;
}

uint32_t LanClient::add_event(proto::EventType type, proto::Cause cause, int32_t value, uint64_t now_ms) {
  if (!valid_event(type, cause)) return 0;  // would never encode, so would block the queue
  Record rec{};
  rec.type = proto::MsgType::Event;
  rec.event = proto::Event{next_seq_++, 0, type, cause, value};
  rec.sampled_at_ms = now_ms;
  push(rec);
  pump(now_ms);
  return rec.event.seq;
}

bool LanClient::send_command_result(const proto::CommandResult& r) {
  if (state_ != State::Up) return false;
  proto::Message m;
  m.type = proto::MsgType::CommandResult;
  m.command_result = r;
  return send_msg(m, now_ms_);
}

namespace {

uint16_t weight_of(const Record& r) {
  return r.weight == 0 ? 1 : r.weight;
}

// Weighted mean of one quantity; a value the meter marked invalid does not count.
uint32_t merge_value(uint32_t older, uint32_t newer, uint32_t w_old, uint32_t w_new, bool old_ok,
                     bool new_ok) {
  if (old_ok && new_ok) {
    return static_cast<uint32_t>(
        (static_cast<uint64_t>(older) * w_old + static_cast<uint64_t>(newer) * w_new + (w_old + w_new) / 2) /
        (w_old + w_new));
  }
  return old_ok ? older : newer;
}

}  // namespace

bool LanClient::coarsen() {
  // Candidates: adjacent readings of the same energy epoch that are not in flight. A merge must not
  // make a reading coarser than its older neighbour, so the weights never increase from old to new;
  // among those, the lightest pair goes first, the oldest among equals. Older readings are never finer
  // than newer ones and the spans even out as an outage grows (see docs/lan-protocol.md, Durability).
  size_t best = count_;
  uint32_t best_weight = UINT32_MAX;
  for (size_t i = sent_; i + 1 < count_; ++i) {
    const Record& a = at(i);
    const Record& b = at(i + 1);
    if (a.type != proto::MsgType::Reading || b.type != proto::MsgType::Reading) continue;
    if (a.reading.energy_epoch != b.reading.energy_epoch) continue;  // a wrap or reset lies between
    const uint32_t w = uint32_t{weight_of(a)} + weight_of(b);
    if (i > sent_) {
      const Record& left = at(i - 1);
      if (left.type == proto::MsgType::Reading && left.reading.energy_epoch == a.reading.energy_epoch &&
          weight_of(left) < w) {
        continue;
      }
    }
    if (w < best_weight) {
      best_weight = w;
      best = i;
    }
  }
  if (best == count_) return false;

  // The newer reading survives with its seq, time and cumulative energy (so no energy is lost); the
  // instantaneous values become the weighted mean over both.
  const Record& a = at(best);
  Record& b = at(best + 1);
  const uint32_t wa = weight_of(a);
  const uint32_t wb = weight_of(b);
  proto::Reading& r = b.reading;
  const proto::Reading& o = a.reading;
  const auto valid = [](const proto::Reading& x, uint8_t bit) { return (x.flags & bit) != 0; };
  const bool v_old = valid(o, proto::kVoltageValid), v_new = valid(r, proto::kVoltageValid);
  const bool c_old = valid(o, proto::kCurrentValid), c_new = valid(r, proto::kCurrentValid);
  const bool p_old = valid(o, proto::kPowerValid), p_new = valid(r, proto::kPowerValid);
  r.voltage_mv = merge_value(o.voltage_mv, r.voltage_mv, wa, wb, v_old, v_new);
  r.current_ua = merge_value(o.current_ua, r.current_ua, wa, wb, c_old, c_new);
  r.power_mw = merge_value(o.power_mw, r.power_mw, wa, wb, p_old, p_new);
  r.apparent_mva = merge_value(o.apparent_mva, r.apparent_mva, wa, wb, p_old, p_new);
  r.power_factor_e4 =
      static_cast<uint16_t>(merge_value(o.power_factor_e4, r.power_factor_e4, wa, wb, p_old, p_new));
  r.flags |=
      static_cast<uint8_t>(o.flags & (proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid));
  b.weight = static_cast<uint16_t>(wa + wb > UINT16_MAX ? UINT16_MAX : wa + wb);
  remove_at(best);
  ++coarsened_readings_;
  return true;
}

void LanClient::push(const Record& rec) {
  if (count_ == capacity_ && coarsen()) {
    at(count_) = rec;
    ++count_;
    return;
  }
  if (count_ == capacity_) {
    // Full and nothing to coarsen: drop the oldest reading (the new one counts as a candidate), else the
    // oldest event.
    size_t victim = count_;
    for (size_t i = 0; i < count_; ++i) {
      if (at(i).type == proto::MsgType::Reading) {
        victim = i;
        break;
      }
    }
    if (victim == count_ && (rec.type == proto::MsgType::Reading || count_ == 0)) {
      if (rec.type == proto::MsgType::Reading) {
        ++dropped_readings_;
      } else {
        ++dropped_events_;
      }
      return;
    }
    if (victim == count_) victim = 0;
    if (at(victim).type == proto::MsgType::Reading) {
      ++dropped_readings_;
    } else {
      ++dropped_events_;
    }
    remove_at(victim);
  }
  at(count_) = rec;
  ++count_;
}

void LanClient::remove_at(size_t i) {
  // Shift the older records up by one; drops happen near the front, so this is short.
  for (size_t j = i; j > 0; --j) at(j) = at(j - 1);
  head_ = (head_ + 1) % capacity_;
  --count_;
  if (i < sent_) --sent_;
}

void LanClient::release_up_to(uint32_t seq) {
  while (count_ > 0 && at(0).seq() <= seq) {
    head_ = (head_ + 1) % capacity_;
    --count_;
    if (sent_ > 0) --sent_;
  }
  if (seq > last_acked_seq_) last_acked_seq_ = seq;
}

void LanClient::pump(uint64_t now_ms) {
  if (state_ != State::Up) return;
  while (sent_ < count_ && sent_ < cfg_.max_in_flight) {
    const Record& rec = at(sent_);
    const uint64_t age = elapsed(now_ms, rec.sampled_at_ms);
    const uint32_t age_ms = age > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(age);
    proto::Message m;
    m.type = rec.type;
    if (rec.type == proto::MsgType::Reading) {
      m.reading = rec.reading;
      m.reading.age_ms = age_ms;
    } else {
      m.event = rec.event;
      m.event.age_ms = age_ms;
    }
    if (!send_msg(m, now_ms)) return;  // retried from tick()
    ++sent_;
  }
}

bool LanClient::send_msg(const proto::Message& m, uint64_t now_ms) {
  uint8_t frame[proto::kMaxFrame];
  const size_t n = proto::encode(m, frame, sizeof frame);
  if (n == 0 || !transport_.send(frame, n)) return false;
  last_tx_ms_ = now_ms;
  return true;
}

bool LanClient::send_hello(uint64_t now_ms) {
  proto::Message m;
  m.type = proto::MsgType::Hello;
  m.hello.proto_version = proto::kVersion;
  copy_field(m.hello.cid, cfg_.cid);
  copy_field(m.hello.fw_version, cfg_.fw_version);
  m.hello.capabilities = cfg_.capabilities;
  m.hello.boot_counter = cfg_.boot_counter;
  m.hello.uptime_ms = now_ms;
  return send_msg(m, now_ms);
}

}  // namespace pbfw
