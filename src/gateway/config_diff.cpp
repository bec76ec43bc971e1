#include "plugbridge/gateway/config_diff.hpp"

#include <set>
#include <unordered_map>

namespace pb::gateway {

ConfigDiff diff_config(const config::Config& from, const config::Config& to) {
  ConfigDiff d;
  std::unordered_map<std::string, const config::SocketEntry*> old_entries;
  for (const auto& e : from.sockets) old_entries.emplace(e.cid, &e);
  std::set<std::string> now;
  for (const auto& e : to.sockets) {
    now.insert(e.cid);
    auto it = old_entries.find(e.cid);
    if (it == old_entries.end())
      d.added.push_back(e.cid);
    else if (it->second->secret != e.secret)
      d.rekeyed.push_back(e.cid);
    else if (!it->second->same_settings(e))
      d.changed.push_back(e.cid);
  }
  for (const auto& e : from.sockets)
    if (now.count(e.cid) == 0) d.removed.push_back(e.cid);

  auto live = [&](bool same, const char* name) {
    if (!same) d.settings.emplace_back(name);
  };
  live(from.log_level == to.log_level, "log_level");
  live(from.heartbeat_s == to.heartbeat_s, "heartbeat_s");
  live(from.report == to.report, "report");
  live(from.uplink.command_timeout_s == to.uplink.command_timeout_s, "uplink.command_timeout_s");
  live(from.history == to.history, "history");
  live(from.energy == to.energy, "energy.max_power_w");

  auto restart = [&](bool same, const char* name) {
    if (!same) d.needs_restart.emplace_back(name);
  };
  config::Uplink a = from.uplink, b = to.uplink;
  a.command_timeout_s = b.command_timeout_s;
  restart(from.gateway_id == to.gateway_id, "gateway_id");
  restart(a == b, "uplink");
  auto mqtt = [](std::vector<config::MqttUplink> v) {
    for (auto& m : v) m.line = 0;
    return v;
  };
  auto devices = [](std::vector<config::DeviceUplink> v) {
    for (auto& u : v) u.line = 0;
    return v;
  };
  restart(mqtt(from.mqtt_uplinks) == mqtt(to.mqtt_uplinks) &&
              devices(from.device_uplinks) == devices(to.device_uplinks),
          "uplinks");
  restart(from.lan == to.lan, "lan");
  restart(from.database == to.database, "database");
  restart(from.control_socket == to.control_socket, "control_socket");
  restart(from.timezone == to.timezone, "timezone");
  restart(from.clock == to.clock, "clock");
  restart(from.metrics == to.metrics, "metrics");
  return d;
}

namespace {
std::string counted(const std::vector<std::string>& cids, const char* what) {
  std::string s = std::to_string(cids.size()) + " " + what;
  if (cids.empty()) return s;
  s += " (";
  for (size_t i = 0; i < cids.size() && i < 5; ++i) s += (i ? ", " : "") + cids[i];
  if (cids.size() > 5) s += ", …";
  return s + ")";
}
std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}
}  // namespace

std::string summary(const ConfigDiff& d) {
  std::string s = counted(d.added, "added") + ", " + counted(d.removed, "removed") + ", " +
                  counted(d.rekeyed, "re-keyed") + ", " + counted(d.changed, "changed");
  if (!d.settings.empty()) s += "; settings: " + joined(d.settings);
  if (!d.needs_restart.empty()) s += "; needs restart: " + joined(d.needs_restart);
  return s;
}

}  // namespace pb::gateway
