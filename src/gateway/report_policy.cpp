#include "plugbridge/gateway/report_policy.hpp"

#include <nlohmann/json.hpp>

#include "plugbridge/tuya/dp.hpp"

namespace pb::gateway {

using json = nlohmann::json;

ReportRules report_rules(const config::Report& r) {
  ReportRules out;
  out.period = std::chrono::seconds(r.period_s);
  out.min_interval = std::chrono::seconds(r.min_interval_s);
  out.power_band = tuya::encode_power_mw(r.power_mw);
  out.power_percent = r.power_percent;
  out.voltage_band = tuya::encode_voltage_mv(r.voltage_mv);
  out.current_band = tuya::encode_current_ua(r.current_ua);
  out.current_percent = r.current_percent;
  out.energy_band = tuya::encode_energy_mwh(r.energy_mwh);
  out.power_factor_band = tuya::encode_power_factor_e4(r.power_factor_e4);
  return out;
}

const char* to_string(ReportRule r) {
  switch (r) {
    case ReportRule::Switch:
      return "switch";
    case ReportRule::OnChange:
      return "on change";
    case ReportRule::Power:
      return "power";
    case ReportRule::Voltage:
      return "voltage";
    case ReportRule::Current:
      return "current";
    case ReportRule::PowerFactor:
      return "power factor";
    case ReportRule::Energy:
      return "energy";
    case ReportRule::WithMeter:
      return "with 3/5/7";
  }
  return "?";
}

std::optional<ReportInputs::Meter> meter_inputs(uint8_t flags, uint32_t voltage_mv, uint32_t current_ua,
                                                uint32_t power_mw, uint32_t apparent_mva,
                                                uint16_t power_factor_e4) {
  namespace proto = pbfw::proto;
  if ((flags & proto::kMeterOk) == 0) return std::nullopt;
  return ReportInputs::Meter{.voltage_mv = voltage_mv,
                             .current_ua = current_ua,
                             .power_mw = power_mw,
                             .apparent_mva = apparent_mva,
                             .power_factor_e4 = power_factor_e4,
                             .voltage_valid = proto::measured(flags, proto::kVoltageValid),
                             .current_valid = proto::measured(flags, proto::kCurrentValid),
                             .power_valid = proto::measured(flags, proto::kPowerValid)};
}

std::vector<DpValue> report_values(const ReportInputs& in) {
  using K = DpValue::Kind;
  using R = ReportRule;
  std::vector<DpValue> v;
  v.reserve(26);
  auto add = [&](int dp, R rule, K kind, int64_t value, std::string text = {}) {
    v.push_back(DpValue{dp, rule, kind, value, std::move(text)});
  };
  if (in.relay_on) {
    add(1, R::Switch, K::Bool, *in.relay_on ? 1 : 0);
    add(57, R::Switch, K::Bool, *in.relay_on ? 1 : 0);
  }
  if (in.switch_enabled) add(17, R::OnChange, K::Bool, *in.switch_enabled ? 1 : 0);
  const uint32_t faults = in.faults | (in.no_mains ? fault_bit::kOutage : 0u);
  add(19, R::Switch, K::Int, faults);
  add(20, R::OnChange, K::Text, 0, alarm_level_for(faults));
  add(21, R::OnChange, K::Text, 0, device_alarm_text(faults, in.fault_detail));
  add(6, R::OnChange, K::Int, tuya::encode_current_max_ma(in.current_limit_ma));
  // Protection settings once the socket confirmed them (the firmware does not report its limits).
  const DpSettings& s = in.settings;
  if (s.over_current_duration_ms) add(18, R::OnChange, K::Int, *s.over_current_duration_ms / 10);
  if (s.power_limit_w) add(48, R::OnChange, K::Int, tuya::rescale(*s.power_limit_w, 4));
  if (s.voltage_min_v) add(11, R::OnChange, K::Int, tuya::rescale(*s.voltage_min_v, 4));
  if (s.voltage_max_v) add(12, R::OnChange, K::Int, tuya::rescale(*s.voltage_max_v, 4));
  if (in.switch_count) add(42, R::OnChange, K::Int, *in.switch_count);
  // A quantity the meter did not measure is left out, with every DP derived from it (S = V x I; Q and
  // PF from P and S; DP 30 carries V, I and P): the cloud keeps its last value, never a made-up 0.
  const bool all_valid =
      in.meter && in.meter->voltage_valid && in.meter->current_valid && in.meter->power_valid;
  if (in.meter) {
    const auto& m = *in.meter;
    if (m.power_valid) add(3, R::Power, K::Int, tuya::encode_power_mw(m.power_mw));
    if (m.voltage_valid) add(5, R::Voltage, K::Int, tuya::encode_voltage_mv(m.voltage_mv));
    if (m.current_valid) add(7, R::Current, K::Int, tuya::encode_current_ua(m.current_ua));
    if (m.power_valid) add(37, R::Power, K::Int, tuya::encode_power_mw(m.power_mw));
    if (m.voltage_valid && m.current_valid)
      add(52, R::Power, K::Int, encode_apparent_power_mva(m.apparent_mva));
    if (all_valid) {
      add(38, R::Power, K::Int, encode_reactive_power(m.power_mw, m.apparent_mva));
      add(40, R::PowerFactor, K::Int, tuya::encode_power_factor_e4(m.power_factor_e4));
      v.back().noisy = m.power_mw < kPowerFactorMinPowerMw;
    }
  }
  if (in.energy) {
    const auto& e = *in.energy;
    add(44, R::Energy, K::Int, tuya::encode_energy_mwh(e.total_mwh));
    add(50, R::Energy, K::Int, encode_forward_energy_mwh(e.total_mwh));
    if (all_valid) add(30, R::WithMeter, K::PhaseA, 0);
    add(45, R::Energy, K::Int, tuya::encode_energy_mwh(e.day_mwh));
    add(46, R::Energy, K::Int, tuya::encode_energy_mwh(e.month_mwh));
    add(58, R::OnChange, K::LocalTime, e.day_from_ms);
    add(59, R::OnChange, K::LocalTime, e.month_from_ms);
  }
  return v;
}

std::string report_payload(const DpValue& v, const ReportInputs& in,
                           const std::function<std::string(int64_t unix_ms)>& local_time) {
  switch (v.kind) {
    case DpValue::Kind::Bool:
      return v.value ? "true" : "false";
    case DpValue::Kind::Int:
      return std::to_string(v.value);
    case DpValue::Kind::Text:
      return json(v.text).dump();
    case DpValue::Kind::LocalTime:
      return json(local_time(v.value)).dump();
    case DpValue::Kind::PhaseA:
      if (!in.meter) return "{}";
      return phase_a_object(in.meter->voltage_mv, in.meter->current_ua, in.meter->power_mw,
                            in.energy ? in.energy->total_mwh : 0)
          .dump();
  }
  return "null";
}

namespace {
bool measurement(ReportRule r) {
  return r != ReportRule::Switch && r != ReportRule::OnChange && r != ReportRule::WithMeter;
}
// DP 30 (phase_a) carries DP 3, 5 and 7's values.
bool leads_phase_a(int dp) {
  return dp == 3 || dp == 5 || dp == 7;
}
}  // namespace

// |now - before| reaches the absolute band, or (power, current) the percent of |before| and the
// floor. A band of 0 is off; with every band of a DP off it goes out only in full reports.
bool ReportPolicy::moved_enough(ReportRule rule, int64_t before, int64_t now) const {
  const int64_t diff = now > before ? now - before : before - now;
  if (diff == 0) return false;
  int64_t band = 0, percent = 0, floor = 0;
  switch (rule) {
    case ReportRule::Power:
      band = rules_.power_band, percent = rules_.power_percent, floor = kPowerPercentFloor;
      break;
    case ReportRule::Voltage:
      band = rules_.voltage_band;
      break;
    case ReportRule::Current:
      band = rules_.current_band, percent = rules_.current_percent, floor = kCurrentPercentFloor;
      break;
    case ReportRule::PowerFactor:
      band = rules_.power_factor_band;
      break;
    case ReportRule::Energy:
      band = rules_.energy_band;
      break;
    default:
      return true;
  }
  if (band > 0 && diff >= band) return true;
  const int64_t base = before < 0 ? -before : before;
  return percent > 0 && diff >= floor && diff * 100 >= percent * base;
}

namespace {
uint64_t text_hash(const std::string& text) {
  return text.empty() ? 0 : std::hash<std::string>{}(text);
}
}  // namespace

ReportPolicy::Sent* ReportPolicy::find(int dp) {
  for (Sent& s : sent_)
    if (s.dp == dp) return &s;
  return nullptr;
}

void ReportPolicy::record(const DpValue& v, Time now) {
  Sent* s = find(v.dp);
  if (s == nullptr) s = &sent_.emplace_back();
  *s = Sent{v.value, now, text_hash(v.text), v.dp, false};
}

std::vector<const DpValue*> ReportPolicy::decide(const std::vector<DpValue>& values, Time now, bool full) {
  if (full) {
    sent_.clear();
    last_full_ = now;
  }
  if (sent_.capacity() < values.size()) sent_.reserve(values.size());  // exactly: no growth slack
  std::vector<char> chosen(values.size(), 0);
  bool phase_a_leader_sent = false;
  for (size_t i = 0; i < values.size(); ++i) {
    const DpValue& v = values[i];
    if (v.rule == ReportRule::WithMeter) continue;
    if (Sent* found = find(v.dp)) {
      Sent& s = *found;
      if (measurement(v.rule)) {
        if (v.noisy || !moved_enough(v.rule, s.value, v.value)) {
          s.held = false;
          continue;
        }
        // Held back while the interval runs, unless a switch or fault came since (or with) the
        // last report: what a switch does to the load is never delayed.
        if (rules_.min_interval.count() > 0 && now - s.at < rules_.min_interval && s.at > last_switch_) {
          s.held = true;
          continue;
        }
      } else {
        if (s.value == v.value && s.text == text_hash(v.text)) continue;
        if (v.rule == ReportRule::Switch) last_switch_ = now;
      }
    }
    record(v, now);
    chosen[i] = 1;
    if (leads_phase_a(v.dp)) phase_a_leader_sent = true;
  }
  std::vector<const DpValue*> out;
  for (size_t i = 0; i < values.size(); ++i) {
    const DpValue& v = values[i];
    if (v.rule == ReportRule::WithMeter && phase_a_leader_sent) {
      record(v, now);
      chosen[i] = 1;
    }
    if (chosen[i]) out.push_back(&v);
  }
  held_since_.reset();
  for (const Sent& s : sent_)
    if (s.held && (!held_since_ || s.at < *held_since_)) held_since_ = s.at;
  return out;
}

bool ReportPolicy::full_due(Time now) const {
  return !last_full_ || now - *last_full_ >= rules_.period;
}

bool ReportPolicy::held_due(Time now) const {
  return held_since_ && now - *held_since_ >= rules_.min_interval;
}

void ReportPolicy::forget() {
  sent_.clear();
  last_full_.reset();
  held_since_.reset();
}

}  // namespace pb::gateway
