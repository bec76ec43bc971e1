// Once per key per period: for log lines an outsider can trigger at will (a socket knocking with an
// identity that is not in the roster, connections refused or failing before Hello, by address). Bounded
// memory: at most `capacity` keys are remembered; when they are all recent, new keys share one line per
// period.
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

  // True: log it now; *missed (when given) is how many times this key was suppressed since it was
  // last allowed. False: said within the period (counted, in suppressed() too).
  bool allow(const std::string& key, Clock::time_point now, uint64_t* missed = nullptr) {
    if (missed) *missed = 0;
    if (auto it = last_.find(key); it != last_.end()) {
      if (now - it->second.when < period_) {
        ++it->second.missed;
        return suppress();
      }
      if (missed) *missed = it->second.missed;
      it->second = {now, 0};
      return true;
    }
    if (last_.size() >= capacity_) {
      std::erase_if(last_, [&](const auto& kv) { return now - kv.second.when >= period_; });
      if (last_.size() >= capacity_) {
        if (overflow_said_ && now - overflow_ < period_) {
          ++overflow_missed_;
          return suppress();
        }
        if (missed) *missed = overflow_missed_;
        overflow_said_ = true;
        overflow_ = now;
        overflow_missed_ = 0;
        return true;
      }
    }
    last_.emplace(key, Said{now, 0});
    return true;
  }
  uint64_t suppressed() const { return suppressed_; }
  size_t remembered() const { return last_.size(); }

 private:
  struct Said {
    Clock::time_point when;
    uint64_t missed = 0;
  };
  bool suppress() {
    ++suppressed_;
    return false;
  }
  Clock::duration period_;
  size_t capacity_;
  std::unordered_map<std::string, Said> last_;
  Clock::time_point overflow_{};
  bool overflow_said_ = false;
  uint64_t overflow_missed_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace pb::lan
