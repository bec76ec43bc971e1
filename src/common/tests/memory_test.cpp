#include "plugbridge/common/memory.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

namespace {

// What a storm of handshakes leaves: many blocks freed between small ones that stay.
struct Fragmented {
  std::vector<std::unique_ptr<char[]>> kept;
  void make(size_t blocks, size_t block_size) {
    std::vector<std::unique_ptr<char[]>> freed;
    for (size_t i = 0; i < blocks; ++i) {
      freed.emplace_back(new char[block_size]);
      for (size_t j = 0; j < block_size; j += 512) freed.back()[j] = 1;  // resident
      kept.emplace_back(new char[64]);
    }
  }
};

TEST(Memory, ResidentSetIsRead) {
  EXPECT_GT(pb::memory::resident_mb(), 0.1);
}

TEST(Memory, OneReleaseAtATimeAndTheOwnerWaitsForIt) {
  std::mutex m;
  std::condition_variable cv;
  bool inside = false, go = false, finished = false;
  {
    pb::memory::BackgroundRelease release;
    ASSERT_TRUE(release.start([&](double, double, double) {
      std::unique_lock lock(m);
      inside = true;
      cv.notify_all();
      cv.wait(lock, [&] { return go; });
      finished = true;
    }));
    {
      std::unique_lock lock(m);
      ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return inside; }));
    }
    EXPECT_FALSE(release.start());  // the first one is still running
    {
      std::lock_guard lock(m);
      go = true;
    }
    cv.notify_all();
  }  // the destructor joins
  EXPECT_TRUE(finished);
}

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
TEST(Memory, FreedHolesGoBackToTheSystemInTheBackground) {
  Fragmented f;
  f.make(8000, 8192);  // 64 MB freed in holes
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  double before = 0, after = 0;
  pb::memory::BackgroundRelease release;
  ASSERT_TRUE(release.start([&](double, double b, double a) {
    std::lock_guard lock(m);
    before = b;
    after = a;
    done = true;
    cv.notify_all();
  }));
  std::unique_lock lock(m);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return done; }));
  EXPECT_GT(before - after, 32.0) << before << " -> " << after << " MB";
}
#endif

}  // namespace
