// MQTT uplink to the Tuya edge broker: Paho MQTT C++ async client bridged onto a
// boost::asio::io_context. Paho's threads only post onto the io_context; every handler and
// every completion runs on the loop thread. Reconnects itself (exponential backoff with
// jitter) and resubscribes after every connect. All member functions must be called on the
// io_context thread; the io_context must outlive the Client.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pb::uplink {

struct Options {
  std::string host;
  uint16_t port = 21883;
  std::string ca_file;     // CA that signed the broker certificate
  std::string gateway_id;  // MQTT clientId
  std::string username;    // password = tuya::md5_password(gateway_id, username)
  bool verify_hostname = true;
  std::chrono::seconds keepalive{30};
  std::chrono::seconds connect_timeout{10};
  std::chrono::milliseconds retry_min{500}, retry_max{30000};
  // false: the broker keeps the session while we are away; Paho resends QoS 1 publishes the broker
  // had not acknowledged when the link dropped if the broker still has the session, and fails them
  // (done(false)) if it has not. true: they fail at the drop.
  bool clean_session = false;
};

struct Handlers {                      // ALL invoked on the io_context thread, never on Paho's thread
  std::function<void()> on_connected;  // connected AND subscribed
  std::function<void(const std::string& reason)> on_disconnected;  // also for failed connect attempts
  std::function<void(const std::string& suffix, const std::string& payload)>
      on_message;  // suffix e.g. "commands"
};

class Client {
 public:
  Client(boost::asio::io_context& io, Options options, Handlers handlers);
  // Stops callbacks and tears the Paho client down synchronously (no graceful disconnect:
  // use stop() for that). Pending publish completions and a pending stop's done are dropped.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start();                           // connect; keeps retrying with backoff forever
  void stop(std::function<void()> done);  // graceful disconnect (bounded time), then done() on the loop
  bool connected() const;                 // loop-thread view
  // Whether the broker resumed our session at the last connect (CONNACK session-present).
  bool session_present() const;
  // QoS 1 publish to gateway_id/{id}/{suffix}; done(ok) on the loop when the broker acked
  // (PUBACK) or failed (also immediately-but-posted when not connected, and at stop()).
  void publish(const std::string& suffix, std::string payload, std::function<void(bool ok)> done = {});
  // Hands the messages that arrived from the broker and wait for their loop turn to on_message
  // now, in arrival order (loop thread; cheap when none wait). Each message gets a loop turn of its
  // own too: this only lets a caller take them sooner, e.g. before other queued work.
  void deliver_waiting();

  struct State;  // shared with Paho callbacks through weak_ptr; public only for the .cpp

 private:
  std::shared_ptr<State> state_;
};

// Sets TCP_NODELAY on this process's TCP sockets connected to a peer on `port`; returns how many.
// Paho C has no option for it, and with Nagle a PUBLISH written right after a small unacked write
// (e.g. the PUBACK of the command it answers) waits for the broker's delayed ACK: up to 40 ms.
size_t disable_nagle_to_port(uint16_t port);

}  // namespace pb::uplink
