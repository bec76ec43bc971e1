// One `uplinks:` entry of type aliyun or tencent (or mqtt with per_socket) in the daemon: every roster socket
// with credentials for that platform is a device of its own there, with its own MQTT connection
// (uplink::Client in generic mode) logged in with the platform's formula (profile.hpp).
//
//  - A device is connected while its socket has a LAN session, so the platform shows the socket
//    online exactly when it is. New connections are paced (connect_rate_per_s for the whole
//    uplink); each connection reconnects on its own with exponential backoff and jitter.
//  - Reports go through a durable outbox of this uplink (gateway::Outbox, rows under the uplink's
//    name): the switch as an event at once, measurements at most every state_interval_s and only
//    when they changed, everything after each connect. While a device is away its reports wait in
//    the outbox (kept across restarts) and go once it is back; a row is deleted after the PUBACK.
//  - Property set / control messages switch the relay through Gateway::local_command (the same
//    queue and checks as every other command) and are answered in the platform's format.
//  - Passwords that expire (Tencent) are renewed before their expiry with a new connection.
//  - Secrets are never logged; a refused login names the socket and the roster key to check.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "plugbridge/config/config.hpp"
#include "plugbridge/gateway/gateway.hpp"
#include "plugbridge/gateway/health.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::cloud {

struct DeviceHealth {
  size_t devices = 0;             // roster sockets with credentials for this platform
  size_t wanted = 0;              // of them with a LAN session (their connection is wanted)
  size_t connected = 0;           // of them connected to the platform
  size_t refused = 0;             // whose last login was refused (CONNACK 4/5)
  uint64_t commands = 0;          // property set / control messages handled
  uint64_t commands_refused = 0;  // answered with a failure
  uint64_t reports_refused = 0;   // reports the platform answered with an error code
  uint64_t renewals = 0;          // connections renewed before their password expired
};

class DeviceService {
 public:
  // The roster is the gateway's (Gateway::config()), followed across reloads.
  DeviceService(boost::asio::io_context& io, const config::DeviceUplink& cfg, gateway::Gateway& gw,
                store::Store& store);
  ~DeviceService();  // no longer observes the gateway; connections are torn down without a goodbye
  DeviceService(const DeviceService&) = delete;
  DeviceService& operator=(const DeviceService&) = delete;

  void start();
  // A clean disconnect of every device (bounded: each within a few seconds); done on the loop.
  void stop(std::function<void()> done);

  const std::string& name() const;
  DeviceHealth health() const;
  // As the gateway's health and `plugbridge status` list the uplinks (type "aliyun" / "tencent").
  gateway::UplinkHealth uplink_health() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pb::cloud
