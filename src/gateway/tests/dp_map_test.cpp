#include "plugbridge/gateway/dp_map.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "plugbridge/tuya/dp.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::gateway {
namespace {

namespace proto = pbfw::proto;
using json = nlohmann::json;
using Action = DpCommandPlan::Action;

const DpCommandContext kOnline{.online = true, .switch_enabled = true};
const DpCommandContext kOffline{.online = false, .switch_enabled = true};
const DpCommandContext kDisabled{.online = true, .switch_enabled = false};

// One accepted DP: values that must pass (with the socket command they become) and values that
// must fail with a given code.
struct GoodCase {
  json value;
  proto::CommandKind kind;
  int32_t socket_value;
};
struct BadCase {
  json value;
  int code;
};
struct AcceptedDp {
  int dp;
  std::vector<GoodCase> good;
  std::vector<BadCase> bad;
};

const std::vector<BadCase> kNotABool = {
    {json(2), tuya::code::kType},   {json("yes"), tuya::code::kType}, {json(nullptr), tuya::code::kType},
    {json(1.5), tuya::code::kType}, {json("2"), tuya::code::kType},   {json::array(), tuya::code::kType}};

std::vector<AcceptedDp> accepted_matrix() {
  using K = proto::CommandKind;
  std::vector<AcceptedDp> m;
  for (int dp : {1, 57}) {
    m.push_back({dp,
                 {{true, K::SetRelay, 1},
                  {false, K::SetRelay, 0},
                  {1, K::SetRelay, 1},
                  {0, K::SetRelay, 0},
                  {"1", K::SetRelay, 1},
                  {"0", K::SetRelay, 0},
                  {"true", K::SetRelay, 1},
                  {"FALSE", K::SetRelay, 0}},
                 kNotABool});
  }
  m.push_back({6,
               {{10000, K::SetCurrentLimit, 1000},
                {"160000", K::SetCurrentLimit, 16000},
                {1000, K::SetCurrentLimit, 100}},
               {{999, tuya::code::kRange},
                {200010, tuya::code::kRange},
                {-1, tuya::code::kRange},
                {"1.5", tuya::code::kType},
                {true, tuya::code::kType},
                {1.5, tuya::code::kType}}});
  m.push_back({18,
               {{0, K::SetOverCurrentDuration, 0},
                {150, K::SetOverCurrentDuration, 1500},  // 1.50 s
                {"60000", K::SetOverCurrentDuration, 600000}},
               {{60001, tuya::code::kRange},
                {-5, tuya::code::kRange},
                {int64_t{1000000001}, tuya::code::kRange},
                {"abc", tuya::code::kType},
                {json::object(), tuya::code::kType}}});
  m.push_back(
      {48,
       {{0, K::SetPowerLimit, 0}, {20000000, K::SetPowerLimit, 2000}, {"60000000", K::SetPowerLimit, 6000}},
       {{60010000, tuya::code::kRange}, {-1, tuya::code::kRange}, {"+5", tuya::code::kType}}});
  m.push_back(
      {11,
       {{0, K::SetVoltageMin, 0}, {1800000, K::SetVoltageMin, 180}, {"3000000", K::SetVoltageMin, 300}},
       {{3010000, tuya::code::kRange}, {-1, tuya::code::kRange}, {false, tuya::code::kType}}});
  m.push_back({12,
               {{2530000, K::SetVoltageMax, 253}, {3000000, K::SetVoltageMax, 300}},
               {{3010000, tuya::code::kRange}, {" 1", tuya::code::kType}}});
  return m;
}

TEST(DpCommandMatrix, AcceptedDpsGoodValuesBecomeSocketCommandsOnlineAndOfflineIs2001) {
  for (const auto& row : accepted_matrix()) {
    for (const auto& g : row.good) {
      SCOPED_TRACE("DP " + std::to_string(row.dp) + " value " + g.value.dump());
      auto p = plan_dp_command(row.dp, g.value, kOnline);
      ASSERT_EQ(p.action, Action::Socket) << p.why;
      EXPECT_EQ(p.command.kind, g.kind);
      EXPECT_EQ(p.command.value, g.socket_value);
      auto off = plan_dp_command(row.dp, g.value, kOffline);
      EXPECT_EQ(off.action, Action::Reject);
      EXPECT_EQ(off.code, tuya::code::kOffline);
    }
  }
}

TEST(DpCommandMatrix, AcceptedDpsBadValuesAreRejectedWithTheSameCodeOnlineOrOffline) {
  for (const auto& row : accepted_matrix()) {
    for (const auto& b : row.bad) {
      for (const auto* ctx : {&kOnline, &kOffline}) {
        SCOPED_TRACE("DP " + std::to_string(row.dp) + " value " + b.value.dump() +
                     (ctx->online ? " online" : " offline"));
        auto p = plan_dp_command(row.dp, b.value, *ctx);
        EXPECT_EQ(p.action, Action::Reject);
        EXPECT_EQ(p.code, b.code) << p.why;
        EXPECT_FALSE(p.why.empty());
      }
    }
  }
}

TEST(DpCommandMatrix, EveryOtherTableDpAndUnknownIdsAre2002InEveryState) {
  std::set<int> accepted{1, 6, 9, 11, 12, 17, 18, 48, 57};
  std::vector<int> ids;
  for (const auto& d : tuya::all_dps())
    if (!accepted.count(d.id)) ids.push_back(d.id);
  for (int unknown : {0, 4, 22, 29, 60, 255, -1}) ids.push_back(unknown);
  for (int dp : ids) {
    for (const json& v : {json(true), json(1), json("1"), json(1000000)}) {
      for (const auto* ctx : {&kOnline, &kOffline, &kDisabled}) {
        SCOPED_TRACE("DP " + std::to_string(dp) + " value " + v.dump());
        auto p = plan_dp_command(dp, v, *ctx);
        EXPECT_EQ(p.action, Action::Reject);
        EXPECT_EQ(p.code, tuya::code::kUnsupported) << p.why;
      }
    }
  }
}

TEST(DpCommandMatrix, ReadOnlyDpsSayReadOnly) {
  for (const auto& d : tuya::all_dps()) {
    if (d.access != 'r') continue;
    auto p = plan_dp_command(d.id, json(1), kOnline);
    EXPECT_EQ(p.code, tuya::code::kUnsupported);
    EXPECT_NE(p.why.find("read-only"), std::string::npos) << p.why;
  }
}

TEST(DpCommandMatrix, SwitchEnabledGoesToTheSocketThatKeepsIt) {
  const DpCommandContext lock{.online = true, .switch_enabled = true, .switch_lock_in_socket = true};
  const DpCommandContext locked{.online = true, .switch_enabled = false, .switch_lock_in_socket = true};
  for (const auto* ctx : {&lock, &locked}) {
    auto p = plan_dp_command(17, json("false"), *ctx);
    ASSERT_EQ(p.action, Action::Socket);
    EXPECT_EQ(p.command.kind, proto::CommandKind::SetSwitchEnabled);
    EXPECT_EQ(p.command.value, 0);
    p = plan_dp_command(17, json(1), *ctx);
    ASSERT_EQ(p.action, Action::Socket);
    EXPECT_EQ(p.command.value, 1);
    for (const auto& b : kNotABool) EXPECT_EQ(plan_dp_command(17, b.value, *ctx).code, tuya::code::kType);
  }
  // Answered only after the socket confirmed, so an offline socket gets 2001 (type errors first).
  const DpCommandContext offline{.online = false, .switch_enabled = true, .switch_lock_in_socket = true};
  EXPECT_EQ(plan_dp_command(17, json(false), offline).code, tuya::code::kOffline);
  EXPECT_EQ(plan_dp_command(17, json(false), kOffline).code, tuya::code::kOffline);
  EXPECT_EQ(plan_dp_command(17, json("nope"), kOffline).code, tuya::code::kType);
}

TEST(DpCommandMatrix, SwitchEnabledIsGatewayStateForFirmwareWithoutTheLock) {
  for (const auto* ctx : {&kOnline, &kDisabled}) {
    auto p = plan_dp_command(17, json("false"), *ctx);
    ASSERT_EQ(p.action, Action::SwitchEnabled);
    EXPECT_FALSE(p.enable);
    p = plan_dp_command(17, json(1), *ctx);
    ASSERT_EQ(p.action, Action::SwitchEnabled);
    EXPECT_TRUE(p.enable);
    for (const auto& b : kNotABool) EXPECT_EQ(plan_dp_command(17, b.value, *ctx).code, tuya::code::kType);
  }
}

TEST(DpCommandMatrix, RelayRefusedWhileSwitchingIsDisabledButLimitsStillAccepted) {
  for (int dp : {1, 57}) {
    auto p = plan_dp_command(dp, json(true), kDisabled);
    EXPECT_EQ(p.action, Action::Reject);
    EXPECT_EQ(p.code, tuya::code::kUnsupported);
    EXPECT_NE(p.why.find("switch_enabled"), std::string::npos);
    // A malformed value is still a type error first.
    EXPECT_EQ(plan_dp_command(dp, json("maybe"), kDisabled).code, tuya::code::kType);
  }
  EXPECT_EQ(plan_dp_command(48, json(10000000), kDisabled).action, Action::Socket);
}

TEST(DpCommandMatrix, StatusQueryAnyValueOnlineOfflineIs2001) {
  for (const json& v : {json(nullptr), json(""), json(true), json::object()}) {
    EXPECT_EQ(plan_dp_command(9, v, kOnline).action, Action::StatusQuery);
    EXPECT_EQ(plan_dp_command(9, v, kOffline).code, tuya::code::kOffline);
  }
}

TEST(DpSettings, ConfirmedCommandsUpdateTheSettings) {
  DpSettings s;
  apply_confirmed(s, proto::Command{1, proto::CommandKind::SetOverCurrentDuration, 1500});
  apply_confirmed(s, proto::Command{2, proto::CommandKind::SetPowerLimit, 2000});
  apply_confirmed(s, proto::Command{3, proto::CommandKind::SetVoltageMin, 180});
  apply_confirmed(s, proto::Command{4, proto::CommandKind::SetVoltageMax, 253});
  apply_confirmed(s, proto::Command{5, proto::CommandKind::SetRelay, 1});
  EXPECT_EQ(s.over_current_duration_ms, 1500u);
  EXPECT_EQ(s.power_limit_w, 2000u);
  EXPECT_EQ(s.voltage_min_v, 180u);
  EXPECT_EQ(s.voltage_max_v, 253u);
}

TEST(DpEncoding, FaultBitsFollowTheSpecLabelOrder) {
  auto labels = tuya::dp_labels(19);
  auto bit = [&](std::string_view label) {
    for (size_t j = 0; j < labels.size(); ++j)
      if (labels[j] == label) return 1u << j;
    ADD_FAILURE() << label;
    return 0u;
  };
  EXPECT_EQ(fault_bits_for(proto::EventType::OverCurrent), bit("overload_alarm") | bit("ov_cr"));
  EXPECT_EQ(fault_bits_for(proto::EventType::OverPower), bit("high_power_alarm"));
  EXPECT_EQ(fault_bits_for(proto::EventType::OverVoltage), bit("ov_vol"));
  EXPECT_EQ(fault_bits_for(proto::EventType::UnderVoltage), bit("undervoltage_alarm"));
  EXPECT_EQ(fault_bits_for(proto::EventType::RelayChanged), 0u);
  EXPECT_EQ(fault_bits_for(proto::EventType::MeterLost), 0u);
  // Over-current = bits 2 and 10.
  EXPECT_EQ(fault_bits_for(proto::EventType::OverCurrent), 0x404u);
  // No mains is a state the readings carry, not an event.
  EXPECT_EQ(fault_bit::kOutage, bit("outage_alarm"));
}

TEST(DpEncoding, AlarmLevelIsATableLabel) {
  auto labels = tuya::dp_labels(20);
  for (uint32_t f : {0u, fault_bit::kOverCurrent, fault_bit::kHighPower | fault_bit::kOverVoltage}) {
    std::string_view l = alarm_level_for(f);
    EXPECT_NE(std::find(labels.begin(), labels.end(), l), labels.end()) << l;
  }
  EXPECT_STREQ(alarm_level_for(0), "general");
  EXPECT_STREQ(alarm_level_for(fault_bit::kUnderVoltage), "urgent");
}

TEST(DpEncoding, DeviceAlarmText) {
  EXPECT_EQ(device_alarm_text(0, "over-current: x"), "");
  EXPECT_EQ(protection_detail(proto::EventType::OverCurrent, 16205),
            "over-current: relay switched off at 16.21 A");
  EXPECT_EQ(protection_detail(proto::EventType::OverPower, 3100), "over-power: relay switched off at 3100 W");
  EXPECT_EQ(protection_detail(proto::EventType::OverVoltage, 262340),
            "over-voltage: relay switched off at 262.3 V");
  EXPECT_EQ(protection_detail(proto::EventType::UnderVoltage, 180050),
            "under-voltage: relay switched off at 180.1 V");
  EXPECT_EQ(device_alarm_text(fault_bit::kHighPower, "over-power: relay switched off at 3100 W"),
            "over-power: relay switched off at 3100 W; switch the relay on again to clear");
  EXPECT_FALSE(device_alarm_text(fault_bit::kHighPower, "").empty());
  // No mains clears itself when the mains return: no "switch the relay on" for it.
  EXPECT_EQ(device_alarm_text(fault_bit::kOutage, ""), "no mains: the socket measures no supply voltage");
  EXPECT_EQ(
      device_alarm_text(fault_bit::kOutage | fault_bit::kHighPower,
                        "over-power: relay switched off at 3100 W"),
      "over-power: relay switched off at 3100 W; switch the relay on again to clear; no mains: the socket "
      "measures no supply voltage");
}

TEST(DpEncoding, PowersAndEnergy) {
  // 1234.5 VA -> scale 4.
  EXPECT_EQ(encode_apparent_power_mva(1234500), 12345000);
  // S = 500 VA, P = 300 W -> Q = 400 var.
  EXPECT_EQ(encode_reactive_power(300000, 500000), 4000000);
  EXPECT_EQ(encode_reactive_power(300000, 300000), 0);
  EXPECT_EQ(encode_reactive_power(300100, 300000), 0);  // P > S from meter noise
  // Resistive-ish: S = 1000.0 VA, P = 999.5 W -> Q = sqrt(1e12 - 999000250000) mvar = 31618.8 -> 31619.
  EXPECT_EQ(encode_reactive_power(999500, 1000000), 316190);
  EXPECT_EQ(encode_forward_energy_mwh(12345678), 123457);  // 12.345678 kWh -> 12.3457
  EXPECT_EQ(encode_forward_energy_mwh(int64_t{200000000000000}), 999999999);
  auto* d52 = tuya::find_dp(52);
  auto* d38 = tuya::find_dp(38);
  ASSERT_TRUE(d52 && d38);
  EXPECT_TRUE(tuya::in_range(*d52, encode_apparent_power_mva(6000000)));
  EXPECT_TRUE(tuya::in_range(*d38, encode_reactive_power(0, 6000000)));
}

TEST(DpEncoding, PhaseAIsTheDocumentedObjectOfStrings) {
  auto j = phase_a_object(230512, 1234567, 283149, 12345678);
  EXPECT_EQ(j,
            (json{{"voltage", "230.5"}, {"current", "1.235"}, {"power", "283.1"}, {"electricity", "12.35"}}));
  auto zero = phase_a_object(0, 0, 0, 0);
  EXPECT_EQ(zero,
            (json{{"voltage", "0.0"}, {"current", "0.000"}, {"power", "0.0"}, {"electricity", "0.00"}}));
  for (const auto& [k, v] : j.items()) EXPECT_TRUE(v.is_string()) << k;
}

// docs/dp-mapping.md must list every table DP once, with the table's code/access/type and
// dp_support()'s reported/accepted flags.
TEST(DpMappingDoc, AgreesWithTheTableAndTheCode) {
  std::ifstream in(PB_DP_MAPPING_DOC);
  ASSERT_TRUE(in) << PB_DP_MAPPING_DOC;
  std::map<int, std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| ", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line.substr(1));
    std::string cell;
    while (std::getline(ss, cell, '|')) {
      auto b = cell.find_first_not_of(' ');
      auto e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
    }
    if (cells.empty() || cells[0].empty() || !std::isdigit(static_cast<unsigned char>(cells[0][0]))) continue;
    int id = std::stoi(cells[0]);
    EXPECT_FALSE(rows.count(id)) << "DP " << id << " listed twice";
    rows[id] = cells;
  }
  for (const auto& d : tuya::all_dps()) {
    SCOPED_TRACE("DP " + std::to_string(d.id));
    auto it = rows.find(d.id);
    ASSERT_NE(it, rows.end()) << "missing from docs/dp-mapping.md";
    const auto& c = it->second;
    ASSERT_GE(c.size(), 7u);
    EXPECT_EQ(c[1], d.code);
    EXPECT_EQ(c[2], d.access == 'w' ? "rw" : "ro");
    EXPECT_EQ(c[3], d.type);
    auto s = dp_support(d.id);
    EXPECT_EQ(c[4], s.reported ? "yes" : "no");
    EXPECT_EQ(c[5], s.accepted ? "yes" : "no");
    EXPECT_EQ(c[6], s.source);
    // What the doc says is accepted is exactly what the validator lets through.
    bool passes = plan_dp_command(d.id, json(nullptr), kOnline).code != tuya::code::kUnsupported ||
                  plan_dp_command(d.id, json(true), kOnline).code != tuya::code::kUnsupported;
    EXPECT_EQ(passes, s.accepted);
  }
  EXPECT_EQ(rows.size(), tuya::all_dps().size()) << "docs/dp-mapping.md lists DPs the table does not have";
}

}  // namespace
}  // namespace pb::gateway
