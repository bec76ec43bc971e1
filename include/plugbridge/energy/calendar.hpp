// Local calendar of the configured IANA time zone (Debian's date/tz over the system zoneinfo):
// local days and months as UTC millisecond ranges, correct across DST (23 h / 25 h days) and
// for :30/:45 offsets.
#pragma once

#include <date/date.h>

#include <cstdint>
#include <string>

namespace date {
class time_zone;
}

namespace pb::energy {

struct Range {
  int64_t from_ms = 0, to_ms = 0;  // [from_ms, to_ms), unix ms
  bool operator==(const Range&) const = default;
};

class Calendar {
 public:
  // zone "" = the system's zone (/etc/localtime, TZ ignored); throws std::runtime_error naming an
  // unknown zone.
  explicit Calendar(const std::string& zone = "");

  const std::string& zone_name() const { return name_; }

  // UTC instant of local midnight starting that day. A midnight that does not exist (a DST jump
  // at 00:00) maps to the transition instant.
  int64_t day_start_ms(date::year_month_day day) const;
  Range day(date::year_month_day day) const;
  Range month(date::year_month month) const;

  date::year_month_day local_date(int64_t unix_ms) const;
  // "YYYY-MM-DD HH:MM:SS" local wall time (the DP 58/59 format).
  std::string local_time_string(int64_t unix_ms) const;

 private:
  const date::time_zone* zone_;
  std::string name_;
};

}  // namespace pb::energy
