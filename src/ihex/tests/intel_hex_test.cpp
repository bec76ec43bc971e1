#include "plugbridge/ihex/intel_hex.hpp"

#include <gtest/gtest.h>

#include <numeric>

namespace pb::ihex {
namespace {

TEST(IntelHex, RecordChecksumsWorkedOutByHand) {
  // 02+00+00+04+08+01 = 0x0F; 0x100 - 0x0F = 0xF1.
  EXPECT_EQ(record(0x04, 0, std::vector<uint8_t>{0x08, 0x01}), ":020000040801F1");
  // 04+B0+00+00+DE+AD+BE+EF = 0x3EC; 0x100 - 0xEC = 0x14.
  EXPECT_EQ(record(0x00, 0xB000, std::vector<uint8_t>{0xDE, 0xAD, 0xBE, 0xEF}), ":04B00000DEADBEEF14");
  EXPECT_EQ(record(0x01, 0, {}), ":00000001FF");
}

TEST(IntelHex, WriteEmitsLinearAddressDataAndEof) {
  const std::vector<uint8_t> data{0xDE, 0xAD, 0xBE, 0xEF};
  EXPECT_EQ(write(0x0801B000, data), ":020000040801F1\n:04B00000DEADBEEF14\n:00000001FF\n");
}

TEST(IntelHex, RoundTripsAcrossA64KBoundary) {
  std::vector<uint8_t> data(300);
  std::iota(data.begin(), data.end(), uint8_t{7});
  const uint32_t start = 0x0800FFA0;  // 96 bytes below 0x08010000
  const std::string text = write(start, data, 32);
  // The upper address changes once, so two type-04 records; no data record crosses the boundary.
  EXPECT_NE(text.find(":020000040800F2\n"), std::string::npos);
  EXPECT_NE(text.find(":020000040801F1\n"), std::string::npos);
  const auto mem = parse(text);
  ASSERT_EQ(mem.size(), data.size());
  for (size_t i = 0; i < data.size(); ++i) EXPECT_EQ(mem.at(start + static_cast<uint32_t>(i)), data[i]) << i;
}

TEST(IntelHex, ParseRejectsCorruption) {
  const std::string good = write(0x0801B000, std::vector<uint8_t>{1, 2, 3});
  EXPECT_NO_THROW(parse(good));
  std::string bad = good;
  bad[bad.find("01020") + 1] = '9';  // one data digit changed: checksum no longer matches
  EXPECT_THROW(parse(bad), ParseError);
  EXPECT_THROW(parse(":020000040801F1\n"), ParseError);                            // no EOF
  EXPECT_THROW(parse(":00000001FF\n:00000001FF\n"), ParseError);                   // record after EOF
  EXPECT_THROW(parse("020000040801F1\n:00000001FF\n"), ParseError);                // no colon
  EXPECT_THROW(parse(":0300000001020\n:00000001FF\n"), ParseError);                // truncated
  EXPECT_THROW(parse(":01000000AA55\n:01000000AA55\n:00000001FF\n"), ParseError);  // same byte twice
  try {
    parse(":00000001FF\n:00000001FE\n");
    FAIL();
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

TEST(IntelHex, AcceptsCrLfAndLowerCase) {
  const auto mem = parse(":020000040801f1\r\n:04b00000deadbeef14\r\n:00000001ff\r\n");
  ASSERT_EQ(mem.size(), 4u);
  EXPECT_EQ(mem.at(0x0801B003), 0xEF);
}

}  // namespace
}  // namespace pb::ihex
