#include "plugbridge/energy/calendar.hpp"

#include <date/tz.h>

#include <chrono>
#include <stdexcept>

namespace pb::energy {

namespace {

const date::time_zone* find_zone(const std::string& name) {
  try {
    return name.empty() ? date::current_zone() : date::locate_zone(name);
  } catch (const std::exception& e) {
    throw std::runtime_error("unknown time zone '" + (name.empty() ? std::string("<system>") : name) + "' (" +
                             e.what() + "); use an IANA name such as Europe/Berlin");
  }
}

}  // namespace

Calendar::Calendar(const std::string& zone) : zone_(find_zone(zone)), name_(std::string(zone_->name())) {}

int64_t Calendar::day_start_ms(date::year_month_day day) const {
  const date::local_days local{day};
  // earliest: an ambiguous midnight (clocks back at 01:00 -> 00:00) takes its first occurrence; a
  // nonexistent one yields the transition instant with either choice.
  const auto sys = zone_->to_sys(local, date::choose::earliest);
  return std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count();
}

Range Calendar::day(date::year_month_day d) const {
  const date::year_month_day next{date::sys_days{d} + date::days{1}};
  return {day_start_ms(d), day_start_ms(next)};
}

Range Calendar::month(date::year_month m) const {
  const date::year_month next = m + date::months{1};
  return {day_start_ms(m / date::day{1}), day_start_ms(next / date::day{1})};
}

date::year_month_day Calendar::local_date(int64_t unix_ms) const {
  const date::sys_time<std::chrono::milliseconds> t{std::chrono::milliseconds{unix_ms}};
  const auto local = zone_->to_local(t);
  return date::year_month_day{date::floor<date::days>(local)};
}

std::string Calendar::local_time_string(int64_t unix_ms) const {
  const date::sys_time<std::chrono::seconds> t{std::chrono::seconds{unix_ms / 1000}};
  return date::format("%Y-%m-%d %H:%M:%S", zone_->to_local(t));
}

}  // namespace pb::energy
