#include "plugsim/decode.hpp"

#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <pbfw/hlw8032.hpp>

namespace plugsim {

namespace {

uint32_t be24(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 16) | (static_cast<uint32_t>(p[1]) << 8) | p[2];
}

std::string hex_of(const uint8_t* p, size_t n) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, i == 0 ? "%02X" : " %02X", p[i]);
    s += buf;
  }
  return s;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool parse_hex_bytes(const std::string& text, std::vector<uint8_t>& out) {
  out.clear();
  int high = -1;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == ':' || c == ',' || c == '-' || c == '\n') continue;
    if (c == '0' && i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X') && high < 0) {
      ++i;
      continue;
    }
    const int d = hex_digit(c);
    if (d < 0) return false;
    if (high < 0) {
      high = d;
    } else {
      out.push_back(static_cast<uint8_t>(high << 4 | d));
      high = -1;
    }
  }
  return high < 0;
}

std::string decode_frame_json(const uint8_t* f, uint32_t kv_e6, uint32_t ki_e6,
                              const pbfw::MeterLimits& limits) {
  using nlohmann::json;
  using pbfw::Hlw8032Decoder;
  const uint8_t state = f[0];
  json j{{"frame", hex_of(f, Hlw8032Decoder::kFrameSize)},
         {"kv", kv_e6 / 1e6},
         {"ki", ki_e6 / 1e6},
         {"state", state},
         {"check", f[1]},
         {"registers",
          {{"vp", be24(f + 2)},
           {"v", be24(f + 5)},
           {"ip", be24(f + 8)},
           {"i", be24(f + 11)},
           {"pp", be24(f + 14)},
           {"p", be24(f + 17)},
           {"data_update", f[20]},
           {"pf_count", (f[21] << 8) | f[22]}}},
         {"checksum_ok", Hlw8032Decoder::checksum_ok(f)}};
  const bool flagged = state != Hlw8032Decoder::kStateNormal && (state & 0xF0) == 0xF0;
  j["flags"] = {{"voltage_overflow", flagged && (state & 0x08) != 0},
                {"current_overflow", flagged && (state & 0x04) != 0},
                {"power_overflow", flagged && (state & 0x02) != 0},
                {"coefficient_abnormal", flagged && (state & 0x01) != 0},
                {"pf_wrap_bit", (f[20] & Hlw8032Decoder::kPfWrapBit) != 0}};
  // The data-update bits as sent; "refreshed" below adds the overflowed (below threshold = 0) quantities.
  j["updated"] = {{"voltage", (f[20] & Hlw8032Decoder::kUpdateVoltageBit) != 0},
                  {"current", (f[20] & Hlw8032Decoder::kUpdateCurrentBit) != 0},
                  {"power", (f[20] & Hlw8032Decoder::kUpdatePowerBit) != 0}};
  const char* reject = nullptr;
  bool decoded = false;
  pbfw::MeterSample s;
  if (!Hlw8032Decoder::is_state_byte(state) || f[1] != Hlw8032Decoder::kCheckByte) {
    reject = "not_a_frame";
  } else if (!Hlw8032Decoder::checksum_ok(f)) {
    reject = "checksum";
  } else {
    // A single frame: nothing held from earlier ones, so a quantity it did not refresh has no value.
    const pbfw::Hlw8032Reject r = Hlw8032Decoder::decode_frame(f, kv_e6, ki_e6, limits, s);
    decoded = r != pbfw::Hlw8032Reject::Uncalibrated && r != pbfw::Hlw8032Reject::Corrupt;
    if (r != pbfw::Hlw8032Reject::None) reject = pbfw::to_string(r);
  }
  j["accepted"] = reject == nullptr;
  j["verdict"] = reject == nullptr ? "accepted" : "rejected";
  if (reject != nullptr) j["reject"] = reject;
  if (!decoded) return j.dump();
  // Values are shown for rejected-but-decoded frames too: they say why the frame is not plausible.
  j["refreshed"] = {{"voltage", (s.refreshed & pbfw::kMeterVoltage) != 0},
                    {"current", (s.refreshed & pbfw::kMeterCurrent) != 0},
                    {"power", (s.refreshed & pbfw::kMeterPower) != 0}};
  j["no_mains"] = s.no_mains;
  auto value = [&](uint8_t q, double v) { return (s.valid & q) != 0 ? json(v) : json(nullptr); };
  j["voltage_v"] = value(pbfw::kMeterVoltage, s.voltage_mv / 1e3);
  j["current_a"] = value(pbfw::kMeterCurrent, s.current_ua / 1e6);
  j["power_w"] = value(pbfw::kMeterPower, s.power_mw / 1e3);
  j["apparent_va"] = s.apparent_mva / 1e3;
  j["power_factor"] = s.power_factor_e4 / 1e4;
  j["wh_per_pulse"] = static_cast<double>(s.power_param) * (kv_e6 / 1e6) * (ki_e6 / 1e6) / 3.6e9;
  return j.dump();
}

}  // namespace plugsim
