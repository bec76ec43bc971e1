// Test helper: builds valid (or deliberately broken) 24-byte HLW8032 frames.
#pragma once

#include <array>
#include <cstdint>

namespace pbfw::testing {

using Hlw8032Frame = std::array<uint8_t, 24>;

struct FrameRegs {
  uint8_t state = 0x55;
  uint32_t vp = 191400, v = 3500;  // parameter / period registers (24-bit)
  uint32_t ip = 16100, i = 56107;
  uint32_t pp = 5313000, p = 1686825;
  uint8_t update = 0x71;
  uint16_t pf_count = 0;
};

inline void put24(Hlw8032Frame& f, int at, uint32_t v) {
  f[at] = static_cast<uint8_t>(v >> 16);
  f[at + 1] = static_cast<uint8_t>(v >> 8);
  f[at + 2] = static_cast<uint8_t>(v);
}

inline void fix_checksum(Hlw8032Frame& f) {
  uint32_t sum = 0;
  for (int k = 2; k < 23; ++k) sum += f[k];
  f[23] = static_cast<uint8_t>(sum);
}

inline Hlw8032Frame build_frame(const FrameRegs& r) {
  Hlw8032Frame f{};
  f[0] = r.state;
  f[1] = 0x5A;
  put24(f, 2, r.vp);
  put24(f, 5, r.v);
  put24(f, 8, r.ip);
  put24(f, 11, r.i);
  put24(f, 14, r.pp);
  put24(f, 17, r.p);
  f[20] = r.update;
  f[21] = static_cast<uint8_t>(r.pf_count >> 8);
  f[22] = static_cast<uint8_t>(r.pf_count);
  fix_checksum(f);
  return f;
}

// Registers for a physical load with the given calibration (x1e6). 0 for a quantity sets its
// overflow bit, as the chip does when the period register runs out.
inline FrameRegs regs_for(uint32_t voltage_mv, uint32_t current_ua, uint32_t power_mw, uint16_t pf_count,
                          bool wrap_bit = false, uint32_t kv_e6 = 1880000, uint32_t ki_e6 = 1000000) {
  FrameRegs r;
  uint8_t overflow = 0;
  auto period = [](uint64_t num, uint64_t den) { return static_cast<uint32_t>((num + den / 2) / den); };
  if (voltage_mv == 0)
    overflow |= 1u << 3;
  else
    r.v = period(uint64_t{r.vp} * kv_e6, uint64_t{voltage_mv} * 1000u);
  if (current_ua == 0)
    overflow |= 1u << 2;
  else
    r.i = period(uint64_t{r.ip} * ki_e6, current_ua);
  if (power_mw == 0) {
    overflow |= 1u << 1;
  } else {
    // Pp x Kv x Ki / (P x 1e9) = mW; split to stay in 64 bits (Ki is a multiple of 1e3 in tests).
    r.p = period(uint64_t{r.pp} * kv_e6 / 1000u * (ki_e6 / 1000u), uint64_t{power_mw} * 1000u);
  }
  r.state = overflow != 0 ? static_cast<uint8_t>(0xF0 | overflow) : 0x55;
  r.update = static_cast<uint8_t>(0x70 | (wrap_bit ? 0x80 : 0));
  r.pf_count = pf_count;
  return r;
}

inline Hlw8032Frame frame_for(uint32_t voltage_mv, uint32_t current_ua, uint32_t power_mw, uint16_t pf_count,
                              bool wrap_bit = false) {
  return build_frame(regs_for(voltage_mv, current_ua, power_mw, pf_count, wrap_bit));
}

}  // namespace pbfw::testing
