// The daemon's local control socket: a Unix stream socket on the daemon's io_context speaking
// newline-delimited JSON (docs/control-protocol.md). The `plugbridge` CLI uses it for live state
// and relay commands; it works whether or not the Tuya uplink is up.
//
// Single-threaded like the rest of the daemon: everything runs on the io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace pb::gateway {
class Gateway;
}

namespace pb::control {

// Answers one request. `reply` must be called exactly once, on the loop, possibly later.
using Reply = std::function<void(nlohmann::json response)>;
using Handler = std::function<void(const nlohmann::json& request, Reply reply)>;

struct ServerOptions {
  std::string path;
  unsigned mode = 0660;
  std::string group = "plugbridge";  // chgrp to it when that group exists; ignored otherwise
  size_t max_line = 64 * 1024;       // longer requests close the connection
  size_t max_clients = 32;
};

class Server {
 public:
  // Throws std::runtime_error naming the path and the cause when it cannot listen: another
  // daemon already answers there, the directory is missing or not writable, ... A stale socket
  // file (nobody listening) is replaced.
  Server(boost::asio::io_context& io, ServerOptions opts, Handler handler);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void stop();  // closes the listener and every client, removes the socket file; idempotent
  const std::string& path() const { return opts_.path; }
  size_t clients() const { return sessions_.size(); }

 private:
  class Session;
  void accept();

  boost::asio::io_context& io_;
  ServerOptions opts_;
  Handler handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::set<std::shared_ptr<Session>> sessions_;
  bool stopped_ = false;
};

// Re-reads and applies the daemon's configuration; answers the `reload` request with
// {"ok":true,"message":...,"added":[...],...} or {"ok":false,"error":"config","message":...}.
using ReloadFn = std::function<nlohmann::json()>;

// The daemon's request handler: `status`, `relay`, `countdown`, `calibrate` on a Gateway and
// `reload` through `reload` (see docs/control-protocol.md). Malformed requests get
// {"ok":false,"error":"bad_request",...}.
Handler gateway_handler(gateway::Gateway& gw, ReloadFn reload = {});

}  // namespace pb::control
