// Whether the system clock can be believed, and the gateway's time when it cannot. A Raspberry Pi
// has no battery-backed clock: it boots at the last saved time (fake-hwclock) or in 1970/2000 and
// jumps when NTP answers, and NTP may step it back or forth later. Pure logic with the clocks passed
// in (no I/O), like ReportPolicy; the daemon samples the clocks once a second (Gateway) and the
// rules in words are in docs/schema.md "Time".
//
// The gateway's time is the monotonic clock plus an offset. The offset is taken from the wall clock
// whenever the wall clock is trustworthy:
//   - never earlier than the floor (the build date of this binary), and
//   - either the kernel says it is synchronised (NTP, adjtimex without STA_UNSYNC), or it is not
//     earlier than the newest time this gateway has stamped or stored (a clock going back without
//     NTP saying so is not believed).
// When the wall clock is not trustworthy, the offset is kept: time goes on from the last trusted
// point at the monotonic clock's pace, so a step never freezes anything or makes negative
// durations. Until the first trustworthy sample of a run there is no offset to keep ("waiting"):
// records are stamped provisionally (from the newest stored time on) and held; the first
// trustworthy sample says by how much to re-stamp them. If none comes within max_wait, the gateway
// goes on with an estimate ("estimated") so that records are stored at all: the system clock when
// only the newest-record floor failed, else the provisional time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace pb::gateway {

// One look at the clocks.
struct ClockSample {
  int64_t wall_ms = 0;    // system clock, unix ms
  int64_t steady_ms = 0;  // monotonic clock, ms
  bool synced = false;    // the kernel says the system clock is synchronised
};

class TimeTrust {
 public:
  enum class State : uint8_t {
    Waiting,    // no trustworthy wall clock yet: times are provisional
    Trusted,    // the wall clock is trustworthy now
    Following,  // it was trustworthy earlier in this run, not now: times follow the monotonic clock
    Estimated,  // never trustworthy in this run: times go on from the newest stored one (max_wait)
  };

  struct Options {
    int64_t floor_ms = 0;  // the wall clock is never earlier (build date)
    std::chrono::milliseconds max_wait{120'000};
    std::chrono::milliseconds step_tolerance{2'000};  // larger differences are logged as steps
  };

  // What a sample changed.
  struct Change {
    bool state_changed = false;
    State from = State::Waiting, to = State::Waiting;
    // Add to every time stamped before this sample (records still held): non-zero only on leaving
    // Waiting.
    int64_t restamp_ms = 0;
    int64_t step_ms = 0;  // a step of the wall clock against the gateway's time (0: none)
    std::string message;  // what to log (empty: nothing worth a line)
  };

  // newest_ms: the newest time already stored (0 when none); first: the clocks at start.
  TimeTrust(const Options& options, int64_t newest_ms, const ClockSample& first);

  Change observe(const ClockSample& sample);
  // Leaves Waiting for Estimated now (records held waiting would otherwise exceed their bound).
  Change give_up_waiting(const ClockSample& sample, const std::string& why);

  // The gateway's time at a monotonic time.
  int64_t now_ms(int64_t steady_ms) const { return steady_ms + offset_ms_; }
  State state() const { return state_; }
  // Times are final (not provisional): records may be stored.
  bool settled() const { return state_ != State::Waiting; }
  // The gateway's time is right: the wall clock now, or the monotonic clock since the wall clock
  // was right. Reports to the cloud and pruning by age need it.
  bool trusted() const { return state_ == State::Trusted || state_ == State::Following; }
  // Why the wall clock is not trusted (empty when it is).
  const std::string& reason() const { return reason_; }

 private:
  bool trustworthy(const ClockSample& s, std::string& why) const;
  Change move_to(State next, std::string message);

  Options options_;
  int64_t newest_ms_ = 0;  // newest stored or stamped time: the no-sync floor
  int64_t offset_ms_ = 0;
  int64_t waiting_since_steady_ms_ = 0;
  State state_ = State::Waiting;
  std::string reason_;
};

const char* to_string(TimeTrust::State s);

// The kernel's view (adjtimex: synchronised, no STA_UNSYNC) or systemd-timesyncd's flag file.
bool kernel_clock_synced();

// The build date of this binary (unix ms, midnight UTC): a wall clock earlier than that is wrong.
int64_t build_floor_ms();

}  // namespace pb::gateway
