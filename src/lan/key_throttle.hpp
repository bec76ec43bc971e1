// Once per key per period: for log lines an outsider can trigger at will (a socket knocking with an
// identity that is not in the roster). Bounded memory: at most `capacity` keys are remembered;
// when they are all recent, new keys share one line per period.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace pb::lan {

class KeyThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  KeyThrottle(Clock::duration period, size_t capacity) : period_(period), capacity_(capacity) {}

  // True: log it now. False: said within the period (counted in suppressed()).
  bool allow(const std::string& key, Clock::time_point now) {
    if (auto it = last_.find(key); it != last_.end()) {
      if (now - it->second < period_) return suppress();
      it->second = now;
      return true;
    }
    if (last_.size() >= capacity_) {
      std::erase_if(last_, [&](const auto& kv) { return now - kv.second >= period_; });
      if (last_.size() >= capacity_) {
        if (overflow_said_ && now - overflow_ < period_) return suppress();
        overflow_said_ = true;
        overflow_ = now;
        return true;
      }
    }
    last_.emplace(key, now);
    return true;
  }
  uint64_t suppressed() const { return suppressed_; }
  size_t remembered() const { return last_.size(); }

 private:
  bool suppress() {
    ++suppressed_;
    return false;
  }
  Clock::duration period_;
  size_t capacity_;
  std::unordered_map<std::string, Clock::time_point> last_;
  Clock::time_point overflow_{};
  bool overflow_said_ = false;
  uint64_t suppressed_ = 0;
};

}  // namespace pb::lan
