#include "wire_names.hpp"

namespace pb::gateway {

namespace proto = pbfw::proto;

const char* cause_name(proto::Cause c) {
  switch (c) {
    case proto::Cause::Unknown:
      return "unknown";
    case proto::Cause::Button:
      return "button";
    case proto::Cause::Command:
      return "command";
    case proto::Cause::Protection:
      return "protection";
    case proto::Cause::Countdown:
      return "countdown";
    case proto::Cause::PowerOn:
      return "power_on";
  }
  return "unknown";
}

const char* event_kind(proto::EventType t) {
  switch (t) {
    case proto::EventType::RelayChanged:
      return "relay";
    case proto::EventType::OverCurrent:
      return "over_current";
    case proto::EventType::MeterLost:
      return "meter_lost";
    case proto::EventType::MeterRestored:
      return "meter_restored";
    case proto::EventType::OverPower:
      return "over_power";
    case proto::EventType::OverVoltage:
      return "over_voltage";
    case proto::EventType::UnderVoltage:
      return "under_voltage";
    case proto::EventType::FactoryReset:
      return "factory_reset";
  }
  return "unknown";
}

}  // namespace pb::gateway
