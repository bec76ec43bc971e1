#include "support/lan_flood.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <system_error>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace pb::test {

LanFlood::LanFlood(uint16_t port, std::vector<std::string> sources, size_t n, double reopen_per_s)
    : port_(port), sources_(std::move(sources)), reopen_per_s_(reopen_per_s), slots_(n) {
  if (sources_.empty()) throw std::invalid_argument("LanFlood: no source address");
  for (const auto& s : sources_) {
    in_addr a{};
    if (::inet_pton(AF_INET, s.c_str(), &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
      throw std::invalid_argument("LanFlood: " + s + " is not a loopback address");
  }
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) throw std::system_error(errno, std::generic_category(), "LanFlood: epoll_create1");
  for (size_t i = 0; i < slots_.size(); ++i)
    if (!open(i)) to_reopen_.push_back(i);
  thread_ = std::thread([this] { run(); });
}

LanFlood::~LanFlood() {
  stop();
  if (epoll_ >= 0) ::close(epoll_);
}

void LanFlood::stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  for (size_t i = 0; i < slots_.size(); ++i) close_slot(i, false);
}

// A non-blocking connect from the slot's source address; false when it failed at once (no
// descriptor, no port): the slot is opened again later.
bool LanFlood::open(size_t i) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int one = 1;
  // The port is chosen at connect, for the whole 4-tuple: one source address can then hold more
  // connections than its ephemeral range has free ports for binding.
  ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, sources_[i % sources_.size()].c_str(), &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port_);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS)) {
    ::close(fd);
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = i;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    ::close(fd);
    return false;
  }
  slots_[i] = {fd, false};
  return true;
}

void LanFlood::close_slot(size_t i, bool by_peer) {
  Slot& s = slots_[i];
  if (s.fd < 0) return;
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, s.fd, nullptr);
  ::close(s.fd);
  if (s.connected) --established_;
  s = {};
  if (by_peer) ++closed_;
}

void LanFlood::run() {
  std::vector<epoll_event> events(1024);
  auto refilled = std::chrono::steady_clock::now();
  double tokens = 0;
  while (!stop_) {
    const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 10);
    for (int k = 0; k < n; ++k) {
      const size_t i = events[k].data.u64;
      Slot& s = slots_[i];
      if (s.fd < 0) continue;
      const uint32_t e = events[k].events;
      if (!s.connected && (e & EPOLLOUT)) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          close_slot(i, true);
          to_reopen_.push_back(i);
          continue;
        }
        s.connected = true;
        ++established_;
        ++connects_;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = i;
        ::epoll_ctl(epoll_, EPOLL_CTL_MOD, s.fd, &ev);
      }
      if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        char buf[512];
        const ssize_t r = ::recv(s.fd, buf, sizeof buf, 0);
        if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) continue;  // never answered
        close_slot(i, true);
        to_reopen_.push_back(i);
      }
    }
    const auto now = std::chrono::steady_clock::now();
    tokens = std::min(reopen_per_s_,
                      tokens + std::chrono::duration<double>(now - refilled).count() * reopen_per_s_);
    refilled = now;
    while (!to_reopen_.empty() && tokens >= 1) {
      tokens -= 1;
      const size_t i = to_reopen_.back();
      to_reopen_.pop_back();
      if (!open(i)) to_reopen_.insert(to_reopen_.begin(), i);
    }
  }
}

}  // namespace pb::test
