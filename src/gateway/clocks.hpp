// The gateway's two clocks, injectable for tests: wall time (unix ms, for rows and messages) and
// steady time (for ReportPolicy's intervals).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace pb::gateway {

struct Clocks {
  std::function<int64_t()> unix_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  std::function<std::chrono::milliseconds()> steady = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
  };
};

}  // namespace pb::gateway
