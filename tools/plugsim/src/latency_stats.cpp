#include "plugsim/latency_stats.hpp"

#include <algorithm>
#include <cmath>

namespace plugsim {

LatencyStats::LatencyStats() : buckets_(kBuckets + 1, 0) {}

void LatencyStats::add(Duration d) {
  const int64_t us = std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  const auto bucket = static_cast<size_t>(us / kBucketUs);
  ++buckets_[std::min(bucket, kBuckets)];
  ++count_;
  sum_us_ += us;
  max_us_ = std::max(max_us_, us);
}

void LatencyStats::reset() {
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = 0;
  max_us_ = 0;
  sum_us_ = 0;
}

double LatencyStats::percentile_ms(double q) const {
  if (count_ == 0) return 0.0;
  // Rank of the q-quantile sample (1-based, nearest-rank method).
  const auto rank = static_cast<uint64_t>(std::max(1.0, std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank)
      return std::min(static_cast<double>((static_cast<int64_t>(i) + 1) * kBucketUs),
                      static_cast<double>(max_us_)) /
             1000.0;
  }
  return max_ms();  // in the overflow bucket
}

double LatencyStats::mean_ms() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_us_) / static_cast<double>(count_) / 1000.0;
}

}  // namespace plugsim
