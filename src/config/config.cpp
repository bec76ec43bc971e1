// YAML -> Config. Every problem is reported as "file:line: key: message" so an operator can
// go straight to the offending line; defaults live only in config.hpp.
#include "plugbridge/config/config.hpp"

#include <arpa/inet.h>
#include <date/tz.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <pbfw/limits.hpp>
#include <set>
#include <sstream>

#include "plugbridge/common/base64.hpp"
#include "plugbridge/common/log.hpp"

namespace pb::config {

const char* to_string(DeviceUplink::Platform p) {
  switch (p) {
    case DeviceUplink::Platform::Aliyun:
      return "aliyun";
    case DeviceUplink::Platform::Tencent:
      return "tencent";
    case DeviceUplink::Platform::Mqtt:
      return "mqtt";
  }
  return "?";
}

const SocketEntry* Config::find_socket(std::string_view cid) const {
  for (const auto& s : sockets) {
    if (s.cid == cid) return &s;
  }
  return nullptr;
}

namespace {

namespace fs = std::filesystem;

// Keys published in the shipped example configuration and the documentation: anyone can read them,
// so a socket using one has no secret at all.
constexpr std::string_view kPublishedSecrets[] = {
    "000102030405060708090a0b0c0d0e0f",
    "f0e1d2c3b4a5968778695a4b3c2d1e0f",
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A key a person typed rather than a random generator drew: one value repeated, a few values
// repeated, or counting by a fixed step (00 11 22 ..., 01 02 03 ...). A random 16-byte key has about
// 15.5 distinct bytes and is never an arithmetic progression.
bool guessable(const std::vector<uint8_t>& key) {
  std::set<uint8_t> distinct(key.begin(), key.end());
  if (distinct.size() < key.size() / 2) return true;
  bool progression = true;
  for (size_t i = 2; i < key.size() && progression; ++i)
    progression = static_cast<uint8_t>(key[i] - key[i - 1]) == static_cast<uint8_t>(key[1] - key[0]);
  return progression;
}

constexpr const char* kKeyHowTo =
    "generate a real one with `openssl rand -hex 16` (and program it into the socket), or let "
    "`plugbridge provision` mint the socket";

// The decoded size of standard base64 with padding; none, with why, when it is not (common/base64.hpp).
std::optional<size_t> base64_size(std::string_view t, std::string& why) {
  const std::optional<std::string> bytes = base64_decode(t, &why);
  if (!bytes) return std::nullopt;
  return bytes->size();
}

class Parser {
 public:
  Parser(std::string source, std::optional<fs::path> base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

  Config parse(const std::string& text) {
    text_ = text;
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      throw ConfigError(source_ + ":" + std::to_string(e.mark.line + 1) + ": yaml: syntax error: " + e.msg);
    }

    Config cfg;
    cfg.source_file = source_;
    // First, before any key is looked at: a quote left open swallows the keys after it, so the
    // missing-key errors that follow would point at the wrong line.
    check_lines(root, "");
    if (root.IsNull()) fail(1, "gateway_id", "required key missing (the file is empty)");
    if (!root.IsMap()) fail(root, "(top level)", "expected a mapping of keys, got " + kind(root));

    // Moved into the report section; say where instead of only "unknown key".
    for (const auto& kv : root)
      if (kv.first.IsScalar() && kv.first.Scalar() == "report_period_s")
        fail(kv.first, "report_period_s", "moved: write it as report.period_s");
    check_keys(
        root, "",
        {"gateway_id", "uplink", "uplinks", "lan", "database", "control_socket", "heartbeat_s", "report",
         "log_level", "sockets", "timezone", "history", "retention", "clock", "energy", "metrics"});

    const YAML::Node gw = root["gateway_id"];
    if (!gw) fail(root, "gateway_id", "required key missing");
    cfg.gateway_id = get_string(gw, "gateway_id");
    if (cfg.gateway_id.empty() || cfg.gateway_id.size() > 128 ||
        !std::all_of(cfg.gateway_id.begin(), cfg.gateway_id.end(),
                     [](char c) { return c > 0x20 && c < 0x7f; })) {
      fail(gw, "gateway_id", "must be 1..128 printable characters without spaces");
    }
    placeholder(gw, "gateway_id", "the gateway id registered on the Tuya platform");

    if (const YAML::Node n = root["uplink"]) {
      parse_uplink(n, cfg.uplink);
      if (n.IsMap() && cfg.uplink.enabled)
        placeholder(n["username"], "uplink.username", "the Tuya vendor identifier (the MQTT user name)");
    }
    // The Tuya edge: the uplink section, or an uplinks entry of type tuya; with an uplinks list that
    // has none and no uplink section, there is no Tuya uplink.
    std::string tuya_at = "uplink";
    YAML::Node tuya_node = root["uplink"];
    if (const YAML::Node n = root["uplinks"]; n && !n.IsNull()) {
      if (!n.IsSequence()) fail(n, "uplinks", "expected a list of uplinks (- type: ...), got " + kind(n));
      bool tuya_listed = false;
      std::map<std::string, std::string> names;  // name -> where it was given
      if (root["uplink"]) names[cfg.uplink.name] = "uplink";
      for (size_t i = 0; i < n.size(); ++i) {
        const YAML::Node e = n[i];
        const std::string at = "uplinks[" + std::to_string(i) + "]";
        expect_map(e, at);
        const YAML::Node type = e["type"];
        if (!type) fail(e, at + ".type", "required: tuya, mqtt, aliyun or tencent");
        const std::string t = get_string(type, at + ".type");
        std::string name;
        YAML::Node name_node = e["name"] ? e["name"] : type;
        if (t == "tuya") {
          if (root["uplink"])
            fail(e, at, "the Tuya edge is already configured in the uplink section; give it in one place");
          if (tuya_listed) fail(e, at, "only one uplink of type tuya (the Tuya edge) is possible");
          tuya_listed = true;
          parse_uplink(e, cfg.uplink, at, true);
          if (const YAML::Node v = e["name"]) cfg.uplink.name = uplink_name(v, at);
          placeholder(e["username"], at + ".username", "the Tuya vendor identifier (the MQTT user name)");
          name = cfg.uplink.name;
          tuya_at = at;
          tuya_node.reset(e);  // operator= would write e into the document's uplink key
        } else if (t == "mqtt" && e["per_socket"] && get_bool(e["per_socket"], at + ".per_socket")) {
          cfg.device_uplinks.push_back(
              parse_device_uplink(e, at, DeviceUplink::Platform::Mqtt, cfg.gateway_id));
          name = cfg.device_uplinks.back().name;
        } else if (t == "mqtt") {
          cfg.mqtt_uplinks.push_back(parse_mqtt_uplink(e, at, cfg.gateway_id));
          name = cfg.mqtt_uplinks.back().name;
        } else if (t == "aliyun" || t == "tencent") {
          cfg.device_uplinks.push_back(parse_device_uplink(
              e, at, t == "aliyun" ? DeviceUplink::Platform::Aliyun : DeviceUplink::Platform::Tencent));
          name = cfg.device_uplinks.back().name;
        } else {
          fail(type, at + ".type", "unknown uplink type '" + t + "'; valid: tuya, mqtt, aliyun, tencent");
        }
        if (auto [it, fresh] = names.emplace(name, at); !fresh)
          fail(name_node, at + ".name",
               "'" + name + "' is already the name of " + it->second + "; give each uplink its own name");
      }
      if (!tuya_listed && !root["uplink"]) cfg.uplink.enabled = false;
    }
    if (cfg.uplink.enabled) {
      // Point at the uplink section if there is one (its "uplink:" line), else at the document.
      const int where = tuya_node && tuya_node.IsMap() ? line_of(tuya_node) : key_line(root, "uplink");
      if (cfg.uplink.username.empty())
        fail(where, tuya_at + ".username", "required when " + tuya_at + ".enabled is true");
      if (cfg.uplink.ca_file.empty())
        fail(where, tuya_at + ".ca_file", "required when " + tuya_at + ".enabled is true");
    }
    if (const YAML::Node n = root["lan"]) parse_lan(n, cfg.lan);

    if (const YAML::Node n = root["database"]) {
      cfg.database = get_string(n, "database");
      if (cfg.database.empty()) fail(n, "database", "must not be empty");
      if (cfg.database != ":memory:") cfg.database = resolve(cfg.database);
    }
    if (const YAML::Node n = root["control_socket"]) {
      cfg.control_socket = get_string(n, "control_socket");
      if (!cfg.control_socket.empty()) cfg.control_socket = resolve(cfg.control_socket);
      if (cfg.control_socket.size() > 107)  // sockaddr_un.sun_path
        fail(n, "control_socket", "path longer than 107 bytes cannot be a Unix socket");
    }
    if (const YAML::Node n = root["heartbeat_s"]) cfg.heartbeat_s = get_int<int>(n, "heartbeat_s", 1, 60);
    if (const YAML::Node n = root["report"]) parse_report(n, cfg.report);
    if (const YAML::Node n = root["log_level"]) {
      std::string level = get_string(n, "log_level");
      std::transform(level.begin(), level.end(), level.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      pb::log::Level parsed{};
      if (!pb::log::parse_level(level, parsed)) {
        fail(n, "log_level", "unknown level '" + level + "'; valid: debug, info, warning, error");
      }
      static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
      cfg.log_level = kNames[static_cast<int>(parsed)];
    }
    if (const YAML::Node n = root["sockets"]) parse_sockets(n, cfg.sockets);
    check_mqtt_passwords(cfg);
    if (const YAML::Node n = root["timezone"]) {
      cfg.timezone = get_string(n, "timezone");
      try {
        if (!cfg.timezone.empty()) date::locate_zone(cfg.timezone);
      } catch (const std::exception&) {
        fail(n, "timezone",
             "unknown time zone '" + cfg.timezone +
                 "'; use an IANA name such as Europe/Berlin (see /usr/share/zoneinfo), or leave "
                 "it out for the system's zone");
      }
    }
    if (const YAML::Node n = root["history"]; n && !n.IsNull()) {
      expect_map(n, "history");
      check_keys(n, "history.", {"raw_days", "max_db_mb", "raw_resolution_s", "commit_interval_ms"});
      if (const YAML::Node v = n["raw_days"])
        cfg.history.raw_days = get_int<int>(v, "history.raw_days", 1, 36500);
      if (const YAML::Node v = n["max_db_mb"])
        cfg.history.max_db_mb = get_int<int>(v, "history.max_db_mb", 0, 16 * 1024 * 1024);
      if (const YAML::Node v = n["raw_resolution_s"]) {
        cfg.history.raw_resolution_s = get_int<int>(v, "history.raw_resolution_s", 1, 900);
        if (900 % cfg.history.raw_resolution_s != 0)
          fail(v, "history.raw_resolution_s",
               "must divide 900 (a sample lies in one 15-minute bucket): for example 10, 30, 60, 300");
      }
      if (const YAML::Node v = n["commit_interval_ms"])
        cfg.history.commit_interval_ms = get_int<int>(v, "history.commit_interval_ms", 10, 600'000);
    }
    // The older spelling of history.raw_days.
    if (const YAML::Node n = root["retention"]; n && !n.IsNull()) {
      expect_map(n, "retention");
      check_keys(n, "retention.", {"raw_days"});
      if (root["history"])
        fail(n, "retention", "give raw_days in the history section only (retention is its older name)");
      if (const YAML::Node v = n["raw_days"])
        cfg.history.raw_days = get_int<int>(v, "retention.raw_days", 1, 36500);
    }
    if (const YAML::Node n = root["clock"]; n && !n.IsNull()) {
      expect_map(n, "clock");
      check_keys(n, "clock.", {"max_wait_s"});
      if (const YAML::Node v = n["max_wait_s"])
        cfg.clock.max_wait_s = get_int<int>(v, "clock.max_wait_s", 0, 86400);
    }
    if (const YAML::Node n = root["energy"]; n && !n.IsNull()) {
      expect_map(n, "energy");
      check_keys(n, "energy.", {"max_power_w"});
      if (const YAML::Node v = n["max_power_w"]) {
        cfg.energy.max_power_w = get_int<uint32_t>(v, "energy.max_power_w", 100, 100000);
      }
    }
    if (const YAML::Node n = root["metrics"]) parse_metrics(n, cfg.metrics);
    cfg.placeholders = placeholders_;
    return cfg;
  }

 private:
  void placeholder(const YAML::Node& node, const std::string& key, const std::string& what) const {
    if (node && node.IsScalar() && node.Scalar() == kPlaceholder)
      placeholders_.push_back(source_ + ":" + std::to_string(line_of(node)) + ": " + key + ": still " +
                              std::string(kPlaceholder) + ": fill in " + what);
  }
  [[noreturn]] void fail(int line, const std::string& key, const std::string& msg) const {
    throw ConfigError(source_ + ":" + std::to_string(line) + ": " + key + ": " + msg);
  }
  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& msg) const {
    fail(line_of(node), key, msg);
  }
  static int line_of(const YAML::Node& node) { return node.Mark().line + 1; }
  // Line of `key` in `map`, or of the map itself when the key is absent.
  static int key_line(const YAML::Node& map, const std::string& key) {
    for (const auto& kv : map) {
      if (kv.first.IsScalar() && kv.first.Scalar() == key) return line_of(kv.first);
    }
    return line_of(map);
  }

  static std::string kind(const YAML::Node& n) {
    switch (n.Type()) {
      case YAML::NodeType::Null:
        return "nothing (null)";
      case YAML::NodeType::Scalar:
        return "the scalar '" + n.Scalar() + "'";
      case YAML::NodeType::Sequence:
        return "a list";
      case YAML::NodeType::Map:
        return "a mapping";
      case YAML::NodeType::Undefined:
        break;
    }
    return "nothing";
  }

  static std::string join(const std::vector<std::string>& keys, const std::string& prefix) {
    std::string out;
    for (const auto& k : keys) {
      if (!out.empty()) out += ", ";
      out += prefix + k;
    }
    return out;
  }

  // Unknown and repeated keys are errors: a typo must never silently fall back to a default.
  void check_keys(const YAML::Node& map, const std::string& prefix,
                  const std::vector<std::string>& valid) const {
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
      if (!kv.first.IsScalar()) fail(kv.first, prefix + key, "keys must be plain names");
      if (std::find(valid.begin(), valid.end(), key) == valid.end()) {
        fail(kv.first, prefix + key, "unknown key; valid keys: " + join(valid, prefix));
      }
      if (!seen.insert(key).second) fail(kv.first, prefix + key, "key given twice");
    }
  }

  // Every string in this file is one line: an id, a name, a key, a host, a path. A value that runs
  // on over the next lines is almost always a quote that was not closed, silently swallowing the
  // keys (and sockets) after it.
  std::string get_string(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) fail(n, key, "expected a string, got " + kind(n));
    check_single_line(n, key);
    return n.Scalar();
  }

  void check_lines(const YAML::Node& n, const std::string& path) const {
    if (n.IsScalar()) {
      if (!path.empty()) check_single_line(n, path);
    } else if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) check_lines(n[i], path + "[" + std::to_string(i) + "]");
    } else if (n.IsMap()) {
      for (const auto& kv : n)
        if (kv.first.IsScalar()) check_lines(kv.second, (path.empty() ? "" : path + ".") + kv.first.Scalar());
    }
  }

  void check_single_line(const YAML::Node& n, const std::string& key) const {
    const YAML::Mark m = n.Mark();
    if (m.pos < 0 || static_cast<size_t>(m.pos) >= text_.size()) return;
    const size_t start = static_cast<size_t>(m.pos);
    const size_t eol = std::min(text_.find('\n', start), text_.size());
    const std::string_view line(text_.data() + start, eol - start);
    const std::string& value = n.Scalar();
    bool one_line = true;
    const char q = line.empty() ? '\0' : line.front();
    if (q == '"' || q == '\'') {
      one_line = false;
      for (size_t i = 1; i < line.size(); ++i) {
        if (q == '"' && line[i] == '\\') {
          ++i;
        } else if (line[i] == q) {
          if (q == '\'' && i + 1 < line.size() && line[i + 1] == '\'') {
            ++i;  // '' is a quote inside a single-quoted string
            continue;
          }
          one_line = true;
          break;
        }
      }
    } else if (q == '|' || q == '>') {
      one_line = false;  // a block scalar
    } else {
      one_line = value.find('\n') == std::string::npos && line.substr(0, value.size()) == value;
    }
    if (one_line) return;
    size_t end_line = static_cast<size_t>(m.line) + 1;
    for (size_t i = 0; i < value.size(); ++i) end_line += value[i] == '\n';
    fail(n, key,
         std::string("the value runs on over several lines") +
             (q == '"' || q == '\'' ? std::string(": the ") + (q == '"' ? "double" : "single") +
                                          " quote opened here is not closed on this line"
                                    : std::string()) +
             "; it must be a single line (a quote not closed swallows the keys and sockets after it)");
  }

  bool get_bool(const YAML::Node& n, const std::string& key) const {
    bool value = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value)) {
      fail(n, key, "expected true or false, got " + kind(n));
    }
    return value;
  }

  template <typename T>
  T get_int(const YAML::Node& n, const std::string& key, int64_t min, int64_t max) const {
    if (!n.IsScalar()) fail(n, key, "expected an integer, got " + kind(n));
    const std::string& s = n.Scalar();
    int64_t value = 0;
    const char* begin = s.data();
    const char* end = s.data() + s.size();
    if (begin != end && *begin == '+') ++begin;
    const auto [ptr, ec] = std::from_chars(begin, end, value);
    if (ec == std::errc::result_out_of_range) {
      fail(n, key, "'" + s + "' out of range " + std::to_string(min) + ".." + std::to_string(max));
    }
    if (ec != std::errc() || ptr != end || begin == end) fail(n, key, "expected an integer, got '" + s + "'");
    if (value < min || value > max) {
      fail(n, key,
           std::to_string(value) + " out of range " + std::to_string(min) + ".." + std::to_string(max));
    }
    return static_cast<T>(value);
  }

  // A non-negative decimal such as "5", "0.25" with at most `digits` decimals, as an integer in
  // units of 10^-digits (no floating point, so "0.01" is exactly 100 at 4 digits).
  int64_t get_decimal(const YAML::Node& n, const std::string& key, int digits, int64_t max_scaled) const {
    if (!n.IsScalar()) fail(n, key, "expected a number, got " + kind(n));
    std::string s = n.Scalar();
    if (!s.empty() && s[0] == '+') s.erase(0, 1);
    const size_t dot = s.find('.');
    const std::string whole = s.substr(0, dot);
    const std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
    auto digits_only = [](const std::string& t) {
      return std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
    };
    if (whole.empty() || !digits_only(whole) || !digits_only(frac) ||
        (dot != std::string::npos && frac.empty()))
      fail(n, key, "expected a non-negative number such as 5 or 0.25, got '" + n.Scalar() + "'");
    if (frac.size() > static_cast<size_t>(digits))
      fail(n, key, "'" + n.Scalar() + "' has more than " + std::to_string(digits) + " decimals");
    const std::string max_text = decimal_text(max_scaled, digits);
    if (whole.size() > 12) fail(n, key, "'" + n.Scalar() + "' out of range 0.." + max_text);
    int64_t value = std::stoll(whole) * pow10(digits);
    if (!frac.empty()) value += std::stoll(frac) * pow10(digits - static_cast<int>(frac.size()));
    if (value > max_scaled) fail(n, key, "'" + n.Scalar() + "' out of range 0.." + max_text);
    return value;
  }
  static int64_t pow10(int e) {
    int64_t p = 1;
    while (e-- > 0) p *= 10;
    return p;
  }
  static std::string decimal_text(int64_t scaled, int digits) {
    std::string f = std::to_string(scaled % pow10(digits));
    f.insert(0, static_cast<size_t>(digits) - f.size(), '0');
    while (!f.empty() && f.back() == '0') f.pop_back();
    return std::to_string(scaled / pow10(digits)) + (f.empty() ? "" : "." + f);
  }

  void expect_map(const YAML::Node& n, const std::string& key) const {
    if (!n.IsMap()) fail(n, key, "expected a mapping, got " + kind(n));
  }

  std::string resolve(const std::string& path) const {
    if (!base_dir_ || fs::path(path).is_absolute()) return path;
    return (*base_dir_ / path).lexically_normal().string();
  }

  void parse_uplink(const YAML::Node& n, Uplink& up, const std::string& at = "uplink",
                    bool listed = false) const {
    if (n.IsNull()) return;  // an empty section means all defaults
    expect_map(n, at);
    std::vector<std::string> keys{"enabled",
                                  "host",
                                  "port",
                                  "ca_file",
                                  "username",
                                  "verify_hostname",
                                  "keepalive_s",
                                  "connect_timeout_s",
                                  "command_timeout_s",
                                  "clean_session",
                                  "reconnect_max_s",
                                  "outbox_rate_per_s"};
    if (listed) keys.insert(keys.end(), {"type", "name"});
    check_keys(n, at + ".", keys);
    if (const YAML::Node v = n["enabled"]) up.enabled = get_bool(v, at + ".enabled");
    if (const YAML::Node v = n["host"]) {
      up.host = get_string(v, at + ".host");
      if (up.host.empty()) fail(v, at + ".host", "must not be empty");
    }
    if (const YAML::Node v = n["port"]) up.port = get_int<uint16_t>(v, at + ".port", 1, 65535);
    if (const YAML::Node v = n["ca_file"]) {
      up.ca_file = get_string(v, at + ".ca_file");
      if (up.ca_file.empty()) fail(v, at + ".ca_file", "must not be empty");
      up.ca_file = resolve(up.ca_file);
    }
    if (const YAML::Node v = n["username"]) {
      up.username = get_string(v, at + ".username");
      if (up.username.empty()) fail(v, at + ".username", "must not be empty");
    }
    if (const YAML::Node v = n["verify_hostname"]) up.verify_hostname = get_bool(v, at + ".verify_hostname");
    if (const YAML::Node v = n["keepalive_s"]) up.keepalive_s = get_int<int>(v, at + ".keepalive_s", 5, 3600);
    if (const YAML::Node v = n["connect_timeout_s"]) {
      up.connect_timeout_s = get_int<int>(v, at + ".connect_timeout_s", 1, 300);
    }
    if (const YAML::Node v = n["command_timeout_s"]) {
      up.command_timeout_s = get_int<int>(v, at + ".command_timeout_s", 1, 300);
    }
    if (const YAML::Node v = n["clean_session"]) up.clean_session = get_bool(v, at + ".clean_session");
    if (const YAML::Node v = n["reconnect_max_s"])
      up.reconnect_max_s = get_int<int>(v, at + ".reconnect_max_s", 1, 3600);
    if (const YAML::Node v = n["outbox_rate_per_s"])
      up.outbox_rate_per_s = get_int<int>(v, at + ".outbox_rate_per_s", 1, 10000);
  }

  std::string uplink_name(const YAML::Node& v, const std::string& at) const {
    const std::string name = get_string(v, at + ".name");
    if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        }))
      fail(v, at + ".name", "must be 1..64 letters, digits, '-' or '_'");
    return name;
  }

  // A topic level prefix we publish under: no wildcards, no empty level, no leading or trailing '/'.
  std::string topic_prefix(const YAML::Node& v, const std::string& key) const {
    const std::string t = get_string(v, key);
    if (t.empty() || t.size() > 200 || t.find_first_of("+#") != std::string::npos || t.front() == '/' ||
        t.back() == '/' || t.find("//") != std::string::npos ||
        !std::all_of(t.begin(), t.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
      fail(v, key,
           "must be an MQTT topic of printable characters without spaces, '+', '#', empty levels or a "
           "leading or trailing '/'");
    return t;
  }

  MqttUplink parse_mqtt_uplink(const YAML::Node& n, const std::string& at,
                               const std::string& gateway_id) const {
    check_keys(n, at + ".",
               {"type", "name", "host", "port", "tls", "ca_file", "verify_hostname", "username",
                "password_file", "client_id", "base_topic", "discovery", "discovery_prefix",
                "state_interval_s", "keepalive_s", "reconnect_max_s", "per_socket"});
    MqttUplink m;
    m.line = line_of(n);
    if (const YAML::Node v = n["name"]) m.name = uplink_name(v, at);
    if (const YAML::Node v = n["host"]) {
      m.host = get_string(v, at + ".host");
      if (m.host.empty()) fail(v, at + ".host", "must not be empty");
    }
    if (const YAML::Node v = n["tls"]) m.tls = get_bool(v, at + ".tls");
    if (m.tls) m.port = 8883;
    if (const YAML::Node v = n["port"]) m.port = get_int<uint16_t>(v, at + ".port", 1, 65535);
    if (const YAML::Node v = n["ca_file"]) {
      m.ca_file = get_string(v, at + ".ca_file");
      if (m.ca_file.empty()) fail(v, at + ".ca_file", "must not be empty");
      if (!m.tls) fail(v, at + ".ca_file", "only with tls: true");
      m.ca_file = resolve(m.ca_file);
    }
    if (m.tls && m.ca_file.empty())
      fail(n, at + ".ca_file", "required with tls: true (the CA that signed the broker's certificate)");
    if (const YAML::Node v = n["verify_hostname"]) m.verify_hostname = get_bool(v, at + ".verify_hostname");
    if (const YAML::Node v = n["username"]) m.username = get_string(v, at + ".username");
    if (const YAML::Node v = n["password_file"]) {
      m.password_file = get_string(v, at + ".password_file");
      if (m.password_file.empty()) fail(v, at + ".password_file", "must not be empty");
      if (m.username.empty()) fail(v, at + ".password_file", "a password needs a username");
      m.password_file = resolve(m.password_file);
    }
    if (const YAML::Node v = n["client_id"]) {
      m.client_id = get_string(v, at + ".client_id");
      if (m.client_id.empty() || m.client_id.size() > 128 ||
          !std::all_of(m.client_id.begin(), m.client_id.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
        fail(v, at + ".client_id", "must be 1..128 printable characters without spaces");
    }
    if (m.client_id.empty()) m.client_id = "plugbridge-" + gateway_id;
    if (const YAML::Node v = n["base_topic"]) m.base_topic = topic_prefix(v, at + ".base_topic");
    if (const YAML::Node v = n["discovery"]) m.discovery = get_bool(v, at + ".discovery");
    if (const YAML::Node v = n["discovery_prefix"])
      m.discovery_prefix = topic_prefix(v, at + ".discovery_prefix");
    if (const YAML::Node v = n["state_interval_s"])
      m.state_interval_s = get_int<int>(v, at + ".state_interval_s", 0, 3600);
    if (const YAML::Node v = n["keepalive_s"]) m.keepalive_s = get_int<int>(v, at + ".keepalive_s", 5, 3600);
    if (const YAML::Node v = n["reconnect_max_s"])
      m.reconnect_max_s = get_int<int>(v, at + ".reconnect_max_s", 1, 3600);
    return m;
  }

  // A device-direct platform (aliyun, tencent): the connection settings and the property map; the
  // devices themselves are the sockets' aliyun / tencent blocks.
  DeviceUplink parse_device_uplink(const YAML::Node& n, const std::string& at, DeviceUplink::Platform p,
                                   const std::string& gateway_id = {}) const {
    const bool aliyun = p == DeviceUplink::Platform::Aliyun;
    const bool mqtt = p == DeviceUplink::Platform::Mqtt;
    // The other platform's keys: say whose they are rather than only "unknown key".
    const std::vector<std::string> others = mqtt     ? std::vector<std::string>{}
                                            : aliyun ? std::vector<std::string>{"token_lifetime_s", "connid"}
                                                     : std::vector<std::string>{"timestamp"};
    for (const std::string& key : others)
      if (n[key])
        fail(key_line(n, key), at + "." + key,
             std::string("only for type ") + (aliyun ? "tencent" : "aliyun") + ", this uplink is of type " +
                 to_string(p));
    std::vector<std::string> keys{"type",
                                  "name",
                                  "host",
                                  "port",
                                  "tls",
                                  "ca_file",
                                  "verify_hostname",
                                  "properties",
                                  "state_interval_s",
                                  "connect_rate_per_s",
                                  "keepalive_s",
                                  "reconnect_max_s",
                                  "outbox_rate_per_s"};
    if (mqtt)
      keys.insert(keys.end(), {"per_socket", "client_id", "username", "password", "report_topic",
                               "command_topic", "reply_topic"});
    else
      keys.push_back("sign_method");
    if (aliyun)
      keys.push_back("timestamp");
    else if (!mqtt)
      keys.insert(keys.end(), {"token_lifetime_s", "connid"});
    check_keys(n, at + ".", keys);

    DeviceUplink u;
    u.platform = p;
    u.gateway_id = gateway_id;
    if (mqtt) {
      u.host = "127.0.0.1";
      u.tls = false;
      parse_template(n["client_id"], at + ".client_id", u.client_id, true);
      parse_template(n["username"], at + ".username", u.username, false);
      parse_template(n["password"], at + ".password", u.password, false);
      parse_template(n["report_topic"], at + ".report_topic", u.report_topic, true);
      parse_template(n["command_topic"], at + ".command_topic", u.command_topic, true);
      parse_template(n["reply_topic"], at + ".reply_topic", u.reply_topic, true);
      for (const std::string* topic : {&u.report_topic, &u.command_topic, &u.reply_topic})
        if (topic->find_first_of("+#") != std::string::npos)
          fail(n, at, "topics must not contain the wildcards + or #: " + *topic);
    }
    u.line = line_of(n);
    u.name = to_string(p);
    if (const YAML::Node v = n["name"]) u.name = uplink_name(v, at);
    const std::string var = aliyun ? "product_key" : "product_id";
    if (!mqtt)
      u.host = aliyun ? "{product_key}.iot-as-mqtt.cn-shanghai.aliyuncs.com"
                      : "{product_id}.iotcloud.tencentdevices.com";
    if (const YAML::Node v = n["host"]) {
      u.host = get_string(v, at + ".host");
      if (u.host.empty() || u.host.size() > 253 ||
          !std::all_of(u.host.begin(), u.host.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
        fail(v, at + ".host", "must be 1..253 printable characters without spaces");
      // Only the socket's own product may be filled in; any other {...} would reach the DNS as is.
      for (size_t i = 0; i < u.host.size();) {
        const size_t open = u.host.find_first_of("{}", i);
        if (open == std::string::npos) break;
        const size_t close = u.host[open] == '{' ? u.host.find('}', open) : std::string::npos;
        if (mqtt) fail(v, at + ".host", "no placeholders in the host of a per-socket mqtt uplink");
        if (close == std::string::npos || u.host.substr(open + 1, close - open - 1) != var)
          fail(v, at + ".host",
               "the only placeholder for type " + std::string(to_string(p)) + " is {" + var +
                   "} (the socket's); no other '{' or '}' is allowed");
        i = close + 1;
      }
    }
    if (const YAML::Node v = n["tls"]) u.tls = get_bool(v, at + ".tls");
    u.port = aliyun || !u.tls ? 1883 : 8883;
    if (const YAML::Node v = n["port"]) {
      const auto port = get_int<uint16_t>(v, at + ".port", 0, 65535);
      if (port != 0) u.port = port;
    }
    if (const YAML::Node v = n["ca_file"]) {
      u.ca_file = get_string(v, at + ".ca_file");
      if (u.ca_file.empty())
        fail(v, at + ".ca_file", "must not be empty (leave it out for the system's CAs)");
      if (!u.tls) fail(v, at + ".ca_file", "only with tls: true");
      u.ca_file = resolve(u.ca_file);
    }
    if (const YAML::Node v = n["verify_hostname"]) u.verify_hostname = get_bool(v, at + ".verify_hostname");
    if (const YAML::Node v = n["sign_method"]) {
      u.sign_method = get_string(v, at + ".sign_method");
      if (u.sign_method != "hmacsha256" && u.sign_method != "hmacsha1")
        fail(v, at + ".sign_method",
             "unknown sign method '" + u.sign_method + "'; valid: hmacsha256, hmacsha1");
    }
    if (const YAML::Node v = n["timestamp"]) u.timestamp = get_bool(v, at + ".timestamp");
    if (const YAML::Node v = n["token_lifetime_s"])
      u.token_lifetime_s = get_int<int>(v, at + ".token_lifetime_s", 10, 31'536'000);
    if (const YAML::Node v = n["connid"]) {
      u.connid = get_string(v, at + ".connid");
      if (!u.connid.empty() &&
          (u.connid.size() != 5 || !std::all_of(u.connid.begin(), u.connid.end(), [](char c) {
             return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
           })))
        fail(v, at + ".connid",
             "must be 5 upper-case letters or digits (or leave it out for a random one per connection)");
    }
    parse_properties(n["properties"], at + ".properties", u);
    if (const YAML::Node v = n["state_interval_s"])
      u.state_interval_s = get_int<int>(v, at + ".state_interval_s", 0, 86400);
    if (const YAML::Node v = n["connect_rate_per_s"]) {
      const int64_t milli = get_decimal(v, at + ".connect_rate_per_s", 3, 1000 * 1000);
      if (milli == 0) fail(v, at + ".connect_rate_per_s", "must be more than 0 (at most 1000)");
      u.connect_rate_per_s = static_cast<double>(milli) / 1000.0;
    }
    // Within what both platforms take (Aliyun: 30..1200 s).
    if (const YAML::Node v = n["keepalive_s"]) u.keepalive_s = get_int<int>(v, at + ".keepalive_s", 30, 900);
    if (const YAML::Node v = n["reconnect_max_s"])
      u.reconnect_max_s = get_int<int>(v, at + ".reconnect_max_s", 1, 3600);
    if (const YAML::Node v = n["outbox_rate_per_s"])
      u.outbox_rate_per_s = get_int<int>(v, at + ".outbox_rate_per_s", 1, 10000);
    return u;
  }

  // A login or topic template of a per-socket mqtt uplink: placeholders {cid}, {name},
  // {gateway_id}, {username}, {password}; `need_cid`: it must name the socket (unique per socket).
  void parse_template(const YAML::Node& v, const std::string& key, std::string& out, bool need_cid) const {
    if (!v) return;
    out = get_string(v, key);
    static const std::set<std::string> kKnown{"cid", "name", "gateway_id", "username", "password"};
    for (size_t i = 0; i < out.size();) {
      const size_t open = out.find_first_of("{}", i);
      if (open == std::string::npos) break;
      const size_t close = out[open] == '{' ? out.find('}', open) : std::string::npos;
      if (close == std::string::npos || kKnown.count(out.substr(open + 1, close - open - 1)) == 0)
        fail(v, key, "unknown placeholder; valid: {cid}, {name}, {gateway_id}, {username}, {password}");
      i = close + 1;
    }
    if (need_cid && out.find("{cid}") == std::string::npos)
      fail(v, key, "must contain {cid}: every socket needs its own");
    if (need_cid && out.size() > 200) fail(v, key, "at most 200 characters");
  }

  // properties: our DP code -> the platform's identifier; codes not given keep the platform's
  // default, "" leaves the property out.
  void parse_properties(const YAML::Node& n, const std::string& at, DeviceUplink& u) const {
    for (const DevicePropertyDefault& d : kDevicePropertyDefaults)
      u.properties[std::string(d.code)] = std::string(d.of(u.platform));
    if (!n || n.IsNull()) return;
    expect_map(n, at);
    std::vector<std::string> codes;
    for (const DevicePropertyDefault& d : kDevicePropertyDefaults) codes.emplace_back(d.code);
    check_keys(n, at + ".", codes);
    for (const auto& kv : n) {
      const std::string code = kv.first.Scalar();
      const std::string key = at + "." + code;
      if (kv.second.IsNull())  // its mark is on the next line
        fail(kv.first, key, "expected an identifier, or \"\" to leave the property out; got nothing");
      std::string id = get_string(kv.second, key);
      if (!id.empty()) {
        const bool ok =
            id.size() <= 50 && (std::isalpha(static_cast<unsigned char>(id[0])) || id[0] == '_') &&
            std::all_of(id.begin(), id.end(),
                        [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
        if (!ok)
          fail(kv.second, key,
               "'" + id +
                   "' is not an identifier: 1..50 of letters, digits and '_', not starting with a digit "
                   "(or \"\" to leave the property out)");
      }
      u.properties[code] = id;
    }
    // A set naming it could not tell which was meant. The defaults differ, so a clash involves a
    // given key: the defaults kept go first, then the given keys in file order.
    std::map<std::string, std::string> owner;  // identifier -> its code
    for (const auto& [code, id] : u.properties)
      if (!n[code] && !id.empty()) owner.emplace(id, code);
    for (const auto& kv : n) {
      const std::string& code = kv.first.Scalar();
      const std::string& id = u.properties[code];
      if (id.empty()) continue;
      if (auto [it, fresh] = owner.emplace(id, code); !fresh)
        fail(kv.first, at,
             "'" + id + "' is the identifier of both " + it->second + " and " + code +
                 "; every property needs its own");
    }
  }

  void parse_metrics(const YAML::Node& n, Metrics& m) const {
    m.enabled = true;
    if (n.IsNull()) return;
    expect_map(n, "metrics");
    check_keys(n, "metrics.", {"listen"});
    if (const YAML::Node v = n["listen"]) {
      m.listen = get_string(v, "metrics.listen");
      if (auto why = bad_listen(m.listen))
        fail(v, "metrics.listen", *why + "; write address:port, e.g. 127.0.0.1:9101 or [::1]:9101");
    }
  }

  // Why a listen address is not an IP address and port (nullopt when it is): IPv4 a.b.c.d:port or
  // IPv6 [addr]:port, port 0..65535 (the HTTP server takes no host names).
  static std::optional<std::string> bad_listen(const std::string& s) {
    const size_t colon = s.rfind(':');
    if (colon == std::string::npos) return "'" + s + "' has no port";
    std::string host = s.substr(0, colon);
    const std::string port = s.substr(colon + 1);
    if (host.empty()) return "'" + s + "' has no address";
    unsigned char addr[sizeof(in6_addr)];
    if (host.front() == '[') {
      if (host.back() != ']' || ::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), addr) != 1)
        return "'" + s + "': not an IPv6 address inside [ ]";
    } else if (host.find(':') != std::string::npos) {
      return "'" + s + "': put an IPv6 address in brackets, e.g. [::1]:9101";
    } else if (::inet_pton(AF_INET, host.c_str(), addr) != 1) {
      return "'" + s + "': '" + host + "' is not an IP address (host names are not taken)";
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) > 65535)
      return "'" + s + "': port '" + port + "' is not a number 0..65535";
    return std::nullopt;
  }

  void parse_lan(const YAML::Node& n, Lan& lan) const {
    if (n.IsNull()) return;
    expect_map(n, "lan");
    check_keys(n, "lan.",
               {"listen_address", "port", "keepalive_s", "handshake_timeout_s", "max_handshakes",
                "max_handshakes_per_address", "new_connections_per_address_per_s"});
    if (const YAML::Node v = n["listen_address"]) {
      lan.listen_address = get_string(v, "lan.listen_address");
      if (lan.listen_address.empty()) fail(v, "lan.listen_address", "must not be empty");
    }
    if (const YAML::Node v = n["port"]) lan.port = get_int<uint16_t>(v, "lan.port", 0, 65535);
    if (const YAML::Node v = n["keepalive_s"]) lan.keepalive_s = get_int<int>(v, "lan.keepalive_s", 5, 3600);
    if (const YAML::Node v = n["handshake_timeout_s"]) {
      lan.handshake_timeout_s = get_int<int>(v, "lan.handshake_timeout_s", 1, 300);
    }
    if (const YAML::Node v = n["max_handshakes"])
      lan.max_handshakes = get_int<int>(v, "lan.max_handshakes", 1, 100000);
    if (const YAML::Node v = n["max_handshakes_per_address"])
      lan.max_handshakes_per_address = get_int<int>(v, "lan.max_handshakes_per_address", 0, 100000);
    if (const YAML::Node v = n["new_connections_per_address_per_s"])
      lan.new_connections_per_address_per_s =
          get_int<int>(v, "lan.new_connections_per_address_per_s", 0, 100000);
  }

  void parse_report(const YAML::Node& n, Report& r) const {
    if (n.IsNull()) return;
    expect_map(n, "report");
    check_keys(n, "report.",
               {"period_s", "min_interval_s", "power_w", "power_percent", "voltage_v", "current_ma",
                "current_percent", "energy_kwh", "power_factor"});
    if (const YAML::Node v = n["period_s"]) r.period_s = get_int<int>(v, "report.period_s", 1, 86400);
    if (const YAML::Node v = n["min_interval_s"])
      r.min_interval_s = get_int<int>(v, "report.min_interval_s", 0, 3600);
    // Bands in the socket's integer units: W -> mW, V -> mV, mA -> uA, kWh -> 0.1 Wh (the DP's step).
    if (const YAML::Node v = n["power_w"])
      r.power_mw = static_cast<uint32_t>(get_decimal(v, "report.power_w", 3, 100'000'000));
    if (const YAML::Node v = n["power_percent"])
      r.power_percent = get_int<uint32_t>(v, "report.power_percent", 0, 100);
    if (const YAML::Node v = n["voltage_v"])
      r.voltage_mv = static_cast<uint32_t>(get_decimal(v, "report.voltage_v", 3, 300'000));
    if (const YAML::Node v = n["current_ma"])
      r.current_ua = static_cast<uint32_t>(get_decimal(v, "report.current_ma", 3, 100'000'000));
    if (const YAML::Node v = n["current_percent"])
      r.current_percent = get_int<uint32_t>(v, "report.current_percent", 0, 100);
    if (const YAML::Node v = n["energy_kwh"])
      r.energy_mwh = static_cast<uint32_t>(get_decimal(v, "report.energy_kwh", 4, 10'000'000) * 100);
    if (const YAML::Node v = n["power_factor"])
      r.power_factor_e4 = static_cast<uint32_t>(get_decimal(v, "report.power_factor", 4, 10000));
  }

  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  std::vector<uint8_t> parse_secret(const YAML::Node& n, const std::string& key) const {
    const std::string s = get_string(n, key);
    for (size_t i = 0; i < s.size(); ++i) {
      if (hex_digit(s[i]) < 0) {
        fail(n, key, "not hex: bad character at position " + std::to_string(i + 1));
      }
    }
    if (s.size() % 2 != 0) fail(n, key, "hex string has an odd number of digits");
    if (s.size() < 32) {
      fail(n, key,
           "too short: " + std::to_string(s.size()) +
               " hex digits, need at least 32 (128 bits): " + kKeyHowTo);
    }
    // The socket keeps at most kPskMax bytes (device-information page, ESP-AT): a longer key could
    // never be programmed into one.
    if (s.size() > 2 * pbfw::proto::kPskMax) {
      fail(n, key,
           "too long: " + std::to_string(s.size()) + " hex digits, at most " +
               std::to_string(2 * pbfw::proto::kPskMax) + " (" + std::to_string(pbfw::proto::kPskMax) +
               " bytes, the longest key a socket holds)");
    }
    std::vector<uint8_t> out;
    out.reserve(s.size() / 2);
    for (size_t i = 0; i < s.size(); i += 2) {
      out.push_back(static_cast<uint8_t>(hex_digit(s[i]) * 16 + hex_digit(s[i + 1])));
    }
    const std::string low = lower(s);
    if (std::find(std::begin(kPublishedSecrets), std::end(kPublishedSecrets), low) !=
        std::end(kPublishedSecrets)) {
      // Like a placeholder: the shipped example, listed with the rest of what to fill in.
      placeholders_.push_back(source_ + ":" + std::to_string(line_of(n)) + ": " + key +
                              ": the example's published key, known to everyone: " + kKeyHowTo +
                              " (or remove this example socket)");
    } else if (guessable(out)) {
      fail(n, key,
           "a guessable key (a repeated or counting pattern), not a secret: " + std::string(kKeyHowTo));
    }
    return out;
  }

  // One platform device is one connection: two sockets logging in as it would throw each other out.
  void unique_device(std::map<std::pair<std::string, std::string>, std::string>& owner,
                     std::pair<std::string, std::string> device, const YAML::Node& n, const std::string& at,
                     const std::string& what) const {
    const std::string here = at + " (line " + std::to_string(line_of(n)) + ")";
    if (auto [it, fresh] = owner.emplace(std::move(device), here); !fresh)
      fail(n, at, what + " is also " + it->second + "; every socket needs its own device");
  }

  // A required string of a socket's platform block.
  std::string device_key(const YAML::Node& block, const std::string& at, const char* key) const {
    const YAML::Node v = block[key];
    if (!v) fail(block, at + "." + key, "required key missing");
    return get_string(v, at + "." + key);
  }

  static bool device_name_chars(const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' || c == '@' ||
             c == '-';
    });
  }

  // Where a secret breaks its charset, never the secret itself: error messages end up in logs.
  static std::optional<size_t> first_not(const std::string& s, bool (*ok)(char)) {
    for (size_t i = 0; i < s.size(); ++i)
      if (!ok(s[i])) return i;
    return std::nullopt;
  }

  AliyunDevice parse_aliyun_device(const YAML::Node& n, const std::string& at) const {
    expect_map(n, at);
    check_keys(n, at + ".", {"product_key", "device_name", "device_secret"});
    AliyunDevice d;
    d.product_key = device_key(n, at, "product_key");
    d.device_name = device_key(n, at, "device_name");
    d.device_secret = device_key(n, at, "device_secret");
    auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    if (d.product_key.size() != 11 || first_not(d.product_key, alnum))
      fail(n["product_key"], at + ".product_key",
           "'" + d.product_key + "' must be 11 letters or digits (the ProductKey on the Aliyun console)");
    if (d.device_name.size() < 4 || d.device_name.size() > 32 || !device_name_chars(d.device_name))
      fail(n["device_name"], at + ".device_name",
           "'" + d.device_name + "' must be 4..32 characters of letters, digits and _ . : @ -");
    const YAML::Node secret = n["device_secret"];
    if (d.device_secret.size() != 32)
      fail(secret, at + ".device_secret",
           "32 characters expected, got " + std::to_string(d.device_secret.size()) +
               " (the DeviceSecret on the Aliyun console)");
    if (const auto i = first_not(d.device_secret, alnum))
      fail(secret, at + ".device_secret",
           "only letters and digits expected: bad character at position " + std::to_string(*i + 1));
    return d;
  }

  TencentDevice parse_tencent_device(const YAML::Node& n, const std::string& at) const {
    expect_map(n, at);
    check_keys(n, at + ".", {"product_id", "device_name", "psk"});
    TencentDevice d;
    d.product_id = device_key(n, at, "product_id");
    d.device_name = device_key(n, at, "device_name");
    d.psk = device_key(n, at, "psk");
    if (d.product_id.size() != 10 ||
        first_not(d.product_id, [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }))
      fail(n["product_id"], at + ".product_id",
           "'" + d.product_id + "' must be 10 upper-case letters or digits (the product ID on the console)");
    if (d.device_name.empty() || d.device_name.size() > 48 || !device_name_chars(d.device_name))
      fail(n["device_name"], at + ".device_name",
           "'" + d.device_name + "' must be 1..48 characters of letters, digits and _ . : @ -");
    std::string why;
    const std::optional<size_t> bytes = base64_size(d.psk, why);
    if (!bytes) fail(n["psk"], at + ".psk", why + " (give the device key as the console shows it)");
    if (*bytes < 16 || *bytes > 64)
      fail(n["psk"], at + ".psk", "decodes to " + std::to_string(*bytes) + " bytes, 16..64 expected");
    return d;
  }

  void parse_sockets(const YAML::Node& n, std::vector<SocketEntry>& out) const {
    if (n.IsNull()) return;  // "sockets:" with nothing under it = no sockets yet
    if (!n.IsSequence()) fail(n, "sockets", "expected a list, got " + kind(n));
    std::map<std::string, int> cid_lines;
    std::map<std::vector<uint8_t>, std::string> secret_owner;
    std::map<std::pair<std::string, std::string>, std::string> aliyun_owner, tencent_owner;  // -> where
    for (size_t i = 0; i < n.size(); ++i) {
      const YAML::Node e = n[i];
      const std::string p = "sockets[" + std::to_string(i) + "]";
      expect_map(e, p);
      check_keys(e, p + ".",
                 {"cid", "product_id", "secret", "name", "location", "limits", "energy", "aliyun", "tencent",
                  "mqtt"});
      SocketEntry s;
      s.line = line_of(e);

      const YAML::Node cid = e["cid"];
      if (!cid) fail(e, p + ".cid", "required key missing");
      s.cid = get_string(cid, p + ".cid");
      if (!pbfw::proto::valid_cid(s.cid.data(), s.cid.size()))
        fail(cid, p + ".cid", "'" + s.cid + "' must be 1..32 characters of [A-Za-z0-9_-]");
      if (const auto it = cid_lines.find(s.cid); it != cid_lines.end()) {
        fail(cid, p + ".cid",
             "duplicate cid '" + s.cid + "' (first at line " + std::to_string(it->second) + ")");
      }
      cid_lines.emplace(s.cid, line_of(cid));

      const YAML::Node product = e["product_id"];
      if (!product) fail(e, p + ".product_id", "required key missing");
      s.product_id = get_string(product, p + ".product_id");
      if (s.product_id.empty()) fail(product, p + ".product_id", "must not be empty");
      placeholder(product, p + ".product_id",
                  "the socket's Tuya product id (or remove this example socket; `plugbridge provision` adds "
                  "real ones)");

      const YAML::Node secret = e["secret"];
      if (!secret) fail(e, p + ".secret", "required key missing");
      s.secret = parse_secret(secret, p + ".secret");
      if (const auto it = secret_owner.find(s.secret); it != secret_owner.end()) {
        fail(secret, p + ".secret",
             "same secret as socket '" + it->second + "'; every socket needs its own key");
      }
      secret_owner.emplace(s.secret, s.cid);

      if (const YAML::Node v = e["name"]) s.name = get_string(v, p + ".name");
      if (const YAML::Node v = e["location"]) s.location = get_string(v, p + ".location");
      if (const YAML::Node lim = e["limits"]) {
        const std::string lp = p + ".limits";
        expect_map(lim, lp);
        check_keys(lim, lp + ".", {"current_max_ma", "power_max_w"});
        // Upper bounds are the socket's hardware rating (5 A, 1100 W).
        if (const YAML::Node v = lim["current_max_ma"]) {
          s.limits.current_max_ma = get_int<uint32_t>(v, lp + ".current_max_ma", 100, 5000);
        }
        if (const YAML::Node v = lim["power_max_w"]) {
          s.limits.power_max_w = get_int<uint32_t>(v, lp + ".power_max_w", 1, 1100);
        }
      }
      if (const YAML::Node en = e["energy"]; en && !en.IsNull()) {
        const std::string ep = p + ".energy";
        expect_map(en, ep);
        check_keys(en, ep + ".", {"max_power_w"});
        if (const YAML::Node v = en["max_power_w"]) {
          s.energy_max_power_w = get_int<uint32_t>(v, ep + ".max_power_w", 100, 100000);
        }
      }
      if (const YAML::Node v = e["aliyun"]) {
        s.aliyun = parse_aliyun_device(v, p + ".aliyun");
        unique_device(aliyun_owner, {s.aliyun->product_key, s.aliyun->device_name}, v, p + ".aliyun",
                      "Aliyun device " + s.aliyun->product_key + "/" + s.aliyun->device_name);
      }
      if (const YAML::Node v = e["tencent"]) {
        s.tencent = parse_tencent_device(v, p + ".tencent");
        unique_device(tencent_owner, {s.tencent->product_id, s.tencent->device_name}, v, p + ".tencent",
                      "Tencent device " + s.tencent->product_id + "/" + s.tencent->device_name);
      }
      if (const YAML::Node v = e["mqtt"]) {
        const std::string mp = p + ".mqtt";
        expect_map(v, mp);
        check_keys(v, mp + ".", {"username", "password"});
        MqttDevice d;
        if (const YAML::Node u = v["username"]) d.username = get_string(u, mp + ".username");
        if (const YAML::Node pw = v["password"]) d.password = get_string(pw, mp + ".password");
        s.mqtt = d;
      }
      out.push_back(std::move(s));
    }
  }

  // A per-socket mqtt uplink whose password template uses {password}: every socket needs one.
  void check_mqtt_passwords(const Config& cfg) const {
    for (const DeviceUplink& u : cfg.device_uplinks) {
      if (u.platform != DeviceUplink::Platform::Mqtt || u.password.find("{password}") == std::string::npos)
        continue;
      for (size_t i = 0; i < cfg.sockets.size(); ++i)
        if (!cfg.sockets[i].mqtt || cfg.sockets[i].mqtt->password.empty())
          fail(cfg.sockets[i].line, "sockets[" + std::to_string(i) + "].mqtt.password",
               "required: uplink '" + u.name + "' (line " + std::to_string(u.line) +
                   ") logs every socket in with {password}");
    }
  }

  std::string source_;
  std::string_view text_;
  std::optional<fs::path> base_dir_;
  mutable std::vector<std::string> placeholders_;  // filled while parsing, copied into Config::placeholders
};

}  // namespace

Config load_string(const std::string& yaml, const std::string& source_name) {
  return Parser(source_name, std::nullopt).parse(yaml);
}

namespace {
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Checked on the open descriptor before reading: never blocks on a FIFO, never reads /dev/zero or
// a runaway file into memory.
std::string read_config_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    throw ConfigError(path + ": cannot open config file: " + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw ConfigError(path + ": cannot stat config file: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    throw ConfigError(path + ": not a configuration file: it is " + file_kind(st.st_mode) +
                      "; give the path of a YAML file");
  if (st.st_size > static_cast<off_t>(kMaxFileBytes))
    throw ConfigError(path + ": " + std::to_string(st.st_size) +
                      " bytes: too large for a configuration file (at most " +
                      std::to_string(kMaxFileBytes / (1024 * 1024)) + " MiB)");
  std::string text;
  text.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (true) {
    if (got == text.size()) {
      if (text.size() > kMaxFileBytes)
        throw ConfigError(path + ": grew past " + std::to_string(kMaxFileBytes / (1024 * 1024)) +
                          " MiB while being read: too large for a configuration file");
      text.resize(text.size() + 4096);
    }
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ConfigError(path + ": cannot read config file: " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  return text;
}
}  // namespace

Config load_file(const std::string& path) {
  const std::string text = read_config_file(path);
  std::error_code ec;
  fs::path dir = fs::absolute(fs::path(path), ec).parent_path();
  if (ec) dir = fs::path(path).parent_path();
  return Parser(path, dir).parse(text);
}

}  // namespace pb::config
