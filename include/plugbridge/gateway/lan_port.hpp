// What the gateway needs from the LAN side: the sockets' sessions (SocketLink) and the listener
// (LanPort). Implemented over lan::Server in the daemon (make_lan_port) and by fakes in tests.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <pbfw/proto.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plugbridge/config/config.hpp"

namespace pb::gateway {

// One socket's session, after its TLS handshake and a valid Hello.
class SocketLink {
 public:
  virtual ~SocketLink() = default;
  virtual const std::string& cid() const = 0;  // the PSK identity (== Hello.cid)
  virtual const pbfw::proto::Hello& hello() const = 0;
  virtual std::string remote() const = 0;  // "ip:port"
  virtual bool open() const = 0;
  // Queued, in order; no-op once closed.
  virtual void send(const pbfw::proto::Message& m) = 0;
  // Idempotent; on_closed follows (posted).
  virtual void close(std::string reason) = 0;
};

struct LanHandlers {
  std::function<void(const std::shared_ptr<SocketLink>&)> on_hello;
  std::function<void(const std::shared_ptr<SocketLink>&, const pbfw::proto::Message&)> on_message;
  // Once per link that got on_hello; always posted, never inside send()/close()/stop().
  std::function<void(const std::shared_ptr<SocketLink>&, const std::string& reason)> on_closed;
};

// Returns the key for a PSK identity (a cid), or nullopt if it is not in the roster.
using KeyLookup = std::function<std::optional<std::vector<uint8_t>>(std::string_view cid)>;

class LanPort {
 public:
  virtual ~LanPort() = default;
  // Binds and listens; throws std::system_error with a clear message on failure.
  virtual void start(KeyLookup lookup, LanHandlers handlers) = 0;
  virtual void stop() = 0;  // stop accepting, close all links
  virtual uint16_t port() const = 0;
  // Connections that failed before their Hello since start, by reason (stable snake_case names,
  // every reason listed also at 0); none when the LAN side does not count them.
  virtual std::vector<std::pair<std::string, uint64_t>> handshake_failures() const { return {}; }
};

// The daemon's LAN listener (lan::Server) with the options of cfg.lan.
std::unique_ptr<LanPort> make_lan_port(boost::asio::io_context& io, const config::Config& cfg);

}  // namespace pb::gateway
