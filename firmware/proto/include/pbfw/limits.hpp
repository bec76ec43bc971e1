// The value ranges and formats of the LAN protocol v1 that the socket enforces and the gateway and the
// provisioning tool check against (see docs/lan-protocol.md). Compiled into the MCU image as well:
// constants and constexpr functions only, no heap, no exceptions, no RTTI.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pbfw::proto {

// Identity: a socket's cid is 1..kCidMax characters of [A-Za-z0-9_-]; it is the TLS-PSK identity and the
// Hello's cid. The PSK is kPskMin..kPskMax bytes (provisioning mints kPskMin, 128 bits).
inline constexpr size_t kCidMax = 32;  // bytes, without terminator
inline constexpr size_t kPskMin = 16;
inline constexpr size_t kPskMax = 32;

constexpr bool valid_cid_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// `len` characters at `s` form a valid cid.
constexpr bool valid_cid(const char* s, size_t len) {
  if (len == 0 || len > kCidMax) return false;
  for (size_t i = 0; i < len; ++i)
    if (!valid_cid_char(s[i])) return false;
  return true;
}

// Command values (CommandKind) the socket accepts; anything else is answered InvalidValue.
inline constexpr uint32_t kMinCurrentLimitMa = 100;            // SetCurrentLimit, mA
inline constexpr uint32_t kMaxCurrentLimitMa = 20000;          //
inline constexpr uint32_t kMaxCountdownS = 86400;              // SetCountdown, s (0 cancels)
inline constexpr uint32_t kMaxOverCurrentDurationMs = 600000;  // SetOverCurrentDuration, ms
inline constexpr uint32_t kMaxPowerLimitW = 6000;              // SetPowerLimit, W (0 = off)
inline constexpr uint32_t kMaxVoltageLimitV = 300;             // SetVoltageMax / SetVoltageMin, V (0 = off)
inline constexpr uint32_t kMinCalibrationE6 = 10'000;          // SetKv / SetKi and calibration results: 0.01
inline constexpr uint32_t kMaxCalibrationE6 = 100'000'000;     // ... up to 100

// HLW8032 calibration constants of the reference board (x 1e6): the socket's defaults, and what the
// provisioning tool writes into the device-information page unless told otherwise.
inline constexpr uint32_t kDefaultKvE6 = 1880000;  // 4 x 470 kOhm divider
inline constexpr uint32_t kDefaultKiE6 = 1000000;  // 1 mOhm shunt

constexpr bool valid_calibration_e6(uint64_t e6) {
  return e6 >= kMinCalibrationE6 && e6 <= kMaxCalibrationE6;
}

// The link: TLS 1.2 with a pre-shared key (identity = cid), forward secret, these suites in this order.
// Both ends (the gateway's server, the host port's client) set exactly this list.
inline constexpr const char* kPskCipherList = "ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES128-CBC-SHA256";

}  // namespace pbfw::proto
