#include <cstring>
#include <pbfw/device_info.hpp>

namespace pbfw {
namespace {

constexpr size_t kOffCid = 8, kOffProduct = 41, kOffPskLen = 74, kOffPsk = 75, kOffHost = 107, kOffPort = 172,
                 kOffKv = 176, kOffKi = 180, kOffCrc = 184;
constexpr size_t kFieldCid = 33, kFieldProduct = 33, kFieldHost = 64;

uint32_t get_le(const uint8_t* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}
void put_le(uint8_t* p, uint32_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// A NUL-terminated printable string filling at most field - 1 bytes, NUL-padded.
bool get_text(const uint8_t* p, size_t field, bool allow_empty, char* out) {
  size_t n = 0;
  while (n < field && p[n] != 0) {
    if (p[n] < 0x21 || p[n] > 0x7E) return false;
    ++n;
  }
  if (n == field || (n == 0 && !allow_empty)) return false;
  for (size_t i = n; i < field; ++i)
    if (p[i] != 0) return false;
  std::memcpy(out, p, n);
  out[n] = '\0';
  return true;
}

bool put_text(uint8_t* p, size_t field, bool allow_empty, const char* s) {
  size_t n = 0;  // strnlen is POSIX, not in newlib's strict C++ mode
  while (n < field && s[n] != '\0') ++n;
  if (n == field || (n == 0 && !allow_empty)) return false;
  for (size_t i = 0; i < n; ++i)
    if (s[i] < 0x21 || s[i] > 0x7E) return false;
  std::memset(p, 0, field);
  std::memcpy(p, s, n);
  return true;
}

bool numbers_valid(const DeviceInfo& d) {
  return d.psk_len >= DeviceInfo::kPskMin && d.psk_len <= DeviceInfo::kPskMax && d.gateway_port != 0 &&
         d.kv_e6 != 0 && d.ki_e6 != 0;
}

}  // namespace

const char* to_string(DeviceInfoStatus s) {
  switch (s) {
    case DeviceInfoStatus::Ok:
      return "ok";
    case DeviceInfoStatus::Erased:
      return "erased";
    case DeviceInfoStatus::BadMagic:
      return "bad magic";
    case DeviceInfoStatus::BadVersion:
      return "unsupported version";
    case DeviceInfoStatus::BadCrc:
      return "bad CRC";
    case DeviceInfoStatus::BadField:
      return "invalid field";
  }
  return "?";
}

uint32_t crc32_ieee(const uint8_t* data, size_t len, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < len; ++i) {  // bitwise: no 1 KB table in the MCU's flash
    crc ^= data[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB8'8320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

DeviceInfoStatus decode_device_info(const uint8_t* page, size_t len, DeviceInfo& out) {
  if (len < kDeviceInfoSize) return DeviceInfoStatus::BadMagic;
  const uint32_t magic = get_le(page, 4);
  if (magic == 0xFFFF'FFFFu) return DeviceInfoStatus::Erased;
  if (magic != kDeviceInfoMagic) return DeviceInfoStatus::BadMagic;
  if (get_le(page + 4, 2) != kDeviceInfoVersion) return DeviceInfoStatus::BadVersion;
  if (get_le(page + 6, 2) != kDeviceInfoSize) return DeviceInfoStatus::BadVersion;
  if (crc32_ieee(page, kOffCrc) != get_le(page + kOffCrc, 4)) return DeviceInfoStatus::BadCrc;

  DeviceInfo d{};
  if (!get_text(page + kOffCid, kFieldCid, false, d.cid) ||
      !get_text(page + kOffProduct, kFieldProduct, true, d.product_id) ||
      !get_text(page + kOffHost, kFieldHost, false, d.gateway_host))
    return DeviceInfoStatus::BadField;
  d.psk_len = page[kOffPskLen];
  if (d.psk_len > DeviceInfo::kPskMax) return DeviceInfoStatus::BadField;
  std::memcpy(d.psk, page + kOffPsk, d.psk_len);
  d.gateway_port = static_cast<uint16_t>(get_le(page + kOffPort, 2));
  d.kv_e6 = get_le(page + kOffKv, 4);
  d.ki_e6 = get_le(page + kOffKi, 4);
  if (!numbers_valid(d)) return DeviceInfoStatus::BadField;
  out = d;
  return DeviceInfoStatus::Ok;
}

bool encode_device_info(const DeviceInfo& info, uint8_t* out) {
  std::memset(out, 0, kDeviceInfoSize);
  if (!numbers_valid(info)) return false;
  put_le(out, kDeviceInfoMagic, 4);
  put_le(out + 4, kDeviceInfoVersion, 2);
  put_le(out + 6, kDeviceInfoSize, 2);
  if (!put_text(out + kOffCid, kFieldCid, false, info.cid) ||
      !put_text(out + kOffProduct, kFieldProduct, true, info.product_id) ||
      !put_text(out + kOffHost, kFieldHost, false, info.gateway_host))
    return false;
  out[kOffPskLen] = info.psk_len;
  std::memcpy(out + kOffPsk, info.psk, info.psk_len);
  put_le(out + kOffPort, info.gateway_port, 2);
  put_le(out + kOffKv, info.kv_e6, 4);
  put_le(out + kOffKi, info.ki_e6, 4);
  put_le(out + kOffCrc, crc32_ieee(out, kOffCrc), 4);
  return true;
}

}  // namespace pbfw
