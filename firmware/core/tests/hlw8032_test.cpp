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

// The datasheet's worked example 1 and FrameRegs' defaults are a 103 V bench frame: decoded against a
// 110 V nominal mains (the socket's default band is centred on 230 V).
MeterLimits bench_limits() {
  MeterLimits l;
  l.nominal_voltage_mv = 110'000;
  return l;
}
Hlw8032Decoder bench() {
  return Hlw8032Decoder(kDefaultKvE6, kDefaultKiE6, bench_limits());
}

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
  Hlw8032Decoder d = bench();
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
  Hlw8032Decoder d = bench();
  for (int k = 0; k < 100; ++k) {
    ASSERT_EQ(feed_frame(d, kExample1), 1) << k;
  }
  EXPECT_EQ(d.stats().frames, 100u);
  EXPECT_EQ(d.stats().checksum_errors, 0u);
}

TEST(Hlw8032, UncalibratedStateRejected) {
  Hlw8032Decoder d = bench();
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
  Hlw8032Decoder d = bench();
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
  Hlw8032Decoder d = bench();
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
  Hlw8032Decoder d = bench();
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
  Hlw8032Decoder d = bench();
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
    Hlw8032Decoder d = bench();
    FrameRegs r;
    (which == 0 ? r.v : which == 1 ? r.i : r.p) = 0;
    EXPECT_EQ(feed_frame(d, build_frame(r)), 0) << which;
    EXPECT_EQ(d.last_reject(), Hlw8032Reject::Corrupt) << which;
    EXPECT_EQ(d.stats().implausible, 1u);
  }
}

TEST(Hlw8032, ZeroParameterRegisterIsUnusable) {
  for (int which = 0; which < 3; ++which) {
    Hlw8032Decoder d = bench();
    FrameRegs r;
    (which == 0 ? r.vp : which == 1 ? r.ip : r.pp) = 0;
    EXPECT_EQ(feed_frame(d, build_frame(r)), 0) << which;
    EXPECT_EQ(d.last_reject(), Hlw8032Reject::Uncalibrated) << which;
  }
}

TEST(Hlw8032, GarbagePrefixIsSkipped) {
  Hlw8032Decoder d = bench();
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
  Hlw8032Decoder d = bench();
  Hlw8032Frame bad = kExample1;
  bad[12] ^= 0x04;
  EXPECT_EQ(feed_frame(d, bad), 0);
  EXPECT_EQ(d.stats().checksum_errors, 1u);
  EXPECT_EQ(feed_frame(d, kExample1), 1);
}

TEST(Hlw8032, ParityErrorDropsTheFrame) {
  for (size_t bad = 0; bad < 24; ++bad) {
    Hlw8032Decoder d = bench();
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
    Hlw8032Reject reason;
  };
  FrameRegs high_v;
  high_v.v = 1000;                                                      // 191400 / 1000 x 1.88 = 359.8 V
  FrameRegs high_i = testing::regs_for(230000, 23000000, 2000000, 0);   // 23 A
  FrameRegs high_p = testing::regs_for(290000, 19000000, 6100000, 0);   // 6.1 kW at 5.5 kVA
  FrameRegs p_above_s = testing::regs_for(230000, 1000000, 300000, 0);  // 300 W at 230 VA
  for (const Case& c : {Case{"voltage", high_v, Hlw8032Reject::VoltageOutOfBand},
                        Case{"current", high_i, Hlw8032Reject::CurrentOverRating},
                        Case{"power", high_p, Hlw8032Reject::PowerOverApparent},
                        Case{"P > S", p_above_s, Hlw8032Reject::PowerOverApparent}}) {
    Hlw8032Decoder d;
    EXPECT_EQ(feed_frame(d, build_frame(c.regs)), 0) << c.what;
    EXPECT_EQ(d.last_reject(), c.reason) << c.what;
    EXPECT_EQ(d.stats().implausible, 1u) << c.what;
    EXPECT_EQ(d.stats().frames, 0u) << c.what;
  }
  // Just inside the P <= 1.1 S bound: accepted, PF clamped to 1.
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

// --- Data-update register (datasheet: bit 6 voltage, 5 current, 4 power refreshed; bit 7 PF carry) ---

constexpr uint8_t kUpdV = 0x40, kUpdI = 0x20, kUpdP = 0x10;

// Registers of a real load (V = Vp / V x Kv, I = Ip / I x Ki, P = Pp / P x Kv x Ki) whose data-update
// register says the chip did not refresh `stale`; the stale registers hold a period for `stale_*`.
FrameRegs stale_regs(uint8_t stale, uint32_t stale_mv, uint32_t stale_ua, uint32_t stale_mw) {
  const FrameRegs now = testing::regs_for(230000, 2000000, 400000, 0);
  const FrameRegs old = testing::regs_for(stale_mv, stale_ua, stale_mw, 0);
  FrameRegs r = now;
  if ((stale & kUpdV) != 0) r.v = old.v;
  if ((stale & kUpdI) != 0) r.i = old.i;
  if ((stale & kUpdP) != 0) r.p = old.p;
  r.update = static_cast<uint8_t>(r.update & ~stale);
  return r;
}

TEST(Hlw8032DataUpdate, PowerNotRefreshedKeepsTheLastGoodValue) {
  Hlw8032Decoder d;
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 400000, 0)), 1);
  // The power register still holds a 900 W period: the chip did not refresh it, so it is no measurement.
  ASSERT_EQ(feed_frame(d, build_frame(stale_regs(kUpdP, 230000, 2000000, 900000))), 1);
  EXPECT_NEAR(d.sample().power_mw, 400000u, 400);
  EXPECT_EQ(d.sample().refreshed, kMeterVoltage | kMeterCurrent);
  EXPECT_EQ(d.sample().valid, kMeterAll);
}

TEST(Hlw8032DataUpdate, VoltageAndCurrentNotRefreshedKeepTheirLastGoodValues) {
  Hlw8032Decoder d;
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 400000, 0)), 1);
  ASSERT_EQ(feed_frame(d, build_frame(stale_regs(kUpdV | kUpdI, 250000, 3000000, 0))), 1);
  EXPECT_NEAR(d.sample().voltage_mv, 230000u, 230);
  EXPECT_NEAR(d.sample().current_ua, 2000000u, 2000);
  EXPECT_NEAR(d.sample().apparent_mva, 460000u, 460);  // S from the held V and I
  EXPECT_EQ(d.sample().refreshed, kMeterPower);
}

TEST(Hlw8032DataUpdate, NotRefreshedWithoutHistoryHasNoValue) {
  Hlw8032Decoder d;
  // First frame after start: the power register holds a period for 900 W the chip did not refresh.
  ASSERT_EQ(feed_frame(d, build_frame(stale_regs(kUpdP, 230000, 2000000, 900000))), 1);
  EXPECT_EQ(d.sample().power_mw, 0u);
  EXPECT_EQ(d.sample().power_reg, 0u);  // not offered for calibration either
  EXPECT_EQ(d.sample().power_factor_e4, 0u);
  EXPECT_EQ(d.sample().valid, kMeterVoltage | kMeterCurrent);
}

TEST(Hlw8032DataUpdate, StaleZeroPeriodRegisterIsNotCorrupt) {
  // A zero period register is only a division by zero if the chip says it refreshed it.
  Hlw8032Decoder d;
  FrameRegs r = stale_regs(kUpdP, 230000, 2000000, 400000);
  r.p = 0;
  EXPECT_EQ(feed_frame(d, build_frame(r)), 1);
  EXPECT_EQ(d.sample().power_mw, 0u);
  EXPECT_EQ(d.sample().valid & kMeterPower, 0);
  r.update |= kUpdP;
  EXPECT_EQ(feed_frame(d, build_frame(r)), 0);
  EXPECT_EQ(d.last_reject(), Hlw8032Reject::Corrupt);
}

TEST(Hlw8032DataUpdate, HeldValueExpiresAfterHoldFrames) {
  MeterLimits limits;
  limits.hold_frames = 5;
  Hlw8032Decoder d(kDefaultKvE6, kDefaultKiE6, limits);
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 400000, 0)), 1);
  const Hlw8032Frame stale = build_frame(stale_regs(kUpdP, 230000, 2000000, 900000));
  for (int k = 0; k < 5; ++k) {
    ASSERT_EQ(feed_frame(d, stale), 1);
    EXPECT_NEAR(d.sample().power_mw, 400000u, 400) << k;
  }
  ASSERT_EQ(feed_frame(d, stale), 1);
  EXPECT_EQ(d.sample().power_mw, 0u);
  EXPECT_EQ(d.sample().valid & kMeterPower, 0);
  // The chip refreshes it again: a value again.
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 300000, 0)), 1);
  EXPECT_NEAR(d.sample().power_mw, 300000u, 300);
}

TEST(Hlw8032DataUpdate, OverflowIsAMeasuredZeroEvenWithoutTheUpdateBit) {
  // Below the chip's threshold the period register runs out: state bit 1, and power is really 0.
  Hlw8032Decoder d;
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 400000, 0)), 1);
  FrameRegs r = testing::regs_for(230000, 0, 0, 0);  // switched-off load: current and power overflow
  r.update = kUpdV;
  ASSERT_EQ(feed_frame(d, build_frame(r)), 1);
  EXPECT_EQ(d.sample().power_mw, 0u);
  EXPECT_EQ(d.sample().current_ua, 0u);
  EXPECT_EQ(d.sample().valid, kMeterAll);
  EXPECT_EQ(d.sample().refreshed, kMeterAll);
}

TEST(Hlw8032DataUpdate, ForgetDropsHeldValues) {
  Hlw8032Decoder d;
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 400000, 0)), 1);
  d.forget(kMeterCurrent | kMeterPower);
  EXPECT_EQ(d.sample().valid, kMeterVoltage);
  EXPECT_EQ(d.sample().power_mw + d.sample().current_ua + d.sample().apparent_mva, 0u);
  ASSERT_EQ(feed_frame(d, build_frame(stale_regs(kUpdP | kUpdI, 230000, 2000000, 400000))), 1);
  EXPECT_EQ(d.sample().valid, kMeterVoltage);  // nothing held to stand in
  EXPECT_EQ(d.sample().power_mw, 0u);
}

// --- Physical plausibility (frames from the datasheet formulas, Kv = 1.88, Ki = 1) ---

MeterLimits limits_for(uint32_t nominal_mv) {
  MeterLimits l;
  l.nominal_voltage_mv = nominal_mv;
  return l;
}

TEST(Hlw8032Plausibility, VoltageWithinTheBandAroundNominal) {
  // 230 V +- 30 %: 161..299 V.
  struct Case {
    uint32_t mv;
    bool accepted;
  };
  for (const Case c : {Case{230000, true}, Case{162000, true}, Case{298000, true}, Case{150000, false},
                       Case{305000, false}, Case{100000, false}}) {
    Hlw8032Decoder d;
    EXPECT_EQ(feed_frame(d, testing::frame_for(c.mv, 500000, 50000, 0)), c.accepted ? 1 : 0) << c.mv;
    EXPECT_EQ(d.last_reject(), c.accepted ? Hlw8032Reject::None : Hlw8032Reject::VoltageOutOfBand) << c.mv;
    EXPECT_EQ(d.stats().implausible, c.accepted ? 0u : 1u) << c.mv;
  }
  // The band follows the configured nominal: 120 V mains.
  Hlw8032Decoder d(kDefaultKvE6, kDefaultKiE6, limits_for(120000));
  EXPECT_EQ(feed_frame(d, testing::frame_for(120000, 500000, 50000, 0)), 1);
  EXPECT_EQ(feed_frame(d, testing::frame_for(230000, 500000, 50000, 0)), 0);
  EXPECT_EQ(d.last_reject(), Hlw8032Reject::VoltageOutOfBand);
}

TEST(Hlw8032Plausibility, NoMainsIsAStateNotAReading) {
  Hlw8032Decoder d;
  // Voltage register overflow (state bit 3): no mains. Accepted, but no voltage reading.
  ASSERT_EQ(feed_frame(d, testing::frame_for(0, 0, 0, 0)), 1);
  EXPECT_TRUE(d.sample().no_mains);
  EXPECT_EQ(d.sample().valid & kMeterVoltage, 0);
  EXPECT_EQ(d.sample().valid, kMeterCurrent | kMeterPower);  // measured zeros
  // A residual 20 V (below no_mains_below_mv): also no mains, not a 20 V reading nor a rejection.
  ASSERT_EQ(feed_frame(d, testing::frame_for(20000, 0, 0, 0)), 1);
  EXPECT_TRUE(d.sample().no_mains);
  EXPECT_EQ(d.sample().voltage_mv, 0u);
  EXPECT_EQ(d.sample().voltage_reg, 0u);
  EXPECT_EQ(d.stats().implausible, 0u);
  // Mains back.
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 0, 0, 0)), 1);
  EXPECT_FALSE(d.sample().no_mains);
  EXPECT_NEAR(d.sample().voltage_mv, 230000u, 230);
  // Power without mains is not physical.
  EXPECT_EQ(feed_frame(d, testing::frame_for(0, 1000000, 100000, 0)), 0);
  EXPECT_EQ(d.last_reject(), Hlw8032Reject::PowerOverApparent);
}

TEST(Hlw8032Plausibility, CurrentWithinTheRatingWithMargin) {
  // Default: 5 A rating + 300 % = 20 A, the highest settable current limit (a real overload must trip).
  Hlw8032Decoder d;
  EXPECT_EQ(feed_frame(d, testing::frame_for(230000, 19900000, 4000000, 0)), 1);
  EXPECT_EQ(feed_frame(d, testing::frame_for(230000, 20100000, 4000000, 0)), 0);
  EXPECT_EQ(d.last_reject(), Hlw8032Reject::CurrentOverRating);
  // A tighter configuration: 5 A + 20 % = 6 A.
  MeterLimits tight;
  tight.current_margin_pct = 20;
  Hlw8032Decoder t(kDefaultKvE6, kDefaultKiE6, tight);
  EXPECT_EQ(feed_frame(t, testing::frame_for(230000, 5900000, 1000000, 0)), 1);
  EXPECT_EQ(feed_frame(t, testing::frame_for(230000, 6500000, 1000000, 0)), 0);
  EXPECT_EQ(t.last_reject(), Hlw8032Reject::CurrentOverRating);
  EXPECT_EQ(t.stats().implausible, 1u);
}

TEST(Hlw8032Plausibility, ActivePowerAtMostApparentWithinTolerance) {
  // S = 230 V x 2 A = 460 VA; tolerance 10 % + 2 W: up to 508 W.
  Hlw8032Decoder d;
  EXPECT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 460000, 0)), 1);  // PF 1
  EXPECT_NEAR(d.sample().power_factor_e4, 10000u, 5);
  EXPECT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 500000, 0)), 1);  // PF 1.087: clamped
  EXPECT_EQ(d.sample().power_factor_e4, 10000u);
  EXPECT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 530000, 0)), 0);  // PF 1.15
  EXPECT_EQ(d.last_reject(), Hlw8032Reject::PowerOverApparent);
  // A configured tolerance of 20 % lets it through.
  MeterLimits loose;
  loose.power_tolerance_pct = 20;
  Hlw8032Decoder l(kDefaultKvE6, kDefaultKiE6, loose);
  EXPECT_EQ(feed_frame(l, testing::frame_for(230000, 2000000, 530000, 0)), 1);
}

TEST(Hlw8032Plausibility, PowerFactorStaysWithinZeroAndOne) {
  // PF = P / (V x I) from the datasheet formulas, for a spread of loads: every accepted PF is in [0, 1].
  for (uint32_t pf_pct = 5; pf_pct <= 115; pf_pct += 5) {
    Hlw8032Decoder d;
    const uint32_t p_mw = 230000u * pf_pct / 100u;  // 230 V x 1 A x PF
    const int accepted = feed_frame(d, testing::frame_for(230000, 1000000, p_mw, 0));
    EXPECT_EQ(accepted, pf_pct <= 110 ? 1 : 0) << pf_pct;
    if (accepted == 1) {
      EXPECT_LE(d.sample().power_factor_e4, 10000u) << pf_pct;
      EXPECT_NEAR(d.sample().power_factor_e4, pf_pct > 100 ? 10000u : pf_pct * 100u, 5) << pf_pct;
    } else {
      EXPECT_EQ(d.last_reject(), Hlw8032Reject::PowerOverApparent) << pf_pct;
    }
  }
}

TEST(Hlw8032Plausibility, RejectedFramesLeaveTheLastGoodSample) {
  Hlw8032Decoder d;
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 400000, 7)), 1);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(feed_frame(d, testing::frame_for(400000, 2000000, 400000, 9)), 0);
  EXPECT_EQ(d.rejects_in_a_row(), 3u);
  EXPECT_EQ(d.stats().implausible, 3u);
  EXPECT_EQ(d.sample().pf_count, 7u);
  EXPECT_NEAR(d.sample().voltage_mv, 230000u, 230);
  EXPECT_NEAR(d.decoded().voltage_mv, 400000u, 400);  // what the rejected frame said (for calibration)
  ASSERT_EQ(feed_frame(d, testing::frame_for(230000, 2000000, 400000, 9)), 1);
  EXPECT_EQ(d.rejects_in_a_row(), 0u);
}

}  // namespace
}  // namespace pbfw
