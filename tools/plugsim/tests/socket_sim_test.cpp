// The firmware core driven by the simulated HLW8032 (energy over a day), `plugsim decode`, and the
// state file's settings.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pbfw/socket_core.hpp>
#include <vector>

#include "plugsim/decode.hpp"
#include "plugsim/hlw8032_sim.hpp"
#include "plugsim/host_hal.hpp"

namespace {

class ClockHal final : public pbfw::Hal {
 public:
  uint64_t now_ms() override { return now; }
  void set_relay(bool on) override { relay = on; }
  void set_led(uint8_t, uint8_t, uint8_t) override {}
  uint64_t now = 0;
  bool relay = false;
};

class NullStorage final : public pbfw::Storage {
 public:
  bool load(pbfw::PersistentState&) override { return false; }
  void save(const pbfw::PersistentState&) override { ++saves; }
  int saves = 0;
};

class OfflineTransport final : public pbfw::LanTransport {  // never connected: records stay buffered
 public:
  bool send(const uint8_t*, size_t) override { return false; }
  void close() override {}
};

// A household day: standby, a fridge cycling, a dimmer ramp, a heater, a TV with a wobble, off periods.
double day_profile_watts(uint64_t t_ms) {
  const double h = static_cast<double>(t_ms) / 3.6e6;
  double w = 1.5;                                                           // standby
  if (std::fmod(h * 60.0, 40.0) < 15.0) w += 120.0;                         // fridge: 15 of 40 min
  if (h >= 6.0 && h < 7.0) w += 1000.0 * (h - 6.0);                         // ramp 0..1000 W
  if (h >= 7.0 && h < 7.5) w += 1050.0;                                     // heater
  if (h >= 18.0 && h < 23.0) w += 80.0 + 40.0 * std::sin(t_ms / 7000.0);    // TV, varying
  if (h >= 12.0 && h < 12.25) w = 0.0;                                      // unplugged
  if (h >= 13.0 && h < 14.0) w = 700.0 + 300.0 * std::sin(t_ms / 60000.0);  // washing machine
  return w;
}

TEST(EnergyIntegral, CoreCounterMatchesTheExactIntegralOverADay) {
  ClockHal hal;
  hal.now = 1;
  NullStorage storage;
  OfflineTransport transport;
  pbfw::SocketConfig cfg{};
  cfg.cid = "energy-day";
  cfg.fw_version = "test";
  cfg.current_limit_ma = 20000;  // the heater must not trip
  std::vector<pbfw::Record> records(16);
  pbfw::SocketCore core(hal, storage, transport, cfg, records.data(), records.size());
  core.boot();
  core.set_relay(true, pbfw::proto::Cause::Command);

  plugsim::Hlw8032Sim sim(cfg.kv_e6, cfg.ki_e6);
  constexpr uint64_t kDayMs = 24ull * 3600 * 1000;
  constexpr uint32_t kFrameMs = plugsim::Hlw8032Sim::kFramePeriodMs;
  double exact_mwh = 0.0;  // exact integral of the piecewise-constant simulated power
  bool first = true;
  for (uint64_t t = 0; t < kDayMs; t += kFrameMs) {
    const double w = day_profile_watts(t);
    sim.set_load({230.0, w, 0.95});
    const auto frame = sim.next_frame(kFrameMs);
    // The first frame only sets the core's pulse baseline: energy counts from there.
    if (!first) exact_mwh += w * kFrameMs / 3600.0;
    first = false;
    hal.now += kFrameMs;
    for (uint8_t b : frame) core.on_meter_byte(b, false);
    core.tick();
  }
  ASSERT_TRUE(core.relay_on());
  ASSERT_TRUE(core.meter_ok());
  const double counted = static_cast<double>(core.energy().energy_mwh());
  EXPECT_GT(exact_mwh, 2.0e6);  // a few kWh: a meaningful day
  EXPECT_NEAR(counted, exact_mwh, exact_mwh * 0.001) << "counted " << counted << " exact " << exact_mwh;
  // The remaining error is the pulse quantisation: under two pulses.
  EXPECT_LT(std::fabs(counted - exact_mwh), 2 * sim.wh_per_pulse() * 1000.0 + 1.0);
}

// The spec's worked examples (hlw8032.md).
const char* kExample1 = "55 5A 02 EB A8 00 0D AC 00 3E E4 00 DB 2B 51 11 E8 19 BD 29 71 00 ED 1D";
const char* kExample2 = "555A02F76000 03AB00401002605D51A65803E9EF710B7A36";

TEST(PlugsimDecode, WorkedExamplesAsJson) {
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(plugsim::parse_hex_bytes(kExample1, bytes));
  ASSERT_EQ(bytes.size(), 24u);
  pbfw::MeterLimits bench;  // example 1 is a 103 V bench frame
  bench.nominal_voltage_mv = 110000;
  auto j = nlohmann::json::parse(plugsim::decode_frame_json(bytes.data(), 1880000, 1000000, bench));
  EXPECT_TRUE(j["accepted"].get<bool>());
  EXPECT_TRUE(j["checksum_ok"].get<bool>());
  EXPECT_NEAR(j["voltage_v"].get<double>(), 102.809, 0.001);
  EXPECT_NEAR(j["current_a"].get<double>(), 0.28695, 0.00001);
  EXPECT_NEAR(j["power_w"].get<double>(), 5.92144, 0.001);
  EXPECT_NEAR(j["apparent_va"].get<double>(), 29.5013, 0.001);
  EXPECT_NEAR(j["power_factor"].get<double>(), 0.2007, 0.0001);
  EXPECT_EQ(j["registers"]["vp"].get<uint32_t>(), 0x02EBA8u);
  EXPECT_EQ(j["registers"]["pf_count"].get<uint32_t>(), 0x00EDu);

  ASSERT_TRUE(plugsim::parse_hex_bytes(kExample2, bytes));
  j = nlohmann::json::parse(plugsim::decode_frame_json(bytes.data(), 1000000, 1000000));
  EXPECT_NEAR(j["voltage_v"].get<double>(), 207.03, 0.01);
  EXPECT_NEAR(j["current_a"].get<double>(), 0.1053, 0.0001);
  EXPECT_NEAR(j["power_w"].get<double>(), 20.86, 0.01);
  EXPECT_DOUBLE_EQ(j["kv"].get<double>(), 1.0);

  bytes[23] ^= 1;  // bad checksum: registers still shown, no values
  j = nlohmann::json::parse(plugsim::decode_frame_json(bytes.data(), 1000000, 1000000));
  EXPECT_FALSE(j["accepted"].get<bool>());
  EXPECT_EQ(j["reject"], "checksum");
  EXPECT_FALSE(j.contains("voltage_v"));

  bytes[0] = 0xAA;  // calibration failed
  bytes[23] ^= 1;
  uint32_t sum = 0;
  for (int k = 2; k < 23; ++k) sum += bytes[k];
  bytes[23] = static_cast<uint8_t>(sum);
  j = nlohmann::json::parse(plugsim::decode_frame_json(bytes.data(), 1000000, 1000000));
  EXPECT_EQ(j["reject"], "uncalibrated");

  EXPECT_FALSE(plugsim::parse_hex_bytes("55 5G", bytes));
  EXPECT_FALSE(plugsim::parse_hex_bytes("555", bytes));
  ASSERT_TRUE(plugsim::parse_hex_bytes("0x55,0x5a", bytes));
  EXPECT_EQ(bytes, (std::vector<uint8_t>{0x55, 0x5A}));
}

// Frames from the datasheet formulas (V = Vp / V x Kv, I = Ip / I x Ki, P = Pp / P x Kv x Ki), Kv = Ki = 1.
std::vector<uint8_t> spec_frame(double volts, double amps, double watts, uint8_t update) {
  const uint32_t vp = 200000, ip = 20000, pp = 5000000;
  const auto v = static_cast<uint32_t>(vp / volts + 0.5);
  const auto i = static_cast<uint32_t>(ip / amps + 0.5);
  const auto p = static_cast<uint32_t>(pp / watts + 0.5);
  std::vector<uint8_t> f = {0x55, 0x5A};
  for (uint32_t x : {vp, v, ip, i, pp, p}) {
    f.push_back(static_cast<uint8_t>(x >> 16));
    f.push_back(static_cast<uint8_t>(x >> 8));
    f.push_back(static_cast<uint8_t>(x));
  }
  f.push_back(update);
  f.push_back(0);
  f.push_back(0);
  uint32_t sum = 0;
  for (size_t k = 2; k < 23; ++k) sum += f[k];
  f.push_back(static_cast<uint8_t>(sum));
  return f;
}

TEST(PlugsimDecode, VerdictReasonAndRefreshedQuantities) {
  auto decode = [](const std::vector<uint8_t>& f) {
    return nlohmann::json::parse(plugsim::decode_frame_json(f.data(), 1000000, 1000000));
  };
  auto j = decode(spec_frame(230, 2, 400, 0x70));
  EXPECT_EQ(j["verdict"], "accepted");
  EXPECT_FALSE(j.contains("reject"));
  EXPECT_TRUE(j["refreshed"]["voltage"].get<bool>() && j["refreshed"]["current"].get<bool>() &&
              j["refreshed"]["power"].get<bool>());
  EXPECT_FALSE(j["no_mains"].get<bool>());
  EXPECT_NEAR(j["power_w"].get<double>(), 400.0, 0.1);

  j = decode(spec_frame(230, 2, 400, 0x60));  // power not refreshed: no power value from this frame
  EXPECT_EQ(j["verdict"], "accepted");
  EXPECT_FALSE(j["refreshed"]["power"].get<bool>());
  EXPECT_FALSE(j["updated"]["power"].get<bool>());
  EXPECT_TRUE(j["power_w"].is_null());

  j = decode(spec_frame(400, 2, 400, 0x70));
  EXPECT_EQ(j["verdict"], "rejected");
  EXPECT_EQ(j["reject"], "voltage_out_of_band");
  EXPECT_NEAR(j["voltage_v"].get<double>(), 400.0, 0.1);  // shown: it is why

  j = decode(spec_frame(230, 25, 400, 0x70));
  EXPECT_EQ(j["reject"], "current_over_rating");
  j = decode(spec_frame(230, 1, 300, 0x70));  // 300 W at 230 VA: PF 1.3
  EXPECT_EQ(j["reject"], "power_over_apparent");
  j = decode(spec_frame(20, 1, 1, 0x70));  // 20 V: no mains, not a reading
  EXPECT_EQ(j["verdict"], "accepted");
  EXPECT_TRUE(j["no_mains"].get<bool>());
  EXPECT_TRUE(j["voltage_v"].is_null());
}

TEST(PlugsimStorage, SettingsRoundTripAndVersion1Files) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("plugsim-settings-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  plugsim::FileStorage st(dir / "a.state");
  pbfw::PersistentState w{};
  w.boot_counter = 7;
  w.energy_mwh = 99;
  w.relay_on = 0;
  w.tripped = 1;
  w.switch_count = 1234;
  w.has_settings = 1;
  w.current_limit_ma = 3000;
  w.over_current_duration_ms = 2000;
  w.power_limit_w = 900;
  w.voltage_max_v = 250;
  w.voltage_min_v = 190;
  w.kv_e6 = 2050000;
  w.ki_e6 = 1120000;
  st.save(w);
  pbfw::PersistentState r{};
  ASSERT_TRUE(st.load(r));
  EXPECT_EQ(r.tripped, 1);
  EXPECT_EQ(r.switch_count, 1234u);
  EXPECT_EQ(r.has_settings, 1);
  EXPECT_EQ(r.current_limit_ma, 3000u);
  EXPECT_EQ(r.over_current_duration_ms, 2000u);
  EXPECT_EQ(r.power_limit_w, 900u);
  EXPECT_EQ(r.voltage_max_v, 250);
  EXPECT_EQ(r.voltage_min_v, 190);
  EXPECT_EQ(r.kv_e6, 2050000u);
  EXPECT_EQ(r.ki_e6, 1120000u);

  { std::ofstream(dir / "a.state") << "plugsim-state 1 41 500 2 1\n"; }
  ASSERT_TRUE(st.load(r));
  EXPECT_EQ(r.boot_counter, 41u);
  EXPECT_EQ(r.energy_mwh, 500u);
  EXPECT_EQ(r.relay_on, 1);
  EXPECT_EQ(r.has_settings, 0);  // the core falls back to its configured defaults
  { std::ofstream(dir / "a.state") << "plugsim-state 2 41 500 2 1 0 5\n"; }  // truncated
  EXPECT_FALSE(st.load(r));
  std::filesystem::remove_all(dir);
}

}  // namespace
