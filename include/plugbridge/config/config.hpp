// plugbridged configuration: plain structs, filled by one parser (config.cpp).
// Every default lives here, in the member initialisers.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pb::config {

// "file:line: key: message"
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Limits {
  std::optional<uint32_t> current_max_ma;  // over-current trip (socket default 5000 mA)
  std::optional<uint32_t> power_max_w;
  bool operator==(const Limits&) const = default;
};

// A socket registered as a device on Aliyun IoT (console: the device's "DeviceSecret" triple).
struct AliyunDevice {
  std::string product_key;    // 11 characters, e.g. a1wFylTxYeD
  std::string device_name;    // 4..32 of [A-Za-z0-9_.:@-]
  std::string device_secret;  // 32 characters; never logged
  bool operator==(const AliyunDevice&) const = default;
};

// A socket registered as a device on Tencent IoT Explorer (console: device "PSK" / key authentication).
struct TencentDevice {
  std::string product_id;   // 10 upper-case alphanumerics, e.g. CS0SLTKSYA
  std::string device_name;  // 1..48 of [A-Za-z0-9_.:@-]
  std::string psk;  // the device key as the console shows it: base64 (decoded, 16..64 bytes); never logged
  bool operator==(const TencentDevice&) const = default;
};

// The socket's own login on a self-hosted broker (sockets[].mqtt), for per-socket MQTT uplinks:
// what their {username} and {password} placeholders stand for.
struct MqttDevice {
  std::string username;  // "" = the socket's cid
  std::string password;  // never logged
  bool operator==(const MqttDevice&) const = default;
};

struct SocketEntry {
  std::string cid;              // also the TLS-PSK identity
  std::string product_id;       // Tuya product id
  std::vector<uint8_t> secret;  // PSK, kPskMin..kPskMax (16..32) bytes; written as hex in YAML
  std::string name;
  std::string location;  // install_location for devices/sync
  Limits limits;
  // sockets[].energy.max_power_w: this socket's jump limit instead of energy.max_power_w.
  std::optional<uint32_t> energy_max_power_w;
  // The socket's own device on a device-direct platform (sockets[].aliyun, sockets[].tencent):
  // used by the uplinks of that type; a socket without them is not connected there.
  std::optional<AliyunDevice> aliyun;
  std::optional<TencentDevice> tencent;
  std::optional<MqttDevice> mqtt;
  int line = 0;  // line of the entry in the config file

  // The same socket settings (the line it was found on does not count).
  bool same_settings(const SocketEntry& o) const {
    return cid == o.cid && product_id == o.product_id && secret == o.secret && name == o.name &&
           location == o.location && limits == o.limits && energy_max_power_w == o.energy_max_power_w &&
           aliyun == o.aliyun && tencent == o.tencent && mqtt == o.mqtt;
  }
};

// The Tuya edge broker: the `uplink:` section, or an `uplinks:` entry of type tuya.
struct Uplink {
  bool enabled = true;
  std::string name = "tuya";  // in logs, `plugbridge status` and metrics
  std::string host = "127.0.0.1";
  uint16_t port = 21883;
  std::string ca_file;   // CA that signed the broker certificate (required if enabled)
  std::string username;  // Tuya vendor identifier; password = md5(gateway_id + username)
  bool verify_hostname = true;
  int keepalive_s = 30;
  int connect_timeout_s = 10;
  int command_timeout_s = 5;    // socket must confirm a command within this
  bool clean_session = false;   // false: the broker keeps our session (and Paho resends unacked QoS 1)
  int reconnect_max_s = 30;     // cap of the reconnect backoff (it starts at 0.5 s and doubles)
  int outbox_rate_per_s = 200;  // outbox drain: at most this many properties/report per second
  bool operator==(const Uplink&) const = default;
};

// An `uplinks:` entry of type mqtt: a local broker (Home Assistant, Node-RED, ...) that gets every
// socket's state as retained JSON, Home Assistant discovery, and sends relay commands.
struct MqttUplink {
  std::string name = "mqtt";  // unique among the uplinks; in logs, `plugbridge status` and metrics
  std::string host = "127.0.0.1";
  uint16_t port = 1883;  // 8883 when tls is true and no port is given
  bool tls = false;
  std::string ca_file;  // with tls: the CA that signed the broker certificate (required)
  bool verify_hostname = true;
  std::string username;       // "" = none
  std::string password_file;  // the password is this file's first line ("" = none)
  std::string client_id;      // "" at parse time becomes plugbridge-<gateway_id>
  std::string base_topic = "plugbridge";
  bool discovery = true;  // Home Assistant MQTT discovery
  std::string discovery_prefix = "homeassistant";
  // A socket's measurements go out at most this often (0: every reading); relay, availability and
  // command answers go at once.
  int state_interval_s = 10;
  int keepalive_s = 30;
  int reconnect_max_s = 30;
  int line = 0;  // of the entry in the configuration file
  bool operator==(const MqttUplink&) const = default;
};

// An `uplinks:` entry of type aliyun or tencent: a device-direct IoT platform. Every roster socket
// with credentials for it (SocketEntry::aliyun / tencent) gets an MQTT connection of its own, logged
// in as that device; its properties go up through a durable outbox like the Tuya edge's, and
// property set / control messages switch its relay.
struct DeviceUplink {
  // Mqtt: an `uplinks:` entry of type mqtt with `per_socket: true`, a self-hosted broker where
  // every roster socket logs in on its own, with the templates below.
  enum class Platform { Aliyun, Tencent, Mqtt };
  Platform platform = Platform::Aliyun;
  std::string name;  // unique among the uplinks; default: the type ("aliyun", "tencent")
  // Broker host. "{product_key}" (aliyun) / "{product_id}" (tencent) is replaced by the socket's.
  // Default: aliyun "{product_key}.iot-as-mqtt.cn-shanghai.aliyuncs.com", tencent
  // "{product_id}.iotcloud.tencentdevices.com".
  std::string host;
  uint16_t port = 0;    // 0 at parse time becomes aliyun 1883, tencent 8883 with tls / 1883 without
  bool tls = true;      // aliyun: securemode=2 with TLS, 3 without
  std::string ca_file;  // "" = the system's CA store (/etc/ssl/certs)
  bool verify_hostname = true;
  std::string sign_method = "hmacsha256";  // hmacsha256 or hmacsha1
  // aliyun: send a timestamp (ms) in the client id and sign it too.
  bool timestamp = false;
  // tencent: how long a password is valid. The expiry in the user name is the end of the next whole
  // period ((now / L + 2) * L, so between L and 2L ahead); the connection is renewed at the latest
  // L/2 before it.
  int token_lifetime_s = 86400;
  // tencent: the 5-character connection id in the user name; "" = random for every connection.
  std::string connid;
  // Our DP code -> the platform's thing-model identifier; an empty identifier leaves that property
  // out. Keys: switch, power_current, voltage_current, cur_current, forward_energy_total. Defaults
  // (filled at parse time for keys not given): aliyun PowerSwitch, RealTimePower, RMSVoltage,
  // RMSCurrent, TotalConsumption; tencent power_switch, power, voltage, current, energy.
  std::map<std::string, std::string> properties;
  int state_interval_s = 60;      // measurements at most this often per socket; switch at once
  double connect_rate_per_s = 5;  // new connections a second (all sockets of this uplink)
  int keepalive_s = 60;
  int reconnect_max_s = 120;   // cap of each connection's reconnect backoff (starts at 1 s, with jitter)
  int outbox_rate_per_s = 50;  // drain of waiting reports (all sockets of this uplink)
  // mqtt: templates of the login and topics. Placeholders: {cid}, {name} (the socket's name, else
  // its cid), {gateway_id}, {username} (sockets[].mqtt.username, else the cid), {password}
  // (sockets[].mqtt.password). The client id and the topics must contain {cid}.
  std::string client_id = "plugbridge-{cid}";
  std::string username = "{username}";
  std::string password = "{password}";
  std::string report_topic = "plugbridge/{cid}/report";
  std::string command_topic = "plugbridge/{cid}/set";
  std::string reply_topic = "plugbridge/{cid}/set/reply";
  std::string gateway_id;  // the configuration's, for {gateway_id}
  int line = 0;
  bool operator==(const DeviceUplink&) const = default;
};
const char* to_string(DeviceUplink::Platform p);  // "aliyun", "tencent", "mqtt"

// The keys of DeviceUplink::properties and their default identifiers on each platform (the thing
// models' standard names); pb::cloud::kProperties gives their DPs.
struct DevicePropertyDefault {
  std::string_view code;
  std::string_view aliyun;
  std::string_view tencent;
  std::string_view mqtt;
  std::string_view of(DeviceUplink::Platform p) const {
    return p == DeviceUplink::Platform::Aliyun    ? aliyun
           : p == DeviceUplink::Platform::Tencent ? tencent
                                                  : mqtt;
  }
};
inline constexpr std::array<DevicePropertyDefault, 5> kDevicePropertyDefaults{{
    {"switch", "PowerSwitch", "power_switch", "switch"},
    {"power_current", "RealTimePower", "power", "power"},
    {"voltage_current", "RMSVoltage", "voltage", "voltage"},
    {"cur_current", "RMSCurrent", "current", "current"},
    {"forward_energy_total", "TotalConsumption", "energy", "energy"},
}};

struct Lan {
  std::string listen_address = "0.0.0.0";
  uint16_t port = 6690;         // 0 = any free port (tests); the bound port is logged
  int keepalive_s = 15;         // socket keepalive; a session silent for 3x this is dropped
  int handshake_timeout_s = 5;  // TCP accept to Hello
  // Admission (lan::ServerOptions): connections waiting for their Hello, in all and per address
  // (0: no limit), and new connections a second per address (0: no limit).
  int max_handshakes = 1024;
  int max_handshakes_per_address = 8;
  int new_connections_per_address_per_s = 20;
  bool operator==(const Lan&) const = default;
};

// The `history:` section (older spelling: `retention:`, raw_days only).
struct History {
  int raw_days = 35;  // raw samples older than this are pruned; 15-minute buckets are kept forever
  // The database's size budget (pages in use): beyond it the oldest raw samples go first, whatever
  // raw_days says; buckets, energy and events are never thinned. 0 = no budget.
  int max_db_mb = 2048;
  // Readings are stored as samples of this many seconds (mean, minimum and maximum power, voltage
  // range, maximum current, energy); a divisor of 900, so a sample lies in one 15-minute bucket.
  int raw_resolution_s = 60;
  // How long readings gather in memory before one commit (events: at once). Fewer, larger commits
  // write far fewer bytes to the SD card; a power cut loses at most this much of power samples,
  // never energy nor an acked event.
  int commit_interval_ms = 60'000;
  bool operator==(const History&) const = default;
};

// The system clock (docs/schema.md "Time"): how long records are held, unacked, waiting for a
// trustworthy clock before the gateway goes on with an estimated time.
struct Clock {
  int max_wait_s = 120;
  bool operator==(const Clock&) const = default;
};

struct Energy {
  uint32_t max_power_w = 3500;  // counter increments implying more are rejected (socket rated 1 100 W)
  bool operator==(const Energy&) const = default;
};

// Tuya property reports (src/gateway/report_policy.hpp; README "Reports to Tuya"). A measurement
// DP goes out on change when it moved by its absolute band or (power, current) by the percent of
// its last reported value; 0 disables a band.
struct Report {
  int period_s = 300;        // full report of every DP (like Tasmota's TelePeriod)
  int min_interval_s = 10;   // between two on-change reports of one measurement DP
  uint32_t power_mw = 5000;  // DP 3/37, and 38/52 in var/VA
  uint32_t power_percent = 10;
  uint32_t voltage_mv = 2000;   // DP 5
  uint32_t current_ua = 20000;  // DP 7
  uint32_t current_percent = 10;
  uint32_t energy_mwh = 10000;     // DP 44/45/46/50
  uint32_t power_factor_e4 = 500;  // DP 40
  bool operator==(const Report&) const = default;
};

// The `metrics:` section: a Prometheus endpoint (docs/metrics.md). No section: no listener.
struct Metrics {
  bool enabled = false;                   // true when the section is there
  std::string listen = "127.0.0.1:9101";  // host:port ([v6]:port); port 0 = any free port (tests)
  bool operator==(const Metrics&) const = default;
};

struct Config {
  std::string source_file;
  std::string gateway_id;                    // MQTT clientId
  Uplink uplink;                             // the Tuya edge (enabled = false: none)
  std::vector<MqttUplink> mqtt_uplinks;      // uplinks[] of type mqtt, in file order
  std::vector<DeviceUplink> device_uplinks;  // uplinks[] of type aliyun and tencent, in file order
  Lan lan;
  std::string database = "/var/lib/plugbridge/plugbridge.db";
  // Unix socket for local control (the `plugbridge` CLI); "" disables it.
  std::string control_socket = "/run/plugbridge/control.sock";
  int heartbeat_s = 30;            // devices/status period (<= 60)
  std::string log_level = "info";  // debug, info, warning, error
  std::vector<SocketEntry> sockets;
  std::string timezone;  // IANA zone for energy days/months; "" = the system's
  History history;
  Clock clock;
  Energy energy;
  Report report;
  Metrics metrics;
  // Values still at the shipped example's placeholder (kPlaceholder), as "file:line: key: what to fill
  // in". The file parses, but plugbridged refuses to start on it.
  std::vector<std::string> placeholders;

  const SocketEntry* find_socket(std::string_view cid) const;
};

// The value the shipped example configuration carries where the installer must fill something in.
inline constexpr std::string_view kPlaceholder = "CHANGE-ME";

// A configuration file larger than this is refused before it is read (a 1 000-socket roster is ~150 KB).
inline constexpr size_t kMaxFileBytes = 4 * 1024 * 1024;

// Parses and validates; throws ConfigError naming file:line and the key. Anything but a regular
// file of at most kMaxFileBytes is refused before reading.
Config load_file(const std::string& path);
Config load_string(const std::string& yaml, const std::string& source_name = "<string>");

}  // namespace pb::config
