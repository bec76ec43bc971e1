// LAN protocol v1 between a socket and the gateway (see docs/lan-protocol.md): part of the wire contract
// (pbfw_proto) that the firmware core and the daemon both build from.
// One codec for both sides: no heap, no exceptions, no RTTI, fixed-size messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <pbfw/limits.hpp>

namespace pbfw::proto {

inline constexpr uint8_t kSof = 0xA5;     // start of frame
inline constexpr uint8_t kVersion = 1;    // frame/protocol version
inline constexpr size_t kHeaderSize = 5;  // SOF, version, type, payload length (u16 BE)
inline constexpr size_t kCrcSize = 2;     // CRC-16/CCITT-FALSE over version..payload, BE
inline constexpr size_t kMaxPayload = 240;
inline constexpr size_t kMaxFrame = kHeaderSize + kMaxPayload + kCrcSize;
inline constexpr size_t kFwVersionMax = 16;

enum class MsgType : uint8_t {
  Hello = 1,          // socket -> gateway, first frame after TLS handshake
  HelloAck = 2,       // gateway -> socket
  Reading = 3,        // socket -> gateway, durable record (acked)
  Event = 4,          // socket -> gateway, durable record (acked)
  Ack = 5,            // gateway -> socket, cumulative over records of the current boot
  Command = 6,        // gateway -> socket
  CommandResult = 7,  // socket -> gateway
  Keepalive = 8,      // both directions
};

// Capability bits announced in Hello.
enum Capability : uint32_t {
  kCapRelay = 1u << 0,
  kCapMeter = 1u << 1,
  kCapOverCurrent = 1u << 2,
  kCapCountdown = 1u << 3,
  kCapTemperature = 1u << 4,
  // v1 extension (issue 5): the socket understands CommandKind::SetSwitchEnabled and reports
  // kSwitchDisabled. The gateway sends that kind only to sockets announcing this bit.
  kCapSwitchLock = 1u << 5,
};

struct Hello {
  uint8_t proto_version;
  char cid[kCidMax + 1];               // NUL-terminated
  char fw_version[kFwVersionMax + 1];  // NUL-terminated
  uint32_t capabilities;
  uint32_t boot_counter;  // increments at every boot; scopes record seqs
  uint64_t uptime_ms;
};

struct HelloAck {
  uint64_t unix_ms;             // gateway wall clock
  uint32_t last_committed_seq;  // highest record seq already stored for this boot (0 = none)
  uint16_t keepalive_s;         // socket sends Keepalive at least this often when idle
};

// Reading flags.
enum ReadingFlag : uint8_t {
  kVoltageValid = 1u << 0,
  kCurrentValid = 1u << 1,
  kPowerValid = 1u << 2,
  kMeterOk = 1u << 3,  // a valid HLW8032 frame arrived recently; if clear the values are unavailable
  kRelayOn = 1u << 4,
  kTripped = 1u << 5,  // relay forced off by a protection; stays until switched on by the user or gateway
  kSwitchDisabled = 1u << 6,  // DP 17 switch_enabled false: button, SetRelay do not switch (kCapSwitchLock)
  kNoMains = 1u << 7,  // the meter sees no mains voltage: a state, not a 0 V reading (voltage not valid)
};

// The meter's state in a Reading's flags: no mains only while the meter works; a quantity (kVoltageValid,
// kCurrentValid or kPowerValid) is measured when the meter works, sees mains and set its valid flag.
constexpr bool no_mains(uint8_t flags) {
  return (flags & (kMeterOk | kNoMains)) == (kMeterOk | kNoMains);
}
constexpr bool measured(uint8_t flags, uint8_t valid) {
  return (flags & (kMeterOk | kNoMains | valid)) == (kMeterOk | valid);
}

struct Reading {
  uint32_t seq;     // per boot, shared with Event, starts at 1
  uint32_t age_ms;  // time from sampling to sending (lets the gateway timestamp resends)
  uint8_t flags;
  uint32_t voltage_mv;
  uint32_t current_ua;
  uint32_t power_mw;  // active power
  uint32_t apparent_mva;
  uint16_t power_factor_e4;  // PF x 10000
  uint64_t energy_mwh;       // cumulative counter, wraps to 0 at 10 000 kWh
  uint16_t energy_epoch;     // incremented at every wrap or factory reset
  // v1 extension (issue 3): absent in 37-byte legacy readings, decoded as 0.
  uint32_t countdown_s;   // seconds until the relay flips; 0 = no countdown running
  uint32_t switch_count;  // relay switchings since the last factory reset (DP 42), persisted
};

enum class EventType : uint8_t {
  RelayChanged = 1,  // value: 0 off / 1 on
  OverCurrent = 2,   // value: current in mA that tripped
  MeterLost = 3,     // value: 0 no valid frame for the timeout, else why a run of frames was rejected
  MeterRestored = 4,
  OverPower = 5,     // value: power in W that tripped
  OverVoltage = 6,   // value: voltage in mV that tripped
  UnderVoltage = 7,  // value: voltage in mV that tripped
  FactoryReset = 8,  // value: the new energy epoch
};

enum class Cause : uint8_t {
  Unknown = 0,
  Button = 1,
  Command = 2,
  Protection = 3,
  Countdown = 4,
  PowerOn = 5,
};

struct Event {
  uint32_t seq;
  uint32_t age_ms;
  EventType type;
  Cause cause;
  int32_t value;
};

struct Ack {
  uint32_t up_to_seq;  // every record of this boot with seq <= up_to_seq is committed
};

enum class CommandKind : uint8_t {
  SetRelay = 1,         // value 0/1
  SetCurrentLimit = 2,  // value mA
  RequestReading = 3,   // send a reading now
  // v1 extension (issue 3). Limits and calibration persist in the socket; 0 = "off" where noted.
  SetCountdown = 4,            // value s (0 cancels, max 86400): the relay flips when it runs out
  SetOverCurrentDuration = 5,  // value ms the over-limit condition must last (0 = first frame), max 600000
  SetPowerLimit = 6,           // value W (0 = off), max 6000
  SetVoltageMax = 7,           // value V (0 = off), max 300
  SetVoltageMin = 8,           // value V (0 = off), max 300
  SetKv = 9,                   // value Kv x 1e6
  SetKi = 10,                  // value Ki x 1e6
  CalibrateVoltage = 11,       // value: true mV now (known load); sets Kv from the current registers
  CalibrateCurrent = 12,       // value: true mA now; sets Ki
  CalibratePower = 13,         // value: true mW now (resistive load); sets Ki keeping Kv (VoltageSet first)
  // v1 extension (issue 5), only to sockets announcing kCapSwitchLock. Persisted.
  SetSwitchEnabled = 14,  // value 0/1: 0 = button, SetRelay and SetCountdown (> 0) no longer switch
};

struct Command {
  uint32_t cmd_id;
  CommandKind kind;
  int32_t value;
};

enum class CommandStatus : uint8_t { Ok = 0, Unsupported = 1, InvalidValue = 2, Refused = 3 };

// Each enum's values are contiguous from its first to its last: what decode accepts and
// pbfw/proto_names.hpp names.
inline constexpr EventType kFirstEventType = EventType::RelayChanged;
inline constexpr EventType kLastEventType = EventType::FactoryReset;
inline constexpr Cause kFirstCause = Cause::Unknown;
inline constexpr Cause kLastCause = Cause::PowerOn;
inline constexpr CommandKind kFirstCommandKind = CommandKind::SetRelay;
inline constexpr CommandKind kLastCommandKind = CommandKind::SetSwitchEnabled;
inline constexpr CommandStatus kFirstCommandStatus = CommandStatus::Ok;
inline constexpr CommandStatus kLastCommandStatus = CommandStatus::Refused;

struct CommandResult {
  uint32_t cmd_id;
  CommandStatus status;
  uint8_t relay_on;
};

struct Keepalive {
  uint64_t uptime_ms;
};

struct Message {
  MsgType type;
  union {
    Hello hello;
    HelloAck hello_ack;
    Reading reading;
    Event event;
    Ack ack;
    Command command;
    CommandResult command_result;
    Keepalive keepalive;
  };
};

enum class DecodeStatus : uint8_t {
  Ok,        // one frame decoded into `out`, `consumed` bytes used
  NeedMore,  // not a whole frame yet
  BadSof,
  BadVersion,
  TooLarge,  // declared payload length > kMaxPayload
  BadCrc,
  UnknownType,
  Malformed,  // payload length/content does not fit the message type
};

const char* to_string(DecodeStatus s);
const char* to_string(MsgType t);

uint16_t crc16_ccitt(const uint8_t* data, size_t len, uint16_t crc = 0xFFFF);

// Encodes one frame; returns its length, or 0 if `cap` is too small or the message is invalid.
size_t encode(const Message& msg, uint8_t* out, size_t cap);

// Decodes the first frame of buf[0..len). Stateless: the caller keeps unconsumed bytes.
DecodeStatus decode(const uint8_t* buf, size_t len, Message& out, size_t& consumed);

}  // namespace pbfw::proto
