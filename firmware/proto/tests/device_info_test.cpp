#include <gtest/gtest.h>

#include <cstring>
#include <pbfw/device_info.hpp>
#include <vector>

namespace pbfw {
namespace {

DeviceInfo sample() {
  DeviceInfo d{};
  std::strcpy(d.cid, "plug-0042");
  std::strcpy(d.product_id, "keyabcdef123456");
  d.psk_len = 16;
  for (uint8_t i = 0; i < 16; ++i) d.psk[i] = static_cast<uint8_t>(0xA0 + i);
  std::strcpy(d.gateway_host, "192.168.1.10");
  d.gateway_port = 8883;
  d.kv_e6 = 1880000;
  d.ki_e6 = 1000000;
  return d;
}

std::vector<uint8_t> page_with(const DeviceInfo& d) {
  std::vector<uint8_t> page(4096, 0xFF);  // the rest of the page stays erased
  EXPECT_TRUE(encode_device_info(d, page.data()));
  return page;
}

TEST(DeviceInfo, Crc32MatchesTheStandardCheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(crc32_ieee(reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
  // Incremental use gives the same result.
  EXPECT_EQ(crc32_ieee(reinterpret_cast<const uint8_t*>(s) + 4, 5,
                       crc32_ieee(reinterpret_cast<const uint8_t*>(s), 4)),
            0xCBF43926u);
}

TEST(DeviceInfo, RoundTrip) {
  const auto page = page_with(sample());
  DeviceInfo d{};
  ASSERT_EQ(decode_device_info(page.data(), page.size(), d), DeviceInfoStatus::Ok);
  EXPECT_STREQ(d.cid, "plug-0042");
  EXPECT_STREQ(d.product_id, "keyabcdef123456");
  EXPECT_EQ(d.psk_len, 16);
  EXPECT_EQ(d.psk[15], 0xAF);
  EXPECT_STREQ(d.gateway_host, "192.168.1.10");
  EXPECT_EQ(d.gateway_port, 8883);
  EXPECT_EQ(d.kv_e6, 1880000u);
  EXPECT_EQ(d.ki_e6, 1000000u);
}

TEST(DeviceInfo, LayoutIsTheDocumentedOne) {
  const auto page = page_with(sample());
  EXPECT_EQ(std::vector<uint8_t>(page.begin(), page.begin() + 8),
            (std::vector<uint8_t>{'P', 'B', 'D', 'I', 1, 0, 188, 0}));
  EXPECT_EQ(page[8], 'p');
  EXPECT_EQ(page[74], 16);    // psk_len
  EXPECT_EQ(page[75], 0xA0);  // psk
  EXPECT_EQ(page[107], '1');  // gateway_host
  EXPECT_EQ(page[172] | page[173] << 8, 8883);
  EXPECT_EQ(page[188], 0xFF);  // nothing written past the record
}

TEST(DeviceInfo, ErasedAndForeignPages) {
  std::vector<uint8_t> page(4096, 0xFF);
  DeviceInfo d{};
  EXPECT_EQ(decode_device_info(page.data(), page.size(), d), DeviceInfoStatus::Erased);
  page[0] = 0;
  EXPECT_EQ(decode_device_info(page.data(), page.size(), d), DeviceInfoStatus::BadMagic);
  EXPECT_EQ(decode_device_info(page.data(), 100, d), DeviceInfoStatus::BadMagic);
}

TEST(DeviceInfo, EveryFlippedBitIsRejected) {
  const auto good = page_with(sample());
  for (size_t i = 0; i < kDeviceInfoSize; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto page = good;
      page[i] ^= static_cast<uint8_t>(1u << bit);
      DeviceInfo d{};
      EXPECT_NE(decode_device_info(page.data(), page.size(), d), DeviceInfoStatus::Ok) << i << ":" << bit;
    }
  }
}

TEST(DeviceInfo, NewerVersionIsRefused) {
  auto page = page_with(sample());
  page[4] = 2;
  DeviceInfo d{};
  EXPECT_EQ(decode_device_info(page.data(), page.size(), d), DeviceInfoStatus::BadVersion);
}

TEST(DeviceInfo, InvalidFieldsAreNotEncoded) {
  uint8_t buf[kDeviceInfoSize];
  auto d = sample();
  d.cid[0] = '\0';
  EXPECT_FALSE(encode_device_info(d, buf));
  d = sample();
  d.psk_len = 8;  // under 128 bits
  EXPECT_FALSE(encode_device_info(d, buf));
  d = sample();
  d.gateway_port = 0;
  EXPECT_FALSE(encode_device_info(d, buf));
  d = sample();
  std::strcpy(d.gateway_host, "has space");
  EXPECT_FALSE(encode_device_info(d, buf));
  d = sample();
  d.product_id[0] = '\0';  // optional
  EXPECT_TRUE(encode_device_info(d, buf));
}

TEST(DeviceInfo, ValidCrcButBadFieldIsRejected) {
  // A record with a correct CRC but a zero port (e.g. a buggy tool) must not be trusted.
  auto page = page_with(sample());
  page[172] = page[173] = 0;
  const uint32_t crc = crc32_ieee(page.data(), 184);
  for (int i = 0; i < 4; ++i) page[184 + i] = static_cast<uint8_t>(crc >> (8 * i));
  DeviceInfo d{};
  EXPECT_EQ(decode_device_info(page.data(), page.size(), d), DeviceInfoStatus::BadField);
}

}  // namespace
}  // namespace pbfw
