#include "plugbridge/tuya/dp.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <set>
#include <string>

namespace pb::tuya {
namespace {

using nlohmann::json;

TEST(DpEncoding, SpecExampleVoltage) {
  EXPECT_EQ(encode_voltage_mv(230500), 2305000);  // 230.5 V, scale 4
  EXPECT_EQ(encode_voltage_mv(0), 0);
}

TEST(DpEncoding, OurUnitsToScaledIntegers) {
  EXPECT_EQ(encode_power_mw(1234567), 12345670);    // 1234.567 W -> 1234.5670
  EXPECT_EQ(encode_current_ua(5432100), 54321000);  // 5432.1 mA -> 5432.1000
  EXPECT_EQ(encode_current_max_ma(16000), 160000);  // 16 A -> 16.0000
  EXPECT_EQ(encode_power_factor_e4(9876), 9876);    // 0.9876
  EXPECT_EQ(encode_temperature_centi_c(2537), 2537);
}

TEST(DpEncoding, EnergyRoundsHalfAwayFromZero) {
  // 1 kWh = 1'000'000 mWh = 10000 at scale 4; 1 unit = 100 mWh.
  EXPECT_EQ(encode_energy_mwh(1000000), 10000);
  EXPECT_EQ(encode_energy_mwh(149), 1);
  EXPECT_EQ(encode_energy_mwh(150), 2);
  EXPECT_EQ(encode_energy_mwh(49), 0);
  EXPECT_EQ(encode_energy_mwh(50), 1);
  EXPECT_EQ(encode_energy_mwh(-50), -1);
  EXPECT_EQ(encode_energy_mwh(-49), 0);
  // Large counters stay exact (no double rounding).
  EXPECT_EQ(encode_energy_mwh(123456789012345678), 1234567890123457);
}

TEST(DpEncoding, RescaleSaturatesAndDecodes) {
  constexpr auto kMax = std::numeric_limits<int64_t>::max();
  constexpr auto kMin = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(rescale(kMax / 5, 1), kMax);
  EXPECT_EQ(rescale(kMin / 5, 1), kMin);
  EXPECT_EQ(rescale(kMax, -1), kMax / 10 + 1);
  EXPECT_EQ(rescale(kMin, -1), kMin / 10 - 1);
  EXPECT_EQ(rescale(12345, -30), 0);
  EXPECT_EQ(rescale(7, 0), 7);
  EXPECT_EQ(decode_current_max_ma(160000), 16000);
  EXPECT_EQ(decode_current_max_ma(160005), 16001);
  EXPECT_EQ(decode_power_limit_w(25000000), 2500);
}

TEST(DpTable, CoversSpecTable) {
  EXPECT_EQ(all_dps().size(), 50u);
  std::set<int> ids;
  int prev = 0;
  for (const auto& d : all_dps()) {
    EXPECT_GT(d.id, prev) << "table must be ordered by id";
    prev = d.id;
    ids.insert(d.id);
    EXPECT_TRUE(d.access == 'r' || d.access == 'w') << d.id;
    std::string type = d.type;
    EXPECT_TRUE(type == "bool" || type == "value" || type == "string" || type == "raw" || type == "enum" ||
                type == "fault")
        << d.id;
    if (type == "value") {
      EXPECT_LT(d.min, d.max) << d.id;
    }
    if (type == "enum" || type == "fault") {
      EXPECT_FALSE(dp_labels(d.id).empty()) << d.id;
    }
    EXPECT_EQ(find_dp(d.code), &d);
  }
  EXPECT_EQ(find_dp(4), nullptr);
  EXPECT_EQ(find_dp(60), nullptr);
  EXPECT_EQ(find_dp("nope"), nullptr);

  const auto* sw = find_dp(1);
  ASSERT_NE(sw, nullptr);
  EXPECT_STREQ(sw->code, "switch");
  EXPECT_EQ(sw->access, 'w');
  EXPECT_STREQ(sw->type, "bool");

  const auto* p = find_dp(dp::kPower);
  ASSERT_NE(p, nullptr);
  EXPECT_STREQ(p->code, "power_current");
  EXPECT_EQ(p->access, 'r');
  EXPECT_EQ(p->scale, 4);
  EXPECT_EQ(p->max, 1000000000);

  const auto* t = find_dp(dp::kTemperature);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->scale, 2);
  EXPECT_EQ(t->min, -100);
  EXPECT_EQ(find_dp(50)->max, 999999999);
  EXPECT_EQ(find_dp(42)->scale, 0);
  EXPECT_EQ(find_dp(dp::kCurrentMax)->access, 'w');
  EXPECT_EQ(find_dp(dp::kEnergyTotal)->scale, 4);

  auto faults = dp_labels(dp::kFault);
  ASSERT_EQ(faults.size(), 14u);
  EXPECT_EQ(faults[0], "short_circuit_alarm");
  EXPECT_EQ(faults[13], "credit_alarm");
  EXPECT_TRUE(dp_labels(1).empty());
}

TEST(DpTable, InRange) {
  EXPECT_TRUE(in_range(*find_dp(5), 2305000));
  EXPECT_TRUE(in_range(*find_dp(5), 0));
  EXPECT_FALSE(in_range(*find_dp(5), -1));
  EXPECT_FALSE(in_range(*find_dp(5), 1000000001));
  EXPECT_TRUE(in_range(*find_dp(10), -100));
  EXPECT_FALSE(in_range(*find_dp(10), -101));
  EXPECT_FALSE(in_range(*find_dp(1), 0));  // not a value DP
}

TEST(ParseBool, Accepts) {
  EXPECT_EQ(parse_bool(true), true);
  EXPECT_EQ(parse_bool(false), false);
  EXPECT_EQ(parse_bool(1), true);
  EXPECT_EQ(parse_bool(0), false);
  EXPECT_EQ(parse_bool(json::parse("1")), true);  // unsigned from the parser
  EXPECT_EQ(parse_bool(json::parse("0")), false);
  EXPECT_EQ(parse_bool("1"), true);
  EXPECT_EQ(parse_bool("0"), false);
  EXPECT_EQ(parse_bool("true"), true);
  EXPECT_EQ(parse_bool("TRUE"), true);
  EXPECT_EQ(parse_bool("True"), true);
  EXPECT_EQ(parse_bool("false"), false);
  EXPECT_EQ(parse_bool("FaLsE"), false);
}

TEST(ParseBool, Rejects) {
  for (const auto& v :
       {json(2), json(-1), json(1.0), json(0.0), json("yes"), json("on"), json(""), json(" 1"), json("01"),
        json("truee"), json(nullptr), json::array({1}), json::object()}) {
    EXPECT_FALSE(parse_bool(v)) << v.dump();
  }
}

TEST(ParseInt, Accepts) {
  EXPECT_EQ(parse_int(5), 5);
  EXPECT_EQ(parse_int(-5), -5);
  EXPECT_EQ(parse_int(json::parse("160000")), 160000);
  EXPECT_EQ(parse_int("160000"), 160000);
  EXPECT_EQ(parse_int("-100"), -100);
  EXPECT_EQ(parse_int("0"), 0);
  EXPECT_EQ(parse_int("9223372036854775807"), std::numeric_limits<int64_t>::max());
}

TEST(ParseInt, Rejects) {
  for (const auto& v :
       {json(1.5), json(2.0), json(true), json(""), json("-"), json("+5"), json(" 5"), json("5 "),
        json("5.0"), json("0x10"), json("1e3"), json("abc"), json("9223372036854775808"), json(nullptr),
        json::array(), json(std::numeric_limits<uint64_t>::max())}) {
    EXPECT_FALSE(parse_int(v)) << v.dump();
  }
}

}  // namespace
}  // namespace pb::tuya
