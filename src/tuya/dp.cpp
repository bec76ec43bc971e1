#include "plugbridge/tuya/dp.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <limits>
#include <string>

namespace pb::tuya {

namespace {

constexpr int64_t kMax = 1000000000;
constexpr int64_t kMax9 = 999999999;

// Spec table; "rw" is 'w'. Value DPs have range 0..1e9 unless the spec says otherwise.
constexpr DpInfo kDps[] = {
    {1, "switch", 'w', "bool", 0, 0, 0},
    {2, "breaker_id", 'r', "string", 0, 0, 0},
    {3, "power_current", 'r', "value", 4, 0, kMax},
    {5, "voltage_current", 'w', "value", 4, 0, kMax},
    {6, "current_max", 'w', "value", 4, 0, kMax},
    {7, "cur_current", 'r', "value", 4, 0, kMax},
    {8, "device_info", 'w', "raw", 0, 0, 0},
    {9, "status_query", 'w', "raw", 0, 0, 0},
    {10, "temp_current", 'r', "value", 2, -100, kMax},
    {11, "voltage_under", 'w', "value", 4, 0, kMax},
    {12, "voltage_over", 'w', "value", 4, 0, kMax},
    {13, "leakage_warn_value", 'w', "value", 4, 0, kMax},
    {14, "leakage_fault_value", 'w', "value", 4, 0, kMax},
    {15, "leakage_current", 'w', "value", 4, 0, kMax},
    {16, "leakage_protection", 'r', "enum", 0, 0, 0},
    {17, "switch_enabled", 'w', "bool", 0, 0, 0},
    {18, "over_current_duration", 'w', "value", 2, 0, kMax},
    {19, "fault", 'r', "fault", 0, 0, 0},
    {20, "alarm_level", 'r', "enum", 0, 0, 0},
    {21, "device_alarm", 'r', "string", 0, 0, 0},
    {30, "phase_a", 'r', "raw", 0, 0, 0},
    {31, "phase_b", 'r', "raw", 0, 0, 0},
    {32, "phase_c", 'r', "raw", 0, 0, 0},
    {33, "leakage_action_value", 'w', "value", 4, 0, kMax},
    {34, "over_temp_value", 'w', "value", 4, -100, kMax},
    {35, "over_vol_protect_time", 'w', "value", 4, 0, kMax},
    {36, "over_vol_recovery_time", 'w', "value", 4, 0, kMax},
    {37, "power_effective", 'w', "value", 4, 0, kMax},
    {38, "power_reactive", 'w', "value", 4, 0, kMax},
    {39, "daily_energy", 'w', "raw", 0, 0, 0},
    {40, "power_factor", 'w', "value", 4, 0, kMax},
    {41, "supply_frequency", 'w', "value", 4, 0, kMax},
    {42, "switch_times", 'r', "value", 0, 0, kMax},
    {43, "short_times", 'r', "value", 0, 0, kMax},
    {44, "electric_total", 'w', "value", 4, 0, kMax},
    {45, "electric_daily", 'w', "value", 4, 0, kMax},
    {46, "electric_month", 'w', "value", 4, 0, kMax},
    {47, "residual_electricity", 'w', "value", 4, 0, kMax},
    {48, "power_limit", 'w', "value", 4, 0, kMax},
    {49, "electric_warm_value", 'w', "value", 4, 0, kMax},
    {50, "forward_energy_total", 'r', "value", 4, 0, kMax9},
    {51, "energy_reactive", 'r', "value", 4, 0, kMax9},
    {52, "power_apparent", 'r', "value", 4, 0, kMax9},
    {53, "cold_stall_userdata", 'r', "value", 4, 0, kMax},
    {54, "cold_stall_type", 'w', "enum", 0, 0, 0},
    {55, "hot_stall_userdata", 'r', "value", 4, 0, kMax},
    {56, "hot_stall_type", 'w', "enum", 0, 0, 0},
    {57, "switch_state", 'w', "bool", 0, 0, 0},
    {58, "d_end_time", 'r', "string", 0, 0, 0},
    {59, "m_end_time", 'r', "string", 0, 0, 0},
};

constexpr std::array<std::string_view, 3> kLeakageProtection{"no_leak_pro_without_value",
                                                             "no_leak_pro_with_value", "leak_pro_with_value"};
constexpr std::array<std::string_view, 14> kFaults{"short_circuit_alarm",
                                                   "surge_alarm",
                                                   "overload_alarm",
                                                   "ov_vol",
                                                   "undervoltage_alarm",
                                                   "temp_dif_fault",
                                                   "leakagecurr_alarm",
                                                   "self_test_alarm",
                                                   "fire_alarm",
                                                   "high_power_alarm",
                                                   "ov_cr",
                                                   "outage_alarm",
                                                   "magnetism_alarm",
                                                   "credit_alarm"};
constexpr std::array<std::string_view, 3> kAlarmLevels{"general", "serious", "urgent"};
constexpr std::array<std::string_view, 6> kStallTypes{"square_area", "ignore", "consumption",
                                                      "proportion",  "lease",  "power"};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::span<const DpInfo> all_dps() {
  return kDps;
}

const DpInfo* find_dp(int id) {
  for (const auto& d : all_dps()) {
    if (d.id == id) return &d;
  }
  return nullptr;
}

const DpInfo* find_dp(std::string_view code) {
  for (const auto& d : all_dps()) {
    if (code == d.code) return &d;
  }
  return nullptr;
}

std::vector<std::string_view> dp_labels(int id) {
  switch (id) {
    case 16:
      return {kLeakageProtection.begin(), kLeakageProtection.end()};
    case 19:
      return {kFaults.begin(), kFaults.end()};
    case 20:
      return {kAlarmLevels.begin(), kAlarmLevels.end()};
    case 54:
    case 56:
      return {kStallTypes.begin(), kStallTypes.end()};
    default:
      return {};
  }
}

bool in_range(const DpInfo& info, int64_t value) {
  return std::string_view(info.type) == "value" && value >= info.min && value <= info.max;
}

int64_t rescale(int64_t value, int exponent) {
  constexpr int64_t kLimit = std::numeric_limits<int64_t>::max();
  if (exponent >= 0) {
    for (int i = 0; i < exponent; ++i) {
      if (value > kLimit / 10) return kLimit;
      if (value < -(kLimit / 10)) return std::numeric_limits<int64_t>::min();
      value *= 10;
    }
    return value;
  }
  int64_t divisor = 1;
  for (int i = 0; i < -exponent; ++i) {
    if (divisor > kLimit / 10) return 0;  // |value| < divisor: rounds to 0
    divisor *= 10;
  }
  int64_t q = value / divisor;
  int64_t r = value % divisor;  // same sign as value
  // Half away from zero: compare 2|r| with the divisor without overflow.
  if (r >= 0 ? r >= divisor - r : -r >= divisor + r) q += (value >= 0 ? 1 : -1);
  return q;
}

std::optional<bool> parse_bool(const nlohmann::json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) {
    if (v.is_number_unsigned()) {
      auto u = v.get<uint64_t>();
      if (u <= 1) return u == 1;
      return std::nullopt;
    }
    auto i = v.get<int64_t>();
    if (i == 0 || i == 1) return i == 1;
    return std::nullopt;
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s == "1" || iequals(s, "true")) return true;
    if (s == "0" || iequals(s, "false")) return false;
  }
  return std::nullopt;
}

std::optional<int64_t> parse_int(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    // from_chars accepts a leading '-' but no '+', spaces or hex: exactly a decimal integer.
    if (s.empty() || s == "-") return std::nullopt;
    int64_t out = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

}  // namespace pb::tuya
