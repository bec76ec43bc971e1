#include <pbfw/energy.hpp>

#include "wide_math.hpp"

namespace pbfw {

uint32_t EnergyCounter::on_frame(uint16_t pf_count, bool wrap_bit, uint32_t power_param, uint32_t kv_e6,
                                 uint32_t ki_e6) {
  if (!has_baseline_) {
    has_baseline_ = true;
    last_count_ = pf_count;
    last_wrap_bit_ = wrap_bit;
    return 0;
  }
  uint32_t pulses = static_cast<uint16_t>(pf_count - last_count_);
  // Bit 7 toggles once per counter wrap. If its parity disagrees with the wraps implied by the
  // delta, a whole extra turn of 65536 pulses happened between two accepted frames (long gap at high
  // load); count it rather than lose up to 65536 pulses.
  const bool wrapped = uint32_t{last_count_} + pulses > 0xFFFFu;
  if (wrapped != (wrap_bit != last_wrap_bit_)) pulses += 0x10000u;
  last_count_ = pf_count;
  last_wrap_bit_ = wrap_bit;
  if (pulses == 0) return 0;
  total_pulses_ += pulses;

  // pulses x Pp x Kv x Ki: 17 + 24 + 32 + 32 bits, plus the remainder < 2^62: fits 128 bits.
  const detail::U128 per_pulse = detail::mul(detail::mul64(power_param, kv_e6), ki_e6);
  const detail::U128 total = detail::mul(per_pulse, pulses) + detail::U128(remainder_);
  detail::U128 q, r;
  detail::divmod(total, detail::U128(kUnitsPerMwh), q, r);
  remainder_ = r.lo;
  add_mwh(detail::to_u64_sat(q));
  return pulses;
}

void EnergyCounter::add_mwh(uint64_t mwh) {
  // One frame adds far less than kWrapMwh, but stay correct for any input.
  epoch_ = static_cast<uint16_t>(epoch_ + (mwh / kWrapMwh));
  mwh %= kWrapMwh;
  mwh_ += mwh;
  if (mwh_ >= kWrapMwh) {
    mwh_ -= kWrapMwh;
    ++epoch_;
  }
}

void EnergyCounter::restore(uint64_t mwh, uint16_t epoch) {
  mwh_ = mwh % kWrapMwh;
  epoch_ = epoch;
  remainder_ = 0;
}

void EnergyCounter::factory_reset() {
  mwh_ = 0;
  remainder_ = 0;
  ++epoch_;
}

}  // namespace pbfw
