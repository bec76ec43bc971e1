// The enums' text forms are persisted (events.kind, events.detail) and printed by plugsim: every value
// has exactly the name below, names are distinct, and parsing a name gives the value back.
#include <gtest/gtest.h>

#include <pbfw/proto_names.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace pbfw::proto {
namespace {

template <class E>
using Names = std::vector<std::pair<E, std::string>>;

// Each enum's whole value range, in order, with the text stored today.
const Names<Cause> kCauses = {{Cause::Unknown, "unknown"},     {Cause::Button, "button"},
                              {Cause::Command, "command"},     {Cause::Protection, "protection"},
                              {Cause::Countdown, "countdown"}, {Cause::PowerOn, "power_on"}};
const Names<EventType> kEventKinds = {
    {EventType::RelayChanged, "relay"},         {EventType::OverCurrent, "over_current"},
    {EventType::MeterLost, "meter_lost"},       {EventType::MeterRestored, "meter_restored"},
    {EventType::OverPower, "over_power"},       {EventType::OverVoltage, "over_voltage"},
    {EventType::UnderVoltage, "under_voltage"}, {EventType::FactoryReset, "factory_reset"}};
const Names<CommandKind> kCommandKinds = {{CommandKind::SetRelay, "set_relay"},
                                          {CommandKind::SetCurrentLimit, "set_current_limit"},
                                          {CommandKind::RequestReading, "request_reading"},
                                          {CommandKind::SetCountdown, "set_countdown"},
                                          {CommandKind::SetOverCurrentDuration, "set_over_current_duration"},
                                          {CommandKind::SetPowerLimit, "set_power_limit"},
                                          {CommandKind::SetVoltageMax, "set_voltage_max"},
                                          {CommandKind::SetVoltageMin, "set_voltage_min"},
                                          {CommandKind::SetKv, "set_kv"},
                                          {CommandKind::SetKi, "set_ki"},
                                          {CommandKind::CalibrateVoltage, "calibrate_voltage"},
                                          {CommandKind::CalibrateCurrent, "calibrate_current"},
                                          {CommandKind::CalibratePower, "calibrate_power"},
                                          {CommandKind::SetSwitchEnabled, "set_switch_enabled"}};
const Names<CommandStatus> kStatuses = {{CommandStatus::Ok, "ok"},
                                        {CommandStatus::Unsupported, "unsupported"},
                                        {CommandStatus::InvalidValue, "invalid_value"},
                                        {CommandStatus::Refused, "refused"}};

// The table covers first..last without gaps, each value has its text, the texts are distinct, the
// parser inverts the name function, and a value outside the range is "unknown".
template <class E>
void check(const Names<E>& table, E first, E last, const char* (*name)(E),
           bool (*parse)(std::string_view, E&)) {
  ASSERT_EQ(table.front().first, first);
  ASSERT_EQ(table.back().first, last);
  ASSERT_EQ(table.size(), static_cast<size_t>(last) - static_cast<size_t>(first) + 1);
  std::set<std::string> seen;
  for (size_t i = 0; i < table.size(); ++i) {
    const auto& [value, text] = table[i];
    EXPECT_EQ(static_cast<size_t>(value), static_cast<size_t>(first) + i);
    EXPECT_EQ(name(value), text) << "value " << static_cast<int>(value);
    EXPECT_TRUE(seen.insert(name(value)).second) << "duplicate name " << name(value);
    E back{};
    ASSERT_TRUE(parse(text, back)) << text;
    EXPECT_EQ(back, value) << text;
  }
  EXPECT_STREQ(name(static_cast<E>(static_cast<unsigned>(last) + 1)), "unknown");
  E untouched = last;
  for (const char* bad : {"", "Relay", "SET_RELAY", "ok ", " ok", "power-on", "over current", "relay\n"}) {
    EXPECT_FALSE(parse(bad, untouched)) << '"' << bad << '"';
    EXPECT_EQ(untouched, last) << "a failed parse must leave the output alone";
  }
}

TEST(ProtoNames, Causes) {
  check(kCauses, kFirstCause, kLastCause, cause_name, parse_cause);
}

TEST(ProtoNames, EventKinds) {
  check(kEventKinds, kFirstEventType, kLastEventType, event_kind, parse_event_kind);
  EXPECT_STREQ(event_kind(static_cast<EventType>(0)), "unknown");
  EventType t{};
  EXPECT_FALSE(parse_event_kind("unknown", t)) << "no event type is called unknown";
}

TEST(ProtoNames, CommandKinds) {
  check(kCommandKinds, kFirstCommandKind, kLastCommandKind, command_kind_name, parse_command_kind);
  EXPECT_STREQ(command_kind_name(static_cast<CommandKind>(0)), "unknown");
}

TEST(ProtoNames, CommandStatuses) {
  check(kStatuses, kFirstCommandStatus, kLastCommandStatus, command_status_name, parse_command_status);
}

// The named range is what the codec accepts: an Event frame decodes exactly when its type has a name
// and its cause is in the cause range.
TEST(ProtoNames, NamedRangeIsTheDecodedRange) {
  Message m{};
  m.type = MsgType::Event;
  m.event = Event{1, 0, EventType::RelayChanged, Cause::Button, 1};
  uint8_t frame[kMaxFrame];
  const size_t n = encode(m, frame, sizeof frame);
  ASSERT_GT(n, kHeaderSize + 9);
  const size_t type_at = kHeaderSize + 8, cause_at = kHeaderSize + 9;
  auto decodes_with = [&](size_t at, unsigned v) {
    uint8_t f[kMaxFrame];
    std::copy(frame, frame + n, f);
    f[at] = static_cast<uint8_t>(v);
    const uint16_t crc = crc16_ccitt(f + 1, n - 1 - kCrcSize);
    f[n - 2] = static_cast<uint8_t>(crc >> 8);
    f[n - 1] = static_cast<uint8_t>(crc);
    Message out{};
    size_t used = 0;
    return decode(f, n, out, used) == DecodeStatus::Ok;
  };
  for (unsigned v = 0; v < 256; ++v) {
    EventType t{};
    EXPECT_EQ(decodes_with(type_at, v), parse_event_kind(event_kind(static_cast<EventType>(v)), t)) << v;
    EXPECT_EQ(decodes_with(cause_at, v), v <= static_cast<unsigned>(kLastCause)) << v;
  }
}

}  // namespace
}  // namespace pbfw::proto
