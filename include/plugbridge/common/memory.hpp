// Giving freed heap memory back to the kernel.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace pb::memory {

// malloc returns freed memory to the kernel only from the top of each heap; what a burst of work
// (parsing a roster of thousands of sockets, a storm of TLS handshakes) freed below the long-lived
// allocations made meanwhile stays resident. This hands the free pages of every heap back (glibc's
// malloc_trim; elsewhere nothing). It walks the free lists: call it after such bursts, not per
// event.
void release_free_memory();

// release_free_memory on a thread of its own: on a fragmented heap of 100+ MB it takes a quarter of
// a second of madvise calls, which must not stall an event loop (other threads wait only if they
// need an arena's lock meanwhile). The owner's destructor waits for a release still running, so
// none outlives what its `done` uses.
class BackgroundRelease {
 public:
  using Done = std::function<void(double ms, double before_mb, double after_mb)>;
  BackgroundRelease() = default;
  BackgroundRelease(const BackgroundRelease&) = delete;
  BackgroundRelease& operator=(const BackgroundRelease&) = delete;
  ~BackgroundRelease();

  // Starts a release; `done` runs on its thread with the time taken and the resident set before
  // and after. False, and nothing started, while the previous one is still running.
  bool start(Done done = {});

 private:
  std::thread thread_;
  std::atomic<bool> running_{false};
};

// The process's resident set (VmRSS) in MB, 0 if unknown.
double resident_mb();

}  // namespace pb::memory
