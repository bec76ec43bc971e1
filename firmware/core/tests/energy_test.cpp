#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <pbfw/energy.hpp>

namespace pbfw {
namespace {

// Exact reference arithmetic of its own (not the code's wide_math.hpp), portable to 32-bit hosts
// such as armhf, which have no __int128: little-endian base-2^32 digits.
struct Big {
  std::array<uint32_t, 6> d{};
  explicit Big(uint64_t v = 0) {
    d[0] = static_cast<uint32_t>(v);
    d[1] = static_cast<uint32_t>(v >> 32);
  }
  Big operator*(uint32_t m) const {
    Big r;
    uint64_t carry = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const uint64_t p = uint64_t{d[i]} * m + carry;
      r.d[i] = static_cast<uint32_t>(p);
      carry = p >> 32;
    }
    EXPECT_EQ(carry, 0u) << "reference overflow";
    return r;
  }
  Big operator+(const Big& o) const {
    Big r;
    uint64_t carry = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const uint64_t s = uint64_t{d[i]} + o.d[i] + carry;
      r.d[i] = static_cast<uint32_t>(s);
      carry = s >> 32;
    }
    return r;
  }
  // floor(this / v), v < 2^62, by binary long division; the quotient must fit 64 bits.
  uint64_t operator/(uint64_t v) const {
    uint64_t rem = 0, q = 0;
    for (int i = static_cast<int>(d.size()) * 32 - 1; i >= 0; --i) {
      rem = rem * 2 + ((d[static_cast<size_t>(i) / 32] >> (i % 32)) & 1u);
      EXPECT_EQ(q >> 63, 0u) << "quotient overflow";
      q <<= 1;
      if (rem >= v) {
        rem -= v;
        q |= 1;
      }
    }
    return q;
  }
};

constexpr uint32_t kPp = 5313000;
constexpr uint32_t kKv = 1880000;
constexpr uint32_t kKi = 1000000;

// Exact reference: floor(pulses x Pp x Kv x Ki / 3.6e18) mWh.
uint64_t reference_mwh(uint64_t pulses, uint32_t pp, uint32_t kv = kKv, uint32_t ki = kKi) {
  return Big(pulses) * pp * kv * ki / EnergyCounter::kUnitsPerMwh;
}

TEST(Energy, FirstFrameOnlySetsBaseline) {
  EnergyCounter e;
  EXPECT_FALSE(e.has_baseline());
  EXPECT_EQ(e.on_frame(40000, false, kPp, kKv, kKi), 0u);
  EXPECT_TRUE(e.has_baseline());
  EXPECT_EQ(e.energy_mwh(), 0u);
  EXPECT_EQ(e.on_frame(40000, false, kPp, kKv, kKi), 0u);
  EXPECT_EQ(e.energy_mwh(), 0u);
}

TEST(Energy, ManyPulses) {
  EnergyCounter e;
  uint16_t cnt = 100;
  e.on_frame(cnt, false, kPp, kKv, kKi);
  for (int k = 0; k < 1000; ++k) {
    cnt = static_cast<uint16_t>(cnt + 10);
    EXPECT_EQ(e.on_frame(cnt, false, kPp, kKv, kKi), 10u);
  }
  // 10 000 pulses x 2.77457 mWh
  EXPECT_EQ(e.total_pulses(), 10000u);
  EXPECT_EQ(e.energy_mwh(), reference_mwh(10000, kPp));
  EXPECT_EQ(e.energy_mwh(), 27745u);
}

TEST(Energy, PulseCounterWrap) {
  EnergyCounter e;
  e.on_frame(65530, false, kPp, kKv, kKi);
  // Counter wraps past 65535 -> bit 7 toggles in the same frame.
  EXPECT_EQ(e.on_frame(5, true, kPp, kKv, kKi), 11u);
  EXPECT_EQ(e.on_frame(20, true, kPp, kKv, kKi), 15u);
  EXPECT_EQ(e.on_frame(65535, true, kPp, kKv, kKi), 65515u);
  EXPECT_EQ(e.on_frame(0, false, kPp, kKv, kKi), 1u);
  EXPECT_EQ(e.energy_mwh(), reference_mwh(11 + 15 + 65515 + 1, kPp));
}

TEST(Energy, MissedWholeTurnDetectedByWrapBit) {
  EnergyCounter e;
  e.on_frame(1000, false, kPp, kKv, kKi);
  // Same low 16 bits but bit 7 toggled: the counter went round once (65536 pulses).
  EXPECT_EQ(e.on_frame(1000, true, kPp, kKv, kKi), 65536u);
  // Delta 50 does not wrap, yet bit 7 toggled again: another whole turn plus 50.
  EXPECT_EQ(e.on_frame(1050, false, kPp, kKv, kKi), 65536u + 50u);
  EXPECT_EQ(e.energy_mwh(), reference_mwh(2 * 65536 + 50, kPp));
}

TEST(Energy, EnergyPerPulseFromEachFramesPp) {
  EnergyCounter e;
  e.on_frame(0, false, kPp, kKv, kKi);
  e.on_frame(1000, false, kPp, kKv, kKi);
  e.on_frame(2000, false, 2 * kPp, kKv, kKi);  // these 1000 pulses use the new Pp
  e.on_frame(2500, false, kPp / 2, kKv, kKi);
  const Big units =
      Big(1000) * kPp * kKv * kKi + Big(1000) * (2 * kPp) * kKv * kKi + Big(500) * (kPp / 2) * kKv * kKi;
  EXPECT_EQ(e.energy_mwh(), units / EnergyCounter::kUnitsPerMwh);
  EXPECT_EQ(e.energy_mwh(), 2774u + 5549u + 693u + 1u);  // sum of floors is 1 short of the exact total
}

TEST(Energy, SubMwhAccumulationIsExactOverAMillionFrames) {
  // One pulse per frame, ~0.28 mWh each: a per-frame rounding would lose or invent a lot.
  constexpr uint32_t pp = 531300;
  EnergyCounter e;
  uint16_t cnt = 0;
  e.on_frame(cnt, false, pp, kKv, kKi);
  bool bit = false;
  constexpr uint64_t kFrames = 1'000'000;
  for (uint64_t k = 0; k < kFrames; ++k) {
    const uint16_t next = static_cast<uint16_t>(cnt + 1);
    if (next == 0) bit = !bit;
    cnt = next;
    e.on_frame(cnt, bit, pp, kKv, kKi);
  }
  EXPECT_EQ(e.total_pulses(), kFrames);
  EXPECT_EQ(e.energy_mwh(), reference_mwh(kFrames, pp));
  EXPECT_EQ(e.energy_mwh(), 277456u);  // 1e6 x 0.27745667 mWh
}

TEST(Energy, WrapsAt10000KWh) {
  EnergyCounter e;
  e.restore(EnergyCounter::kWrapMwh - 10, 3);
  e.on_frame(0, false, kPp, kKv, kKi);
  e.on_frame(3, false, kPp, kKv, kKi);  // 8.3 mWh: not yet
  EXPECT_EQ(e.energy_mwh(), EnergyCounter::kWrapMwh - 2);
  EXPECT_EQ(e.epoch(), 3u);
  e.on_frame(10, false, kPp, kKv, kKi);  // 7 more pulses, total 10 pulses = 27.7 mWh
  EXPECT_EQ(e.epoch(), 4u);
  EXPECT_EQ(e.energy_mwh(), reference_mwh(10, kPp) - 10);
}

TEST(Energy, RestoreAndFactoryReset) {
  EnergyCounter e;
  e.restore(123456789, 7);
  EXPECT_EQ(e.energy_mwh(), 123456789u);
  EXPECT_EQ(e.epoch(), 7u);
  e.on_frame(10, false, kPp, kKv, kKi);
  e.on_frame(20, false, kPp, kKv, kKi);
  EXPECT_EQ(e.energy_mwh(), 123456789u + 27u);
  e.factory_reset();
  EXPECT_EQ(e.energy_mwh(), 0u);
  EXPECT_EQ(e.epoch(), 8u);
  // The pulse baseline survives: pulses counted before the reset are not counted again.
  EXPECT_EQ(e.on_frame(20, false, kPp, kKv, kKi), 0u);
  EXPECT_EQ(e.energy_mwh(), 0u);
  // Corrupt persisted value beyond the wrap is reduced, not trusted.
  e.restore(EnergyCounter::kWrapMwh + 5, 1);
  EXPECT_EQ(e.energy_mwh(), 5u);
}

}  // namespace
}  // namespace pbfw
