#include "plugbridge/gateway/dp_map.hpp"

#include <cmath>
#include <pbfw/limits.hpp>
#include <string_view>

#include "plugbridge/tuya/dp.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::gateway {

namespace proto = pbfw::proto;
using json = nlohmann::json;

namespace {

// The socket's limits, from the wire contract.
constexpr int64_t kMaxOverCurrentMs = pbfw::proto::kMaxOverCurrentDurationMs;
constexpr int64_t kMaxPowerLimitW = pbfw::proto::kMaxPowerLimitW;
constexpr int64_t kMaxVoltageV = pbfw::proto::kMaxVoltageLimitV;
constexpr int64_t kMinCurrentMaxMa = pbfw::proto::kMinCurrentLimitMa,
                  kMaxCurrentMaxMa = pbfw::proto::kMaxCurrentLimitMa;

DpCommandPlan reject(int code, std::string why) {
  DpCommandPlan p;
  p.action = DpCommandPlan::Action::Reject;
  p.code = code;
  p.why = std::move(why);
  return p;
}

DpCommandPlan to_socket(proto::CommandKind kind, int64_t value) {
  DpCommandPlan p;
  p.action = DpCommandPlan::Action::Socket;
  p.command.kind = kind;
  p.command.value = static_cast<int32_t>(value);
  return p;
}

bool accepted_dp(int dp) {
  switch (dp) {
    case 1:
    case 6:
    case 9:
    case 11:
    case 12:
    case 17:
    case 18:
    case 48:
    case 57:
      return true;
    default:
      return false;
  }
}

// `scaled` in units of 10^-places as a decimal string ("-1.05").
std::string decimal(int64_t scaled, int places) {
  bool neg = scaled < 0;
  uint64_t mag = neg ? 0 - static_cast<uint64_t>(scaled) : static_cast<uint64_t>(scaled);
  uint64_t div = 1;
  for (int i = 0; i < places; ++i) div *= 10;
  std::string out = neg ? "-" : "";
  out += std::to_string(mag / div);
  if (places > 0) {
    std::string frac = std::to_string(mag % div);
    out += "." + std::string(static_cast<size_t>(places) - frac.size(), '0') + frac;
  }
  return out;
}

}  // namespace

DpCommandPlan plan_dp_command(int dp, const json& value, const DpCommandContext& ctx) {
  const tuya::DpInfo* info = tuya::find_dp(dp);
  if (!info) return reject(tuya::code::kUnsupported, "DP " + std::to_string(dp) + " is not in the DP table");
  const std::string code = info->code;
  if (info->access != 'w')
    return reject(tuya::code::kUnsupported, "DP " + std::to_string(dp) + " (" + code + ") is read-only");
  if (!accepted_dp(dp))
    return reject(tuya::code::kUnsupported,
                  "DP " + std::to_string(dp) + " (" + code + ") is not supported by this socket");

  const std::string_view type = info->type;
  std::optional<bool> b;
  std::optional<int64_t> v;
  if (type == "bool") {
    b = tuya::parse_bool(value);
    if (!b) return reject(tuya::code::kType, code + " wants a boolean");
  } else if (type == "value") {
    v = tuya::parse_int(value);
    if (!v) return reject(tuya::code::kType, code + " wants an integer");
    if (!tuya::in_range(*info, *v))
      return reject(tuya::code::kRange, code + " must be " + std::to_string(info->min) + ".." +
                                            std::to_string(info->max) + " (scale " +
                                            std::to_string(info->scale) + ")");
  }

  DpCommandPlan plan;
  switch (dp) {
    case 1:   // switch
    case 57:  // switch_state
      if (!ctx.switch_enabled)
        return reject(tuya::code::kUnsupported, "switching is disabled (switch_enabled is false)");
      plan = to_socket(proto::CommandKind::SetRelay, *b ? 1 : 0);
      break;
    case 6: {                // current_max, A scale 4 -> mA
      int64_t ma = *v / 10;  // truncates, as the gateway always did for DP 6
      if (ma < kMinCurrentMaxMa || ma > kMaxCurrentMaxMa)
        return reject(tuya::code::kRange, "current_max must be 0.1..20 A");
      plan = to_socket(proto::CommandKind::SetCurrentLimit, ma);
      break;
    }
    case 18: {  // over_current_duration, s scale 2 -> ms
      int64_t ms = *v * 10;
      if (ms > kMaxOverCurrentMs) return reject(tuya::code::kRange, "over_current_duration must be 0..600 s");
      plan = to_socket(proto::CommandKind::SetOverCurrentDuration, ms);
      break;
    }
    case 48: {  // power_limit, W scale 4 -> W (0 = off)
      int64_t w = tuya::decode_power_limit_w(*v);
      if (w > kMaxPowerLimitW) return reject(tuya::code::kRange, "power_limit must be 0..6000 W (0 = off)");
      plan = to_socket(proto::CommandKind::SetPowerLimit, w);
      break;
    }
    case 11:    // voltage_under, V scale 4 -> V (0 = off)
    case 12: {  // voltage_over
      int64_t volts = tuya::rescale(*v, -4);
      if (volts > kMaxVoltageV) return reject(tuya::code::kRange, code + " must be 0..300 V (0 = off)");
      plan =
          to_socket(dp == 11 ? proto::CommandKind::SetVoltageMin : proto::CommandKind::SetVoltageMax, volts);
      break;
    }
    case 17:  // switch_enabled: the socket enforces and keeps it; older firmware: gateway state
      if (ctx.switch_lock_in_socket) {
        plan = to_socket(proto::CommandKind::SetSwitchEnabled, *b ? 1 : 0);
      } else {
        plan.action = DpCommandPlan::Action::SwitchEnabled;
        plan.enable = *b;
      }
      break;
    case 9:  // status_query: any value
      plan.action = DpCommandPlan::Action::StatusQuery;
      break;
    default:
      return reject(tuya::code::kUnsupported, "DP " + std::to_string(dp) + " is not supported");
  }
  if (!ctx.online) return reject(tuya::code::kOffline, "socket is offline");
  return plan;
}

void apply_confirmed(DpSettings& s, const proto::Command& c) {
  auto u = static_cast<uint32_t>(c.value < 0 ? 0 : c.value);
  switch (c.kind) {
    case proto::CommandKind::SetOverCurrentDuration:
      s.over_current_duration_ms = u;
      break;
    case proto::CommandKind::SetPowerLimit:
      s.power_limit_w = u;
      break;
    case proto::CommandKind::SetVoltageMin:
      s.voltage_min_v = u;
      break;
    case proto::CommandKind::SetVoltageMax:
      s.voltage_max_v = u;
      break;
    default:
      break;
  }
}

uint32_t fault_bits_for(proto::EventType t) {
  switch (t) {
    case proto::EventType::OverCurrent:
      return fault_bit::kOverload | fault_bit::kOverCurrent;
    case proto::EventType::OverPower:
      return fault_bit::kHighPower;
    case proto::EventType::OverVoltage:
      return fault_bit::kOverVoltage;
    case proto::EventType::UnderVoltage:
      return fault_bit::kUnderVoltage;
    default:
      return 0;
  }
}

const char* alarm_level_for(uint32_t faults) {
  // Every fault we can raise left the load without power: a trip switched the relay off, an outage
  // took the mains away.
  return faults == 0 ? "general" : "urgent";
}

std::string protection_detail(proto::EventType t, int64_t value) {
  switch (t) {
    case proto::EventType::OverCurrent:
      return "over-current: relay switched off at " + decimal(tuya::rescale(value, -1), 2) + " A";
    case proto::EventType::OverPower:
      return "over-power: relay switched off at " + std::to_string(value) + " W";
    case proto::EventType::OverVoltage:
      return "over-voltage: relay switched off at " + decimal(tuya::rescale(value, -2), 1) + " V";
    case proto::EventType::UnderVoltage:
      return "under-voltage: relay switched off at " + decimal(tuya::rescale(value, -2), 1) + " V";
    default:
      return {};
  }
}

std::string device_alarm_text(uint32_t faults, const std::string& last_detail) {
  std::string text;
  if ((faults & ~fault_bit::kOutage) != 0)
    text = (last_detail.empty() ? std::string("protection tripped") : last_detail) +
           "; switch the relay on again to clear";
  if ((faults & fault_bit::kOutage) != 0)
    text += std::string(text.empty() ? "" : "; ") + "no mains: the socket measures no supply voltage";
  return text;
}

int64_t encode_apparent_power_mva(int64_t mva) {
  return tuya::rescale(mva, 1);
}

int64_t encode_reactive_power(int64_t power_mw, int64_t mva) {
  if (mva <= power_mw) return 0;  // meter noise can make P exceed S slightly
  // In mvar; doubles are exact to 2^53, far beyond S² for a 6 kW socket (3.6e13 mVA²).
  double s = static_cast<double>(mva), p = static_cast<double>(power_mw);
  auto q_mvar = static_cast<int64_t>(std::llround(std::sqrt(s * s - p * p)));
  return tuya::rescale(q_mvar, 1);
}

int64_t encode_forward_energy_mwh(int64_t mwh) {
  constexpr int64_t kMax = 999999999;
  int64_t v = tuya::encode_energy_mwh(mwh);
  return v > kMax ? kMax : v;
}

json phase_a_object(uint32_t voltage_mv, uint32_t current_ua, uint32_t power_mw, int64_t energy_mwh) {
  return json{{"voltage", decimal(tuya::rescale(voltage_mv, -2), 1)},
              {"current", decimal(tuya::rescale(current_ua, -3), 3)},
              {"power", decimal(tuya::rescale(power_mw, -2), 1)},
              {"electricity", decimal(tuya::rescale(energy_mwh, -4), 2)}};
}

DpSupport dp_support(int dp) {
  switch (dp) {
    case 1:
      return {true, true, "relay state from RelayChanged events and command results; command -> SetRelay"};
    case 3:
      return {true, false, "reading power_mw, when measured"};
    case 5:
      return {true, false,
              "reading voltage_mv, when measured (settable in the table, but a measurement: 2002)"};
    case 6:
      return {true, true, "configured or last confirmed current limit; command -> SetCurrentLimit (mA)"};
    case 7:
      return {true, false, "reading current_ua, when measured"};
    case 9:
      return {false, true, "command: full report of that socket"};
    case 11:
      return {true, true, "last confirmed SetVoltageMin (V, 0 = off); command -> SetVoltageMin"};
    case 12:
      return {true, true, "last confirmed SetVoltageMax (V, 0 = off); command -> SetVoltageMax"};
    case 17:
      return {true, true,
              "reading flag switch_disabled (socket-persisted); command -> SetSwitchEnabled; false: the "
              "socket's button and DP 1/57 do not switch"};
    case 18:
      return {true, true,
              "last confirmed SetOverCurrentDuration (ms / 10); command -> SetOverCurrentDuration"};
    case 19:
      return {true, false,
              "protection events since the relay was last switched on; outage_alarm while there are no "
              "mains"};
    case 20:
      return {true, false, "general when DP 19 is 0, urgent after a protection trip or while no mains"};
    case 21:
      return {true, false, "text of the last protection event and of no mains, empty when DP 19 is 0"};
    case 30:
      return {true, false,
              "JSON object of strings: voltage V, current A, power W, electricity kWh (when all measured)"};
    case 37:
      return {true, false,
              "reading power_mw, when measured (same as DP 3; settable in the table, but a measurement: "
              "2002)"};
    case 38:
      return {true, false,
              "sqrt(S^2 - P^2) from reading apparent_mva and power_mw, when V, I and P are measured"};
    case 40:
      return {true, false, "reading power_factor_e4, when V, I and P are measured"};
    case 42:
      return {true, false, "reading switch_count (socket-persisted)"};
    case 44:
      return {true, false, "accounted energy total (energy_state)"};
    case 45:
      return {true, false, "accounted energy since local midnight"};
    case 46:
      return {true, false, "accounted energy since the 1st of the month"};
    case 48:
      return {true, true, "last confirmed SetPowerLimit (W, 0 = off); command -> SetPowerLimit"};
    case 50:
      return {true, false, "accounted energy total (same as DP 44, capped at 999999999)"};
    case 52:
      return {true, false, "reading apparent_mva, in VA, when V and I are measured"};
    case 57:
      return {true, true, "same as DP 1"};
    case 58:
      return {true, false, "local midnight the daily counter restarted at"};
    case 59:
      return {true, false, "local midnight of the 1st the monthly counter restarted at"};
    default:
      return {false, false, "no source on this socket"};
  }
}

}  // namespace pb::gateway
