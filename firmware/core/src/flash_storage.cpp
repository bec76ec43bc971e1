#include <cstddef>
#include <pbfw/flash_storage.hpp>

namespace pbfw {

// Tripwire: a new PersistentState field must be appended to encode_state/decode_state (and the docs).
// A one-byte field can hide in the tail padding, hence the offset of the last one too.
static_assert(sizeof(PersistentState) == 56 && offsetof(PersistentState, switch_disabled) == 52,
              "PersistentState changed: update the flash payload encoding");

namespace {

class Writer {
 public:
  explicit Writer(uint8_t* out) : out_(out) {}
  void u8(uint8_t v) { out_[pos_++] = v; }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v));
    u8(static_cast<uint8_t>(v >> 8));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v));
    u16(static_cast<uint16_t>(v >> 16));
  }
  size_t pos() const { return pos_; }

 private:
  uint8_t* out_;
  size_t pos_ = 0;
};

// Reads past the end give zeros: payloads written by older firmware lack the newer fields.
class Reader {
 public:
  Reader(const uint8_t* in, size_t len) : in_(in), len_(len) {}
  uint8_t u8() { return pos_ < len_ ? in_[pos_++] : (++pos_, 0); }
  uint16_t u16() {
    const uint16_t lo = u8();
    return static_cast<uint16_t>(lo | (u8() << 8));
  }
  uint32_t u32() {
    const uint32_t lo = u16();
    return lo | (uint32_t{u16()} << 16);
  }

 private:
  const uint8_t* in_;
  size_t len_;
  size_t pos_ = 0;
};

}  // namespace

size_t encode_state(const PersistentState& s, uint8_t* out) {
  Writer w(out);
  w.u32(s.boot_counter);
  w.u16(s.energy_epoch);
  w.u8(s.relay_on);
  w.u8(s.has_settings);
  w.u8(s.tripped);
  w.u32(s.switch_count);
  w.u32(s.current_limit_ma);
  w.u32(s.over_current_duration_ms);
  w.u32(s.power_limit_w);
  w.u16(s.voltage_max_v);
  w.u16(s.voltage_min_v);
  w.u32(s.kv_e6);
  w.u32(s.ki_e6);
  w.u8(s.switch_disabled);
  return w.pos();
}

bool decode_state(uint8_t format, const uint8_t* payload, size_t len, uint64_t energy_mwh,
                  PersistentState& out) {
  if (format != kStateFormat) return false;
  Reader r(payload, len);
  PersistentState s{};
  s.boot_counter = r.u32();
  s.energy_mwh = energy_mwh;
  s.energy_epoch = r.u16();
  s.relay_on = r.u8();
  s.has_settings = r.u8();
  s.tripped = r.u8();
  s.switch_count = r.u32();
  s.current_limit_ma = r.u32();
  s.over_current_duration_ms = r.u32();
  s.power_limit_w = r.u32();
  s.voltage_max_v = r.u16();
  s.voltage_min_v = r.u16();
  s.kv_e6 = r.u32();
  s.ki_e6 = r.u32();
  s.switch_disabled = r.u8();
  out = s;
  return true;
}

bool load_state(PersistLog& log, PersistentState& out) {
  if (!log.mount()) return false;
  return decode_state(log.format(), log.payload(), log.payload_size(), log.counter(), out);
}

bool save_state(PersistLog& log, const PersistentState& s) {
  if (!log.mounted()) log.mount();  // first save without a load(): find the end of the log
  uint8_t payload[kStatePayloadSize];
  const size_t len = encode_state(s, payload);
  bool same_payload = log.has_state() && log.format() == kStateFormat && log.payload_size() == len;
  for (size_t i = 0; same_payload && i < len; ++i) same_payload = log.payload()[i] == payload[i];
  if (!same_payload) return log.write_snapshot(kStateFormat, payload, len, s.energy_mwh);
  if (log.counter() == s.energy_mwh && log.synced()) return true;  // unchanged: no flash write
  return log.write_counter(s.energy_mwh);
}

}  // namespace pbfw
