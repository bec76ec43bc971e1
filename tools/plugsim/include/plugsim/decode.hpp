// `plugsim decode`: decodes captured HLW8032 frames (hex) with the firmware's own decoder, for people
// bringing up a board.
#pragma once

#include <cstdint>
#include <pbfw/hlw8032.hpp>
#include <string>
#include <vector>

namespace plugsim {

// Hex text to bytes; spaces, ':' , ',' and '-' separators and "0x" prefixes are ignored.
// Returns false on any other character or an odd number of digits.
bool parse_hex_bytes(const std::string& text, std::vector<uint8_t>& out);

// One JSON object (single line) describing a 24-byte frame decoded with Kv, Ki (x 1e6) and the firmware's
// plausibility limits: raw registers, state flags, data-update bits, checksum, the verdict ("accepted" /
// "rejected") and, if rejected, the reason ("not_a_frame", "checksum", "uncalibrated", "corrupt",
// "voltage_out_of_band", "current_over_rating", "power_over_apparent"). Whenever the registers decode
// (also for a plausibility reject): which quantities the frame refreshed, "no_mains", and V, I, P (null
// when the frame did not measure that quantity), S, PF and Wh per PF pulse.
std::string decode_frame_json(const uint8_t* frame, uint32_t kv_e6, uint32_t ki_e6,
                              const pbfw::MeterLimits& limits = {});

// The `plugsim decode [--kv K] [--ki K] [--nominal-v V] HEX...` command: all arguments are joined and split
// into 24-byte frames, one JSON line each on stdout. Returns the process exit code.
int decode_main(int argc, char** argv);

}  // namespace plugsim
