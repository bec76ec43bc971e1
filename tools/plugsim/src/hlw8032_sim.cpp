#include "plugsim/hlw8032_sim.hpp"

#include <cmath>

namespace plugsim {

namespace {

void put24(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 16);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v);
}

// Period register for a quantity: reg = param * coeff / value. Returns false when the period
// would not fit 24 bits (the quantity is ~0): the chip reports that as an overflow.
bool period_register(double param, double coeff, double value, uint32_t& reg) {
  if (!(value > 0.0)) return false;
  const double r = std::round(param * coeff / value);
  if (r > Hlw8032Sim::kRegisterMax || r < 1.0) return false;
  reg = static_cast<uint32_t>(r);
  return true;
}

}  // namespace

Hlw8032Sim::Hlw8032Sim(uint32_t kv_e6, uint32_t ki_e6) : kv_e6_(kv_e6), ki_e6_(ki_e6) {}

double Hlw8032Sim::wh_per_pulse() const {
  return kPowerParam * (kv_e6_ / 1e6) * (ki_e6_ / 1e6) / 3.6e9;
}

Hlw8032Sim::Frame Hlw8032Sim::next_frame(uint32_t elapsed_ms) {
  const double kv = kv_e6_ / 1e6;
  const double ki = ki_e6_ / 1e6;
  const double volts = load_.volts > 0.0 ? load_.volts : 0.0;
  const double watts = load_.watts > 0.0 ? load_.watts : 0.0;
  const double pf = load_.power_factor > 0.0 ? load_.power_factor : 1.0;
  const double amps = volts > 0.0 ? watts / (volts * pf) : 0.0;

  uint32_t v_reg = 0;
  uint32_t i_reg = 0;
  uint32_t p_reg = 0;
  const bool v_ok = period_register(kVoltageParam, kv, volts, v_reg);
  const bool i_ok = period_register(kCurrentParam, ki, amps, i_reg);
  const bool p_ok = period_register(kPowerParam, kv * ki, watts, p_reg);

  // Energy: exact pulses for the period, the fraction carries to the next frame.
  if (p_ok) {
    pulse_fraction_ += watts * (elapsed_ms / 3.6e6) / wh_per_pulse();
    const double whole = std::floor(pulse_fraction_);
    pulse_fraction_ -= whole;
    const auto n = static_cast<uint64_t>(whole);
    const uint32_t before = pf_counter_;
    total_pulses_ += n;
    pf_counter_ = static_cast<uint16_t>(total_pulses_ & 0xFFFF);
    // One toggle per wrap past 65535 (at most one per 50 ms frame in any real load).
    const uint64_t wraps = (before + n) >> 16;
    if (wraps & 1u) wrap_toggle_ = !wrap_toggle_;
  }

  Frame f{};
  if (v_ok && i_ok && p_ok) {
    f[0] = 0x55;
  } else {
    f[0] = static_cast<uint8_t>(0xF0 | (v_ok ? 0 : 0x08) | (i_ok ? 0 : 0x04) | (p_ok ? 0 : 0x02));
  }
  f[1] = 0x5A;
  put24(&f[2], kVoltageParam);
  put24(&f[5], v_reg);
  put24(&f[8], kCurrentParam);
  put24(&f[11], i_reg);
  put24(&f[14], kPowerParam);
  put24(&f[17], p_reg);
  f[20] = static_cast<uint8_t>((wrap_toggle_ ? 0x80 : 0) | (v_ok ? 0x40 : 0) | (i_ok ? 0x20 : 0) |
                               (p_ok ? 0x10 : 0));
  f[21] = static_cast<uint8_t>(pf_counter_ >> 8);
  f[22] = static_cast<uint8_t>(pf_counter_);
  unsigned sum = 0;
  for (size_t i = 2; i <= 22; ++i) sum += f[i];
  f[23] = static_cast<uint8_t>(sum & 0xFF);
  return f;
}

}  // namespace plugsim
