// `plugsim decode`: decodes captured HLW8032 frames (hex) with the firmware's own decoder, for people
// bringing up a board.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace plugsim {

// Hex text to bytes; spaces, ':' , ',' and '-' separators and "0x" prefixes are ignored.
// Returns false on any other character or an odd number of digits.
bool parse_hex_bytes(const std::string& text, std::vector<uint8_t>& out);

// One JSON object (single line) describing a 24-byte frame decoded with Kv, Ki (x 1e6): raw registers,
// state flags, checksum, and — when the frame is accepted — V, I, P, S, PF and Wh per PF pulse; else the
// reason it is rejected ("checksum", "uncalibrated", "implausible", "not_a_frame").
std::string decode_frame_json(const uint8_t* frame, uint32_t kv_e6, uint32_t ki_e6);

// The `plugsim decode [--kv K] [--ki K] HEX...` command: all arguments are joined and split into 24-byte
// frames, one JSON line each on stdout. Returns the process exit code.
int decode_main(int argc, char** argv);

}  // namespace plugsim
