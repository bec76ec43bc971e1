// A local MQTT broker as an uplink beside the Tuya edge, in the conventions Zigbee2MQTT users
// know (docs/home-assistant.md):
//  - <base>/<socket> (retained): the socket's state as JSON: state ON/OFF, power W, voltage V,
//    current A, energy kWh (all-time, never decreasing), countdown s, last_seen;
//  - <base>/<socket>/availability and <base>/bridge/state (retained, the last will): online/offline;
//  - <base>/<socket>/set: {"state":"ON"|"OFF"|"TOGGLE"}, {"countdown":s}, or ON/OFF/TOGGLE, through
//    the gateway's command queue; answered with the resulting state;
//  - Home Assistant MQTT discovery under <prefix>/: one device per socket (via the gateway's
//    device) with a switch and power, voltage, current and energy sensors; sent again when Home
//    Assistant announces itself on <prefix>/status, removed when a socket leaves the roster (also
//    one removed while the daemon was stopped: <base>/bridge/devices keeps the list).
// The state is the latest, not a history: while the broker is away nothing queues, and at every
// connect each socket's current state goes out. Publishes are paced (a window of acknowledgements),
// so thousands of sockets do not build a backlog in memory. Single-threaded, on the daemon's loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "plugbridge/config/config.hpp"
#include "plugbridge/gateway/gateway.hpp"
#include "plugbridge/gateway/observer.hpp"

namespace pb::homeassistant {

// The broker connection (uplink::Client in the daemon, a fake in tests).
class MqttPort {
 public:
  virtual bool connected() const = 0;
  // QoS 1; done(ok) on the loop once the broker acknowledged it (or not).
  virtual void publish(const std::string& topic, std::string payload, bool retain,
                       std::function<void(bool)> done) = 0;
  // Messages that arrived and wait for their loop turn go to the bridge now.
  virtual void deliver_waiting() {}

 protected:
  ~MqttPort() = default;
};

// What the bridge needs of the gateway (Gateway in the daemon, a fake in tests).
class SocketSource {
 public:
  virtual std::vector<std::string> roster() const = 0;
  virtual std::optional<gateway::SocketView> socket_view(const std::string& cid) const = 0;
  // kind "relay" (1 on, 0 off, -1 toggle) or "countdown" (seconds); done on the loop.
  virtual void command(const std::string& cid, const std::string& kind, int64_t value,
                       std::function<void(gateway::LocalResult)> done) = 0;

 protected:
  ~SocketSource() = default;
};

// Discovery and state payloads (pure; discovery.cpp).
struct Topics {
  std::string base;              // e.g. "plugbridge"
  std::string discovery_prefix;  // e.g. "homeassistant"
  std::string bridge_state() const { return base + "/bridge/state"; }
  std::string devices() const { return base + "/bridge/devices"; }
  std::string state(const std::string& t) const { return base + "/" + t; }
  std::string availability(const std::string& t) const { return base + "/" + t + "/availability"; }
  std::string set(const std::string& t) const { return base + "/" + t + "/set"; }
  std::string ha_status() const { return discovery_prefix + "/status"; }
};

// The topic level of each socket: its name when that is usable (printable, no '/', '+' or '#', not
// "bridge", unique in the roster), else its cid.
std::map<std::string, std::string> socket_topics(const std::vector<gateway::SocketView>& roster);

// The state JSON of <base>/<topic>; `now_ms` for the countdown's remaining seconds.
nlohmann::json state_payload(const gateway::SocketView& v, int64_t now_ms);

struct DiscoveryMessage {
  std::string topic;  // <prefix>/<component>/<node>/<object>/config
  nlohmann::json payload;
};
// The socket's entities: switch, power, voltage, current, energy.
std::vector<DiscoveryMessage> socket_discovery(const Topics& t, const std::string& gateway_id,
                                               const std::string& version, const gateway::SocketView& v,
                                               const std::string& topic);
// The config topics of a socket's entities (to remove them).
std::vector<std::string> socket_discovery_topics(const Topics& t, const std::string& cid);
// The gateway's own device: a connectivity sensor on <base>/bridge/state.
DiscoveryMessage bridge_discovery(const Topics& t, const std::string& gateway_id, const std::string& version);

// A <base>/<topic>/set payload as a command: kind and value for SocketSource::command, or why not.
struct ParsedCommand {
  std::string kind;
  int64_t value = 0;
  std::string error;  // set: not a command
};
ParsedCommand parse_set(const std::string& payload);

struct BridgeHealth {
  bool connected = false;
  size_t waiting = 0;  // sockets with something to publish
  uint64_t published = 0, failed = 0, commands = 0, commands_refused = 0;
};

class Bridge final : public gateway::Observer {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kWindow = 64;  // publishes awaiting their acknowledgement at most

  Bridge(boost::asio::io_context& io, const config::MqttUplink& cfg, std::string gateway_id,
         std::string version, SocketSource& sockets, MqttPort& mqtt, std::function<int64_t()> unix_ms);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // What the connection subscribes to, and its last will (retained "offline" on bridge/state).
  std::vector<std::string> subscriptions() const;
  std::string will_topic() const { return topics_.bridge_state(); }

  void on_connected();
  void on_disconnected();
  void on_message(const std::string& topic, const std::string& payload);
  // "offline" on bridge/state, then done (acknowledged, failed or not connected).
  void stop(std::function<void()> done);

  // gateway::Observer
  void socket_changed(const std::string& cid, unsigned changes) override;
  void roster_changed() override;
  void deliver_waiting() override { mqtt_.deliver_waiting(); }

  BridgeHealth health() const;
  const std::string& name() const { return cfg_.name; }

 private:
  enum Need : unsigned { kDiscovery = 1, kAvailability = 2, kState = 4 };
  struct Entry {
    std::string topic;                       // its level under the base topic
    std::string name, location, fw_version;  // as its discovery last went out
    unsigned need = 0;
    bool queued = false;                   // in work_
    std::optional<Clock::time_point> due;  // a measurement-only change waits for this
    Clock::time_point last_state{};        // when its state last went out
  };

  void rebuild_topics(bool initial);
  void mark(const std::string& cid, unsigned need);     // and publish what the window allows
  void enqueue(const std::string& cid, unsigned need);  // without publishing yet
  void mark_all(unsigned need);
  void schedule_state(const std::string& cid, Entry& e);
  void arm_due_timer();
  void on_due();
  void pump();
  void send(const std::string& topic, std::string payload, bool retain,
            std::function<void(bool)> on_done = {});
  void publish_entry(const std::string& cid, Entry& e);
  void clear_socket(const std::string& cid, const std::string& topic, bool discovery);
  void publish_devices();
  void on_devices(const std::string& payload);
  void on_set(const std::string& level, const std::string& payload);
  void warn(const std::string& key, const std::string& text);  // at most once a minute per key

  boost::asio::io_context& io_;
  config::MqttUplink cfg_;
  std::string gateway_id_, version_;
  SocketSource& sockets_;
  MqttPort& mqtt_;
  std::function<int64_t()> unix_ms_;
  Topics topics_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  std::unordered_map<std::string, Entry> entries_;         // roster cids
  std::unordered_map<std::string, std::string> by_topic_;  // topic level -> cid
  std::deque<std::string> work_;                           // cids with a need, in order
  std::deque<std::string> clears_;                         // retained topics to empty
  std::multimap<Clock::time_point, std::string> due_;      // measurement-only changes, by when
  boost::asio::steady_timer due_timer_;
  std::optional<Clock::time_point> due_armed_;
  size_t outstanding_ = 0;  // publishes of this link awaiting their acknowledgement
  uint64_t link_ = 0;       // connects and disconnects so far: completions of older links do not count
  bool connected_ = false;
  bool stopping_ = false;
  bool pumping_ = false;
  bool bridge_pending_ = false;   // bridge online (and its discovery), first at a connect
  std::string devices_;           // <base>/bridge/devices as last built
  bool devices_pending_ = false;  // to publish once the sockets it lists are out
  uint64_t published_ = 0, failed_ = 0, commands_ = 0, commands_refused_ = 0;
  std::map<std::string, Clock::time_point> warned_;
};

}  // namespace pb::homeassistant
