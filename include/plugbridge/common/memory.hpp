// Giving freed heap memory back to the kernel.
#pragma once

#include <functional>

namespace pb::memory {

// malloc returns freed memory to the kernel only from the top of each heap; what a burst of work
// (parsing a roster of thousands of sockets, a storm of TLS handshakes) freed below the long-lived
// allocations made meanwhile stays resident. This hands the free pages of every heap back (glibc's
// malloc_trim; elsewhere nothing). It walks the free lists: call it after such bursts, not per
// event.
void release_free_memory();

// release_free_memory on a short-lived thread of its own: on a fragmented heap of 100+ MB it takes
// a quarter of a second of madvise calls, which must not stall an event loop (other threads wait
// only if they need an arena's lock meanwhile). `done` runs on that thread with the time taken and
// the resident set before and after. False, and nothing started, if one is still running.
bool release_free_memory_in_background(
    std::function<void(double ms, double before_mb, double after_mb)> done);

// The process's resident set (VmRSS) in MB, 0 if unknown.
double resident_mb();

}  // namespace pb::memory
