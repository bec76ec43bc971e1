// The payloads of the local MQTT uplink: topic levels, state JSON, Home Assistant discovery, and
// the commands it accepts. Pure functions.
#include <algorithm>
#include <cctype>
#include <pbfw/proto.hpp>

#include "plugbridge/common/utc.hpp"
#include "plugbridge/homeassistant/bridge.hpp"

namespace pb::homeassistant {

namespace proto = pbfw::proto;
using json = nlohmann::json;

namespace {

bool usable_level(const std::string& name) {
  if (name.empty() || name.size() > 64 || name == "bridge" || name.front() == ' ' || name.back() == ' ')
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u != 0x7f && c != '/' && c != '+' && c != '#';
  });
}

// Home Assistant's discovery node and object ids: [a-zA-Z0-9_-].
std::string id_part(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
  return out;
}

std::string bridge_identifier(const std::string& gateway_id) {
  return "plugbridge_bridge_" + id_part(gateway_id);
}

json origin(const std::string& version) {
  return {{"name", "plugbridge"}, {"sw_version", version}};
}

double rounded(double v, double unit) {
  return static_cast<double>(static_cast<int64_t>(v / unit + (v >= 0 ? 0.5 : -0.5))) * unit;
}

}  // namespace

std::map<std::string, std::string> socket_topics(const std::vector<gateway::SocketView>& roster) {
  std::map<std::string, size_t> uses;  // candidate level -> sockets wanting it
  std::map<std::string, std::string> out;
  for (const auto& v : roster) out[v.cid] = usable_level(v.name) ? v.name : v.cid;
  for (const auto& [cid, level] : out) ++uses[level];
  // A name two sockets share, or another socket's cid: both fall back to their cids.
  for (auto& [cid, level] : out)
    if (uses[level] > 1) level = cid;
  return out;
}

json state_payload(const gateway::SocketView& v, int64_t now_ms) {
  json j = json::object();
  if (v.relay_on) j["state"] = *v.relay_on ? "ON" : "OFF";
  if (v.last) {
    const uint8_t f = v.last->flags;
    if (proto::measured(f, proto::kPowerValid)) j["power"] = rounded(v.last->power_mw / 1000.0, 0.001);
    if (proto::measured(f, proto::kVoltageValid)) j["voltage"] = rounded(v.last->voltage_mv / 1000.0, 0.001);
    if (proto::measured(f, proto::kCurrentValid)) j["current"] = rounded(v.last->current_ua / 1e6, 1e-6);
    if (proto::no_mains(f)) j["voltage"] = 0.0;
  }
  // Only an accounted total: a 0 before the first one would look like a meter reset afterwards.
  if (v.energy_known) j["energy"] = rounded(static_cast<double>(v.energy_total_mwh) / 1e6, 1e-6);
  if (v.relay_on) {
    j["countdown"] = v.countdown_ends_ms && *v.countdown_ends_ms > now_ms
                         ? (*v.countdown_ends_ms - now_ms + 999) / 1000
                         : int64_t{0};
  }
  if (v.last_seen_ms > 0) j["last_seen"] = format_utc(v.last_seen_ms, "%Y-%m-%dT%H:%M:%SZ");
  return j;
}

std::vector<DiscoveryMessage> socket_discovery(const Topics& t, const std::string& gateway_id,
                                               const std::string& version, const gateway::SocketView& v,
                                               const std::string& topic) {
  json device = {{"identifiers", json::array({"plugbridge_" + v.cid})},
                 {"name", v.name.empty() ? v.cid : v.name},
                 {"manufacturer", "plugbridge"},
                 {"model", "Smart socket (STM32 + HLW8032 + ESP8266)"},
                 {"serial_number", v.cid},
                 {"via_device", bridge_identifier(gateway_id)}};
  if (!v.fw_version.empty()) device["sw_version"] = v.fw_version;
  if (!v.location.empty()) device["suggested_area"] = v.location;
  const json availability = json::array({{{"topic", t.bridge_state()}}, {{"topic", t.availability(topic)}}});
  const std::string node = id_part(v.cid);
  auto common = [&](const std::string& object) {
    return json{{"unique_id", "plugbridge_" + node + "_" + object},
                {"state_topic", t.state(topic)},
                {"availability", availability},
                {"availability_mode", "all"},
                {"device", device},
                {"origin", origin(version)}};
  };
  std::vector<DiscoveryMessage> out;
  json sw = common("switch");
  sw["name"] = nullptr;  // the device's main feature: named after the device
  sw["value_template"] = "{{ value_json.state }}";
  sw["command_topic"] = t.set(topic);
  sw["payload_on"] = "ON";
  sw["payload_off"] = "OFF";
  sw["state_on"] = "ON";
  sw["state_off"] = "OFF";
  sw["device_class"] = "outlet";
  out.push_back({t.discovery_prefix + "/switch/" + node + "/switch/config", std::move(sw)});
  struct Sensor {
    const char* object;
    const char* name;
    const char* device_class;
    const char* unit;
    const char* state_class;
    int precision;
  };
  static constexpr Sensor kSensors[] = {
      {"power", "Power", "power", "W", "measurement", 1},
      {"voltage", "Voltage", "voltage", "V", "measurement", 1},
      {"current", "Current", "current", "A", "measurement", 3},
      {"energy", "Energy", "energy", "kWh", "total_increasing", 3},
  };
  for (const Sensor& s : kSensors) {
    json j = common(s.object);
    j["name"] = s.name;
    j["value_template"] = std::string("{{ value_json.") + s.object + " }}";
    j["device_class"] = s.device_class;
    j["unit_of_measurement"] = s.unit;
    j["state_class"] = s.state_class;
    j["suggested_display_precision"] = s.precision;
    out.push_back({t.discovery_prefix + "/sensor/" + node + "/" + s.object + "/config", std::move(j)});
  }
  return out;
}

std::vector<std::string> socket_discovery_topics(const Topics& t, const std::string& cid) {
  const std::string node = id_part(cid);
  return {t.discovery_prefix + "/switch/" + node + "/switch/config",
          t.discovery_prefix + "/sensor/" + node + "/power/config",
          t.discovery_prefix + "/sensor/" + node + "/voltage/config",
          t.discovery_prefix + "/sensor/" + node + "/current/config",
          t.discovery_prefix + "/sensor/" + node + "/energy/config"};
}

DiscoveryMessage bridge_discovery(const Topics& t, const std::string& gateway_id,
                                  const std::string& version) {
  const std::string id = bridge_identifier(gateway_id);
  json j = {{"name", "Connection state"},
            {"unique_id", id + "_connection_state"},
            {"state_topic", t.bridge_state()},
            {"payload_on", "online"},
            {"payload_off", "offline"},
            {"device_class", "connectivity"},
            {"entity_category", "diagnostic"},
            {"device",
             {{"identifiers", json::array({id})},
              {"name", "plugbridge " + gateway_id},
              {"manufacturer", "plugbridge"},
              {"model", "plugbridge gateway"},
              {"sw_version", version}}},
            {"origin", origin(version)}};
  return {t.discovery_prefix + "/binary_sensor/" + id + "/connection_state/config", std::move(j)};
}

ParsedCommand parse_set(const std::string& payload) {
  ParsedCommand c;
  auto relay = [&](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return std::toupper(ch); });
    if (s == "ON") {
      c.kind = "relay", c.value = 1;
    } else if (s == "OFF") {
      c.kind = "relay", c.value = 0;
    } else if (s == "TOGGLE") {
      c.kind = "relay", c.value = -1;
    } else {
      c.error = "state must be ON, OFF or TOGGLE";
    }
  };
  if (payload.size() > 1024) {
    c.error = "longer than 1024 bytes";
    return c;
  }
  const json j = json::parse(payload, nullptr, false);
  if (j.is_discarded() || j.is_string()) {
    relay(j.is_string() ? j.get<std::string>() : payload);
    return c;
  }
  if (!j.is_object()) {
    c.error = R"(expected {"state":"ON"|"OFF"|"TOGGLE"}, {"countdown":seconds}, ON, OFF or TOGGLE)";
    return c;
  }
  const auto st = j.find("state");
  const auto cd = j.find("countdown");
  if ((st != j.end()) == (cd != j.end())) {
    c.error = R"(give one of "state" and "countdown")";
    return c;
  }
  if (st != j.end()) {
    if (!st->is_string())
      c.error = "state must be a string: ON, OFF or TOGGLE";
    else
      relay(st->get<std::string>());
    return c;
  }
  if (!cd->is_number_integer() || cd->get<int64_t>() < 0) {
    c.error = "countdown must be a whole number of seconds (0 cancels it)";
    return c;
  }
  c.kind = "countdown";
  c.value = cd->get<int64_t>();
  return c;
}

}  // namespace pb::homeassistant
