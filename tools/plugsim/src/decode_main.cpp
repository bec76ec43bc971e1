// `plugsim decode`: kept out of main.cpp so the simulator's CLI stays as it is.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <pbfw/hlw8032.hpp>

#include "plugsim/decode.hpp"

namespace plugsim {

int decode_main(int argc, char** argv) {
  CLI::App app{"plugsim decode: decode captured HLW8032 frames (24 bytes each, hex) as JSON lines"};
  app.name("plugsim decode");
  double kv = pbfw::kDefaultKvE6 / 1e6, ki = pbfw::kDefaultKiE6 / 1e6;
  pbfw::MeterLimits limits;
  double nominal_v = limits.nominal_voltage_mv / 1e3;
  std::vector<std::string> hex;
  app.add_option("--kv", kv, "voltage coefficient Kv")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1000.0));
  app.add_option("--ki", ki, "current coefficient Ki")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1000.0));
  app.add_option("--nominal-v", nominal_v, "nominal mains voltage the plausibility band is centred on")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1000.0));
  app.add_option("--band-pct", limits.voltage_band_pct,
                 "plausible mains voltage: nominal +- this many percent")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  app.add_option("hex", hex, "frame bytes in hex (one frame per argument, or bytes spread over arguments)")
      ->required();
  CLI11_PARSE(app, argc, argv);

  std::string joined;
  for (const auto& h : hex) joined += h + " ";
  std::vector<uint8_t> bytes;
  if (!parse_hex_bytes(joined, bytes) || bytes.empty() ||
      bytes.size() % pbfw::Hlw8032Decoder::kFrameSize != 0) {
    std::fprintf(stderr, "plugsim decode: want hex for whole 24-byte frames (got %zu bytes)\n", bytes.size());
    return 2;
  }
  const auto kv_e6 = static_cast<uint32_t>(kv * 1e6 + 0.5);
  const auto ki_e6 = static_cast<uint32_t>(ki * 1e6 + 0.5);
  limits.nominal_voltage_mv = static_cast<uint32_t>(nominal_v * 1e3 + 0.5);
  for (size_t at = 0; at < bytes.size(); at += pbfw::Hlw8032Decoder::kFrameSize) {
    std::printf("%s\n", decode_frame_json(bytes.data() + at, kv_e6, ki_e6, limits).c_str());
  }
  return 0;
}

}  // namespace plugsim
