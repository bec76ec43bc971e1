// The socket core on meter frames the chip did not refresh, frames without mains and runs of implausible
// frames: what the readings and events say. Frames from the datasheet formulas (hlw8032_frames.hpp).
#include "socket_rig.hpp"

namespace pbfw {
namespace {

using core_test::count_events;
using core_test::Rig;

constexpr uint8_t kUpdPower = 0x10;

TEST(SocketMeter, SwitchedOffLoadShowsNoPhantomPower) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  const testing::FrameRegs load = testing::regs_for(230000, 2000000, 400000, 0);
  rig.command(1, proto::CommandKind::SetRelay, 1);
  rig.run(1000, &load, 1);
  ASSERT_NEAR(rig.readings().back().power_mw, 400000u, 400);
  rig.command(2, proto::CommandKind::SetRelay, 0);
  // The chip has not refreshed the power register yet: it still holds the 400 W period.
  testing::FrameRegs after = load;
  after.update = static_cast<uint8_t>(after.update & ~kUpdPower);
  rig.run(1000, &after);
  const proto::Reading r = rig.readings().back();
  EXPECT_EQ(r.flags & proto::kRelayOn, 0);
  EXPECT_EQ(r.power_mw, 0u);
  EXPECT_EQ(r.flags & proto::kPowerValid, 0);
  EXPECT_NE(r.flags & proto::kMeterOk, 0);
  // Below its threshold the chip reports overflow: a measured 0 W, valid again.
  const testing::FrameRegs off = testing::regs_for(230000, 0, 0, 0);
  rig.run(1000, &off);
  EXPECT_NE(rig.readings().back().flags & proto::kPowerValid, 0);
  EXPECT_EQ(rig.readings().back().power_mw, 0u);
}

TEST(SocketMeter, NoMainsIsAStateInTheReading) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  const testing::FrameRegs no_mains = testing::regs_for(0, 0, 0, 0);  // voltage register overflow
  rig.run(2000, &no_mains);
  const proto::Reading r = rig.readings().back();
  EXPECT_EQ(r.flags & (proto::kMeterOk | proto::kNoMains | proto::kVoltageValid),
            proto::kMeterOk | proto::kNoMains);
  EXPECT_EQ(r.voltage_mv, 0u);
  EXPECT_TRUE(rig.core->meter_ok());
  EXPECT_EQ(count_events(rig, proto::EventType::MeterLost), 0);
  rig.run(1000, &core_test::kLoad100W);
  EXPECT_EQ(rig.readings().back().flags & proto::kNoMains, 0);
  EXPECT_NE(rig.readings().back().flags & proto::kVoltageValid, 0);
}

TEST(SocketMeter, RunOfImplausibleFramesRaisesOneMeterFault) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  rig.run(500, &core_test::kLoad100W);
  const testing::FrameRegs bad = testing::regs_for(400000, 500000, 100000, 0);  // 400 V: out of the band
  const uint32_t after = rig.cfg.meter.fault_after_rejects;
  for (uint32_t k = 0; k + 1 < after; ++k) rig.feed(testing::build_frame(bad));
  rig.core->tick();
  EXPECT_EQ(count_events(rig, proto::EventType::MeterLost), 0);  // isolated rejections are only counted
  EXPECT_EQ(rig.core->meter().stats().implausible, after - 1);
  rig.run(2000, &bad);  // the run goes on: one event, not one per frame
  EXPECT_EQ(count_events(rig, proto::EventType::MeterLost), 1);
  for (const auto& e : rig.events()) {
    if (e.type == proto::EventType::MeterLost) {
      EXPECT_EQ(e.value, int32_t{3});  // VoltageOutOfBand
    }
  }
  EXPECT_FALSE(rig.core->meter_ok());
  EXPECT_EQ(rig.readings().back().flags & proto::kMeterOk, 0);
  rig.run(3000, &bad);  // nor a second one from the watchdog
  EXPECT_EQ(count_events(rig, proto::EventType::MeterLost), 1);
  rig.run(200, &core_test::kLoad100W);
  EXPECT_EQ(count_events(rig, proto::EventType::MeterRestored), 1);
  EXPECT_TRUE(rig.core->meter_ok());
  rig.run(2000, &bad);  // a new run: a new event
  EXPECT_EQ(count_events(rig, proto::EventType::MeterLost), 2);
}

TEST(SocketMeter, CalibratesFromFramesTheWrongConstantMakesImplausible) {
  Rig rig;
  rig.power_on();
  rig.session_up();
  // The board's true Kv is 1.2: with the default 1.88 the mains reads 360 V, out of the band.
  constexpr uint32_t kTrueKv = 1'200'000;
  const testing::FrameRegs load = testing::regs_for(230000, 1000000, 200000, 0, false, kTrueKv, kDefaultKiE6);
  rig.run(500, &load, 1);
  EXPECT_EQ(rig.core->meter().last_reject(), Hlw8032Reject::VoltageOutOfBand);
  rig.command(1, proto::CommandKind::CalibrateVoltage, 230000);
  EXPECT_EQ(rig.results().back().status, proto::CommandStatus::Ok);
  EXPECT_NEAR(rig.core->kv_e6(), kTrueKv, kTrueKv / 2000);
  rig.run(500, &load, 1);
  EXPECT_TRUE(rig.core->meter_ok());
  EXPECT_NEAR(rig.readings().back().voltage_mv, 230000u, 230);
}

TEST(SocketMeter, EnergyCountsPulsesAcrossThePfCounterWrap) {
  // Datasheet: bit 7 of the data-update register toggles at each wrap of the 16-bit PF counter.
  Rig rig;
  rig.power_on();
  testing::FrameRegs r = testing::regs_for(230000, 2000000, 400000, 65000);
  rig.feed(testing::build_frame(r));                          // baseline
  r = testing::regs_for(230000, 2000000, 400000, 100, true);  // 636 pulses later, wrapped once
  rig.feed(testing::build_frame(r));
  EXPECT_EQ(rig.core->energy().total_pulses(), 636u);
  // A frame the plausibility rules reject counts nothing; the next accepted one gets its pulses.
  r = testing::regs_for(400000, 2000000, 400000, 200, true);
  rig.feed(testing::build_frame(r));
  EXPECT_EQ(rig.core->energy().total_pulses(), 636u);
  r = testing::regs_for(230000, 2000000, 400000, 300, true);
  rig.feed(testing::build_frame(r));
  EXPECT_EQ(rig.core->energy().total_pulses(), 836u);
}

}  // namespace
}  // namespace pbfw
