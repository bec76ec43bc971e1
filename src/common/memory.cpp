#include "plugbridge/common/memory.hpp"

#include <unistd.h>  // first: defines __GLIBC__ on glibc

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <chrono>
#include <cstdio>
#include <utility>

namespace pb::memory {

void release_free_memory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

BackgroundRelease::~BackgroundRelease() {
  if (thread_.joinable()) thread_.join();
}

bool BackgroundRelease::start(Done done) {
  if (running_.exchange(true)) return false;
  if (thread_.joinable()) thread_.join();  // finished: only its end is left
  thread_ = std::thread([this, done = std::move(done)] {
    const double before = resident_mb();
    const auto t0 = std::chrono::steady_clock::now();
    release_free_memory();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (done) done(ms, before, resident_mb());
    running_ = false;
  });
  return true;
}

double resident_mb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e6;
}

}  // namespace pb::memory
