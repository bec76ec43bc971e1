// The text forms of the LAN protocol's enums: what the gateway stores in its database and logs, and what
// plugsim prints in its JSON event stream. These strings are persisted: never change one, only add.
// One name per value; `parse_*` is the inverse (false for a text no value has). No heap, no exceptions.
#pragma once

#include <pbfw/proto.hpp>
#include <string_view>

namespace pbfw::proto {

// Event cause: "unknown", "button", "command", "protection", "countdown", "power_on".
const char* cause_name(Cause c);
// Event type as stored (events.kind): "relay", "over_current", "meter_lost", "meter_restored",
// "over_power", "over_voltage", "under_voltage", "factory_reset"; "unknown" for a value outside the enum.
const char* event_kind(EventType t);
// Command kind: "set_relay", "set_current_limit", ..., "calibrate_power", "set_switch_enabled".
const char* command_kind_name(CommandKind k);
// Command result status: "ok", "unsupported", "invalid_value", "refused".
const char* command_status_name(CommandStatus s);

bool parse_cause(std::string_view text, Cause& out);
bool parse_event_kind(std::string_view text, EventType& out);
bool parse_command_kind(std::string_view text, CommandKind& out);
bool parse_command_status(std::string_view text, CommandStatus& out);

}  // namespace pbfw::proto
