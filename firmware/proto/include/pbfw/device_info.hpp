// The device-information page: one unit's identity, written once at production (Intel HEX programmed into
// the 4 KB page at 0x0801B000 on the STM32G070, 0x0800B000 on the G030; see firmware/README.md) and checked
// by the firmware at boot. The provisioning tool encodes it, the firmware decodes it; both use this code
// (part of the wire contract, pbfw_proto).
// No heap, no exceptions, no RTTI.
//
// Record v1, little-endian, at the start of the page (the rest of the page stays erased, 0xFF):
//   0  u32  magic 0x49444250 ("PBDI")      74  u8   psk_len (16..32)
//   4  u16  version (1)                    75  u8   psk[32] (zero-padded)
//   6  u16  size of the record (188)      107  char gateway_host[64] (NUL-padded)
//   8  char cid[33] (NUL-padded)          171  u8   reserved (0)
//  41  char product_id[33] (NUL-padded)   172  u16  gateway_port
//                                          174  u16  reserved (0)
//                                          176  u32  kv_e6, 180 u32 ki_e6 (HLW8032 calibration defaults)
//                                          184  u32  CRC-32 (IEEE 802.3) of bytes 0..183
#pragma once

#include <cstddef>
#include <cstdint>
#include <pbfw/limits.hpp>

namespace pbfw {

struct DeviceInfo {
  static constexpr size_t kCidMax = proto::kCidMax, kPskMin = proto::kPskMin, kPskMax = proto::kPskMax;
  static constexpr size_t kProductIdMax = 32, kHostMax = 63;
  char cid[kCidMax + 1];  // NUL-terminated
  char product_id[kProductIdMax + 1];
  uint8_t psk[kPskMax];
  uint8_t psk_len;
  char gateway_host[kHostMax + 1];
  uint16_t gateway_port;
  uint32_t kv_e6, ki_e6;
};

inline constexpr uint32_t kDeviceInfoMagic = 0x4944'4250;
inline constexpr uint16_t kDeviceInfoVersion = 1;
inline constexpr size_t kDeviceInfoSize = 188;

enum class DeviceInfoStatus : uint8_t {
  Ok,
  Erased,      // never provisioned (all 0xFF)
  BadMagic,    // something else is in the page
  BadVersion,  // written by a newer provisioning tool
  BadCrc,
  BadField,  // CRC fine but a field is invalid (empty cid, short PSK, no gateway, port 0, zero Kv/Ki)
};
const char* to_string(DeviceInfoStatus s);

uint32_t crc32_ieee(const uint8_t* data, size_t len, uint32_t crc = 0);

// `page` holds at least `len` bytes of the page; validates everything above.
DeviceInfoStatus decode_device_info(const uint8_t* page, size_t len, DeviceInfo& out);
// Writes kDeviceInfoSize bytes; false if `info` is invalid (same rules as decoding).
bool encode_device_info(const DeviceInfo& info, uint8_t* out);

}  // namespace pbfw
