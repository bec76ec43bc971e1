// pbfw::Storage on the wear-levelled flash log: what the MCU port hands to SocketCore (see
// docs/persistence.md). The energy counter goes into cheap one-double-word counter updates; any other change
// (relay, boot counter, epoch, limits, calibration) writes a snapshot of the whole state. Saving an unchanged
// state writes nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <pbfw/hal.hpp>
#include <pbfw/persist_log.hpp>

namespace pbfw {

// The snapshot payload: every PersistentState field but energy_mwh (the log's counter), little-endian.
// Fields are only ever appended (a shorter payload decodes with zeros for the missing ones).
inline constexpr uint8_t kStateFormat = 1;
inline constexpr size_t kStatePayloadSize = 38;
size_t encode_state(const PersistentState& s, uint8_t* out);  // out: kStatePayloadSize bytes
bool decode_state(uint8_t format, const uint8_t* payload, size_t len, uint64_t energy_mwh,
                  PersistentState& out);

// Non-virtual halves of FlashStorage (pbfw_core is built without RTTI; see SocketCore's note on vtables).
bool load_state(PersistLog& log, PersistentState& out);
bool save_state(PersistLog& log, const PersistentState& s);  // false = the flash failed

// Header-only so its vtable is emitted by the port that uses it, not by pbfw_core.
class FlashStorage final : public Storage {
 public:
  explicit FlashStorage(Flash& flash) : log_(flash) {}
  bool load(PersistentState& out) override { return load_state(log_, out); }
  void save(const PersistentState& s) override { last_save_ok_ = save_state(log_, s); }

  bool last_save_ok() const { return last_save_ok_; }
  const PersistLog& log() const { return log_; }

 private:
  PersistLog log_;
  bool last_save_ok_ = true;
};

}  // namespace pbfw
