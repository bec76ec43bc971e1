#include "plugbridge/common/service.hpp"

#include <systemd/sd-daemon.h>

#include <chrono>

#include "plugbridge/common/log.hpp"

namespace pb::service {

void notify_ready(const std::string& status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}

void notify_status(const std::string& status) {
  sd_notifyf(0, "STATUS=%s", status.c_str());
}

void notify_reloading() {
  sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
}

void notify_stopping() {
  sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

Watchdog::Watchdog(boost::asio::io_context& io) : timer_(io) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) interval_us_ = usec / 2;
}

void Watchdog::start() {
  if (!enabled()) return;
  PB_LOG(Info, "main") << "systemd watchdog: pinging every " << interval_us_ / 1000 << " ms";
  sd_notify(0, "WATCHDOG=1");
  arm();
}

void Watchdog::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Watchdog::arm() {
  timer_.expires_after(std::chrono::microseconds(interval_us_));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    sd_notify(0, "WATCHDOG=1");
    arm();
  });
}

}  // namespace pb::service
