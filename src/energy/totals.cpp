#include "plugbridge/energy/totals.hpp"

#include <limits>
#include <optional>
#include <vector>

namespace pb::energy {

int64_t energy_between(const store::Reader& store, const std::string& cid, int64_t from_ms, int64_t to_ms) {
  return store.energy_sum(cid, from_ms, to_ms);
}

int64_t day_total(const store::Reader& store, const Calendar& cal, const std::string& cid,
                  date::year_month_day day) {
  const Range r = cal.day(day);
  return store.energy_sum(cid, r.from_ms, r.to_ms);
}

int64_t month_total(const store::Reader& store, const Calendar& cal, const std::string& cid,
                    date::year_month month) {
  const Range r = cal.month(month);
  return store.energy_sum(cid, r.from_ms, r.to_ms);
}

int64_t all_time_total(const store::Reader& store, const std::string& cid) {
  return store.energy_sum(cid, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
}

size_t roll_up_days(store::Store& store, const Calendar& cal, size_t max_days) {
  const int64_t mark = store.rolled_up_ms();
  std::optional<int64_t> listed_to = store.days_rolled_up_to();
  std::optional<int64_t> next = store.next_bucket_ms(listed_to.value_or(std::numeric_limits<int64_t>::min()));
  std::vector<store::DaySpan> days;
  while (next && days.size() < max_days) {
    const Range d = cal.day(cal.local_date(*next));
    if (listed_to && d.from_ms < *listed_to) {
      // Begins before the last day listed ends (the zone changed): that part stays in the hours.
      next = store.next_bucket_ms(d.to_ms);
      continue;
    }
    if (d.to_ms > mark) break;
    days.push_back({d.from_ms, d.to_ms});
    listed_to = d.to_ms;
    next = store.next_bucket_ms(d.to_ms);
  }
  return days.empty() ? 0 : store.roll_up_days(days);
}

Summary summary(const store::Reader& store, const Calendar& cal, const std::string& cid, int64_t now_ms) {
  const date::year_month_day today = cal.local_date(now_ms);
  const date::year_month this_month = today.year() / today.month();
  Summary s;
  s.today_mwh = day_total(store, cal, cid, today);
  s.yesterday_mwh = day_total(store, cal, cid, date::year_month_day{date::sys_days{today} - date::days{1}});
  s.this_month_mwh = month_total(store, cal, cid, this_month);
  s.last_month_mwh = month_total(store, cal, cid, this_month - date::months{1});
  s.all_time_mwh = all_time_total(store, cid);
  return s;
}

const LiveTotals::Totals& LiveTotals::get(const store::Store& store, const std::string& cid, int64_t now_ms) {
  if (!loaded_ || now_ms < day_.from_ms || now_ms >= day_.to_ms) load(store, now_ms);
  // A socket without history at the load: what was committed since (add) or nothing.
  return cache_.try_emplace(cid, Totals{.day = day_, .month = month_}).first->second;
}

void LiveTotals::load(const store::Store& store, int64_t now_ms) {
  const date::year_month_day today = cal_.local_date(now_ms);
  const Range day = cal_.day(today), month = cal_.month(today.year() / today.month());
  std::unordered_map<std::string, Totals> fresh;
  {
    const store::Store::ReadTransaction snapshot(store);
    for (std::string& cid : store.socket_cids()) {
      Totals t{.day = day, .month = month};
      t.day_mwh = store.energy_sum(cid, day.from_ms, day.to_ms);
      t.month_mwh = store.energy_sum(cid, month.from_ms, month.to_ms);
      fresh.emplace(std::move(cid), t);
    }
  }
  cache_ = std::move(fresh);
  day_ = day;
  month_ = month;
  loaded_ = true;
  ++loads_;
}

void LiveTotals::add(const store::EnergyUpdate& committed) {
  if (!loaded_) return;  // read from the store when first asked
  for (const store::BucketUpdate& b : committed.samples) {
    Totals& t = cache_.try_emplace(b.cid, Totals{.day = day_, .month = month_}).first->second;
    if (b.start_ms >= t.day.from_ms && b.start_ms < t.day.to_ms) t.day_mwh += b.energy_mwh;
    if (b.start_ms >= t.month.from_ms && b.start_ms < t.month.to_ms) t.month_mwh += b.energy_mwh;
  }
}

}  // namespace pb::energy
