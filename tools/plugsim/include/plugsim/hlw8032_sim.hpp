// Simulated HLW8032 energy meter: turns a true load into the chip's 24-byte UART frames
// (see /work/shared/spec/hlw8032.md), so the firmware's decoder runs on realistic input.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace plugsim {

struct Load {
  double volts = 230.0;
  double watts = 0.0;         // active power
  double power_factor = 1.0;  // current = watts / (volts * power_factor)
};

class Hlw8032Sim {
 public:
  static constexpr size_t kFrameSize = 24;
  static constexpr uint32_t kFramePeriodMs = 50;
  // Parameter registers: constant per chip; taken from the spec's first worked example.
  static constexpr uint32_t kVoltageParam = 0x02EBA8;
  static constexpr uint32_t kCurrentParam = 0x003EE4;
  static constexpr uint32_t kPowerParam = 0x5111E8;
  static constexpr uint32_t kRegisterMax = 0xFFFFFF;

  using Frame = std::array<uint8_t, kFrameSize>;

  // kv_e6 / ki_e6: the board's calibration constants x 1e6, as configured in the decoder.
  Hlw8032Sim(uint32_t kv_e6, uint32_t ki_e6);

  void set_load(const Load& load) { load_ = load; }
  const Load& load() const { return load_; }

  // Advances simulated time by `elapsed_ms` at the current load (PF pulses accumulate the exact
  // energy, fraction carried) and returns the frame the chip sends at the end of that period.
  Frame next_frame(uint32_t elapsed_ms = kFramePeriodMs);

  // Energy represented by one PF pulse, in Wh.
  double wh_per_pulse() const;
  // Pulses emitted so far (not wrapped).
  uint64_t total_pulses() const { return total_pulses_; }

 private:
  uint32_t kv_e6_;
  uint32_t ki_e6_;
  Load load_;
  double pulse_fraction_ = 0.0;
  uint64_t total_pulses_ = 0;
  uint16_t pf_counter_ = 0;
  bool wrap_toggle_ = false;
};

}  // namespace plugsim
