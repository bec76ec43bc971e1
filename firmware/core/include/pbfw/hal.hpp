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
  // Button held 5 s: start Wi-Fi provisioning (ESP-Touch, AT+CWSTARTSMART); stop on timeout.
  virtual void start_provisioning() {}
  virtual void stop_provisioning() {}

 protected:
  ~Hal() = default;
};

// What survives a power cut.
struct PersistentState {
  uint32_t boot_counter;
  uint64_t energy_mwh;
  uint16_t energy_epoch;
  uint8_t relay_on;
  // Settings (issue 3). has_settings = 0: none stored yet, the core uses its SocketConfig defaults.
  uint8_t has_settings;
  uint8_t tripped;  // relay was forced off by a protection and not switched on since
  uint32_t switch_count;
  uint32_t current_limit_ma;
  uint32_t over_current_duration_ms;
  uint32_t power_limit_w;  // 0 = off
  uint16_t voltage_max_v;  // 0 = off
  uint16_t voltage_min_v;  // 0 = off
  uint32_t kv_e6, ki_e6;   // calibration
  // Issue 5: DP 17 switch_enabled is false (0 = enabled, so older stored states load as enabled).
  uint8_t switch_disabled;
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
