#include <pbfw/hlw8032.hpp>

#include "wide_math.hpp"

namespace pbfw {

namespace {

using detail::div_round;
using detail::mul;
using detail::mul64;
using detail::U128;

uint32_t be24(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 16) | (static_cast<uint32_t>(p[1]) << 8) | p[2];
}

constexpr uint8_t kVoltageOverflowBit = 1u << 3;
constexpr uint8_t kCurrentOverflowBit = 1u << 2;
constexpr uint8_t kPowerOverflowBit = 1u << 1;
constexpr uint8_t kCoefficientAbnormalBit = 1u << 0;

constexpr uint8_t kQuantities[3] = {kMeterVoltage, kMeterCurrent, kMeterPower};

}  // namespace

const char* to_string(Hlw8032Reject r) {
  switch (r) {
    case Hlw8032Reject::None:
      return "none";
    case Hlw8032Reject::Uncalibrated:
      return "uncalibrated";
    case Hlw8032Reject::Corrupt:
      return "corrupt";
    case Hlw8032Reject::VoltageOutOfBand:
      return "voltage_out_of_band";
    case Hlw8032Reject::CurrentOverRating:
      return "current_over_rating";
    case Hlw8032Reject::PowerOverApparent:
      return "power_over_apparent";
  }
  return "unknown";
}

bool Hlw8032Decoder::is_state_byte(uint8_t b) {
  return b == kStateNormal || b == kStateUncalibrated || (b & 0xF0) == 0xF0;
}

bool Hlw8032Decoder::checksum_ok(const uint8_t* frame) {
  uint32_t sum = 0;
  for (size_t i = 2; i < kFrameSize - 1; ++i) sum += frame[i];
  return (sum & 0xFF) == frame[kFrameSize - 1];
}

Hlw8032Reject Hlw8032Decoder::decode_frame(const uint8_t* f, uint32_t kv_e6, uint32_t ki_e6,
                                           const MeterLimits& limits, MeterSample& out,
                                           const MeterSample* held) {
  const uint8_t state = f[0];
  if (state == kStateUncalibrated) return Hlw8032Reject::Uncalibrated;
  const bool flagged = state != kStateNormal;
  if (flagged && (state & 0xF0) != 0xF0) return Hlw8032Reject::Corrupt;
  if (flagged && (state & kCoefficientAbnormalBit) != 0) return Hlw8032Reject::Uncalibrated;

  const uint32_t vp = be24(f + 2), v = be24(f + 5);
  const uint32_t ip = be24(f + 8), i = be24(f + 11);
  const uint32_t pp = be24(f + 14), p = be24(f + 17);
  // Zero parameter registers mean the chip's calibration data is gone, like state 0xAA.
  if (vp == 0 || ip == 0 || pp == 0 || kv_e6 == 0 || ki_e6 == 0) return Hlw8032Reject::Uncalibrated;

  MeterSample s;
  s.state = state;
  s.voltage_overflow = flagged && (state & kVoltageOverflowBit) != 0;
  s.current_overflow = flagged && (state & kCurrentOverflowBit) != 0;
  s.power_overflow = flagged && (state & kPowerOverflowBit) != 0;
  s.data_update = f[20];
  s.pf_wrap_bit = (f[20] & kPfWrapBit) != 0;
  s.pf_count = static_cast<uint16_t>((f[21] << 8) | f[22]);
  s.power_param = pp;
  s.voltage_param = vp;
  s.current_param = ip;

  // Per quantity: overflow = the period register ran out = below the chip's threshold: a measured 0.
  // Else the data-update bit says whether this frame measured it; a register the chip did not refresh
  // is never turned into a value (it is what made a switched-off load show power): the held value
  // stands in, or there is none.
  const bool overflow[3] = {s.voltage_overflow, s.current_overflow, s.power_overflow};
  const uint8_t update_bit[3] = {kUpdateVoltageBit, kUpdateCurrentBit, kUpdatePowerBit};
  const uint32_t reg[3] = {v, i, p};
  uint32_t* const regs_out[3] = {&s.voltage_reg, &s.current_reg, &s.power_reg};
  for (size_t k = 0; k < 3; ++k) {
    const uint8_t q = kQuantities[k];
    if (overflow[k]) {
      s.refreshed |= q;
      s.valid |= q;
    } else if ((f[20] & update_bit[k]) != 0) {
      // A refreshed zero period register would be a division by zero: corrupt frame.
      if (reg[k] == 0) return Hlw8032Reject::Corrupt;
      s.refreshed |= q;
      s.valid |= q;
      *regs_out[k] = reg[k];
    } else if (held != nullptr && (held->valid & q) != 0) {
      s.valid |= q;
      if (q == kMeterVoltage) {
        s.voltage_param = held->voltage_param;
        s.voltage_reg = held->voltage_reg;
      } else if (q == kMeterCurrent) {
        s.current_param = held->current_param;
        s.current_reg = held->current_reg;
      } else {
        s.power_reg = held->power_reg;
        s.power_mw = held->power_mw;  // Pp may have changed since: keep the watts as measured
      }
    }
  }

  // Values from the (held) registers; a zero register is an overflowed (or invalid) quantity: 0.
  uint64_t voltage_mv = 0, current_ua = 0, power_mw = 0, apparent_mva = 0;
  if (s.voltage_reg != 0) {
    const uint64_t den = uint64_t{s.voltage_reg} * 1000u;  // Kv x 1e6 -> mV needs / 1e3
    voltage_mv = (uint64_t{s.voltage_param} * kv_e6 + den / 2) / den;
  }
  if (s.current_reg != 0)
    current_ua = (uint64_t{s.current_param} * ki_e6 + s.current_reg / 2) / s.current_reg;
  if ((s.refreshed & kMeterPower) == 0) {
    power_mw = s.power_mw;
  } else if (s.power_reg != 0) {
    power_mw = detail::to_u64_sat(
        div_round(mul(mul64(pp, kv_e6), ki_e6), mul64(s.power_reg, 1'000'000'000u)));  // e6 x e6 -> mW: / 1e9
  }

  // No mains: the voltage is a state, not a reading.
  if (s.voltage_overflow || ((s.refreshed & kMeterVoltage) != 0 && voltage_mv < limits.no_mains_below_mv)) {
    s.no_mains = true;
    s.valid &= static_cast<uint8_t>(~kMeterVoltage);
    s.voltage_reg = 0;
    voltage_mv = 0;
  }
  if (s.voltage_reg != 0 && s.current_reg != 0) {
    apparent_mva =
        detail::to_u64_sat(div_round(mul(mul64(uint64_t{s.voltage_param} * s.current_param, kv_e6), ki_e6),
                                     mul64(uint64_t{s.voltage_reg} * s.current_reg, 1'000'000'000u)));
  }
  s.voltage_mv = static_cast<uint32_t>(voltage_mv > UINT32_MAX ? UINT32_MAX : voltage_mv);
  s.current_ua = static_cast<uint32_t>(current_ua > UINT32_MAX ? UINT32_MAX : current_ua);
  s.power_mw = static_cast<uint32_t>(power_mw > UINT32_MAX ? UINT32_MAX : power_mw);
  s.apparent_mva = static_cast<uint32_t>(apparent_mva > UINT32_MAX ? UINT32_MAX : apparent_mva);
  if (s.power_mw != 0 && s.apparent_mva != 0) {
    // PF = P / S, exact from the registers when this frame measured all three (Kv and Ki cancel).
    U128 pf;
    if ((s.refreshed & kMeterAll) == kMeterAll) {
      pf = div_round(mul(mul(mul64(pp, s.voltage_reg), s.current_reg), 10000u),
                     mul(mul64(s.power_reg, s.voltage_param), s.current_param));
    } else {
      pf = div_round(mul64(s.power_mw, 10000u), U128(s.apparent_mva));
    }
    s.power_factor_e4 = pf > U128(10000u) ? 10000 : static_cast<uint16_t>(pf.lo);
  }
  out = s;

  // Physical plausibility.
  if ((s.refreshed & kMeterVoltage) != 0 && !s.no_mains) {
    const uint64_t nominal = limits.nominal_voltage_mv;
    const uint64_t band = nominal * limits.voltage_band_pct / 100u;
    if (voltage_mv + band < nominal || voltage_mv > nominal + band) return Hlw8032Reject::VoltageOutOfBand;
  }
  if (current_ua > uint64_t{limits.rated_current_ma} * (100u + limits.current_margin_pct) * 10u) {
    return Hlw8032Reject::CurrentOverRating;
  }
  // |P| <= V x I within tolerance, once both V and I are known (no mains: V is 0).
  const bool v_known = (s.valid & kMeterVoltage) != 0 || s.no_mains;
  const bool i_known = (s.valid & kMeterCurrent) != 0;
  if (v_known && i_known &&
      power_mw * 100u >
          apparent_mva * (100u + limits.power_tolerance_pct) + uint64_t{limits.power_margin_mw} * 100u) {
    return Hlw8032Reject::PowerOverApparent;
  }
  return Hlw8032Reject::None;
}

void Hlw8032Decoder::forget(uint8_t quantities) {
  const uint8_t drop = sample_.valid & quantities;
  if (drop == 0) return;
  sample_.valid = static_cast<uint8_t>(sample_.valid & ~drop);
  sample_.refreshed = static_cast<uint8_t>(sample_.refreshed & ~drop);
  if ((drop & kMeterVoltage) != 0) sample_.voltage_mv = sample_.voltage_reg = 0;
  if ((drop & kMeterCurrent) != 0) sample_.current_ua = sample_.current_reg = 0;
  if ((drop & kMeterPower) != 0) sample_.power_mw = sample_.power_reg = 0;
  sample_.apparent_mva = (sample_.voltage_reg != 0 && sample_.current_reg != 0) ? sample_.apparent_mva : 0;
  if (sample_.apparent_mva == 0 || sample_.power_mw == 0) sample_.power_factor_e4 = 0;
}

void Hlw8032Decoder::resync_from(size_t start) {
  // Next candidate: a state byte followed by 0x5A (or a state byte as the last buffered byte).
  size_t i = start;
  for (; i < len_; ++i) {
    if (is_state_byte(buf_[i]) && (i + 1 == len_ || buf_[i + 1] == kCheckByte)) break;
  }
  stats_.discarded_bytes += static_cast<uint32_t>(i);
  for (size_t j = i; j < len_; ++j) buf_[j - i] = buf_[j];
  len_ -= i;
}

bool Hlw8032Decoder::feed(uint8_t byte, bool byte_error) {
  if (byte_error) {
    // Everything buffered belongs to the frame that holds the bad byte (a candidate is at most
    // kFrameSize long), so drop it all; resync finds the next frame start.
    ++stats_.byte_errors;
    stats_.discarded_bytes += static_cast<uint32_t>(len_ + 1);
    len_ = 0;
    return false;
  }
  buf_[len_++] = byte;
  if (len_ == 1) {
    if (!is_state_byte(byte)) resync_from(1);
    return false;
  }
  if (len_ == 2) {
    if (byte != kCheckByte) resync_from(1);
    return false;
  }
  if (len_ < kFrameSize) return false;

  if (!checksum_ok(buf_)) {
    ++stats_.checksum_errors;
    resync_from(1);
    return false;
  }
  // Held values: those of the last accepted frame, each for at most limits_.hold_frames frames.
  MeterSample held = sample_;
  for (size_t k = 0; k < 3; ++k) {
    if (held_frames_[k] >= limits_.hold_frames)
      held.valid = static_cast<uint8_t>(held.valid & ~kQuantities[k]);
  }
  MeterSample s;
  last_reject_ = decode_frame(buf_, kv_e6_, ki_e6_, limits_, s, &held);
  len_ = 0;
  if (last_reject_ == Hlw8032Reject::None) {
    for (size_t k = 0; k < 3; ++k) {
      if ((s.refreshed & kQuantities[k]) != 0) {
        held_frames_[k] = 0;
      } else if (held_frames_[k] < UINT32_MAX) {
        ++held_frames_[k];
      }
    }
    sample_ = decoded_ = s;
    rejects_in_a_row_ = 0;
    ++stats_.frames;
    return true;
  }
  if (rejects_in_a_row_ < UINT32_MAX) ++rejects_in_a_row_;
  if (last_reject_ == Hlw8032Reject::Uncalibrated) {
    ++stats_.unusable;
  } else {
    ++stats_.implausible;
    if (last_reject_ != Hlw8032Reject::Corrupt) decoded_ = s;
  }
  return false;
}

}  // namespace pbfw
