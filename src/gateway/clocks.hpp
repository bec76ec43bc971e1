// The gateway's clocks, injectable for tests: the system clock as it is (wall_ms, synced), the
// gateway's time (unix_ms, for rows and messages: TimeTrust's view of the system clock, set up by
// the Gateway) and steady time (for ReportPolicy's intervals and TimeTrust).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "plugbridge/gateway/time_trust.hpp"

namespace pb::gateway {

inline int64_t system_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Clocks {
  std::function<int64_t()> unix_ms = system_unix_ms;
  std::function<std::chrono::milliseconds()> steady = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
  };
  std::function<int64_t()> wall_ms = system_unix_ms;
  std::function<bool()> synced = kernel_clock_synced;

  ClockSample sample() const { return ClockSample{wall_ms(), steady().count(), synced()}; }
};

}  // namespace pb::gateway
