// FNV-1a, 32 bits, of a C string: a socket's own number from its cid (its reconnect jitter, the
// phase of its readings), the same on every boot and different from socket to socket.
#pragma once

#include <cstdint>

namespace pbfw {

constexpr uint32_t fnv1a(const char* s) {
  uint32_t h = 2166136261u;
  while (s != nullptr && *s != '\0') {
    h ^= static_cast<uint8_t>(*s++);
    h *= 16777619u;
  }
  return h;
}

}  // namespace pbfw
