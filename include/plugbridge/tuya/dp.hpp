// Tuya smart-meter data points (DPs): the DP table of the spec, value encoding from our
// integer units (exact integer arithmetic, no floating point) and lenient parsing of command
// values.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace pb::tuya {

// One row of the smart-meter DP table.
struct DpInfo {
  int id;
  const char* code;  // e.g. "power_current"
  char access;       // 'r' = reported only, 'w' = settable by the platform and reported
  const char* type;  // "bool", "value", "string", "raw", "enum", "fault"
  int scale;         // value DPs: integer = round(real * 10^scale); 0 otherwise
  int64_t min, max;  // value DPs: allowed integer range; 0, 0 otherwise
};

// Well-known DP ids used by the daemon.
namespace dp {
inline constexpr int kSwitch = 1, kPower = 3, kVoltage = 5, kCurrentMax = 6, kCurrent = 7, kTemperature = 10,
                     kFault = 19, kPowerFactor = 40, kSwitchTimes = 42, kEnergyTotal = 44, kEnergyDaily = 45,
                     kEnergyMonth = 46, kPowerLimit = 48, kSwitchState = 57;
}  // namespace dp

// The DP, or nullptr if the id is not in the spec table.
const DpInfo* find_dp(int id);
const DpInfo* find_dp(std::string_view code);
// Every DP of the spec table, ordered by id.
std::span<const DpInfo> all_dps();
// Labels of an enum or fault DP in table order (fault: bit j = label j); empty otherwise.
std::vector<std::string_view> dp_labels(int id);
// True for a value DP and an integer within its [min, max].
bool in_range(const DpInfo& info, int64_t value);

// value * 10^exponent, rounded half away from zero when exponent < 0. Saturates at the
// int64 limits instead of overflowing.
int64_t rescale(int64_t value, int exponent);

// Our integer units -> the DP's scaled integer.
inline int64_t encode_power_mw(int64_t mw) {
  return rescale(mw, 1);
}  // DP3  W   scale 4
inline int64_t encode_voltage_mv(int64_t mv) {
  return rescale(mv, 1);
}  // DP5  V   scale 4
inline int64_t encode_current_max_ma(int64_t ma) {
  return rescale(ma, 1);
}  // DP6  A   scale 4
inline int64_t encode_current_ua(int64_t ua) {
  return rescale(ua, 1);
}  // DP7  mA  scale 4
inline int64_t encode_energy_mwh(int64_t mwh) {
  return rescale(mwh, -2);
}  // DP44 kWh scale 4
inline int64_t encode_power_factor_e4(int64_t pf_e4) {
  return pf_e4;
}  // DP40     scale 4
inline int64_t encode_temperature_centi_c(int64_t c_e2) {
  return c_e2;
}  // DP10 °C  scale 2
// The inverse for settable DPs: DP6 scaled integer -> mA; DP48 scaled integer -> W (rounded).
inline int64_t decode_current_max_ma(int64_t dp6) {
  return rescale(dp6, -1);
}
inline int64_t decode_power_limit_w(int64_t dp48) {
  return rescale(dp48, -4);
}

// Command value parsing. parse_bool accepts true/false, 1/0, "1"/"0", "true"/"false"
// (case-insensitive). parse_int accepts JSON integers and decimal-integer strings
// (optional leading '-', digits only). Both reject everything else.
std::optional<bool> parse_bool(const nlohmann::json& value);
std::optional<int64_t> parse_int(const nlohmann::json& value);

}  // namespace pb::tuya
