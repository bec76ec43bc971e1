// What a reload changes, field by field.
#include "plugbridge/gateway/config_diff.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"

namespace pb::gateway {
namespace {

using V = std::vector<std::string>;
using testing::roster_config;

TEST(ConfigDiff, SameFileIsEmptyEvenWhenEntriesMovedLines) {
  config::Config a = roster_config(3), b = a;
  for (auto& s : b.sockets) s.line += 7;
  const ConfigDiff d = diff_config(a, b);
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(summary(d), "0 added, 0 removed, 0 re-keyed, 0 changed");
}

TEST(ConfigDiff, RosterAddedRemovedRekeyedChanged) {
  config::Config a = roster_config(4), b = roster_config(5);
  b.sockets.erase(b.sockets.begin() + 1);     // s2 removed
  b.sockets[0].secret.assign(16, 0xee);       // s1 re-keyed
  b.sockets[1].name = "Kitchen";              // s3 renamed
  b.sockets[2].limits.current_max_ma = 2000;  // s4 limited
  const ConfigDiff d = diff_config(a, b);
  EXPECT_EQ(d.added, (V{"s5"}));
  EXPECT_EQ(d.removed, (V{"s2"}));
  EXPECT_EQ(d.rekeyed, (V{"s1"}));
  EXPECT_EQ(d.changed, (V{"s3", "s4"}));
  EXPECT_TRUE(d.settings.empty());
  EXPECT_TRUE(d.needs_restart.empty());
  EXPECT_EQ(summary(d), "1 added (s5), 1 removed (s2), 1 re-keyed (s1), 2 changed (s3, s4)");
}

TEST(ConfigDiff, LiveSettingsAndWhatNeedsARestart) {
  config::Config a = roster_config(1), b = a;
  b.log_level = "debug";
  b.heartbeat_s = 10;
  b.report.power_mw = 1000;
  b.uplink.command_timeout_s = 9;  // the one uplink setting applied live
  b.history.raw_days = 7;
  b.energy.max_power_w = 2000;
  ConfigDiff d = diff_config(a, b);
  EXPECT_EQ(d.settings, (V{"log_level", "heartbeat_s", "report", "uplink.command_timeout_s", "history",
                           "energy.max_power_w"}));
  EXPECT_TRUE(d.needs_restart.empty());

  b = a;
  b.gateway_id = "other";
  b.uplink.host = "10.0.0.1";
  b.lan.port = 1;
  b.database = "/elsewhere.db";
  b.control_socket = "";
  b.timezone = "Europe/Berlin";
  d = diff_config(a, b);
  EXPECT_TRUE(d.settings.empty());
  EXPECT_EQ(d.needs_restart, (V{"gateway_id", "uplink", "lan", "database", "control_socket", "timezone"}));
  EXPECT_NE(summary(d).find("needs restart: gateway_id, uplink, lan"), std::string::npos) << summary(d);

  // The metrics endpoint: turned on or moved, it needs a restart.
  b = a;
  b.metrics.enabled = true;
  d = diff_config(a, b);
  EXPECT_EQ(d.needs_restart, (V{"metrics"}));
  a = b;
  b.metrics.listen = "127.0.0.1:9200";
  EXPECT_EQ(diff_config(a, b).needs_restart, (V{"metrics"}));
}

}  // namespace
}  // namespace pb::gateway
