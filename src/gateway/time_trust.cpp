#include "plugbridge/gateway/time_trust.hpp"

#include <sys/timex.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "plugbridge/common/utc.hpp"

namespace pb::gateway {

namespace {

std::string utc(int64_t ms) {
  return format_utc(ms, "%Y-%m-%dT%H:%M:%SZ");
}

std::string seconds(int64_t ms) {
  const int64_t a = std::llabs(ms);
  std::string s = std::to_string(a / 1000) + "." + std::to_string(a % 1000 / 100) + " s";
  return ms < 0 ? "-" + s : s;
}

}  // namespace

const char* to_string(TimeTrust::State s) {
  switch (s) {
    case TimeTrust::State::Waiting:
      return "waiting";
    case TimeTrust::State::Trusted:
      return "trusted";
    case TimeTrust::State::Following:
      return "following";
    case TimeTrust::State::Estimated:
      return "estimated";
  }
  return "?";
}

TimeTrust::TimeTrust(const Options& options, int64_t newest_ms, const ClockSample& first)
    : options_(options), newest_ms_(newest_ms), waiting_since_steady_ms_(first.steady_ms) {
  std::string why;
  if (trustworthy(first, why)) {
    state_ = State::Trusted;
    offset_ms_ = first.wall_ms - first.steady_ms;
    newest_ms_ = std::max(newest_ms_, first.wall_ms);
    return;
  }
  // Provisional times go on from the newest known one (the floor at least), never from a year-2000
  // wall clock: records stamped now sort after everything stored.
  reason_ = why;
  const int64_t from = std::max({first.wall_ms, newest_ms_ + 1, options_.floor_ms});
  offset_ms_ = from - first.steady_ms;
}

bool TimeTrust::trustworthy(const ClockSample& s, std::string& why) const {
  if (s.wall_ms < options_.floor_ms) {
    why = "the system clock says " + utc(s.wall_ms) + ", before this program was built (" +
          utc(options_.floor_ms) + ")";
    return false;
  }
  if (s.synced) return true;
  if (s.wall_ms < newest_ms_ - options_.step_tolerance.count()) {
    why = "the system clock says " + utc(s.wall_ms) + ", before the newest time already recorded (" +
          utc(newest_ms_) + "), and it is not synchronised";
    return false;
  }
  return true;
}

TimeTrust::Change TimeTrust::move_to(State next, std::string message) {
  Change c;
  c.from = state_;
  c.to = next;
  c.state_changed = next != state_;
  c.message = std::move(message);
  state_ = next;
  return c;
}

TimeTrust::Change TimeTrust::observe(const ClockSample& s) {
  std::string why;
  const bool ok = trustworthy(s, why);
  const int64_t ours = now_ms(s.steady_ms);
  if (!ok) {
    reason_ = why;
    switch (state_) {
      case State::Waiting:
        if (std::chrono::milliseconds(s.steady_ms - waiting_since_steady_ms_) >= options_.max_wait)
          return give_up_waiting(s, "no trustworthy clock after " + seconds(options_.max_wait.count()));
        return {};
      case State::Trusted:
        newest_ms_ = std::max(newest_ms_, ours);
        return move_to(State::Following, why + "; going on at the monotonic clock's pace from " + utc(ours));
      case State::Following:
      case State::Estimated:
        newest_ms_ = std::max(newest_ms_, ours);
        return {};
    }
    return {};
  }
  reason_.clear();
  const int64_t offset = s.wall_ms - s.steady_ms;
  const int64_t diff = s.wall_ms - ours;
  const bool step = std::llabs(diff) > options_.step_tolerance.count();
  Change c;
  switch (state_) {
    case State::Waiting:
      c = move_to(State::Trusted, "the system clock is trustworthy now (" + utc(s.wall_ms) + ", " +
                                      (s.synced ? "synchronised" : "not earlier than anything recorded") +
                                      "); records held so far are re-stamped by " + seconds(diff));
      c.restamp_ms = diff;
      break;
    case State::Trusted:
      c = step ? move_to(State::Trusted,
                         "the system clock stepped by " + seconds(diff) + " to " + utc(s.wall_ms))
               : Change{};
      break;
    case State::Following:
    case State::Estimated:
      c = move_to(State::Trusted, std::string("the system clock is trustworthy again (") + utc(s.wall_ms) +
                                      (step ? ", " + seconds(diff) + " from the time kept meanwhile" : "") +
                                      ")");
      break;
  }
  if (step) c.step_ms = diff;
  offset_ms_ = offset;
  newest_ms_ = std::max(newest_ms_, s.wall_ms);
  return c;
}

TimeTrust::Change TimeTrust::give_up_waiting(const ClockSample& s, const std::string& why) {
  if (state_ != State::Waiting) return {};
  // The best estimate: the system clock itself when only the newest-record floor failed (a clock a
  // little behind, e.g. fake-hwclock after a power cut, or one record stamped in the future once);
  // else time goes on from the newest stored time, as the provisional times did.
  const int64_t provisional = now_ms(s.steady_ms);
  const int64_t estimate = s.wall_ms >= options_.floor_ms ? s.wall_ms : provisional;
  Change c = move_to(State::Estimated,
                     why + ": going on with an estimated time from " + utc(estimate) + " (" + reason_ + ")");
  c.restamp_ms = estimate - provisional;
  offset_ms_ = estimate - s.steady_ms;
  return c;
}

bool kernel_clock_synced() {
  struct timex tx {};
  const int rc = ::adjtimex(&tx);
  if (rc != -1 && rc != TIME_ERROR && (tx.status & STA_UNSYNC) == 0) return true;
  return ::access("/run/systemd/timesync/synchronized", F_OK) == 0;
}

int64_t build_floor_ms() {
  return int64_t{PB_BUILD_DAY_UNIX_S} * 1000;
}

}  // namespace pb::gateway
