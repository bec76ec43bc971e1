// Record send→ack latency over all simulated sockets (the time from the socket taking a reading to
// the gateway's cumulative Ack covering it, i.e. committed to SQLite), for the load benchmark.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace plugsim {

class LatencyStats {
 public:
  using Duration = std::chrono::steady_clock::duration;
  // 0.1 ms buckets up to 30 s; longer samples land in an overflow bucket (max is kept exactly).
  static constexpr int64_t kBucketUs = 100;
  static constexpr size_t kBuckets = 300000;

  LatencyStats();

  void add(Duration d);
  void reset();

  uint64_t count() const { return count_; }
  // Upper edge of the bucket holding the q-quantile (0 < q <= 1), in ms; 0 when empty.
  double percentile_ms(double q) const;
  double max_ms() const { return static_cast<double>(max_us_) / 1000.0; }
  double mean_ms() const;

 private:
  std::vector<uint32_t> buckets_;  // kBuckets + 1 (overflow)
  uint64_t count_ = 0;
  int64_t max_us_ = 0;
  int64_t sum_us_ = 0;
};

}  // namespace plugsim
