// The text forms of the protocol's enums (see pbfw/proto_names.hpp): each string is spelt once, here.
#include <pbfw/proto_names.hpp>

namespace pbfw::proto {
namespace {

// The value of [first, last] whose name is `text`: the parsers are the name functions read backwards.
template <class E>
bool parse_by_name(std::string_view text, E first, E last, const char* (*name)(E), E& out) {
  for (unsigned v = static_cast<unsigned>(first); v <= static_cast<unsigned>(last); ++v) {
    const E e = static_cast<E>(v);
    if (text == name(e)) {
      out = e;
      return true;
    }
  }
  return false;
}

}  // namespace

const char* cause_name(Cause c) {
  switch (c) {
    case Cause::Unknown:
      return "unknown";
    case Cause::Button:
      return "button";
    case Cause::Command:
      return "command";
    case Cause::Protection:
      return "protection";
    case Cause::Countdown:
      return "countdown";
    case Cause::PowerOn:
      return "power_on";
  }
  return "unknown";
}

const char* event_kind(EventType t) {
  switch (t) {
    case EventType::RelayChanged:
      return "relay";
    case EventType::OverCurrent:
      return "over_current";
    case EventType::MeterLost:
      return "meter_lost";
    case EventType::MeterRestored:
      return "meter_restored";
    case EventType::OverPower:
      return "over_power";
    case EventType::OverVoltage:
      return "over_voltage";
    case EventType::UnderVoltage:
      return "under_voltage";
    case EventType::FactoryReset:
      return "factory_reset";
  }
  return "unknown";
}

const char* command_kind_name(CommandKind k) {
  switch (k) {
    case CommandKind::SetRelay:
      return "set_relay";
    case CommandKind::SetCurrentLimit:
      return "set_current_limit";
    case CommandKind::RequestReading:
      return "request_reading";
    case CommandKind::SetCountdown:
      return "set_countdown";
    case CommandKind::SetOverCurrentDuration:
      return "set_over_current_duration";
    case CommandKind::SetPowerLimit:
      return "set_power_limit";
    case CommandKind::SetVoltageMax:
      return "set_voltage_max";
    case CommandKind::SetVoltageMin:
      return "set_voltage_min";
    case CommandKind::SetKv:
      return "set_kv";
    case CommandKind::SetKi:
      return "set_ki";
    case CommandKind::CalibrateVoltage:
      return "calibrate_voltage";
    case CommandKind::CalibrateCurrent:
      return "calibrate_current";
    case CommandKind::CalibratePower:
      return "calibrate_power";
    case CommandKind::SetSwitchEnabled:
      return "set_switch_enabled";
  }
  return "unknown";
}

const char* command_status_name(CommandStatus s) {
  switch (s) {
    case CommandStatus::Ok:
      return "ok";
    case CommandStatus::Unsupported:
      return "unsupported";
    case CommandStatus::InvalidValue:
      return "invalid_value";
    case CommandStatus::Refused:
      return "refused";
  }
  return "unknown";
}

bool parse_cause(std::string_view text, Cause& out) {
  return parse_by_name(text, kFirstCause, kLastCause, cause_name, out);
}
bool parse_event_kind(std::string_view text, EventType& out) {
  return parse_by_name(text, kFirstEventType, kLastEventType, event_kind, out);
}
bool parse_command_kind(std::string_view text, CommandKind& out) {
  return parse_by_name(text, kFirstCommandKind, kLastCommandKind, command_kind_name, out);
}
bool parse_command_status(std::string_view text, CommandStatus& out) {
  return parse_by_name(text, kFirstCommandStatus, kLastCommandStatus, command_status_name, out);
}

}  // namespace pbfw::proto
