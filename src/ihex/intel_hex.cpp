#include "plugbridge/ihex/intel_hex.hpp"

#include <algorithm>

namespace pb::ihex {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

void put_byte(std::string& out, uint8_t b) {
  out += kHex[b >> 4];
  out += kHex[b & 0xF];
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

uint8_t checksum(std::span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t b : bytes) sum = static_cast<uint8_t>(sum + b);
  return static_cast<uint8_t>(0x100 - sum);
}

std::string record(uint8_t type, uint16_t address, std::span<const uint8_t> data) {
  if (data.size() > 255) throw std::invalid_argument("ihex: a record holds at most 255 bytes");
  std::vector<uint8_t> bytes{static_cast<uint8_t>(data.size()), static_cast<uint8_t>(address >> 8),
                             static_cast<uint8_t>(address & 0xFF), type};
  bytes.insert(bytes.end(), data.begin(), data.end());
  std::string line = ":";
  for (uint8_t b : bytes) put_byte(line, b);
  put_byte(line, checksum(bytes));
  return line;
}

std::string write(std::span<const Segment> segments, size_t bytes_per_record) {
  if (bytes_per_record == 0 || bytes_per_record > 255)
    throw std::invalid_argument("ihex: bytes_per_record must be 1..255");
  std::string out;
  bool have_upper = false;
  uint16_t upper = 0;
  for (const Segment& seg : segments) {
    if (seg.data.size() > 0x1'0000'0000ull - seg.address)
      throw std::invalid_argument("ihex: segment runs past the 4 GB address space");
    size_t pos = 0;
    while (pos < seg.data.size()) {
      const uint64_t addr = uint64_t{seg.address} + pos;
      const auto hi = static_cast<uint16_t>(addr >> 16);
      if (!have_upper || hi != upper) {
        const uint8_t ela[2] = {static_cast<uint8_t>(hi >> 8), static_cast<uint8_t>(hi & 0xFF)};
        out += record(0x04, 0, ela) + '\n';
        have_upper = true;
        upper = hi;
      }
      // Stop at the 64 KB boundary: the 16-bit record address must not wrap.
      const uint64_t to_boundary = 0x1'0000 - (addr & 0xFFFF);
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>({bytes_per_record, seg.data.size() - pos, to_boundary}));
      out += record(0x00, static_cast<uint16_t>(addr & 0xFFFF), std::span(seg.data).subspan(pos, n)) + '\n';
      pos += n;
    }
  }
  out += record(0x01, 0, {}) + '\n';
  return out;
}

std::string write(uint32_t address, std::span<const uint8_t> data, size_t bytes_per_record) {
  const Segment seg{address, std::vector<uint8_t>(data.begin(), data.end())};
  return write(std::span(&seg, 1), bytes_per_record);
}

std::map<uint32_t, uint8_t> parse(std::string_view text) {
  std::map<uint32_t, uint8_t> mem;
  uint32_t base = 0;
  bool eof = false;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    if (eof) throw ParseError(where + "record after the end-of-file record");
    if (line[0] != ':') throw ParseError(where + "a record starts with ':'");
    if (line.size() < 11 || line.size() % 2 == 0) throw ParseError(where + "truncated record");
    std::vector<uint8_t> bytes;
    for (size_t i = 1; i + 1 < line.size(); i += 2) {
      const int h = hex_digit(line[i]), l = hex_digit(line[i + 1]);
      if (h < 0 || l < 0) throw ParseError(where + "not a hex digit");
      bytes.push_back(static_cast<uint8_t>(h << 4 | l));
    }
    const size_t count = bytes[0];
    if (bytes.size() != count + 5) throw ParseError(where + "byte count does not match the record length");
    if (checksum(std::span(bytes).first(bytes.size() - 1)) != bytes.back())
      throw ParseError(where + "checksum mismatch");
    const uint16_t offset = static_cast<uint16_t>(bytes[1] << 8 | bytes[2]);
    const uint8_t type = bytes[3];
    const auto data = std::span(bytes).subspan(4, count);
    switch (type) {
      case 0x00:
        for (size_t i = 0; i < count; ++i) {
          const uint32_t a = base + ((offset + i) & 0xFFFF);  // wraps within the segment, per the spec
          if (!mem.emplace(a, data[i]).second) throw ParseError(where + "address written twice");
        }
        break;
      case 0x01:
        if (count != 0) throw ParseError(where + "end-of-file record with data");
        eof = true;
        break;
      case 0x02:
        if (count != 2) throw ParseError(where + "extended segment address needs 2 bytes");
        base = uint32_t{static_cast<uint16_t>(data[0] << 8 | data[1])} << 4;
        break;
      case 0x04:
        if (count != 2) throw ParseError(where + "extended linear address needs 2 bytes");
        base = uint32_t{static_cast<uint16_t>(data[0] << 8 | data[1])} << 16;
        break;
      case 0x03:
      case 0x05:
        break;  // start address: nothing to program
      default:
        throw ParseError(where + "unknown record type " + std::to_string(type));
    }
  }
  if (!eof) throw ParseError("missing end-of-file record");
  return mem;
}

}  // namespace pb::ihex
