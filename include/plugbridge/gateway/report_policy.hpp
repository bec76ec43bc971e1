// When a socket's Tuya DPs are reported: on change past per-DP dead bands (measurements), at
// once (relay, faults, settings), at most once per minimum interval per measurement DP, and a
// periodic full report. Pure logic with the time passed in (no I/O, no clock), so the daemon
// (Gateway::report_changes) and the benchmark (bench/reports.cpp) run exactly the same rules.
// The rules in words: README "Reports to Tuya" and docs/dp-mapping.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "plugbridge/config/config.hpp"
#include "plugbridge/gateway/dp_map.hpp"

namespace pb::gateway {

// The report rules in DP units (the integers sent to Tuya: scale 4), from config::Report.
struct ReportRules {
  std::chrono::milliseconds period{300'000};       // full report of every DP
  std::chrono::milliseconds min_interval{10'000};  // between on-change reports of one measurement DP
  int64_t power_band = 0;                          // W x 10^4 (var, VA for DP 38/52); 0 = off
  int64_t power_percent = 0;                       // of the last reported value; 0 = off
  int64_t voltage_band = 0;                        // V x 10^4
  int64_t current_band = 0;                        // mA x 10^4
  int64_t current_percent = 0;
  int64_t energy_band = 0;        // kWh x 10^4
  int64_t power_factor_band = 0;  // x 10^4
};
ReportRules report_rules(const config::Report& r);

// The percent rules ignore differences below 1 W (power, var, VA) and 10 mA (current): meter
// noise on a standby load is tenths of a watt, a large share of a small value. (Tasmota's
// PowerDelta compares whole watts, which has the same effect.)
inline constexpr int64_t kPowerPercentFloor = 10'000;     // 1 W in DP units
inline constexpr int64_t kCurrentPercentFloor = 100'000;  // 10 mA in DP units
// Below this power the HLW8032's power factor is noise (tenths of a watt over a few VA), so DP 40
// then goes out only in full reports.
inline constexpr uint32_t kPowerFactorMinPowerMw = 5'000;

enum class ReportRule : uint8_t {
  Switch,       // relay (DP 1/57) and fault bitmap (19): on any change, at once; releases the holds below
  OnChange,     // other state (17, 20, 21, settings, 42, 58/59): on any change, at once
  Power,        // DP 3, 37, 38, 52: power band (absolute or percent) + minimum interval
  Voltage,      // DP 5: voltage band + minimum interval
  Current,      // DP 7: current band (absolute or percent) + minimum interval
  PowerFactor,  // DP 40 (while the power is at least kPowerFactorMinPowerMw)
  Energy,       // DP 44, 45, 46, 50
  WithMeter,    // DP 30 phase_a: whenever DP 3, 5 or 7 goes out
};
const char* to_string(ReportRule r);

// One DP value a socket could report now.
struct DpValue {
  enum class Kind : uint8_t {
    Bool,       // value 0/1 -> true/false
    Int,        // value as is
    Text,       // JSON string `text`
    LocalTime,  // value = unix ms, sent as "YYYY-MM-DD HH:MM:SS" local time
    PhaseA,     // DP 30 object, built from the inputs' meter and energy
  };
  int dp = 0;
  ReportRule rule = ReportRule::OnChange;
  Kind kind = Kind::Int;
  int64_t value = 0;
  std::string text;
  bool noisy = false;  // a measurement that is only noise now: full reports only
};

// What the gateway knows about a socket, as far as reports go.
struct ReportInputs {
  std::optional<bool> relay_on;
  std::optional<bool> switch_enabled = true;  // unset: not known yet (the socket has not told), not reported
  uint32_t faults = 0;
  std::string fault_detail;
  uint32_t current_limit_ma = 5000;
  DpSettings settings;
  std::optional<uint32_t> switch_count;
  struct Meter {  // the newest reading, when the meter delivered it (kMeterOk)
    uint32_t voltage_mv = 0;
    uint32_t current_ua = 0;
    uint32_t power_mw = 0;
    uint32_t apparent_mva = 0;
    uint16_t power_factor_e4 = 0;
    // Which quantities the meter measured (the reading's valid flags). A quantity it did not is not
    // reported, nor anything derived from it: the cloud keeps the value it last got.
    bool voltage_valid = true;
    bool current_valid = true;
    bool power_valid = true;
  };
  std::optional<Meter> meter;
  // The meter sees no mains voltage (reading flag kNoMains): DP 19 carries outage_alarm while it lasts
  // and no voltage, current or power goes out (meter_inputs() leaves them invalid).
  bool no_mains = false;
  struct Energy {  // accounted energy (never the raw, wrapping counter)
    int64_t total_mwh = 0;
    int64_t day_mwh = 0;
    int64_t month_mwh = 0;
    int64_t day_from_ms = 0;    // local midnight the daily count started at
    int64_t month_from_ms = 0;  // local midnight of the 1st
  };
  std::optional<Energy> energy;
};

// The meter part of the inputs from a socket's newest reading: unset unless kMeterOk; a quantity is
// valid when its valid flag is set and the meter sees mains (kNoMains clears all three).
std::optional<ReportInputs::Meter> meter_inputs(uint8_t flags, uint32_t voltage_mv, uint32_t current_ua,
                                                uint32_t power_mw, uint32_t apparent_mva,
                                                uint16_t power_factor_e4);

// Every DP the socket reports, with its value and rule, in report order.
std::vector<DpValue> report_values(const ReportInputs& in);

// The JSON text sent for `v`; `local_time` formats LocalTime values (the gateway's calendar).
std::string report_payload(const DpValue& v, const ReportInputs& in,
                           const std::function<std::string(int64_t unix_ms)>& local_time);

// The reporting state of one socket: what was reported when.
class ReportPolicy {
 public:
  using Time = std::chrono::milliseconds;  // on any monotonic clock; only differences matter

  explicit ReportPolicy(ReportRules rules = {}) : rules_(rules) {}
  const ReportRules& rules() const { return rules_; }

  // The values to publish now (pointers into `values`, in their order); records them as reported
  // at `now`. full = every value (periodic full report, sync, DP 9 status query).
  std::vector<const DpValue*> decide(const std::vector<DpValue>& values, Time now, bool full);

  // The period has passed since the last full report, or there was none.
  bool full_due(Time now) const;
  // A change held back by the minimum interval may go out now (call decide again). Constant time:
  // the gateway asks every socket every second.
  bool held_due(Time now) const;
  // Nothing counts as reported any more (a new uplink session): the next decide sends everything.
  void forget();

 private:
  // What was last reported of one DP: 32 bytes (thousands of sockets times some twenty DPs).
  struct Sent {
    int64_t value = 0;
    Time at{};
    uint64_t text = 0;  // hash of the text (only compared)
    int dp = 0;
    bool held = false;  // passed its band while the minimum interval held it back
  };
  bool moved_enough(ReportRule rule, int64_t before, int64_t now) const;
  Sent* find(int dp);
  void record(const DpValue& v, Time now);

  ReportRules rules_;
  std::vector<Sent> sent_;  // one per DP reported, unordered
  std::optional<Time> last_full_;
  std::optional<Time> held_since_;  // the oldest `at` of the values held back (none: nothing held)
  Time last_switch_ = Time::min();  // last on-change report of a Switch DP (relay, faults)
};

}  // namespace pb::gateway
