// The contract's limits: the cid format, calibration range, PSK length and cipher list, checked against
// the codecs that enforce them and against OpenSSL.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <cstring>
#include <memory>
#include <pbfw/device_info.hpp>
#include <pbfw/proto.hpp>
#include <string>
#include <vector>

namespace pbfw::proto {
namespace {

TEST(ProtoLimits, CidFormat) {
  const std::string longest(kCidMax, 'Z');
  for (const std::string& ok : {std::string("socket-0001"), std::string("a"), std::string("A_z-09"), longest})
    EXPECT_TRUE(valid_cid(ok.data(), ok.size())) << ok;
  const std::string too_long(kCidMax + 1, 'a');
  for (const std::string& bad : {std::string(""), too_long, std::string("a b"), std::string("a.b"),
                                 std::string("a/b"), std::string("\xc3\xa4"), std::string("a\0b", 3)})
    EXPECT_FALSE(valid_cid(bad.data(), bad.size())) << bad;
  int allowed = 0;
  for (int c = 0; c < 256; ++c) allowed += valid_cid_char(static_cast<char>(c)) ? 1 : 0;
  EXPECT_EQ(allowed, 26 + 26 + 10 + 2);
}

// The longest valid cid fits the Hello and the device-information record; one more byte fits neither.
TEST(ProtoLimits, CidMaxIsWhatTheCodecsCarry) {
  Message m{};
  m.type = MsgType::Hello;
  m.hello.proto_version = kVersion;
  std::memset(m.hello.cid, 'c', kCidMax);
  std::strcpy(m.hello.fw_version, "1");
  uint8_t frame[kMaxFrame];
  EXPECT_GT(encode(m, frame, sizeof frame), 0u);
  static_assert(sizeof m.hello.cid == kCidMax + 1 && sizeof(DeviceInfo::cid) == kCidMax + 1);

  DeviceInfo info{};
  std::memset(info.cid, 'c', kCidMax);
  std::strcpy(info.product_id, "p");
  info.psk_len = kPskMin;
  std::memset(info.psk, 0x11, kPskMin);
  std::strcpy(info.gateway_host, "gw");
  info.gateway_port = 7000;
  info.kv_e6 = kDefaultKvE6;
  info.ki_e6 = kDefaultKiE6;
  uint8_t page[kDeviceInfoSize];
  EXPECT_TRUE(encode_device_info(info, page));

  // PSK lengths: the contract's range and nothing outside it.
  for (size_t len = 0; len <= kPskMax + 1; ++len) {
    info.psk_len = static_cast<uint8_t>(len);
    EXPECT_EQ(encode_device_info(info, page), len >= kPskMin && len <= kPskMax) << len;
  }
}

TEST(ProtoLimits, CalibrationRange) {
  EXPECT_FALSE(valid_calibration_e6(0));
  EXPECT_FALSE(valid_calibration_e6(kMinCalibrationE6 - 1));
  EXPECT_TRUE(valid_calibration_e6(kMinCalibrationE6));
  EXPECT_TRUE(valid_calibration_e6(kMaxCalibrationE6));
  EXPECT_FALSE(valid_calibration_e6(kMaxCalibrationE6 + 1));
  EXPECT_FALSE(valid_calibration_e6(uint64_t{1} << 32 | kMinCalibrationE6)) << "no truncation to 32 bits";
  EXPECT_TRUE(valid_calibration_e6(kDefaultKvE6));
  EXPECT_TRUE(valid_calibration_e6(kDefaultKiE6));
}

// Every command value limit travels in Command::value (int32) without changing sign.
TEST(ProtoLimits, CommandLimitsFitTheCommandValue) {
  for (uint32_t limit : {kMinCurrentLimitMa, kMaxCurrentLimitMa, kMaxCountdownS, kMaxOverCurrentDurationMs,
                         kMaxPowerLimitW, kMaxVoltageLimitV, kMinCalibrationE6, kMaxCalibrationE6}) {
    Message m{};
    m.type = MsgType::Command;
    m.command = Command{1, CommandKind::SetCountdown, static_cast<int32_t>(limit)};
    uint8_t frame[kMaxFrame];
    const size_t n = encode(m, frame, sizeof frame);
    Message out{};
    size_t used = 0;
    ASSERT_EQ(decode(frame, n, out, used), DecodeStatus::Ok);
    EXPECT_GE(out.command.value, 0) << limit;
    EXPECT_EQ(static_cast<uint32_t>(out.command.value), limit);
  }
  EXPECT_LT(kMinCurrentLimitMa, kMaxCurrentLimitMa);
}

// OpenSSL takes the list for TLS 1.2 and it yields exactly the two forward-secret PSK suites, in order.
TEST(ProtoLimits, CipherListIsTwoEcdhePskSuites) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  ASSERT_TRUE(ctx);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION), 1);
  ASSERT_EQ(SSL_CTX_set_cipher_list(ctx.get(), kPskCipherList), 1);
  std::vector<std::string> names;
  const STACK_OF(SSL_CIPHER)* list = SSL_CTX_get_ciphers(ctx.get());
  for (int i = 0; i < sk_SSL_CIPHER_num(list); ++i) {
    const SSL_CIPHER* c = sk_SSL_CIPHER_value(list, i);
    if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any) continue;  // TLS 1.3 suites are configured apart
    names.emplace_back(SSL_CIPHER_get_name(c));
    EXPECT_EQ(SSL_CIPHER_get_kx_nid(c), NID_kx_ecdhe_psk) << names.back();
  }
  EXPECT_EQ(names, (std::vector<std::string>{"ECDHE-PSK-CHACHA20-POLY1305", "ECDHE-PSK-AES128-CBC-SHA256"}));
}

}  // namespace
}  // namespace pbfw::proto
