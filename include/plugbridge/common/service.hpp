// systemd service protocol (Type=notify): readiness, status text, watchdog pings from the event loop,
// stopping. Every call is a no-op when the daemon does not run under systemd (no NOTIFY_SOCKET).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <string>

namespace pb::service {

// READY=1 with a STATUS line (shown by `systemctl status`).
void notify_ready(const std::string& status);
void notify_status(const std::string& status);
void notify_stopping();
// RELOADING=1: a configuration reload begins; notify_ready() ends it.
void notify_reloading();

// Pings WATCHDOG=1 at half the unit's WatchdogSec from a timer on `io`: a stuck event loop stops the
// pings and systemd restarts the daemon. Does nothing if the watchdog is not enabled for us.
class Watchdog {
 public:
  explicit Watchdog(boost::asio::io_context& io);
  void start();
  void stop();
  bool enabled() const { return interval_us_ != 0; }

 private:
  void arm();
  boost::asio::steady_timer timer_;
  unsigned long long interval_us_ = 0;
  bool stopped_ = false;
};

}  // namespace pb::service
