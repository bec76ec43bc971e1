// Cumulative energy from the HLW8032 PF pulse counter, exact in integers.
// No heap, no exceptions.
#pragma once

#include <cstdint>

namespace pbfw {

class EnergyCounter {
 public:
  static constexpr uint64_t kWrapMwh = 10'000'000'000ull;  // 10 000 kWh: counter restarts at 0, epoch + 1
  // Energy per pulse = Pp x Kv x Ki / 3.6e9 Wh; with Kv, Ki scaled by 1e6 that is
  // Pp x kv_e6 x ki_e6 / kUnitsPerMwh mWh. The sub-mWh part is kept as a numerator over kUnitsPerMwh.
  static constexpr uint64_t kUnitsPerMwh = 3'600'000'000'000'000'000ull;  // 3.6e9 x 1e6 x 1e6 / 1e3

  // One accepted meter frame: the free-running 16-bit PF pulse counter, data-update bit 7 (toggles
  // when the pulse counter wraps), and THIS frame's Pp and calibration. The first frame only sets the
  // baseline. Returns the number of pulses counted for this frame.
  uint32_t on_frame(uint16_t pf_count, bool wrap_bit, uint32_t power_param, uint32_t kv_e6, uint32_t ki_e6);

  uint64_t energy_mwh() const { return mwh_; }  // cumulative, < kWrapMwh
  uint16_t epoch() const { return epoch_; }     // + 1 at every 10 000 kWh wrap and factory reset
  uint64_t total_pulses() const { return total_pulses_; }
  bool has_baseline() const { return has_baseline_; }

  // From persistent storage (values >= kWrapMwh are reduced modulo the wrap). Drops the sub-mWh remainder.
  void restore(uint64_t mwh, uint16_t epoch);
  // Clears the energy; the new epoch tells consumers the counter restarted on purpose.
  void factory_reset();
  // Forget the pulse baseline (e.g. the meter chip was reset): the next frame starts a new one.
  void clear_baseline() { has_baseline_ = false; }

 private:
  void add_mwh(uint64_t mwh);

  uint64_t mwh_ = 0;
  uint64_t remainder_ = 0;  // numerator over kUnitsPerMwh, always < kUnitsPerMwh
  uint16_t epoch_ = 0;
  bool has_baseline_ = false;
  uint16_t last_count_ = 0;
  bool last_wrap_bit_ = false;
  uint64_t total_pulses_ = 0;
};

}  // namespace pbfw
