// LAN protocol v1 codec. Layouts are documented in docs/lan-protocol.md; keep both in sync.
#include <cstring>
#include <pbfw/proto.hpp>

namespace pbfw::proto {
namespace {

// Exact payload sizes of the fixed-size messages.
constexpr size_t kHelloFixed = 1 + 1 + 1 + 4 + 4 + 8;  // + cid bytes + fw_version bytes
constexpr size_t kHelloAckSize = 8 + 4 + 2;
constexpr size_t kLegacyReadingSize = 4 + 4 + 1 + 4 + 4 + 4 + 4 + 2 + 8 + 2;
constexpr size_t kReadingSize = kLegacyReadingSize + 4 + 4;  // + countdown_s, switch_count
constexpr size_t kEventSize = 4 + 4 + 1 + 1 + 4;
constexpr size_t kAckSize = 4;
constexpr size_t kCommandSize = 4 + 1 + 4;
constexpr size_t kCommandResultSize = 4 + 1 + 1;
constexpr size_t kKeepaliveSize = 8;

static_assert(kHelloFixed + kCidMax + kFwVersionMax <= kMaxPayload);
static_assert(kMaxPayload <= 0xFFFF);

bool valid(EventType t) {
  return t >= kFirstEventType && t <= kLastEventType;
}
bool valid(Cause c) {
  static_assert(kFirstCause == Cause{0});  // unsigned: nothing below it
  return c <= kLastCause;
}
bool valid(CommandKind k) {
  return k >= kFirstCommandKind && k <= kLastCommandKind;
}
bool valid(CommandStatus s) {
  static_assert(kFirstCommandStatus == CommandStatus{0});
  return s <= kLastCommandStatus;
}
bool valid(MsgType t) {
  return t >= MsgType::Hello && t <= MsgType::Keepalive;
}

// Big-endian writer that turns any overflow into a sticky failure.
class Writer {
 public:
  Writer(uint8_t* out, size_t cap) : out_(out), cap_(cap) {}
  void u8(uint8_t v) {
    if (pos_ + 1 > cap_) {
      ok_ = false;
      return;
    }
    out_[pos_++] = v;
  }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v >> 8));
    u8(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void u64(uint64_t v) {
    u32(static_cast<uint32_t>(v >> 32));
    u32(static_cast<uint32_t>(v));
  }
  void bytes(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i) u8(static_cast<uint8_t>(s[i]));
  }
  size_t pos() const { return pos_; }
  bool ok() const { return ok_; }
  uint8_t* data() { return out_; }

 private:
  uint8_t* out_;
  size_t cap_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Big-endian reader over one payload; reading past the end is a sticky failure.
class Reader {
 public:
  Reader(const uint8_t* in, size_t len) : in_(in), len_(len) {}
  uint8_t u8() {
    if (pos_ + 1 > len_) {
      ok_ = false;
      return 0;
    }
    return in_[pos_++];
  }
  uint16_t u16() {
    const uint16_t hi = u8();
    return static_cast<uint16_t>((hi << 8) | u8());
  }
  uint32_t u32() {
    const uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  uint64_t u64() {
    const uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  // Length-prefixed string into a NUL-terminated buffer of max_len + 1 bytes.
  void str(char* dst, size_t max_len) {
    const size_t n = u8();
    if (!ok_ || n > max_len || pos_ + n > len_) {
      ok_ = false;
      dst[0] = '\0';
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      if (in_[pos_ + i] == 0) {
        ok_ = false;
        dst[0] = '\0';
        return;
      }
      dst[i] = static_cast<char>(in_[pos_ + i]);
    }
    dst[n] = '\0';
    pos_ += n;
  }
  // A payload is well-formed only if it was read exactly to its end.
  bool done() const { return ok_ && pos_ == len_; }

 private:
  const uint8_t* in_;
  size_t len_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Length of a NUL-terminated string bounded by the array size; max + 1 means "too long / unterminated".
size_t bounded_len(const char* s, size_t max) {
  size_t n = 0;
  while (n <= max && s[n] != '\0') ++n;
  return n;
}

bool encode_payload(const Message& m, Writer& w) {
  switch (m.type) {
    case MsgType::Hello: {
      const Hello& h = m.hello;
      const size_t cid_len = bounded_len(h.cid, kCidMax);
      const size_t fw_len = bounded_len(h.fw_version, kFwVersionMax);
      if (cid_len == 0 || cid_len > kCidMax || fw_len > kFwVersionMax) return false;
      w.u8(h.proto_version);
      w.u8(static_cast<uint8_t>(cid_len));
      w.bytes(h.cid, cid_len);
      w.u8(static_cast<uint8_t>(fw_len));
      w.bytes(h.fw_version, fw_len);
      w.u32(h.capabilities);
      w.u32(h.boot_counter);
      w.u64(h.uptime_ms);
      return true;
    }
    case MsgType::HelloAck:
      w.u64(m.hello_ack.unix_ms);
      w.u32(m.hello_ack.last_committed_seq);
      w.u16(m.hello_ack.keepalive_s);
      return true;
    case MsgType::Reading: {
      const Reading& r = m.reading;
      w.u32(r.seq);
      w.u32(r.age_ms);
      w.u8(r.flags);
      w.u32(r.voltage_mv);
      w.u32(r.current_ua);
      w.u32(r.power_mw);
      w.u32(r.apparent_mva);
      w.u16(r.power_factor_e4);
      w.u64(r.energy_mwh);
      w.u16(r.energy_epoch);
      w.u32(r.countdown_s);
      w.u32(r.switch_count);
      return true;
    }
    case MsgType::Event: {
      const Event& e = m.event;
      if (!valid(e.type) || !valid(e.cause)) return false;
      w.u32(e.seq);
      w.u32(e.age_ms);
      w.u8(static_cast<uint8_t>(e.type));
      w.u8(static_cast<uint8_t>(e.cause));
      w.u32(static_cast<uint32_t>(e.value));
      return true;
    }
    case MsgType::Ack:
      w.u32(m.ack.up_to_seq);
      return true;
    case MsgType::Command:
      if (!valid(m.command.kind)) return false;
      w.u32(m.command.cmd_id);
      w.u8(static_cast<uint8_t>(m.command.kind));
      w.u32(static_cast<uint32_t>(m.command.value));
      return true;
    case MsgType::CommandResult:
      if (!valid(m.command_result.status) || m.command_result.relay_on > 1) return false;
      w.u32(m.command_result.cmd_id);
      w.u8(static_cast<uint8_t>(m.command_result.status));
      w.u8(m.command_result.relay_on);
      return true;
    case MsgType::Keepalive:
      w.u64(m.keepalive.uptime_ms);
      return true;
  }
  return false;
}

// Decodes a payload whose type is known valid; false = Malformed.
bool decode_payload(MsgType type, const uint8_t* p, size_t len, Message& out) {
  Reader r(p, len);
  out.type = type;
  switch (type) {
    case MsgType::Hello: {
      Hello& h = out.hello;
      h.proto_version = r.u8();
      r.str(h.cid, kCidMax);
      r.str(h.fw_version, kFwVersionMax);
      h.capabilities = r.u32();
      h.boot_counter = r.u32();
      h.uptime_ms = r.u64();
      return r.done() && h.cid[0] != '\0';  // the cid is mandatory
    }
    case MsgType::HelloAck:
      if (len != kHelloAckSize) return false;
      out.hello_ack.unix_ms = r.u64();
      out.hello_ack.last_committed_seq = r.u32();
      out.hello_ack.keepalive_s = r.u16();
      return r.done();
    case MsgType::Reading: {
      if (len != kReadingSize && len != kLegacyReadingSize) return false;
      Reading& rd = out.reading;
      rd.seq = r.u32();
      rd.age_ms = r.u32();
      rd.flags = r.u8();
      rd.voltage_mv = r.u32();
      rd.current_ua = r.u32();
      rd.power_mw = r.u32();
      rd.apparent_mva = r.u32();
      rd.power_factor_e4 = r.u16();
      rd.energy_mwh = r.u64();
      rd.energy_epoch = r.u16();
      rd.countdown_s = 0;
      rd.switch_count = 0;
      if (len == kReadingSize) {
        rd.countdown_s = r.u32();
        rd.switch_count = r.u32();
      }
      return r.done();
    }
    case MsgType::Event: {
      if (len != kEventSize) return false;
      Event& e = out.event;
      e.seq = r.u32();
      e.age_ms = r.u32();
      e.type = static_cast<EventType>(r.u8());
      e.cause = static_cast<Cause>(r.u8());
      e.value = static_cast<int32_t>(r.u32());
      return r.done() && valid(e.type) && valid(e.cause);
    }
    case MsgType::Ack:
      if (len != kAckSize) return false;
      out.ack.up_to_seq = r.u32();
      return r.done();
    case MsgType::Command:
      if (len != kCommandSize) return false;
      out.command.cmd_id = r.u32();
      out.command.kind = static_cast<CommandKind>(r.u8());
      out.command.value = static_cast<int32_t>(r.u32());
      return r.done() && valid(out.command.kind);
    case MsgType::CommandResult:
      if (len != kCommandResultSize) return false;
      out.command_result.cmd_id = r.u32();
      out.command_result.status = static_cast<CommandStatus>(r.u8());
      out.command_result.relay_on = r.u8();
      return r.done() && valid(out.command_result.status) && out.command_result.relay_on <= 1;
    case MsgType::Keepalive:
      if (len != kKeepaliveSize) return false;
      out.keepalive.uptime_ms = r.u64();
      return r.done();
  }
  return false;
}

}  // namespace

const char* to_string(DecodeStatus s) {
  switch (s) {
    case DecodeStatus::Ok:
      return "ok";
    case DecodeStatus::NeedMore:
      return "need-more";
    case DecodeStatus::BadSof:
      return "bad-sof";
    case DecodeStatus::BadVersion:
      return "bad-version";
    case DecodeStatus::TooLarge:
      return "too-large";
    case DecodeStatus::BadCrc:
      return "bad-crc";
    case DecodeStatus::UnknownType:
      return "unknown-type";
    case DecodeStatus::Malformed:
      return "malformed";
  }
  return "?";
}

const char* to_string(MsgType t) {
  switch (t) {
    case MsgType::Hello:
      return "hello";
    case MsgType::HelloAck:
      return "hello-ack";
    case MsgType::Reading:
      return "reading";
    case MsgType::Event:
      return "event";
    case MsgType::Ack:
      return "ack";
    case MsgType::Command:
      return "command";
    case MsgType::CommandResult:
      return "command-result";
    case MsgType::Keepalive:
      return "keepalive";
  }
  return "?";
}

uint16_t crc16_ccitt(const uint8_t* data, size_t len, uint16_t crc) {
  for (size_t i = 0; i < len; ++i) {
    crc = static_cast<uint16_t>(crc ^ (static_cast<uint16_t>(data[i]) << 8));
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000u) ? static_cast<uint16_t>((crc << 1) ^ 0x1021u) : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

size_t encode(const Message& msg, uint8_t* out, size_t cap) {
  if (out == nullptr || !valid(msg.type)) return 0;
  Writer w(out, cap);
  w.u8(kSof);
  w.u8(kVersion);
  w.u8(static_cast<uint8_t>(msg.type));
  w.u16(0);  // payload length, patched below
  if (!encode_payload(msg, w) || !w.ok()) return 0;
  const size_t payload_len = w.pos() - kHeaderSize;
  if (payload_len > kMaxPayload) return 0;
  out[3] = static_cast<uint8_t>(payload_len >> 8);
  out[4] = static_cast<uint8_t>(payload_len);
  w.u16(crc16_ccitt(out + 1, w.pos() - 1));
  return w.ok() ? w.pos() : 0;
}

DecodeStatus decode(const uint8_t* buf, size_t len, Message& out, size_t& consumed) {
  consumed = 0;
  if (len < 1) return DecodeStatus::NeedMore;
  // Header errors consume one byte so a caller that wants to resynchronise can.
  if (buf[0] != kSof) {
    consumed = 1;
    return DecodeStatus::BadSof;
  }
  if (len < 2) return DecodeStatus::NeedMore;
  if (buf[1] != kVersion) {
    consumed = 1;
    return DecodeStatus::BadVersion;
  }
  if (len < kHeaderSize) return DecodeStatus::NeedMore;
  const size_t payload_len = (static_cast<size_t>(buf[3]) << 8) | buf[4];
  if (payload_len > kMaxPayload) {
    consumed = 1;
    return DecodeStatus::TooLarge;
  }
  const size_t frame_len = kHeaderSize + payload_len + kCrcSize;
  if (len < frame_len) return DecodeStatus::NeedMore;

  // From here the frame boundary is known: errors consume the whole frame.
  consumed = frame_len;
  const uint16_t want = static_cast<uint16_t>((buf[frame_len - 2] << 8) | buf[frame_len - 1]);
  if (crc16_ccitt(buf + 1, frame_len - 1 - kCrcSize) != want) return DecodeStatus::BadCrc;
  const auto type = static_cast<MsgType>(buf[2]);
  if (!valid(type)) return DecodeStatus::UnknownType;
  if (!decode_payload(type, buf + kHeaderSize, payload_len, out)) return DecodeStatus::Malformed;
  return DecodeStatus::Ok;
}

}  // namespace pbfw::proto
