// MQTT uplink: Paho MQTT C++ async client bridged onto a boost::asio::io_context. Tuya-shaped by
// default (TLS, md5 password, the gateway's topics under gateway_id/{id}/); with Options::topics a
// generic MQTT client (e.g. for a local Home Assistant broker). Paho's threads only post onto the
// io_context; every handler and every completion runs on the loop thread. Reconnects itself
// (exponential backoff with jitter) and resubscribes after every connect. All member functions
// must be called on the io_context thread; the io_context must outlive the Client.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pb::uplink {

struct Options {
  std::string host;
  uint16_t port = 21883;
  bool tls = true;         // false: plain TCP (tcp://); ca_file and verify_hostname are then unused
  std::string ca_file;     // CA that signed the broker certificate
  std::string gateway_id;  // MQTT clientId; in Tuya mode also the gateway in the topics
  std::string username;    // empty: none sent
  // Unset: tuya::md5_password(gateway_id, username). Set: sent as is; empty: none sent.
  std::optional<std::string> password;
  // Unset (Tuya mode): the gateway's downlink topics under gateway_id/{id}/; publish() and
  // on_message take topic suffixes. Set (generic mode): exactly these topic filters (`+` and `#`
  // allowed), QoS 1; publish() and on_message take full topics.
  std::optional<std::vector<std::string>> topics;
  // The last will, published by the broker (QoS 1) when the connection dies without a DISCONNECT.
  struct Will {
    std::string topic;
    std::string payload;
    bool retained = true;
  };
  std::optional<Will> will;
  // Asked before every connection attempt for the user name and password to send (instead of
  // username/password above): for platforms whose passwords expire or carry a time.
  struct Credentials {
    std::string username;
    std::string password;
  };
  std::function<Credentials()> credentials;
  // Said after "bad user name or password" / "not authorized" instead of naming
  // config_key.username/.password, e.g. "check sockets[3].aliyun.device_secret of socket kitchen".
  std::string auth_hint;
  // false: connects, reconnect delays and graceful disconnects are logged at debug level (one
  // connection per socket: the owner logs a summary); failures are logged as always.
  bool log_connects = true;
  std::string log_name = "uplink";    // log channel, e.g. "uplink homeassistant"
  std::string config_key = "uplink";  // named in the hints of failure reasons, e.g. "uplinks[1]"
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
  // Tuya mode: the topic suffix, e.g. "commands"; generic mode: the full topic.
  std::function<void(const std::string& topic, const std::string& payload)> on_message;
};

class Client {
 public:
  Client(boost::asio::io_context& io, Options options, Handlers handlers);
  // Stops callbacks and tears the Paho client down synchronously (no graceful disconnect:
  // use stop() for that). Pending publish completions and a pending stop's done are dropped.
  // Paho still sends a DISCONNECT on a live link, so the broker drops the last will.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start();                           // connect; keeps retrying with backoff forever
  void stop(std::function<void()> done);  // graceful disconnect (bounded time), then done() on the loop
  bool connected() const;                 // loop-thread view
  // Whether the broker resumed our session at the last connect (CONNACK session-present).
  bool session_present() const;
  // Whether the last connection attempt was refused for its login (CONNACK 4 bad user name or
  // password, 5 not authorized); false once connected.
  bool login_refused() const;
  // QoS 1 publish to gateway_id/{id}/{topic} (Tuya mode) or to topic (generic mode); done(ok) on
  // the loop when the broker acked (PUBACK) or failed (also immediately-but-posted when not
  // connected, and at stop()). retain: the broker keeps it for later subscribers.
  void publish(const std::string& topic, std::string payload, std::function<void(bool ok)> done = {},
               bool retain = false);
  // Hands the messages that arrived from the broker and wait for their loop turn to on_message
  // now, in arrival order (loop thread; cheap when none wait). Each message gets a loop turn of its
  // own too: this only lets a caller take them sooner, e.g. before other queued work.
  void deliver_waiting();
  // Publishes accepted and not yet handed to Paho: they wait for the window of publishes it may have
  // unacknowledged at once (loop thread).
  size_t waiting() const;
  // Why the last connection attempt failed or the link went down (as given to on_disconnected);
  // empty while connected and before the first attempt ended.
  std::string last_error() const;
  // Publishes that ended acked (PUBACK) and failed (done(false)) so far.
  uint64_t published() const;
  uint64_t failed() const;

  struct State;  // shared with Paho callbacks through weak_ptr; public only for the .cpp

 private:
  std::shared_ptr<State> state_;
};

// Sets TCP_NODELAY on this process's TCP sockets connected to a peer on `port`; returns how many.
// Paho C has no option for it, and with Nagle a PUBLISH written right after a small unacked write
// (e.g. the PUBACK of the command it answers) waits for the broker's delayed ACK: up to 40 ms.
size_t disable_nagle_to_port(uint16_t port);

}  // namespace pb::uplink
