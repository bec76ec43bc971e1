#include "plugbridge/gateway/report_policy.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace pb::gateway {
namespace {

using namespace std::chrono_literals;
using Time = ReportPolicy::Time;
using Dps = std::vector<int>;

// Only the rule under test is on; every other band is off and there is no minimum interval.
ReportRules no_rules() {
  ReportRules r;
  r.period = 300s;
  r.min_interval = 0ms;
  return r;
}

ReportInputs inputs(uint32_t power_mw = 100'000, uint32_t voltage_mv = 230'000) {
  ReportInputs in;
  in.relay_on = true;
  in.meter = ReportInputs::Meter{.voltage_mv = voltage_mv,
                                 .current_ua = 0,
                                 .power_mw = power_mw,
                                 .apparent_mva = power_mw,
                                 .power_factor_e4 = 10000};
  in.energy = ReportInputs::Energy{.total_mwh = 1'000'000,
                                   .day_mwh = 50'000,
                                   .month_mwh = 500'000,
                                   .day_from_ms = 1'700'000'000'000,
                                   .month_from_ms = 1'699'000'000'000};
  return in;
}

// Runs one decision and returns the DPs chosen, in order.
Dps decide(ReportPolicy& p, const ReportInputs& in, Time at, bool full = false) {
  const std::vector<DpValue> values = report_values(in);
  Dps out;
  for (const DpValue* v : p.decide(values, at, full)) out.push_back(v->dp);
  return out;
}

bool has(const Dps& d, int dp) {
  return std::find(d.begin(), d.end(), dp) != d.end();
}

// A policy that has reported `in` once at t = 0.
ReportPolicy primed(const ReportRules& rules, const ReportInputs& in) {
  ReportPolicy p(rules);
  decide(p, in, 0ms, true);
  return p;
}

TEST(ReportValues, EveryDpWithItsRuleAndEncoding) {
  ReportInputs in = inputs(60'500, 231'200);
  in.meter->current_ua = 262'000;
  in.meter->apparent_mva = 61'000;
  in.meter->power_factor_e4 = 9918;
  in.switch_count = 7;
  in.settings.power_limit_w = 900;
  const auto values = report_values(in);
  std::map<int, const DpValue*> by_dp;
  for (const auto& v : values) by_dp[v.dp] = &v;
  EXPECT_EQ(by_dp.size(), values.size()) << "a DP twice";
  EXPECT_EQ(
      (std::set<int>{1, 57, 17, 19, 20, 21, 6, 48, 42, 3, 5, 7, 37, 52, 38, 40, 44, 50, 30, 45, 46, 58, 59}),
      [&] {
        std::set<int> s;
        for (auto& [dp, v] : by_dp) s.insert(dp);
        return s;
      }());
  EXPECT_EQ(by_dp[3]->value, 605'000);  // W x 10^4
  EXPECT_EQ(by_dp[3]->rule, ReportRule::Power);
  EXPECT_EQ(by_dp[5]->value, 2'312'000);  // V x 10^4
  EXPECT_EQ(by_dp[7]->value, 2'620'000);  // mA x 10^4
  EXPECT_EQ(by_dp[7]->rule, ReportRule::Current);
  EXPECT_EQ(by_dp[40]->rule, ReportRule::PowerFactor);
  EXPECT_EQ(by_dp[44]->value, 10'000);  // 1 kWh
  EXPECT_EQ(by_dp[45]->rule, ReportRule::Energy);
  EXPECT_EQ(by_dp[1]->rule, ReportRule::Switch);
  EXPECT_EQ(by_dp[19]->rule, ReportRule::Switch);
  EXPECT_EQ(by_dp[48]->rule, ReportRule::OnChange);
  EXPECT_EQ(by_dp[30]->rule, ReportRule::WithMeter);

  // Without meter and energy: only state.
  ReportInputs bare;
  for (const auto& v : report_values(bare))
    EXPECT_TRUE(v.rule == ReportRule::Switch || v.rule == ReportRule::OnChange) << v.dp;
}

std::set<int> dps_of(const ReportInputs& in) {
  std::set<int> s;
  for (const auto& v : report_values(in)) s.insert(v.dp);
  return s;
}

TEST(ReportValues, AQuantityNotMeasuredIsLeftOutWithWhatIsDerivedFromIt) {
  namespace proto = pbfw::proto;
  const uint8_t all = proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid;
  ReportInputs in = inputs();
  in.meter = meter_inputs(all, 230'000, 262'000, 60'500, 61'000, 9918);
  const std::set<int> every = dps_of(in);
  for (int dp : {3, 5, 7, 37, 38, 40, 52, 30}) EXPECT_TRUE(every.count(dp)) << dp;

  // Power not measured: no DP 3/37, nor Q (38), PF (40) or phase_a (30); V, I and S = V x I go out.
  in.meter = meter_inputs(all & ~proto::kPowerValid, 230'000, 262'000, 0, 61'000, 0);
  std::set<int> dps = dps_of(in);
  for (int dp : {3, 37, 38, 40, 30}) EXPECT_FALSE(dps.count(dp)) << dp;
  for (int dp : {5, 7, 52, 44, 45, 46, 50}) EXPECT_TRUE(dps.count(dp)) << dp;
  for (const auto& v : report_values(in)) {
    if (v.dp == 19) {
      EXPECT_EQ(v.value, 0) << "a quantity not measured is no fault";
    }
  }

  // Voltage not measured: no DP 5, nor S, Q, PF, phase_a; P and I go out.
  in.meter = meter_inputs(all & ~proto::kVoltageValid, 0, 262'000, 60'500, 0, 0);
  dps = dps_of(in);
  for (int dp : {5, 52, 38, 40, 30}) EXPECT_FALSE(dps.count(dp)) << dp;
  for (int dp : {3, 7, 37}) EXPECT_TRUE(dps.count(dp)) << dp;

  // Without kMeterOk nothing of the meter, as before.
  EXPECT_FALSE(meter_inputs(proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid, 1, 1, 1, 1, 1));
}

TEST(ReportValues, NoMainsIsTheOutageAlarmAndNoMeasurement) {
  namespace proto = pbfw::proto;
  // The chip may call current and power measured (below its threshold) while there are no mains.
  const uint8_t flags = proto::kMeterOk | proto::kNoMains | proto::kCurrentValid | proto::kPowerValid;
  ReportInputs in = inputs();
  in.meter = meter_inputs(flags, 0, 0, 0, 0, 0);
  in.no_mains = true;
  const std::set<int> dps = dps_of(in);
  for (int dp : {3, 5, 7, 37, 38, 40, 52, 30}) EXPECT_FALSE(dps.count(dp)) << dp;
  for (int dp : {44, 45, 46, 50}) EXPECT_TRUE(dps.count(dp)) << dp << ": energy comes from the counter";
  auto payload = [&](int dp) {
    const auto values = report_values(in);
    for (const auto& v : values)
      if (v.dp == dp) return report_payload(v, in, [](int64_t) { return std::string(); });
    return std::string("missing");
  };
  EXPECT_EQ(payload(19), std::to_string(fault_bit::kOutage));
  EXPECT_EQ(payload(20), "\"urgent\"");
  EXPECT_EQ(payload(21), "\"no mains: the socket measures no supply voltage\"");

  // Mains back: DP 19 changes (a switch-rule DP, at once) and the measurements follow.
  ReportPolicy p = primed(no_rules(), in);
  ReportInputs back = inputs();
  const Dps sent = decide(p, back, 1s);
  EXPECT_TRUE(has(sent, 19) && has(sent, 20) && has(sent, 21));
  for (int dp : {3, 5, 7}) EXPECT_TRUE(has(sent, dp)) << dp;
}

TEST(ReportValues, Payloads) {
  ReportInputs in = inputs(60'500, 231'200);
  in.meter->current_ua = 262'000;
  const auto values = report_values(in);
  auto payload = [&](int dp) {
    for (const auto& v : values)
      if (v.dp == dp) return report_payload(v, in, [](int64_t ms) { return "t" + std::to_string(ms); });
    return std::string("missing");
  };
  EXPECT_EQ(payload(1), "true");
  EXPECT_EQ(payload(3), "605000");
  EXPECT_EQ(payload(20), "\"general\"");
  EXPECT_EQ(payload(21), "\"\"");
  EXPECT_EQ(payload(58), "\"t1700000000000\"");
  EXPECT_EQ(payload(30), R"({"current":"0.262","electricity":"1.00","power":"60.5","voltage":"231.2"})");
}

TEST(ReportRulesFromConfig, DpUnits) {
  config::Report c;
  c.period_s = 120;
  c.min_interval_s = 7;
  c.power_mw = 2'500;
  c.power_percent = 15;
  c.voltage_mv = 1'500;
  c.current_ua = 20'000;
  c.current_percent = 8;
  c.energy_mwh = 5'000;
  c.power_factor_e4 = 300;
  const ReportRules r = report_rules(c);
  EXPECT_EQ(r.period, 120s);
  EXPECT_EQ(r.min_interval, 7s);
  EXPECT_EQ(r.power_band, 25'000);  // 2.5 W
  EXPECT_EQ(r.power_percent, 15);
  EXPECT_EQ(r.voltage_band, 15'000);   // 1.5 V
  EXPECT_EQ(r.current_band, 200'000);  // 20 mA
  EXPECT_EQ(r.current_percent, 8);
  EXPECT_EQ(r.energy_band, 50);  // 0.005 kWh
  EXPECT_EQ(r.power_factor_band, 300);
}

TEST(ReportPolicy, FirstDecisionSendsEverythingThenNothingUnchanged) {
  ReportPolicy p(no_rules());
  const ReportInputs in = inputs();
  const Dps first = decide(p, in, 0ms);
  EXPECT_EQ(first.size(), report_values(in).size());
  EXPECT_TRUE(decide(p, in, 1s).empty());
  EXPECT_TRUE(decide(p, in, 1000s).empty());
}

TEST(ReportPolicy, AbsolutePowerBandAgainstTheLastReportedValue) {
  ReportRules r = no_rules();
  r.power_band = 50'000;  // 5 W
  ReportPolicy p = primed(r, inputs(100'000));
  EXPECT_TRUE(decide(p, inputs(104'999), 1s).empty());
  // Drift in steps below the band adds up against the value last reported, not the last reading.
  EXPECT_TRUE(decide(p, inputs(103'000), 2s).empty());
  EXPECT_EQ(decide(p, inputs(105'000), 3s), (Dps{3, 37, 52, 30}));  // S moved too; Q stays 0
  EXPECT_TRUE(decide(p, inputs(109'000), 4s).empty());
  EXPECT_EQ(decide(p, inputs(100'000), 5s), (Dps{3, 37, 52, 30}));  // downwards alike
}

TEST(ReportPolicy, PercentPowerBandWithItsFloor) {
  ReportRules r = no_rules();
  r.power_percent = 10;
  ReportPolicy p = primed(r, inputs(100'000));
  EXPECT_TRUE(decide(p, inputs(109'999), 1s).empty());
  EXPECT_TRUE(has(decide(p, inputs(110'000), 2s), 3));  // exactly 10 % of 100 W
  // Now 10 % of 110 W = 11 W.
  EXPECT_TRUE(decide(p, inputs(120'900), 3s).empty());
  EXPECT_TRUE(has(decide(p, inputs(121'000), 4s), 3));

  // Small values: 10 % of 2 W is 0.2 W, but moves below 1 W never count for the percent rule.
  ReportPolicy small = primed(r, inputs(2'000));
  EXPECT_TRUE(decide(small, inputs(2'999), 1s).empty());
  EXPECT_TRUE(decide(small, inputs(1'001), 2s).empty());
  EXPECT_TRUE(has(decide(small, inputs(3'000), 3s), 3));
  // From 0 W: any move of at least 1 W.
  ReportPolicy zero = primed(r, inputs(0));
  EXPECT_TRUE(decide(zero, inputs(999), 1s).empty());
  EXPECT_TRUE(has(decide(zero, inputs(1'000), 2s), 3));
}

TEST(ReportPolicy, EitherPowerBandTriggers) {
  ReportRules r = no_rules();
  r.power_band = 50'000;  // 5 W
  r.power_percent = 10;
  // 20 W: the percent rule (2 W) triggers before the absolute one.
  ReportPolicy low = primed(r, inputs(20'000));
  EXPECT_TRUE(decide(low, inputs(21'999), 1s).empty());
  EXPECT_TRUE(has(decide(low, inputs(22'000), 2s), 3));
  // 1000 W: the absolute rule (5 W) triggers long before 10 % (100 W).
  ReportPolicy high = primed(r, inputs(1'000'000));
  EXPECT_TRUE(decide(high, inputs(1'004'999), 1s).empty());
  EXPECT_TRUE(has(decide(high, inputs(995'000), 2s), 3));
}

TEST(ReportPolicy, BandsOffMeansFullReportsOnly) {
  ReportPolicy p = primed(no_rules(), inputs(100'000));
  ReportInputs big = inputs(900'000, 250'000);
  big.meter->current_ua = 4'000'000;
  big.meter->power_factor_e4 = 5000;
  big.energy->total_mwh += 10'000'000;
  big.energy->day_mwh += 10'000'000;
  EXPECT_TRUE(decide(p, big, 1s).empty());
  EXPECT_EQ(decide(p, big, 2s, true).size(), report_values(big).size());
}

// One measured quantity at a time: below its band nothing, at its band its DP (and DP 30).
TEST(ReportPolicy, VoltageAndCurrentBands) {
  ReportRules r = no_rules();
  r.voltage_band = 20'000;   // 2 V
  r.current_band = 200'000;  // 20 mA
  const ReportInputs base = inputs();

  ReportPolicy v = primed(r, base);
  EXPECT_TRUE(decide(v, inputs(100'000, 231'999), 1s).empty());
  EXPECT_EQ(decide(v, inputs(100'000, 228'000), 2s), (Dps{5, 30}));

  ReportPolicy c = primed(r, base);
  ReportInputs in = base;
  in.meter->current_ua = 19'999;
  EXPECT_TRUE(decide(c, in, 1s).empty());
  in.meter->current_ua = 20'000;
  EXPECT_EQ(decide(c, in, 2s), (Dps{7, 30}));
}

TEST(ReportPolicy, CurrentPercentBandWithItsFloor) {
  ReportRules r = no_rules();
  r.current_percent = 10;
  ReportInputs in = inputs();
  in.meter->current_ua = 500'000;  // 500 mA: 10 % = 50 mA
  ReportPolicy p = primed(r, in);
  in.meter->current_ua = 549'999;
  EXPECT_TRUE(decide(p, in, 1s).empty());
  in.meter->current_ua = 550'000;
  EXPECT_EQ(decide(p, in, 2s), (Dps{7, 30}));
  // 20 mA: 10 % is 2 mA, but moves below 10 mA do not count.
  in.meter->current_ua = 20'000;
  ReportPolicy small = primed(r, in);
  in.meter->current_ua = 29'999;
  EXPECT_TRUE(decide(small, in, 1s).empty());
  in.meter->current_ua = 30'000;
  EXPECT_EQ(decide(small, in, 2s), (Dps{7, 30}));
}

TEST(ReportPolicy, EnergyBandPerDp) {
  ReportRules r = no_rules();
  r.energy_band = 100;  // 0.01 kWh
  const ReportInputs base = inputs();
  ReportPolicy e = primed(r, base);
  ReportInputs in = base;
  in.energy->total_mwh += 9'900;  // 0.0099 kWh
  in.energy->day_mwh += 9'900;
  in.energy->month_mwh += 9'900;
  EXPECT_TRUE(decide(e, in, 1s).empty());
  in.energy->total_mwh += 100;  // total and forward total reach the band; day and month do not
  EXPECT_EQ(decide(e, in, 2s), (Dps{44, 50}));
  in.energy->day_mwh += 100;
  in.energy->month_mwh += 100;
  EXPECT_EQ(decide(e, in, 3s), (Dps{45, 46}));
  // A new day: the daily count restarts (a big move down) and its start time changes.
  in.energy->day_mwh = 0;
  in.energy->day_from_ms += 86'400'000;
  EXPECT_EQ(decide(e, in, 4s), (Dps{45, 58}));
}

TEST(ReportPolicy, PowerFactorBand) {
  ReportRules r = no_rules();
  r.power_factor_band = 500;
  ReportPolicy p = primed(r, inputs());
  ReportInputs in = inputs();
  in.meter->power_factor_e4 = 9501;
  EXPECT_TRUE(decide(p, in, 1s).empty());
  in.meter->power_factor_e4 = 9500;
  EXPECT_EQ(decide(p, in, 2s), (Dps{40}));

  // Under 5 W the meter's power factor is noise: full reports only.
  ReportInputs small = inputs(4'999);
  small.meter->power_factor_e4 = 3000;
  ReportPolicy q = primed(r, small);
  small.meter->power_factor_e4 = 1000;
  EXPECT_TRUE(decide(q, small, 1s).empty());
  EXPECT_TRUE(has(decide(q, small, 2s, true), 40));
  small.meter->power_factor_e4 = 3000;
  small.meter->power_mw = 5'000;
  EXPECT_EQ(decide(q, small, 3s), (Dps{40}));
}

TEST(ReportPolicy, MinimumIntervalHoldsAChangeUntilItEnds) {
  ReportRules r = no_rules();
  r.power_band = 50'000;
  r.min_interval = 10s;
  ReportPolicy p = primed(r, inputs(100'000));
  EXPECT_FALSE(p.held_due(1s));
  EXPECT_TRUE(decide(p, inputs(300'000), 1s).empty());  // a start-up spike, held
  EXPECT_FALSE(p.held_due(9'999ms));
  EXPECT_TRUE(p.held_due(10s));
  // The interval ended: the value now goes out (not the held one).
  EXPECT_EQ(decide(p, inputs(150'000), 10s), (Dps{3, 37, 52, 30}));
  EXPECT_FALSE(p.held_due(30s));
  // Held, then back inside the band before the interval ends: nothing to send.
  EXPECT_TRUE(decide(p, inputs(200'000), 12s).empty());
  EXPECT_TRUE(p.held_due(20s));
  EXPECT_TRUE(decide(p, inputs(151'000), 15s).empty());
  EXPECT_FALSE(p.held_due(20s));
  EXPECT_TRUE(decide(p, inputs(151'000), 20s).empty());
  // Each DP has its own interval: voltage was last sent at 0 s.
  r.voltage_band = 20'000;
  ReportPolicy q = primed(r, inputs(100'000));
  EXPECT_TRUE(has(decide(q, inputs(200'000), 10s), 3));
  EXPECT_EQ(decide(q, inputs(200'000, 240'000), 11s), (Dps{5, 30}));
}

TEST(ReportPolicy, RelayAndFaultsAreNeverDelayedAndReleaseTheHold) {
  ReportRules r = no_rules();
  r.power_band = 50'000;
  r.min_interval = 60s;
  ReportInputs in = inputs(1'000'000);
  ReportPolicy p = primed(r, in);
  EXPECT_TRUE(decide(p, inputs(1'100'000), 1s).empty());  // held

  // Switched off: at once, though measurements are held.
  in = inputs(1'100'000);
  in.relay_on = false;
  EXPECT_EQ(decide(p, in, 2s), (Dps{1, 57, 3, 37, 52, 30}));  // the held power goes with it
  // The reading after the switch: the first move of each DP is not held back ...
  in = inputs(0);
  in.relay_on = false;
  EXPECT_EQ(decide(p, in, 3s), (Dps{3, 37, 52, 30}));
  // ... the next one is.
  in = inputs(200'000);
  in.relay_on = false;
  EXPECT_TRUE(decide(p, in, 4s).empty());

  // A trip: bitmap, level and text at once; the hold is released again.
  in.faults = 1u << 10;
  in.fault_detail = "over-current: relay switched off at 5.20 A";
  const Dps trip = decide(p, in, 5s);
  EXPECT_EQ(trip, (Dps{19, 20, 21, 3, 37, 52, 30}));
  // Other state (switch_enabled, settings, switch count) goes out at once as well.
  in.switch_enabled = false;
  in.switch_count = 3;
  EXPECT_EQ(decide(p, in, 6s), (Dps{17, 42}));
  in.settings.voltage_max_v = 250;
  EXPECT_EQ(decide(p, in, 7s), (Dps{12}));
}

TEST(ReportPolicy, PeriodicFullReport) {
  ReportRules r = no_rules();
  r.period = 300s;
  r.power_band = 50'000;
  r.min_interval = 10s;
  ReportPolicy p(r);
  EXPECT_TRUE(p.full_due(0ms));  // never reported
  const ReportInputs in = inputs();
  EXPECT_EQ(decide(p, in, 0ms, true).size(), report_values(in).size());
  EXPECT_FALSE(p.full_due(299'999ms));
  EXPECT_TRUE(p.full_due(300s));
  // Unchanged values all go out again in a full report; a change right after it is held.
  EXPECT_EQ(decide(p, in, 300s, true).size(), report_values(in).size());
  EXPECT_FALSE(p.full_due(599s));
  EXPECT_TRUE(decide(p, inputs(200'000), 301s).empty());
  EXPECT_TRUE(p.held_due(310s));
  // A new uplink session: everything counts as unreported.
  p.forget();
  EXPECT_TRUE(p.full_due(302s));
  EXPECT_EQ(decide(p, in, 302s).size(), report_values(in).size());
}

TEST(ReportPolicy, PhaseAGoesWithPowerVoltageOrCurrentOnly) {
  ReportRules r = no_rules();
  r.power_band = 50'000;
  r.energy_band = 100;
  r.power_factor_band = 100;
  ReportPolicy p = primed(r, inputs());
  ReportInputs in = inputs();
  in.energy->total_mwh += 20'000;
  in.meter->power_factor_e4 = 9000;
  in.meter->apparent_mva = 120'000;  // S moves, P does not
  EXPECT_EQ(decide(p, in, 1s), (Dps{52, 38, 40, 44, 50}));
}

// docs/dp-mapping.md "When values are reported" lists every reported DP under its rule.
TEST(ReportPolicyDoc, AgreesWithReportValues) {
  std::ifstream in(PB_DP_MAPPING_DOC);
  ASSERT_TRUE(in) << PB_DP_MAPPING_DOC;
  std::string line;
  bool in_section = false;
  std::map<int, std::string> documented;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_section = line == "## When values are reported";
    if (!in_section || line.rfind("| ", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line.substr(1));
    std::string cell;
    while (std::getline(ss, cell, '|')) {
      auto b = cell.find_first_not_of(' ');
      auto e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
    }
    if (cells.size() < 3 || cells[1].empty() || !std::isdigit(static_cast<unsigned char>(cells[1][0])))
      continue;
    std::stringstream dps(cells[1]);
    std::string dp;
    while (std::getline(dps, dp, ',')) {
      int id = std::stoi(dp);
      EXPECT_FALSE(documented.count(id)) << "DP " << id << " listed twice";
      documented[id] = cells[0];
    }
  }
  ReportInputs all = inputs();
  all.switch_count = 1;
  all.settings = DpSettings{
      .over_current_duration_ms = 100, .power_limit_w = 100, .voltage_min_v = 100, .voltage_max_v = 250};
  std::map<int, std::string> code;
  for (const auto& v : report_values(all)) code[v.dp] = to_string(v.rule);
  EXPECT_EQ(documented, code);
}

}  // namespace
}  // namespace pb::gateway
