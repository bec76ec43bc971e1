// Energy accounting: turns each socket's cumulative counter (energy_mwh + energy_epoch) into
// increments that are never negative and never counted twice, summed with the power, voltage and
// current into raw samples (the store rolls those up into 15-minute buckets).
// The rules are documented in docs/schema.md ("Energy tables").
//
// Use: add() readings to a Pending as they arrive (or prepare() a batch), pass its update and
// events to Store::commit, then committed() on success (a failed commit leaves the state untouched;
// the Pending is kept and committed again).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plugbridge/store/store.hpp"

namespace pb::energy {

inline constexpr int64_t kBucketMs = 15 * 60 * 1000;
// An increment over an interval longer than a sample that crosses quarter-hours is shared over them
// by time (docs/schema.md, "Energy tables"), over at most this long an interval; a longer one (a
// clock far off) goes to the closing reading's quarter-hour whole.
inline constexpr int64_t kMaxSpreadMs = 400ll * 24 * 3600 * 1000;
inline constexpr uint64_t kWrapMwh = 10'000'000'000ull;  // the socket counter wraps at 10 000 kWh
inline constexpr uint8_t kMeterOkFlag = 1u << 3;         // pbfw::proto kMeterOk
// pbfw::proto kVoltageValid, kCurrentValid, kPowerValid, kNoMains: which quantities a sample gets.
inline constexpr uint8_t kVoltageValidFlag = 1u << 0, kCurrentValidFlag = 1u << 1, kPowerValidFlag = 1u << 2,
                         kNoMainsFlag = 1u << 7;

inline int64_t floor_to(int64_t ts_ms, int64_t width_ms) {
  const int64_t r = ts_ms % width_ms;
  return ts_ms - (r < 0 ? r + width_ms : r);
}
inline int64_t bucket_start(int64_t ts_ms) {
  return floor_to(ts_ms, kBucketMs);
}

// How often the samples are rolled up into the buckets: about 360 samples per socket wait
// (readers add them to the buckets), at least an hour, at most a day, a divisor of a day (rolls
// start at UTC multiples of it). One roll writes a few pages per socket however many hours it
// covers, so rarer rolls write less: with one-minute samples every 6 h.
inline int64_t roll_up_period_ms(int64_t sample_ms) {
  constexpr int64_t kHour = 3'600'000;
  int64_t hours = 1;
  for (const int64_t h : {2, 3, 4, 6, 8, 12, 24})
    if (h * kHour <= sample_ms * 360) hours = h;
  return hours * kHour;
}

struct AccountantOptions {
  // Width of the raw samples the readings are summed into (history.raw_resolution_s); divides
  // kBucketMs, so a sample lies in one bucket.
  int64_t sample_ms = 60'000;
  uint32_t max_power_w = 3500;  // increments implying more are rejected ("rejected_jump" event)
  std::unordered_map<std::string, uint32_t> socket_max_power_w;  // per-socket overrides of max_power_w

  uint32_t max_power_w_for(const std::string& cid) const {
    const auto it = socket_max_power_w.find(cid);
    return it != socket_max_power_w.end() ? it->second : max_power_w;
  }
};

struct Prepared {
  store::EnergyUpdate update;           // samples and states
  std::vector<store::EventRow> events;  // rejected_jump events
  int64_t accepted_mwh = 0;             // energy added by this batch (all sockets)
  size_t out_of_range = 0;              // readings whose counter is past the protocol's range
};

// Readings summed as they arrive, against the committed states: the samples, the newest state
// per socket and the events so far. Its size grows with sockets and sample intervals, not readings.
class Pending {
 public:
  // Hash maps: every reading looks up its socket here, and cids are long strings that share their
  // beginning; prepared() hands the rows out in key order, as the store writes them best.
  size_t readings() const { return readings_; }
  size_t samples() const { return samples_.size(); }
  bool empty() const { return readings_ == 0 && events_.empty(); }
  // The commit's content (a copy: this stays until the commit succeeded).
  Prepared prepared() const;

 private:
  friend class Accountant;
  struct SampleKeyHash {
    size_t operator()(const std::pair<std::string, int64_t>& k) const {
      return std::hash<std::string>()(k.first) ^ (std::hash<int64_t>()(k.second) * 0x9e3779b97f4a7c15ull);
    }
  };
  std::unordered_map<std::string, store::EnergyStateRow> changed_;

 public:
  using Samples = std::unordered_map<std::pair<std::string, int64_t>, store::BucketUpdate, SampleKeyHash>;

 private:
  Samples samples_;
  std::vector<store::EventRow> events_;
  int64_t accepted_mwh_ = 0;
  size_t out_of_range_ = 0;
  size_t readings_ = 0;
};

class Accountant {
 public:
  explicit Accountant(AccountantOptions options = {}) : options_(options) {}

  // Loads the persisted states.
  void load(const store::Store& store);

  // Pure: computes the sample updates, new states and events of these readings (any order, any
  // sockets) against the current states, without changing them.
  Prepared prepare(const std::vector<store::ReadingRow>& readings) const;
  // Adds one reading to `pending` (records of a socket in its order; an older or repeated one adds
  // no energy). Does not change the states either.
  void add(Pending& pending, const store::ReadingRow& r) const;
  // Adopts the states of a successfully committed Prepared.
  void committed(const Prepared& p);

  std::optional<store::EnergyStateRow> state(const std::string& cid) const;
  int64_t total_mwh(const std::string& cid) const;  // all-time accounted, 0 if unknown
  const AccountantOptions& options() const { return options_; }
  // Reload: limits for the readings prepared from now on.
  void set_options(AccountantOptions options) { options_ = std::move(options); }

 private:
  AccountantOptions options_;
  std::unordered_map<std::string, store::EnergyStateRow> states_;
  // Sockets already logged for an out-of-range counter (said once per socket and run).
  mutable std::set<std::string> warned_range_;
};

}  // namespace pb::energy
