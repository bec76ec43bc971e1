// Intel HEX (I32HEX): the format STM32 programmers take for a unit's device-information page.
// write() emits type 04 (extended linear address) whenever the upper 16 address bits change,
// type 00 data records that never cross a 64 KB boundary, and the type 01 end-of-file record.
// parse() reads it back (types 00, 01, 02, 04; 03/05 start addresses are ignored) for tests and
// for checking a file before it is programmed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pb::ihex {

class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Segment {
  uint32_t address = 0;
  std::vector<uint8_t> data;
};

// Two's complement of the byte sum of a record's count, address, type and data bytes.
uint8_t checksum(std::span<const uint8_t> bytes);

// One line ":LLAAAATT<data>CC" (upper-case hex, no line end).
std::string record(uint8_t type, uint16_t address, std::span<const uint8_t> data);

// The whole file, "\n" after every record. bytes_per_record: 1..255 (16 is what most tools write).
std::string write(std::span<const Segment> segments, size_t bytes_per_record = 16);
std::string write(uint32_t address, std::span<const uint8_t> data, size_t bytes_per_record = 16);

// Absolute address -> byte. Throws ParseError("line N: ...") on bad syntax, a wrong checksum, a
// record after EOF, a missing EOF or a byte written twice.
std::map<uint32_t, uint8_t> parse(std::string_view text);

}  // namespace pb::ihex
