// Hardware abstraction implemented by each port (STM32G0 firmware, host simulator).
// No heap, no exceptions, no RTTI.
#pragma once

#include <cstdint>

namespace pbfw {

class Hal {
 public:
  virtual uint64_t now_ms() = 0;  // monotonic, since boot
  virtual void set_relay(bool on) = 0;
  virtual void set_led(uint8_t r, uint8_t g, uint8_t b) = 0;

 protected:
  ~Hal() = default;
};

// What survives a power cut.
struct PersistentState {
  uint32_t boot_counter;
  uint64_t energy_mwh;
  uint16_t energy_epoch;
  uint8_t relay_on;
};

class Storage {  // wear-levelled flash on the MCU, a file in plugsim
 public:
  // false = nothing stored yet (or unreadable): the core starts from defaults.
  virtual bool load(PersistentState& out) = 0;
  virtual void save(const PersistentState& s) = 0;

 protected:
  ~Storage() = default;
};

}  // namespace pbfw
