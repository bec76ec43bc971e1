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
constexpr uint8_t kPfWrapBit = 1u << 7;

}  // namespace

bool Hlw8032Decoder::is_state_byte(uint8_t b) {
  return b == kStateNormal || b == kStateUncalibrated || (b & 0xF0) == 0xF0;
}

bool Hlw8032Decoder::checksum_ok(const uint8_t* frame) {
  uint32_t sum = 0;
  for (size_t i = 2; i < kFrameSize - 1; ++i) sum += frame[i];
  return (sum & 0xFF) == frame[kFrameSize - 1];
}

Hlw8032Reject Hlw8032Decoder::decode_frame(const uint8_t* f, uint32_t kv_e6, uint32_t ki_e6,
                                           MeterSample& out) {
  const uint8_t state = f[0];
  if (state == kStateUncalibrated) return Hlw8032Reject::Uncalibrated;
  const bool flagged = state != kStateNormal;
  if (flagged && (state & 0xF0) != 0xF0) return Hlw8032Reject::Implausible;
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

  // A zero period register without its overflow bit would be a division by zero: corrupt frame.
  if ((!s.voltage_overflow && v == 0) || (!s.current_overflow && i == 0) || (!s.power_overflow && p == 0)) {
    return Hlw8032Reject::Implausible;
  }

  // Overflowed quantity = period register ran out = value near zero: report 0, never compute it.
  uint64_t voltage_mv = 0, current_ua = 0, power_mw = 0, apparent_mva = 0;
  if (!s.voltage_overflow) {
    const uint64_t den = uint64_t{v} * 1000u;  // Kv x 1e6 -> mV needs / 1e3
    voltage_mv = (uint64_t{vp} * kv_e6 + den / 2) / den;
  }
  if (!s.current_overflow) current_ua = (uint64_t{ip} * ki_e6 + i / 2) / i;
  if (!s.power_overflow) {
    power_mw = detail::to_u64_sat(
        div_round(mul(mul64(pp, kv_e6), ki_e6), mul64(p, 1'000'000'000u)));  // e6 x e6 -> mW: / 1e9
  }
  if (!s.voltage_overflow && !s.current_overflow) {
    apparent_mva = detail::to_u64_sat(
        div_round(mul(mul64(uint64_t{vp} * ip, kv_e6), ki_e6), mul64(uint64_t{v} * i, 1'000'000'000u)));
  }

  if (voltage_mv > kMaxVoltageMv || current_ua > kMaxCurrentUa || power_mw > kMaxPowerMw) {
    return Hlw8032Reject::Implausible;
  }
  // Active power can't exceed apparent power; 20 % + a margin covers measurement error.
  if (power_mw * 10 > apparent_mva * 12 + uint64_t{kPowerMarginMw} * 10) return Hlw8032Reject::Implausible;

  s.voltage_mv = static_cast<uint32_t>(voltage_mv);
  s.current_ua = static_cast<uint32_t>(current_ua);
  s.power_mw = static_cast<uint32_t>(power_mw);
  s.apparent_mva = static_cast<uint32_t>(apparent_mva);
  if (power_mw != 0 && apparent_mva != 0) {
    // PF = P / S = (Pp / P) / ((Vp / V) x (Ip / I)); Kv and Ki cancel. Exact from raw registers.
    const U128 num = mul(mul(mul64(pp, v), i), 10000u);
    const U128 den = mul(mul64(p, vp), ip);
    const U128 pf = div_round(num, den);
    s.power_factor_e4 = pf > U128(10000u) ? 10000 : static_cast<uint16_t>(pf.lo);
  }
  s.power_param = pp;
  s.voltage_param = vp;
  s.voltage_reg = s.voltage_overflow ? 0 : v;
  s.current_param = ip;
  s.current_reg = s.current_overflow ? 0 : i;
  s.power_reg = s.power_overflow ? 0 : p;
  s.data_update = f[20];
  s.pf_wrap_bit = (f[20] & kPfWrapBit) != 0;
  s.pf_count = static_cast<uint16_t>((f[21] << 8) | f[22]);
  out = s;
  return Hlw8032Reject::None;
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
  MeterSample s;
  last_reject_ = decode_frame(buf_, kv_e6_, ki_e6_, s);
  len_ = 0;
  switch (last_reject_) {
    case Hlw8032Reject::None:
      sample_ = s;
      ++stats_.frames;
      return true;
    case Hlw8032Reject::Uncalibrated:
      ++stats_.unusable;
      break;
    case Hlw8032Reject::Implausible:
      ++stats_.implausible;
      break;
  }
  return false;
}

}  // namespace pbfw
