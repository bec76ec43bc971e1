#include <gtest/gtest.h>

#include <cmath>
#include <pbfw/hlw8032.hpp>
#include <vector>

#include "hlw8032_frames.hpp"

namespace pbfw {
namespace {

using testing::build_frame;
using testing::FrameRegs;
using testing::Hlw8032Frame;

const Hlw8032Frame kExample1 = {0x55, 0x5A, 0x02, 0xEB, 0xA8, 0x00, 0x0D, 0xAC, 0x00, 0x3E, 0xE4, 0x00,
                                0xDB, 0x2B, 0x51, 0x11, 0xE8, 0x19, 0xBD, 0x29, 0x71, 0x00, 0xED, 0x1D};
const Hlw8032Frame kExample2 = {0x55, 0x5A, 0x02, 0xF7, 0x60, 0x00, 0x03, 0xAB, 0x00, 0x40, 0x10, 0x02,
                                0x60, 0x5D, 0x51, 0xA6, 0x58, 0x03, 0xE9, 0xEF, 0x71, 0x0B, 0x7A, 0x36};

// Feeds bytes; returns how many frames were accepted.
int feed_all(Hlw8032Decoder& d, const uint8_t* data, size_t n) {
  int accepted = 0;
  for (size_t k = 0; k < n; ++k) accepted += d.feed(data[k]) ? 1 : 0;
  return accepted;
}
int feed_frame(Hlw8032Decoder& d, const Hlw8032Frame& f) {
  return feed_all(d, f.data(), f.size());
}

void expect_within(double expected, double actual, double rel) {
  EXPECT_LE(std::fabs(actual - expected), std::fabs(expected) * rel)
      << "expected " << expected << " got " << actual;
}

TEST(Hlw8032, WorkedExample1) {
  Hlw8032Decoder d(1880000, 1000000);
  ASSERT_EQ(feed_frame(d, kExample1), 1);
  const MeterSample& s = d.sample();
  // Spec values: V = 102.809 V, I = 0.28695 A, P = 5.92144 W, S = 29.5013 VA, PF = 0.20072.
  expect_within(102809.0, s.voltage_mv, 1e-4);
  expect_within(286950.0, s.current_ua, 1e-4);
  expect_within(5921.44, s.power_mw, 1e-4);
  expect_within(29501.3, s.apparent_mva, 1e-4);
  expect_within(2007.2, s.power_factor_e4, 1e-4);
  // Exact rounding of the true quotients.
  EXPECT_EQ(s.voltage_mv, 102809u);
  EXPECT_EQ(s.current_ua, 286952u);
  EXPECT_EQ(s.power_mw, 5921u);
  EXPECT_EQ(s.apparent_mva, 29501u);
  EXPECT_EQ(s.power_factor_e4, 2007u);
  EXPECT_EQ(s.power_param, 5313000u);
  EXPECT_EQ(s.pf_count, 237u);
  EXPECT_EQ(s.data_update, 0x71u);
  EXPECT_FALSE(s.pf_wrap_bit);
  EXPECT_FALSE(s.voltage_overflow || s.current_overflow || s.power_overflow);
  EXPECT_EQ(d.stats().frames, 1u);
  EXPECT_EQ(d.stats().discarded_bytes, 0u);
}

TEST(Hlw8032, WorkedExample2) {
  Hlw8032Decoder d(1000000, 1000000);
  ASSERT_EQ(feed_frame(d, kExample2), 1);
  const MeterSample& s = d.sample();
  expect_within(207030.0, s.voltage_mv, 1e-4);
  expect_within(105300.0, s.current_ua, 1e-4);
  expect_within(20860.0, s.power_mw, 1e-4);
  EXPECT_EQ(s.voltage_mv, 207029u);
  EXPECT_EQ(s.current_ua, 105303u);
  EXPECT_EQ(s.power_mw, 20862u);
  EXPECT_EQ(s.apparent_mva, 21801u);
  EXPECT_EQ(s.power_factor_e4, 9569u);
  EXPECT_EQ(s.pf_count, 0x0B7Au);
}

TEST(Hlw8032, BackToBackFrames) {
  Hlw8032Decoder d;
  for (int k = 0; k < 100; ++k) {
    ASSERT_EQ(feed_frame(d, kExample1), 1) << k;
  }
  EXPECT_EQ(d.stats().frames, 100u);
  EXPECT_EQ(d.stats().checksum_errors, 0u);
}

TEST(Hlw8032, UncalibratedStateRejected) {
  Hlw8032Decoder d;
  FrameRegs r;
  r.state = 0xAA;
  EXPECT_EQ(feed_frame(d, build_frame(r)), 0);
  EXPECT_EQ(d.last_reject(), Hlw8032Reject::Uncalibrated);
  r.state = 0xF1;  // coefficient storage abnormal
  EXPECT_EQ(feed_frame(d, build_frame(r)), 0);
  EXPECT_EQ(d.stats().unusable, 2u);
  EXPECT_EQ(d.stats().frames, 0u);
  EXPECT_EQ(d.sample().voltage_mv, 0u);  // nothing was ever accepted
  // The decoder stays in sync: a good frame right after is accepted.
  EXPECT_EQ(feed_frame(d, kExample1), 1);
}

TEST(Hlw8032, PowerOverflowMeansNoLoad) {
  Hlw8032Decoder d;
  FrameRegs r;
  r.state = 0xF2;
  r.p = 0;  // the register is meaningless with the overflow bit: must not be divided by
  ASSERT_EQ(feed_frame(d, build_frame(r)), 1);
  const MeterSample& s = d.sample();
  EXPECT_TRUE(s.power_overflow);
  EXPECT_EQ(s.power_mw, 0u);
  EXPECT_EQ(s.power_factor_e4, 0u);
  EXPECT_EQ(s.voltage_mv, 102809u);
  EXPECT_EQ(s.current_ua, 286952u);
  EXPECT_EQ(s.apparent_mva, 29501u);
}

TEST(Hlw8032, CurrentOverflowReportsZeroCurrent) {
  Hlw8032Decoder d;
  FrameRegs r;
  r.state = 0xF6;  // current + power overflow
  r.i = 1;         // would compute 16.1 A if used
  r.p = 1;
  ASSERT_EQ(feed_frame(d, build_frame(r)), 1);
  const MeterSample& s = d.sample();
  EXPECT_TRUE(s.current_overflow);
  EXPECT_EQ(s.current_ua, 0u);
  EXPECT_EQ(s.power_mw, 0u);
  EXPECT_EQ(s.apparent_mva, 0u);
  EXPECT_EQ(s.power_factor_e4, 0u);
  EXPECT_EQ(s.voltage_mv, 102809u);
}

TEST(Hlw8032, CurrentOverflowWithSmallPowerKeepsPower) {
  Hlw8032Decoder d;
  FrameRegs r = testing::regs_for(230000, 0, 1000, 0);  // 1 W, current too small to measure
  ASSERT_EQ(r.state, 0xF4);
  ASSERT_EQ(feed_frame(d, build_frame(r)), 1);
  EXPECT_EQ(d.sample().current_ua, 0u);
  EXPECT_NEAR(d.sample().power_mw, 1000u, 1);
  EXPECT_EQ(d.sample().apparent_mva, 0u);
}

TEST(Hlw8032, VoltageOverflowReportsZeroVoltage) {
  Hlw8032Decoder d;
  FrameRegs r;
  r.state = 0xFA;  // voltage + power overflow
  r.v = 0;
  ASSERT_EQ(feed_frame(d, build_frame(r)), 1);
  EXPECT_TRUE(d.sample().voltage_overflow);
  EXPECT_EQ(d.sample().voltage_mv, 0u);
  EXPECT_EQ(d.sample().apparent_mva, 0u);
  EXPECT_EQ(d.sample().current_ua, 286952u);
}

TEST(Hlw8032, AllOverflowAllZero) {
  Hlw8032Decoder d;
  FrameRegs r;
  r.state = 0xFE;
  r.v = r.i = r.p = 0;
  ASSERT_EQ(feed_frame(d, build_frame(r)), 1);
  const MeterSample& s = d.sample();
  EXPECT_EQ(s.voltage_mv + s.current_ua + s.power_mw + s.apparent_mva + s.power_factor_e4, 0u);
  EXPECT_EQ(s.power_param, 5313000u);  // still usable for energy
}

TEST(Hlw8032, ZeroPeriodRegisterWithoutOverflowIsRejected) {
  for (int which = 0; which < 3; ++which) {
    Hlw8032Decoder d;
    FrameRegs r;
    (which == 0 ? r.v : which == 1 ? r.i : r.p) = 0;
    EXPECT_EQ(feed_frame(d, build_frame(r)), 0) << which;
    EXPECT_EQ(d.last_reject(), Hlw8032Reject::Implausible) << which;
    EXPECT_EQ(d.stats().implausible, 1u);
  }
}

TEST(Hlw8032, ZeroParameterRegisterIsUnusable) {
  for (int which = 0; which < 3; ++which) {
    Hlw8032Decoder d;
    FrameRegs r;
    (which == 0 ? r.vp : which == 1 ? r.ip : r.pp) = 0;
    EXPECT_EQ(feed_frame(d, build_frame(r)), 0) << which;
    EXPECT_EQ(d.last_reject(), Hlw8032Reject::Uncalibrated) << which;
  }
}

TEST(Hlw8032, GarbagePrefixIsSkipped) {
  Hlw8032Decoder d;
  // Garbage including false starts (state byte + 0x5A) that fail the checksum.
  std::vector<uint8_t> bytes = {0x00, 0x13, 0x5A, 0x55, 0x5A, 0x01, 0x02, 0xAA, 0x00, 0xF2, 0x5A, 0x99, 0x55};
  for (int k = 0; k < 30; ++k) bytes.push_back(static_cast<uint8_t>(k * 37));
  bytes.insert(bytes.end(), kExample1.begin(), kExample1.end());
  bytes.insert(bytes.end(), kExample1.begin(), kExample1.end());
  EXPECT_EQ(feed_all(d, bytes.data(), bytes.size()), 2);
  EXPECT_EQ(d.sample().voltage_mv, 102809u);
  EXPECT_GT(d.stats().discarded_bytes, 0u);
}

TEST(Hlw8032, DroppedByteLosesOnlyThatFrame) {
  for (size_t drop = 0; drop < 24; ++drop) {
    Hlw8032Decoder d(1000000, 1000000);  // both examples are plausible with Kv = 1
    std::vector<uint8_t> bytes(kExample1.begin(), kExample1.end());
    bytes.erase(bytes.begin() + static_cast<long>(drop));
    bytes.insert(bytes.end(), kExample2.begin(), kExample2.end());
    bytes.insert(bytes.end(), kExample2.begin(), kExample2.end());
    EXPECT_EQ(feed_all(d, bytes.data(), bytes.size()), 2) << "dropped byte " << drop;
    EXPECT_EQ(d.sample().pf_count, 0x0B7Au);
  }
}

TEST(Hlw8032, CorruptedChecksumRejected) {
  Hlw8032Decoder d;
  Hlw8032Frame bad = kExample1;
  bad[12] ^= 0x04;
  EXPECT_EQ(feed_frame(d, bad), 0);
  EXPECT_EQ(d.stats().checksum_errors, 1u);
  EXPECT_EQ(feed_frame(d, kExample1), 1);
}

TEST(Hlw8032, ParityErrorDropsTheFrame) {
  for (size_t bad = 0; bad < 24; ++bad) {
    Hlw8032Decoder d;
    int accepted = 0;
    for (size_t k = 0; k < 24; ++k) accepted += d.feed(kExample1[k], k == bad) ? 1 : 0;
    EXPECT_EQ(accepted, 0) << bad;
    EXPECT_EQ(d.stats().byte_errors, 1u);
    EXPECT_EQ(feed_frame(d, kExample1), 1) << "resync after error at " << bad;
  }
}

TEST(Hlw8032, ImplausibleValuesRejected) {
  struct Case {
    const char* what;
    FrameRegs regs;
  };
  FrameRegs high_v;
  high_v.v = 1000;  // 191400 / 1000 x 1.88 = 359.8 V
  FrameRegs high_i;
  high_i.i = 700;                                                       // 23 A
  FrameRegs high_p = testing::regs_for(290000, 19000000, 6100000, 0);   // 6.1 kW
  FrameRegs p_above_s = testing::regs_for(230000, 1000000, 300000, 0);  // 300 W at 230 VA
  for (const Case& c : {Case{"voltage", high_v}, Case{"current", high_i}, Case{"power", high_p},
                        Case{"P > 1.2 S", p_above_s}}) {
    Hlw8032Decoder d;
    EXPECT_EQ(feed_frame(d, build_frame(c.regs)), 0) << c.what;
    EXPECT_EQ(d.last_reject(), Hlw8032Reject::Implausible) << c.what;
    EXPECT_EQ(d.stats().implausible, 1u) << c.what;
    EXPECT_EQ(d.stats().frames, 0u) << c.what;
  }
  // Just inside the P <= 1.2 S bound: accepted, PF clamped to 1.
  Hlw8032Decoder d;
  EXPECT_EQ(feed_frame(d, testing::frame_for(230000, 1000000, 250000, 0)), 1);
  EXPECT_EQ(d.sample().power_factor_e4, 10000u);
}

TEST(Hlw8032, PhysicalLoadRoundTrip) {
  Hlw8032Decoder d;
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 4347826, 1000000, 42, true)), 1);
  expect_within(230000, d.sample().voltage_mv, 1e-3);
  expect_within(4347826, d.sample().current_ua, 1e-3);
  expect_within(1000000, d.sample().power_mw, 1e-3);
  EXPECT_NEAR(d.sample().power_factor_e4, 10000, 10);
  EXPECT_TRUE(d.sample().pf_wrap_bit);
  EXPECT_EQ(d.sample().pf_count, 42u);
}

}  // namespace
}  // namespace pbfw
