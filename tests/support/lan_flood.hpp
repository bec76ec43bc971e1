// A host on the LAN that opens many TCP connections to the socket listener and never starts their
// TLS handshake: for the tests and the load benchmark of the listener's admission limits.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace pb::test {

// Keeps `n` idle TCP connections to 127.0.0.1:port open, spread round-robin over the loopback
// addresses `sources` (each 127.0.0.0/8), on a thread of its own (epoll, so past 1 024
// descriptors). Connections are opened as fast as they connect; those the server closes, or that
// fail, are opened again at most `reopen_per_s` a second. Nothing is ever sent. The caller raises
// RLIMIT_NOFILE beforehand.
class LanFlood {
 public:
  LanFlood(uint16_t port, std::vector<std::string> sources, size_t n, double reopen_per_s);
  ~LanFlood();  // stop()
  LanFlood(const LanFlood&) = delete;
  LanFlood& operator=(const LanFlood&) = delete;

  size_t established() const { return established_; }  // connected and not closed yet
  uint64_t connects() const { return connects_; }      // connections established, all told
  uint64_t closed_by_peer() const { return closed_; }  // ended by the server (or refused)
  void stop();                                         // closes every connection; idempotent

 private:
  struct Slot {
    int fd = -1;
    bool connected = false;
  };
  void run();
  bool open(size_t slot);
  void close_slot(size_t slot, bool by_peer);

  const uint16_t port_;
  const std::vector<std::string> sources_;
  const double reopen_per_s_;
  std::vector<Slot> slots_;
  std::vector<size_t> to_reopen_;
  int epoll_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> established_{0};
  std::atomic<uint64_t> connects_{0};
  std::atomic<uint64_t> closed_{0};
  std::thread thread_;
};

}  // namespace pb::test
