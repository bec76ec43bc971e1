#include "plugsim/hlw8032_sim.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <pbfw/hlw8032.hpp>

namespace {

using plugsim::Hlw8032Sim;
using plugsim::Load;

constexpr uint32_t kKv = 1880000;
constexpr uint32_t kKi = 1000000;

uint32_t get24(const uint8_t* p) {
  return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
}

// Straight from the datasheet formulas, independent of the firmware decoder.
struct SpecDecoded {
  bool v_ok, i_ok, p_ok;
  double volts, amps, watts;
};

SpecDecoded spec_decode(const Hlw8032Sim::Frame& f, double kv, double ki) {
  SpecDecoded d{};
  const bool abnormal = (f[0] & 0xF0) == 0xF0;
  d.v_ok = !(abnormal && (f[0] & 0x08)) && get24(&f[5]) != 0;
  d.i_ok = !(abnormal && (f[0] & 0x04)) && get24(&f[11]) != 0;
  d.p_ok = !(abnormal && (f[0] & 0x02)) && get24(&f[17]) != 0;
  d.volts = d.v_ok ? get24(&f[2]) * kv / get24(&f[5]) : 0.0;
  d.amps = d.i_ok ? get24(&f[8]) * ki / get24(&f[11]) : 0.0;
  d.watts = d.p_ok ? get24(&f[14]) * kv * ki / get24(&f[17]) : 0.0;
  return d;
}

bool checksum_ok(const Hlw8032Sim::Frame& f) {
  unsigned sum = 0;
  for (size_t i = 2; i <= 22; ++i) sum += f[i];
  return (sum & 0xFF) == f[23];
}

TEST(Hlw8032Sim, FrameLayoutAndChecksum) {
  Hlw8032Sim sim(kKv, kKi);
  sim.set_load({230.0, 60.0, 0.95});
  const auto f = sim.next_frame();
  EXPECT_EQ(f[0], 0x55);
  EXPECT_EQ(f[1], 0x5A);
  EXPECT_EQ(get24(&f[2]), Hlw8032Sim::kVoltageParam);
  EXPECT_EQ(get24(&f[8]), Hlw8032Sim::kCurrentParam);
  EXPECT_EQ(get24(&f[14]), Hlw8032Sim::kPowerParam);
  EXPECT_EQ(f[20] & 0x70, 0x70);  // V, I, P updated
  EXPECT_TRUE(checksum_ok(f));
}

struct LoadCase {
  double volts, watts, pf;
};

class Hlw8032SimLoads : public ::testing::TestWithParam<LoadCase> {};

TEST_P(Hlw8032SimLoads, SpecFormulasRecoverTheLoadWithinHalfAPercent) {
  const auto c = GetParam();
  Hlw8032Sim sim(kKv, kKi);
  sim.set_load({c.volts, c.watts, c.pf});
  const auto f = sim.next_frame();
  ASSERT_TRUE(checksum_ok(f));
  ASSERT_EQ(f[0], 0x55);
  const auto d = spec_decode(f, kKv / 1e6, kKi / 1e6);
  const double amps = c.watts / (c.volts * c.pf);
  EXPECT_NEAR(d.volts, c.volts, c.volts * 0.005);
  EXPECT_NEAR(d.amps, amps, amps * 0.005);
  EXPECT_NEAR(d.watts, c.watts, c.watts * 0.005);
  EXPECT_NEAR(d.watts / (d.volts * d.amps), c.pf, c.pf * 0.01);
}

TEST_P(Hlw8032SimLoads, FirmwareDecoderRecoversTheLoadWithinHalfAPercent) {
  const auto c = GetParam();
  Hlw8032Sim sim(kKv, kKi);
  sim.set_load({c.volts, c.watts, c.pf});
  pbfw::MeterLimits limits;  // the plausible band around the load's own mains (110 V and 230 V cases)
  limits.nominal_voltage_mv = c.volts < 160 ? 110000 : 230000;
  pbfw::Hlw8032Decoder dec(kKv, kKi, limits);
  bool accepted = false;
  for (uint8_t b : sim.next_frame()) accepted = dec.feed(b);
  ASSERT_TRUE(accepted) << pbfw::to_string(dec.last_reject());
  const auto& s = dec.sample();
  const double amps = c.watts / (c.volts * c.pf);
  EXPECT_NEAR(s.voltage_mv / 1e3, c.volts, c.volts * 0.005);
  EXPECT_NEAR(s.current_ua / 1e6, amps, amps * 0.005);
  EXPECT_NEAR(s.power_mw / 1e3, c.watts, c.watts * 0.005);
  EXPECT_NEAR(s.apparent_mva / 1e3, c.volts * amps, c.volts * amps * 0.005);
  EXPECT_NEAR(s.power_factor_e4 / 1e4, c.pf, 0.005);
}

INSTANTIATE_TEST_SUITE_P(Loads, Hlw8032SimLoads,
                         ::testing::Values(LoadCase{230, 60, 0.95}, LoadCase{230, 1200, 0.95},
                                           LoadCase{230, 5, 0.5}, LoadCase{110, 300, 1.0},
                                           LoadCase{250, 1100, 0.8}, LoadCase{207, 20.86, 0.957}));

TEST(Hlw8032Sim, OtherCalibrationConstants) {
  Hlw8032Sim sim(1000000, 1000000);
  sim.set_load({207.03, 20.86, 0.957});
  const auto d = spec_decode(sim.next_frame(), 1.0, 1.0);
  EXPECT_NEAR(d.volts, 207.03, 207.03 * 0.005);
  EXPECT_NEAR(d.watts, 20.86, 20.86 * 0.005);
}

TEST(Hlw8032Sim, NoLoadSetsOverflowBits) {
  Hlw8032Sim sim(kKv, kKi);
  sim.set_load({230.0, 0.0, 1.0});
  const auto f = sim.next_frame();
  EXPECT_TRUE(checksum_ok(f));
  EXPECT_EQ(f[0], 0xF0 | 0x04 | 0x02);  // current and power overflow, voltage fine
  EXPECT_EQ(f[20] & 0x70, 0x40);        // only the voltage register updated
  const auto d = spec_decode(f, kKv / 1e6, kKi / 1e6);
  EXPECT_NEAR(d.volts, 230.0, 230.0 * 0.005);
  EXPECT_EQ(d.watts, 0.0);
  EXPECT_EQ(d.amps, 0.0);
}

TEST(Hlw8032Sim, NoLoadDecodesAsZeroWatts) {
  Hlw8032Sim sim(kKv, kKi);
  sim.set_load({230.0, 0.0, 1.0});
  pbfw::Hlw8032Decoder dec(kKv, kKi);
  bool accepted = false;
  for (uint8_t b : sim.next_frame()) accepted = dec.feed(b);
  ASSERT_TRUE(accepted) << pbfw::to_string(dec.last_reject());
  EXPECT_TRUE(dec.sample().power_overflow);
  EXPECT_TRUE(dec.sample().current_overflow);
  EXPECT_FALSE(dec.sample().voltage_overflow);
  EXPECT_EQ(dec.sample().power_mw, 0u);
  EXPECT_EQ(dec.sample().current_ua, 0u);
  EXPECT_NEAR(dec.sample().voltage_mv / 1e3, 230.0, 230.0 * 0.005);
}

TEST(Hlw8032Sim, NoVoltageSetsAllOverflowBits) {
  Hlw8032Sim sim(kKv, kKi);
  sim.set_load({0.0, 0.0, 1.0});
  const auto f = sim.next_frame();
  EXPECT_EQ(f[0], 0xFE);
  EXPECT_TRUE(checksum_ok(f));
}

TEST(Hlw8032Sim, PulsesOverAnHourMatchTheEnergy) {
  for (double watts : {5.0, 60.0, 1200.0}) {
    Hlw8032Sim sim(kKv, kKi);
    sim.set_load({230.0, watts, 0.95});
    uint16_t last = 0;
    uint64_t counted = 0;
    uint8_t last_update = 0;
    uint32_t toggles = 0;
    const int frames = 3600 * 1000 / Hlw8032Sim::kFramePeriodMs;
    for (int i = 0; i < frames; ++i) {
      const auto f = sim.next_frame();
      const uint16_t cnt = static_cast<uint16_t>((f[21] << 8) | f[22]);
      counted += static_cast<uint16_t>(cnt - last);  // free-running counter, modular difference
      last = cnt;
      if (i > 0 && ((f[20] ^ last_update) & 0x80)) ++toggles;
      last_update = f[20];
    }
    const double wh = counted * sim.wh_per_pulse();
    EXPECT_NEAR(wh, watts, watts * 0.001) << watts << " W";
    EXPECT_EQ(toggles, counted >> 16) << watts << " W";
    EXPECT_EQ(counted, sim.total_pulses());
  }
}

// Energy as the firmware sees it: pulses from decoded frames x energy per pulse from Pp, Kv, Ki.
TEST(Hlw8032Sim, DecodedPulsesOverAnHourMatchTheEnergy) {
  for (double watts : {60.0, 1200.0}) {
    Hlw8032Sim sim(kKv, kKi);
    sim.set_load({230.0, watts, 0.95});
    pbfw::Hlw8032Decoder dec(kKv, kKi);
    uint64_t pulses = 0;
    bool first = true;
    uint16_t last = 0;
    uint32_t accepted = 0;
    const int frames = 3600 * 1000 / Hlw8032Sim::kFramePeriodMs;
    for (int i = 0; i < frames; ++i) {
      for (uint8_t b : sim.next_frame()) {
        if (!dec.feed(b)) continue;
        ++accepted;
        const uint16_t cnt = dec.sample().pf_count;
        if (!first) pulses += static_cast<uint16_t>(cnt - last);
        first = false;
        last = cnt;
      }
    }
    EXPECT_EQ(accepted, static_cast<uint32_t>(frames));
    // The first frame's pulses precede the first reading; they are within the tolerance.
    const double wh_per_pulse = dec.sample().power_param * (kKv / 1e6) * (kKi / 1e6) / 3.6e9;
    EXPECT_NEAR(pulses * wh_per_pulse, watts, watts * 0.001) << watts << " W";
  }
}

}  // namespace
