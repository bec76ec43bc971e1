// One `uplinks:` entry of type mqtt in the daemon: its broker connection (uplink::Client in
// generic mode: plain or TLS, user and password, the bridge's subscriptions, a retained "offline"
// last will), the Bridge, and the gateway as the Bridge's SocketSource.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "plugbridge/config/config.hpp"
#include "plugbridge/gateway/gateway.hpp"
#include "plugbridge/homeassistant/bridge.hpp"

namespace pb::homeassistant {

class Service {
 public:
  // Throws std::runtime_error naming the file when the password file cannot be read.
  Service(boost::asio::io_context& io, const config::MqttUplink& cfg, const std::string& gateway_id,
          const std::string& version, gateway::Gateway& gw);
  ~Service();  // no longer observes the gateway; the connection is torn down without a goodbye
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  void start();  // connect (and keep reconnecting)
  // "offline" on the bridge's state, then a clean disconnect; done on the loop, within ~3 s.
  void stop(std::function<void()> done);

  const std::string& name() const;
  BridgeHealth health() const;
  std::string last_error() const;  // why the broker is not connected ("" while it is)
  // As the gateway's health and `plugbridge status` list the uplinks (type "mqtt").
  gateway::UplinkHealth uplink_health() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The first line of a password file (without its line end); throws std::runtime_error.
std::string read_password_file(const std::string& path);

}  // namespace pb::homeassistant
