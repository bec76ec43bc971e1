// Energy totals over calendar periods, from the 15-minute buckets (never from raw readings), read
// through a store::Reader (a Store converts to one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/store/reader.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::energy {

// mWh of the buckets starting in [from_ms, to_ms) (bucket = UTC quarter-hour).
int64_t energy_between(const store::Reader& store, const std::string& cid, int64_t from_ms, int64_t to_ms);
int64_t day_total(const store::Reader& store, const Calendar& cal, const std::string& cid,
                  date::year_month_day day);
int64_t month_total(const store::Reader& store, const Calendar& cal, const std::string& cid,
                    date::year_month month);
int64_t all_time_total(const store::Reader& store, const std::string& cid);

// Rolls up at most max_days whole local days of cal's zone into the store's days
// (Store::roll_up_days): those after the last one rolled up, or from the first bucket stored, that
// end before the samples not rolled up yet. Days without any bucket are skipped. Returns how many
// days were rolled up.
size_t roll_up_days(store::Store& store, const Calendar& cal, size_t max_days);

// What the CLI's `energy` shows, at now_ms in the calendar's zone.
struct Summary {
  int64_t today_mwh = 0, yesterday_mwh = 0, this_month_mwh = 0, last_month_mwh = 0, all_time_mwh = 0;
  bool operator==(const Summary&) const = default;
};
Summary summary(const store::Reader& store, const Calendar& cal, const std::string& cid, int64_t now_ms);

// Today's and this month's energy per socket for the daemon's reports, kept in memory: at the first
// call of a local day every socket's totals are read from the store in one snapshot (the samples not
// rolled up yet read once for all of them, not once per socket), then advanced by the committed
// bucket updates.
class LiveTotals {
 public:
  explicit LiveTotals(const Calendar& cal) : cal_(cal) {}

  struct Totals {
    Range day, month;
    int64_t day_mwh = 0, month_mwh = 0;
  };
  const Totals& get(const store::Store& store, const std::string& cid, int64_t now_ms);
  void add(const store::EnergyUpdate& committed);
  // How many times every socket's totals were read (a local day, or the clock stepped out of it).
  uint64_t loads() const { return loads_; }

 private:
  void load(const store::Store& store, int64_t now_ms);

  const Calendar& cal_;
  bool loaded_ = false;
  Range day_, month_;
  uint64_t loads_ = 0;
  std::unordered_map<std::string, Totals> cache_;  // every socket with history at the load, and those since
};

}  // namespace pb::energy
