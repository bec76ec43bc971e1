/* Preloaded before libfaketime in the clock tests: timerfd_settime straight to the kernel.
 * libfaketime shifts absolute timerfd deadlines by its offset even on CLOCK_MONOTONIC, and Asio arms
 * its timerfd with an absolute deadline to say "now": under a faked clock the daemon's timers would
 * stop. The monotonic clock is not faked in these tests (FAKETIME_DONT_FAKE_MONOTONIC), so passing
 * the call through is exact. */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

int timerfd_settime(int fd, int flags, const struct itimerspec* new_value, struct itimerspec* old_value) {
  return (int)syscall(SYS_timerfd_settime, fd, flags, new_value, old_value);
}

int timerfd_gettime(int fd, struct itimerspec* curr_value) {
  return (int)syscall(SYS_timerfd_gettime, fd, curr_value);
}
