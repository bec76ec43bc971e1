// How a plugbridge socket maps onto the Tuya smart-meter DP table: which DPs it accepts as
// commands (validated against the table's type, access and range, then against the socket
// firmware's limits), which it reports and how their values are derived. Pure logic, no I/O.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <pbfw/proto.hpp>
#include <string>

namespace pb::gateway {

// What validation needs to know about the socket.
struct DpCommandContext {
  bool online = false;
  bool switch_enabled = true;  // DP 17: false = DP 1/57 and local relay commands are refused
  // The socket announced kCapSwitchLock: DP 17 goes to it (SetSwitchEnabled). Without it (older
  // firmware) DP 17 is kept by the gateway alone.
  bool switch_lock_in_socket = false;
};

// The outcome of validating one cloud command.
struct DpCommandPlan {
  enum class Action {
    Reject,         // answer `code` with `why` at once
    Socket,         // send `command` to the socket, answer once it confirmed
    StatusQuery,    // DP 9: full report of the socket, answer success
    SwitchEnabled,  // DP 17 for firmware without kCapSwitchLock: gateway-side state `enable`, answer success
  };
  Action action = Action::Reject;
  int code = 0;  // tuya::code::* for Reject
  std::string why;
  pbfw::proto::Command command{};  // for Socket (cmd_id left 0)
  bool enable = true;              // for SwitchEnabled
};

// Validates `value` for DP `dp`. Order: unknown or read-only or not supported by the socket
// 2002, wrong type 1103, outside the table's or the firmware's range 1101, relay while
// switch_enabled is false 2002, offline 2001.
DpCommandPlan plan_dp_command(int dp, const nlohmann::json& value, const DpCommandContext& ctx);

// Protection settings as the socket was last confirmed to apply them (unset = not known).
struct DpSettings {
  std::optional<uint32_t> over_current_duration_ms;  // DP 18
  std::optional<uint32_t> power_limit_w;             // DP 48
  std::optional<uint32_t> voltage_min_v;             // DP 11
  std::optional<uint32_t> voltage_max_v;             // DP 12
};
// Records a command the socket confirmed (SetOverCurrentDuration, SetPowerLimit, SetVoltageMin/Max).
void apply_confirmed(DpSettings& s, const pbfw::proto::Command& c);

// DP 19 fault bitmap bits (bit j = j-th label of the spec's fault list).
namespace fault_bit {
inline constexpr uint32_t kOverload = 1u << 2, kOverVoltage = 1u << 3, kUnderVoltage = 1u << 4,
                          kHighPower = 1u << 9, kOverCurrent = 1u << 10;
// outage_alarm: not a protection event but a state, set while the socket's readings say no mains.
inline constexpr uint32_t kOutage = 1u << 11;
}  // namespace fault_bit
// Bits a protection event sets; 0 for events that are not faults.
uint32_t fault_bits_for(pbfw::proto::EventType t);
// DP 20 alarm_level label for a fault bitmap: "general" when clear, "urgent" for a trip.
const char* alarm_level_for(uint32_t faults);
// DP 21 device_alarm text, e.g. "over-current: relay switched off at 16.20 A; switch the relay on again
// to clear", or "no mains: ..." for kOutage; "" when clear.
std::string device_alarm_text(uint32_t faults, const std::string& last_detail);
// Readable detail of a protection event's value (mA, W, mV).
std::string protection_detail(pbfw::proto::EventType t, int64_t value);

// Scaled encodings of the measured DPs (scale 4 unless noted).
int64_t encode_apparent_power_mva(int64_t mva);                // DP 52, VA
int64_t encode_reactive_power(int64_t power_mw, int64_t mva);  // DP 38, var = sqrt(S²-P²)
int64_t encode_forward_energy_mwh(int64_t mwh);                // DP 50, kWh, capped at 999999999
// DP 30 phase_a: {"voltage":"230.5","current":"1.234","power":"283.1","electricity":"12.34"}
// (V, A, W, kWh as decimal strings).
nlohmann::json phase_a_object(uint32_t voltage_mv, uint32_t current_ua, uint32_t power_mw,
                              int64_t energy_mwh);

// Per-DP support, the source of docs/dp-mapping.md (a unit test keeps them equal).
struct DpSupport {
  bool reported;
  bool accepted;
  const char* source;  // where the reported value comes from / what a command does
};
DpSupport dp_support(int dp);

}  // namespace pb::gateway
