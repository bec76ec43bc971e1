#include "plugbridge/common/base64.hpp"

#include <cstdint>

namespace pb {

namespace {

int value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::optional<std::string> refuse(std::string* why, std::string text) {
  if (why) *why = std::move(text);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view t, std::string* why) {
  if (t.size() % 4 != 0)
    return refuse(why, "not base64: " + std::to_string(t.size()) + " characters, a multiple of 4 expected");
  const size_t pad = t.ends_with("==") ? 2 : t.ends_with('=') ? 1 : 0;
  std::string out;
  out.reserve(t.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < t.size() - pad; ++i) {
    const int v = value(t[i]);
    if (v < 0)
      return refuse(why, "not base64: " + std::string(t[i] == '=' ? "'=' before the end" : "bad character") +
                             " at position " + std::to_string(i + 1));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // What is left over are the bits after the last byte: none in canonical base64.
  if ((acc & ((1u << bits) - 1)) != 0)
    return refuse(why, "not base64: bad padding (bits set after the last byte)");
  return out;
}

}  // namespace pb
