#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <pbfw/proto.hpp>
#include <vector>

namespace pbfw::proto {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes encode_vec(const Message& m) {
  uint8_t buf[kMaxFrame];
  const size_t n = encode(m, buf, sizeof buf);
  return Bytes(buf, buf + n);
}

Message decode_ok(const Bytes& b) {
  Message out{};
  size_t consumed = 0;
  EXPECT_EQ(decode(b.data(), b.size(), out, consumed), DecodeStatus::Ok);
  EXPECT_EQ(consumed, b.size());
  return out;
}

// Rewrites the CRC after a test tampered with the header or payload.
void fix_crc(Bytes& b) {
  const uint16_t crc = crc16_ccitt(b.data() + 1, b.size() - 1 - kCrcSize);
  b[b.size() - 2] = static_cast<uint8_t>(crc >> 8);
  b[b.size() - 1] = static_cast<uint8_t>(crc);
}

// Builds a frame with an arbitrary type and payload and a correct CRC.
Bytes raw_frame(uint8_t type, const Bytes& payload) {
  Bytes b{kSof, kVersion, type, static_cast<uint8_t>(payload.size() >> 8),
          static_cast<uint8_t>(payload.size())};
  b.insert(b.end(), payload.begin(), payload.end());
  b.push_back(0);
  b.push_back(0);
  fix_crc(b);
  return b;
}

DecodeStatus decode_status(const Bytes& b, size_t* consumed_out = nullptr) {
  Message out{};
  size_t consumed = 0;
  const DecodeStatus s = decode(b.data(), b.size(), out, consumed);
  if (consumed_out) *consumed_out = consumed;
  return s;
}

Message make_hello(const char* cid, const char* fw) {
  Message m{};
  m.type = MsgType::Hello;
  m.hello.proto_version = kVersion;
  std::strncpy(m.hello.cid, cid, kCidMax);
  std::strncpy(m.hello.fw_version, fw, kFwVersionMax);
  m.hello.capabilities = 0x1F;
  m.hello.boot_counter = 7;
  m.hello.uptime_ms = 123456;
  return m;
}

Message make_reading() {
  Message m{};
  m.type = MsgType::Reading;
  m.reading = Reading{42, 1500, 0x1F, 230123, 1234567, 250000, 284000, 8803, 1234567890, 2, 600, 17};
  return m;
}

// The golden vectors below are also printed in docs/lan-protocol.md.
const Bytes kGoldenHello = {0xA5, 0x01, 0x01, 0x00, 0x21, 0x01, 0x09, 0x73, 0x6F, 0x63,
                            0x6B, 0x2D, 0x30, 0x30, 0x30, 0x31, 0x05, 0x31, 0x2E, 0x32,
                            0x2E, 0x30, 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x07,
                            0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xE2, 0x40, 0x01, 0x52};
const Bytes kGoldenReading = {0xA5, 0x01, 0x03, 0x00, 0x2D, 0x00, 0x00, 0x00, 0x2A, 0x00, 0x00, 0x05, 0xDC,
                              0x1F, 0x00, 0x03, 0x82, 0xEB, 0x00, 0x12, 0xD6, 0x87, 0x00, 0x03, 0xD0, 0x90,
                              0x00, 0x04, 0x55, 0x60, 0x22, 0x63, 0x00, 0x00, 0x00, 0x00, 0x49, 0x96, 0x02,
                              0xD2, 0x00, 0x02, 0x00, 0x00, 0x02, 0x58, 0x00, 0x00, 0x00, 0x11, 0x09, 0xE2};
// The 37-byte layout before countdown_s/switch_count were appended: still decoded.
const Bytes kGoldenLegacyReading = {0xA5, 0x01, 0x03, 0x00, 0x25, 0x00, 0x00, 0x00, 0x2A, 0x00, 0x00,
                                    0x05, 0xDC, 0x1F, 0x00, 0x03, 0x82, 0xEB, 0x00, 0x12, 0xD6, 0x87,
                                    0x00, 0x03, 0xD0, 0x90, 0x00, 0x04, 0x55, 0x60, 0x22, 0x63, 0x00,
                                    0x00, 0x00, 0x00, 0x49, 0x96, 0x02, 0xD2, 0x00, 0x02, 0xC4, 0x2D};

TEST(ProtoCrc, CheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(crc16_ccitt(reinterpret_cast<const uint8_t*>(s), 9), 0x29B1);
  EXPECT_EQ(crc16_ccitt(nullptr, 0), 0xFFFF);
  // Chained computation equals one-shot.
  const uint16_t first = crc16_ccitt(reinterpret_cast<const uint8_t*>(s), 4);
  EXPECT_EQ(crc16_ccitt(reinterpret_cast<const uint8_t*>(s) + 4, 5, first), 0x29B1);
}

TEST(ProtoGolden, Hello) {
  EXPECT_EQ(encode_vec(make_hello("sock-0001", "1.2.0")), kGoldenHello);
  const Message m = decode_ok(kGoldenHello);
  ASSERT_EQ(m.type, MsgType::Hello);
  EXPECT_STREQ(m.hello.cid, "sock-0001");
  EXPECT_STREQ(m.hello.fw_version, "1.2.0");
  EXPECT_EQ(m.hello.proto_version, 1);
  EXPECT_EQ(m.hello.capabilities, 0x1Fu);
  EXPECT_EQ(m.hello.boot_counter, 7u);
  EXPECT_EQ(m.hello.uptime_ms, 123456u);
}

TEST(ProtoGolden, Reading) {
  EXPECT_EQ(encode_vec(make_reading()), kGoldenReading);
  const Message m = decode_ok(kGoldenReading);
  ASSERT_EQ(m.type, MsgType::Reading);
  EXPECT_EQ(m.reading.seq, 42u);
  EXPECT_EQ(m.reading.age_ms, 1500u);
  EXPECT_EQ(m.reading.flags, 0x1F);
  EXPECT_EQ(m.reading.voltage_mv, 230123u);
  EXPECT_EQ(m.reading.current_ua, 1234567u);
  EXPECT_EQ(m.reading.power_mw, 250000u);
  EXPECT_EQ(m.reading.apparent_mva, 284000u);
  EXPECT_EQ(m.reading.power_factor_e4, 8803);
  EXPECT_EQ(m.reading.energy_mwh, 1234567890u);
  EXPECT_EQ(m.reading.energy_epoch, 2);
  EXPECT_EQ(m.reading.countdown_s, 600u);
  EXPECT_EQ(m.reading.switch_count, 17u);
}

TEST(ProtoGolden, LegacyReadingDecodesWithZeroExtension) {
  const Message m = decode_ok(kGoldenLegacyReading);
  ASSERT_EQ(m.type, MsgType::Reading);
  EXPECT_EQ(m.reading.seq, 42u);
  EXPECT_EQ(m.reading.energy_mwh, 1234567890u);
  EXPECT_EQ(m.reading.energy_epoch, 2);
  EXPECT_EQ(m.reading.countdown_s, 0u);
  EXPECT_EQ(m.reading.switch_count, 0u);
}

TEST(ProtoRoundTrip, HelloEdgeLengths) {
  // Longest cid and fw_version, and a minimal one-byte cid with empty fw_version.
  const std::string long_cid(kCidMax, 'c');
  const std::string long_fw(kFwVersionMax, 'v');
  for (auto [cid, fw] : {std::pair{long_cid.c_str(), long_fw.c_str()}, std::pair{"x", ""}}) {
    Message m = make_hello(cid, fw);
    m.hello.capabilities = 0xFFFFFFFFu;
    m.hello.boot_counter = 0xFFFFFFFFu;
    m.hello.uptime_ms = std::numeric_limits<uint64_t>::max();
    const Bytes b = encode_vec(m);
    ASSERT_FALSE(b.empty());
    EXPECT_EQ(b.size(), kHeaderSize + 19 + std::strlen(cid) + std::strlen(fw) + kCrcSize);
    const Message d = decode_ok(b);
    EXPECT_STREQ(d.hello.cid, cid);
    EXPECT_STREQ(d.hello.fw_version, fw);
    EXPECT_EQ(d.hello.capabilities, 0xFFFFFFFFu);
    EXPECT_EQ(d.hello.boot_counter, 0xFFFFFFFFu);
    EXPECT_EQ(d.hello.uptime_ms, std::numeric_limits<uint64_t>::max());
  }
}

TEST(ProtoRoundTrip, HelloAck) {
  for (uint64_t v : {uint64_t{0}, std::numeric_limits<uint64_t>::max()}) {
    Message m{};
    m.type = MsgType::HelloAck;
    m.hello_ack = HelloAck{v, static_cast<uint32_t>(v), static_cast<uint16_t>(v)};
    const Message d = decode_ok(encode_vec(m));
    ASSERT_EQ(d.type, MsgType::HelloAck);
    EXPECT_EQ(d.hello_ack.unix_ms, v);
    EXPECT_EQ(d.hello_ack.last_committed_seq, static_cast<uint32_t>(v));
    EXPECT_EQ(d.hello_ack.keepalive_s, static_cast<uint16_t>(v));
  }
}

TEST(ProtoRoundTrip, ReadingExtremes) {
  for (bool max : {false, true}) {
    Message m{};
    m.type = MsgType::Reading;
    if (max) std::memset(&m.reading, 0xFF, sizeof m.reading);
    const Message d = decode_ok(encode_vec(m));
    ASSERT_EQ(d.type, MsgType::Reading);
    const uint64_t all = max ? ~uint64_t{0} : 0;
    EXPECT_EQ(d.reading.seq, static_cast<uint32_t>(all));
    EXPECT_EQ(d.reading.age_ms, static_cast<uint32_t>(all));
    EXPECT_EQ(d.reading.flags, static_cast<uint8_t>(all));
    EXPECT_EQ(d.reading.voltage_mv, static_cast<uint32_t>(all));
    EXPECT_EQ(d.reading.current_ua, static_cast<uint32_t>(all));
    EXPECT_EQ(d.reading.power_mw, static_cast<uint32_t>(all));
    EXPECT_EQ(d.reading.apparent_mva, static_cast<uint32_t>(all));
    EXPECT_EQ(d.reading.power_factor_e4, static_cast<uint16_t>(all));
    EXPECT_EQ(d.reading.energy_mwh, all);
    EXPECT_EQ(d.reading.energy_epoch, static_cast<uint16_t>(all));
    EXPECT_EQ(d.reading.countdown_s, static_cast<uint32_t>(all));
    EXPECT_EQ(d.reading.switch_count, static_cast<uint32_t>(all));
  }
}

TEST(ProtoRoundTrip, EventAllTypesAndCauses) {
  for (uint8_t t = 1; t <= 8; ++t) {
    for (uint8_t c = 0; c <= 5; ++c) {
      for (int32_t v : {std::numeric_limits<int32_t>::min(), -1, 0, std::numeric_limits<int32_t>::max()}) {
        Message m{};
        m.type = MsgType::Event;
        m.event = Event{0xFFFFFFFFu, 7, static_cast<EventType>(t), static_cast<Cause>(c), v};
        const Message d = decode_ok(encode_vec(m));
        ASSERT_EQ(d.type, MsgType::Event);
        EXPECT_EQ(d.event.seq, 0xFFFFFFFFu);
        EXPECT_EQ(d.event.age_ms, 7u);
        EXPECT_EQ(d.event.type, static_cast<EventType>(t));
        EXPECT_EQ(d.event.cause, static_cast<Cause>(c));
        EXPECT_EQ(d.event.value, v);
      }
    }
  }
}

TEST(ProtoRoundTrip, AckCommandResultKeepalive) {
  Message m{};
  m.type = MsgType::Ack;
  m.ack.up_to_seq = 0xDEADBEEF;
  EXPECT_EQ(decode_ok(encode_vec(m)).ack.up_to_seq, 0xDEADBEEFu);

  for (uint8_t k = 1; k <= 14; ++k) {
    m = Message{};
    m.type = MsgType::Command;
    m.command = Command{0xFFFFFFFFu, static_cast<CommandKind>(k), -5000};
    const Message d = decode_ok(encode_vec(m));
    ASSERT_EQ(d.type, MsgType::Command);
    EXPECT_EQ(d.command.cmd_id, 0xFFFFFFFFu);
    EXPECT_EQ(d.command.kind, static_cast<CommandKind>(k));
    EXPECT_EQ(d.command.value, -5000);
  }

  for (uint8_t s = 0; s <= 3; ++s) {
    for (uint8_t relay : {0, 1}) {
      m = Message{};
      m.type = MsgType::CommandResult;
      m.command_result = CommandResult{1, static_cast<CommandStatus>(s), relay};
      const Message d = decode_ok(encode_vec(m));
      ASSERT_EQ(d.type, MsgType::CommandResult);
      EXPECT_EQ(d.command_result.cmd_id, 1u);
      EXPECT_EQ(d.command_result.status, static_cast<CommandStatus>(s));
      EXPECT_EQ(d.command_result.relay_on, relay);
    }
  }

  m = Message{};
  m.type = MsgType::Keepalive;
  m.keepalive.uptime_ms = 0x0102030405060708ull;
  EXPECT_EQ(decode_ok(encode_vec(m)).keepalive.uptime_ms, 0x0102030405060708ull);
}

TEST(ProtoEncode, RejectsSmallBufferAndInvalidMessages) {
  const Message hello = make_hello("sock-0001", "1.2.0");
  uint8_t buf[kMaxFrame];
  EXPECT_EQ(encode(hello, buf, kGoldenHello.size() - 1), 0u);
  EXPECT_EQ(encode(hello, buf, 0), 0u);
  EXPECT_EQ(encode(hello, buf, kGoldenHello.size()), kGoldenHello.size());

  Message m = make_hello("", "1.0");  // empty cid
  EXPECT_EQ(encode(m, buf, sizeof buf), 0u);
  m = make_hello("x", "1.0");
  std::memset(m.hello.cid, 'a', sizeof m.hello.cid);  // unterminated: longer than kCidMax
  EXPECT_EQ(encode(m, buf, sizeof buf), 0u);
  m = make_hello("x", "1.0");
  std::memset(m.hello.fw_version, 'a', sizeof m.hello.fw_version);
  EXPECT_EQ(encode(m, buf, sizeof buf), 0u);

  m = Message{};
  m.type = MsgType::Event;
  m.event = Event{1, 0, static_cast<EventType>(9), Cause::Button, 0};
  EXPECT_EQ(encode(m, buf, sizeof buf), 0u);
  m.event = Event{1, 0, EventType::OverPower, static_cast<Cause>(6), 0};
  EXPECT_EQ(encode(m, buf, sizeof buf), 0u);

  m = Message{};
  m.type = MsgType::Command;
  m.command = Command{1, static_cast<CommandKind>(0), 0};
  EXPECT_EQ(encode(m, buf, sizeof buf), 0u);
  m.command = Command{1, static_cast<CommandKind>(15), 0};
  EXPECT_EQ(encode(m, buf, sizeof buf), 0u);

  m = Message{};
  m.type = MsgType::CommandResult;
  m.command_result = CommandResult{1, static_cast<CommandStatus>(4), 0};
  EXPECT_EQ(encode(m, buf, sizeof buf), 0u);

  m = Message{};
  m.type = static_cast<MsgType>(99);
  EXPECT_EQ(encode(m, buf, sizeof buf), 0u);
}

TEST(ProtoDecode, NeedMoreForEveryPrefix) {
  for (const Bytes& frame : {kGoldenHello, kGoldenReading}) {
    for (size_t n = 0; n < frame.size(); ++n) {
      size_t consumed = 99;
      EXPECT_EQ(decode_status(Bytes(frame.begin(), frame.begin() + static_cast<long>(n)), &consumed),
                DecodeStatus::NeedMore)
          << "prefix " << n;
      EXPECT_EQ(consumed, 0u);
    }
  }
}

TEST(ProtoDecode, ByteAtATimeStream) {
  // Several frames back to back, fed one byte at a time, as a receive loop would.
  Bytes stream = kGoldenHello;
  stream.insert(stream.end(), kGoldenReading.begin(), kGoldenReading.end());
  Message ka{};
  ka.type = MsgType::Keepalive;
  ka.keepalive.uptime_ms = 5;
  const Bytes ka_bytes = encode_vec(ka);
  stream.insert(stream.end(), ka_bytes.begin(), ka_bytes.end());

  Bytes pending;
  std::vector<MsgType> got;
  for (uint8_t byte : stream) {
    pending.push_back(byte);
    Message out{};
    size_t consumed = 0;
    const DecodeStatus s = decode(pending.data(), pending.size(), out, consumed);
    if (s == DecodeStatus::NeedMore) continue;
    ASSERT_EQ(s, DecodeStatus::Ok);
    got.push_back(out.type);
    pending.erase(pending.begin(), pending.begin() + static_cast<long>(consumed));
  }
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(got, (std::vector<MsgType>{MsgType::Hello, MsgType::Reading, MsgType::Keepalive}));
}

TEST(ProtoDecode, DecodesOnlyFirstFrame) {
  Bytes two = kGoldenReading;
  two.insert(two.end(), kGoldenHello.begin(), kGoldenHello.end());
  size_t consumed = 0;
  Message out{};
  EXPECT_EQ(decode(two.data(), two.size(), out, consumed), DecodeStatus::Ok);
  EXPECT_EQ(out.type, MsgType::Reading);
  EXPECT_EQ(consumed, kGoldenReading.size());
}

TEST(ProtoDecode, BadSofAndBadVersion) {
  size_t consumed = 0;
  EXPECT_EQ(decode_status({0x00}, &consumed), DecodeStatus::BadSof);
  EXPECT_EQ(consumed, 1u);
  Bytes b = kGoldenHello;
  b[1] = 2;
  fix_crc(b);
  EXPECT_EQ(decode_status(b, &consumed), DecodeStatus::BadVersion);
  EXPECT_EQ(decode_status({kSof, 0}), DecodeStatus::BadVersion);  // reported before the rest arrives
}

TEST(ProtoDecode, TooLargeWithoutWaitingForPayload) {
  // Only the header is present: the declared length alone decides.
  EXPECT_EQ(decode_status({kSof, kVersion, 3, 0x00, kMaxPayload + 1}), DecodeStatus::TooLarge);
  EXPECT_EQ(decode_status({kSof, kVersion, 3, 0xFF, 0xFF}), DecodeStatus::TooLarge);
  // kMaxPayload itself is fine (just incomplete).
  EXPECT_EQ(decode_status({kSof, kVersion, 3, 0x00, kMaxPayload}), DecodeStatus::NeedMore);
}

TEST(ProtoDecode, BadCrcOnAnyFlippedBit) {
  for (size_t i = 1; i < kGoldenReading.size(); ++i) {
    if (i == 3 || i == 4) continue;  // length bytes change the frame boundary instead
    for (int bit = 0; bit < 8; ++bit) {
      Bytes b = kGoldenReading;
      b[i] = static_cast<uint8_t>(b[i] ^ (1u << bit));
      if (i == 1) {
        EXPECT_EQ(decode_status(b), DecodeStatus::BadVersion);
        continue;
      }
      size_t consumed = 0;
      EXPECT_EQ(decode_status(b, &consumed), DecodeStatus::BadCrc) << "byte " << i << " bit " << bit;
      EXPECT_EQ(consumed, b.size());
    }
  }
}

TEST(ProtoDecode, UnknownType) {
  size_t consumed = 0;
  EXPECT_EQ(decode_status(raw_frame(0, {}), &consumed), DecodeStatus::UnknownType);
  EXPECT_EQ(consumed, kHeaderSize + kCrcSize);
  EXPECT_EQ(decode_status(raw_frame(9, {1, 2, 3})), DecodeStatus::UnknownType);
  EXPECT_EQ(decode_status(raw_frame(0xFF, {})), DecodeStatus::UnknownType);
}

TEST(ProtoDecode, MalformedPayloadLengths) {
  // Every fixed-size type with one byte too few and one too many.
  const std::pair<MsgType, size_t> sizes[] = {
      {MsgType::HelloAck, 14}, {MsgType::Reading, 37}, {MsgType::Reading, 45},      {MsgType::Event, 14},
      {MsgType::Ack, 4},       {MsgType::Command, 9},  {MsgType::CommandResult, 6}, {MsgType::Keepalive, 8}};
  for (auto [type, size] : sizes) {
    // A valid payload for the enum-checked types: all-ones except the enum bytes.
    Bytes payload(size, 0x01);
    EXPECT_EQ(decode_status(raw_frame(static_cast<uint8_t>(type), payload)), DecodeStatus::Ok)
        << to_string(type);
    Bytes shorter(size - 1, 0x01);
    Bytes longer(size + 1, 0x01);
    size_t consumed = 0;
    EXPECT_EQ(decode_status(raw_frame(static_cast<uint8_t>(type), shorter), &consumed),
              DecodeStatus::Malformed)
        << to_string(type);
    EXPECT_EQ(consumed, kHeaderSize + size - 1 + kCrcSize);
    EXPECT_EQ(decode_status(raw_frame(static_cast<uint8_t>(type), longer)), DecodeStatus::Malformed)
        << to_string(type);
  }
}

TEST(ProtoDecode, MalformedEnums) {
  Message m{};
  m.type = MsgType::Event;
  m.event = Event{1, 0, EventType::RelayChanged, Cause::Button, 1};
  Bytes ok = encode_vec(m);
  const size_t type_at = kHeaderSize + 8;
  for (uint8_t bad : {0, 9, 0xFF}) {
    Bytes b = ok;
    b[type_at] = bad;  // EventType
    fix_crc(b);
    EXPECT_EQ(decode_status(b), DecodeStatus::Malformed);
  }
  Bytes b = ok;
  b[type_at + 1] = 6;  // Cause
  fix_crc(b);
  EXPECT_EQ(decode_status(b), DecodeStatus::Malformed);

  EXPECT_EQ(decode_status(raw_frame(6, {0, 0, 0, 1, 0, 0, 0, 0, 1})), DecodeStatus::Malformed);   // kind 0
  EXPECT_EQ(decode_status(raw_frame(6, {0, 0, 0, 1, 15, 0, 0, 0, 1})), DecodeStatus::Malformed);  // kind 15
  EXPECT_EQ(decode_status(raw_frame(7, {0, 0, 0, 1, 4, 0})), DecodeStatus::Malformed);            // status 4
  EXPECT_EQ(decode_status(raw_frame(7, {0, 0, 0, 1, 0, 2})), DecodeStatus::Malformed);  // relay_on 2
}

TEST(ProtoDecode, MalformedHelloStrings) {
  // Builds a Hello payload with raw string fields.
  auto hello_payload = [](const Bytes& cid, const Bytes& fw) {
    Bytes p{kVersion, static_cast<uint8_t>(cid.size())};
    p.insert(p.end(), cid.begin(), cid.end());
    p.push_back(static_cast<uint8_t>(fw.size()));
    p.insert(p.end(), fw.begin(), fw.end());
    p.insert(p.end(), 16, 0);  // capabilities, boot_counter, uptime
    return p;
  };
  EXPECT_EQ(decode_status(raw_frame(1, hello_payload({'a'}, {}))), DecodeStatus::Ok);
  EXPECT_EQ(decode_status(raw_frame(1, hello_payload({}, {'1'}))), DecodeStatus::Malformed);  // empty cid
  EXPECT_EQ(decode_status(raw_frame(1, hello_payload({'a', 0, 'b'}, {}))), DecodeStatus::Malformed);
  EXPECT_EQ(decode_status(raw_frame(1, hello_payload({'a'}, {'1', 0}))), DecodeStatus::Malformed);
  EXPECT_EQ(decode_status(raw_frame(1, hello_payload(Bytes(kCidMax + 1, 'a'), {}))), DecodeStatus::Malformed);
  EXPECT_EQ(decode_status(raw_frame(1, hello_payload({'a'}, Bytes(kFwVersionMax + 1, '1')))),
            DecodeStatus::Malformed);
  // Length prefix pointing past the payload, and trailing garbage.
  Bytes p = hello_payload({'a'}, {});
  p[1] = 200;
  EXPECT_EQ(decode_status(raw_frame(1, p)), DecodeStatus::Malformed);
  p = hello_payload({'a'}, {});
  p.push_back(0);
  EXPECT_EQ(decode_status(raw_frame(1, p)), DecodeStatus::Malformed);
  p = hello_payload({'a'}, {});
  p.pop_back();
  EXPECT_EQ(decode_status(raw_frame(1, p)), DecodeStatus::Malformed);
}

TEST(ProtoStrings, AllNamed) {
  for (uint8_t t = 1; t <= 8; ++t) EXPECT_STRNE(to_string(static_cast<MsgType>(t)), "?");
  EXPECT_STREQ(to_string(static_cast<MsgType>(0)), "?");
  for (uint8_t s = 0; s <= static_cast<uint8_t>(DecodeStatus::Malformed); ++s) {
    EXPECT_STRNE(to_string(static_cast<DecodeStatus>(s)), "?");
  }
}

}  // namespace
}  // namespace pbfw::proto
