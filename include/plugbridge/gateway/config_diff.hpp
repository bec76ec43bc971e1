// What a configuration reload changes: pure, compared field by field. The gateway applies the
// roster and the live settings (Gateway::reload); the rest needs a restart.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "plugbridge/config/config.hpp"

namespace pb::gateway {

struct ConfigDiff {
  std::vector<std::string> added;    // cids new in the roster, in roster order
  std::vector<std::string> removed;  // cids no longer in the roster
  std::vector<std::string> rekeyed;  // secret changed: the session is closed, the socket must use the new key
  std::vector<std::string> changed;  // name, location, product id, limits or energy limit changed
  // Settings applied without a restart: log_level, heartbeat_s, report, uplink.command_timeout_s,
  // retention.raw_days, energy.max_power_w.
  std::vector<std::string> settings;
  // Settings that only take effect at the next start: gateway_id, uplink, lan, database,
  // control_socket, timezone.
  std::vector<std::string> needs_restart;

  bool roster_changed() const {
    return !added.empty() || !removed.empty() || !rekeyed.empty() || !changed.empty();
  }
  bool empty() const { return !roster_changed() && settings.empty() && needs_restart.empty(); }
  bool changed_setting(std::string_view name) const {
    return std::find(settings.begin(), settings.end(), name) != settings.end();
  }
};

ConfigDiff diff_config(const config::Config& from, const config::Config& to);

// "2 added (a, b), 1 removed (c), 0 re-keyed, 0 changed; settings: heartbeat_s" — one line.
std::string summary(const ConfigDiff& d);

}  // namespace pb::gateway
