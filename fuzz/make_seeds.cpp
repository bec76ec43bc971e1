// Writes the binary seed inputs of the lan_frame and hlw8032 fuzz targets from the codebase's own
// encoders: make_seeds DIR writes DIR/lan_frame/* and DIR/hlw8032/* (DIR is normally fuzz/corpus).
// The text targets' seeds (cloud_command, config_yaml) are written by hand.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <pbfw/proto.hpp>
#include <string>
#include <vector>

#include "hlw8032_frames.hpp"

namespace fs = std::filesystem;
namespace proto = pbfw::proto;
using Bytes = std::vector<uint8_t>;

namespace {

void write(const fs::path& dir, const std::string& name, const Bytes& b) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
    std::exit(1);
  }
}

Bytes frame(const proto::Message& m) {
  uint8_t buf[proto::kMaxFrame];
  const size_t n = proto::encode(m, buf, sizeof buf);
  if (n == 0) {
    std::fprintf(stderr, "cannot encode a %s seed\n", proto::to_string(m.type));
    std::exit(1);
  }
  return Bytes(buf, buf + n);
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

void lan_frames(const fs::path& dir) {
  proto::Message hello{};
  hello.type = proto::MsgType::Hello;
  hello.hello = {};
  hello.hello.proto_version = proto::kVersion;
  std::strcpy(hello.hello.cid, "plug-kitchen_01");
  std::strcpy(hello.hello.fw_version, "1.4.2");
  hello.hello.capabilities = proto::kCapRelay | proto::kCapMeter | proto::kCapOverCurrent |
                             proto::kCapCountdown | proto::kCapSwitchLock;
  hello.hello.boot_counter = 17;
  hello.hello.uptime_ms = 1234;
  write(dir, "hello", frame(hello));

  proto::Message longest = hello;
  std::memset(longest.hello.cid, 'c', proto::kCidMax);
  longest.hello.cid[proto::kCidMax] = '\0';
  std::memset(longest.hello.fw_version, 'v', proto::kFwVersionMax);
  longest.hello.fw_version[proto::kFwVersionMax] = '\0';
  write(dir, "hello_longest", frame(longest));

  proto::Message ack_hello{};
  ack_hello.type = proto::MsgType::HelloAck;
  ack_hello.hello_ack = {1'700'000'000'000ULL, 41, 30};
  write(dir, "hello_ack", frame(ack_hello));

  proto::Message reading{};
  reading.type = proto::MsgType::Reading;
  reading.reading = {};
  reading.reading.seq = 42;
  reading.reading.age_ms = 150;
  reading.reading.flags =
      proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid | proto::kMeterOk | proto::kRelayOn;
  reading.reading.voltage_mv = 230'100;
  reading.reading.current_ua = 1'250'000;
  reading.reading.power_mw = 280'000;
  reading.reading.apparent_mva = 287'625;
  reading.reading.power_factor_e4 = 9735;
  reading.reading.energy_mwh = 12'345'678;
  reading.reading.energy_epoch = 1;
  reading.reading.countdown_s = 600;
  reading.reading.switch_count = 99;
  const Bytes current = frame(reading);
  write(dir, "reading", current);

  // The 37-byte layout older firmware sends: no countdown_s / switch_count.
  Bytes legacy(current.begin(), current.begin() + proto::kHeaderSize + 37);
  legacy[3] = 0;
  legacy[4] = 37;
  const uint16_t crc = proto::crc16_ccitt(legacy.data() + 1, legacy.size() - 1);
  legacy.push_back(static_cast<uint8_t>(crc >> 8));
  legacy.push_back(static_cast<uint8_t>(crc));
  write(dir, "reading_legacy", legacy);

  proto::Message event{};
  event.type = proto::MsgType::Event;
  event.event = {43, 10, proto::EventType::OverCurrent, proto::Cause::Protection, 16'200};
  write(dir, "event", frame(event));

  proto::Message ack{};
  ack.type = proto::MsgType::Ack;
  ack.ack = {43};
  const Bytes ack_frame = frame(ack);
  write(dir, "ack", ack_frame);

  proto::Message command{};
  command.type = proto::MsgType::Command;
  command.command = {7, proto::CommandKind::SetCurrentLimit, 10'000};
  write(dir, "command", frame(command));

  proto::Message result{};
  result.type = proto::MsgType::CommandResult;
  result.command_result = {7, proto::CommandStatus::InvalidValue, 1};
  write(dir, "command_result", frame(result));

  proto::Message keepalive{};
  keepalive.type = proto::MsgType::Keepalive;
  keepalive.keepalive = {86'400'000};
  const Bytes keepalive_frame = frame(keepalive);
  write(dir, "keepalive", keepalive_frame);

  // Streams: frames back to back, noise before a frame, a corrupted CRC, a cut-off frame.
  write(dir, "stream_reading_ack_keepalive", cat({current, ack_frame, keepalive_frame}));
  write(dir, "stream_noise_then_frame", cat({Bytes{0x00, 0xA5, 0x02, 0xA5, 0x01, 0xFF, 0xFF}, ack_frame}));
  Bytes bad_crc = ack_frame;
  bad_crc.back() ^= 0x01;
  write(dir, "bad_crc_then_frame", cat({bad_crc, keepalive_frame}));
  write(dir, "truncated", Bytes(current.begin(), current.begin() + 20));
}

void hlw8032(const fs::path& dir) {
  using pbfw::testing::build_frame;
  using pbfw::testing::frame_for;
  using pbfw::testing::FrameRegs;
  auto bytes = [](const pbfw::testing::Hlw8032Frame& f) { return Bytes(f.begin(), f.end()); };
  const Bytes mode_plain{0x00};

  // Mode 0: the reference board's calibration, plain byte stream.
  write(dir, "kettle_230v_8a", cat({mode_plain, bytes(frame_for(230'000, 8'000'000, 1'840'000, 5))}));
  write(dir, "lamp_pf", cat({mode_plain, bytes(frame_for(231'500, 260'000, 40'000, 300))}));
  write(dir, "no_load", cat({mode_plain, bytes(frame_for(229'000, 0, 0, 12))}));
  write(dir, "three_frames_wrap",
        cat({mode_plain, bytes(frame_for(230'000, 1'000'000, 230'000, 65'534)),
             bytes(frame_for(230'000, 1'000'000, 230'000, 65'535)),
             bytes(frame_for(230'000, 1'000'000, 230'000, 1, true))}));
  FrameRegs uncal;
  uncal.state = 0xAA;
  write(dir, "uncalibrated", cat({mode_plain, bytes(build_frame(uncal))}));
  FrameRegs flagged;
  flagged.state = 0xF1;  // coefficient storage abnormal
  write(dir, "coefficients_lost", cat({mode_plain, bytes(build_frame(flagged))}));
  auto broken = frame_for(230'000, 1'000'000, 230'000, 9);
  broken[23] ^= 0xFF;
  write(dir, "checksum_error_then_frame",
        cat({mode_plain, bytes(broken), bytes(frame_for(230'000, 1'000'000, 230'000, 10))}));
  write(dir, "noise_then_frame",
        cat({mode_plain, Bytes{0x5A, 0x55, 0x00, 0xF2, 0x13, 0x55},
             bytes(frame_for(120'000, 500'000, 60'000, 3))}));

  // Mode 1: calibration from the input (Kv 2.0, Ki 0.9).
  write(dir, "calibrated",
        cat({Bytes{0x01, 0x00, 0x1E, 0x84, 0x80, 0x00, 0x0D, 0xBB, 0xA0},
             bytes(frame_for(230'000, 1'000'000, 230'000, 4))}));
  // Mode 2: (byte, flags) pairs; a UART error inside the first frame, then a clean one.
  Bytes pairs{0x02};
  const auto first = frame_for(230'000, 2'000'000, 460'000, 20);
  const auto second = frame_for(230'000, 2'000'000, 460'000, 21);
  for (size_t i = 0; i < first.size(); ++i) pairs.insert(pairs.end(), {first[i], uint8_t(i == 11 ? 1 : 0)});
  for (const uint8_t b : second) pairs.insert(pairs.end(), {b, 0});
  write(dir, "byte_error_then_frame", pairs);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (normally fuzz/corpus)\n", argv[0]);
    return 2;
  }
  const fs::path root(argv[1]);
  lan_frames(root / "lan_frame");
  hlw8032(root / "hlw8032");
  return 0;
}
