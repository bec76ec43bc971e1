// The daemon's health against a real plugbridged with plugsim sockets: `plugbridge status` over the
// control socket, and the Prometheus endpoint (metrics.listen on a free loopback port) scraped over
// HTTP while readings and commands flow.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "plugbridge/cli/cli.hpp"
#include "scenario.hpp"

namespace pb::itest {
namespace {

// The metrics port the daemon logged ("Prometheus metrics on http://127.0.0.1:PORT/metrics").
uint16_t metrics_port(Scenario& sc) {
  static const std::regex re(R"(Prometheus metrics on http://127\.0\.0\.1:(\d+)/metrics)");
  EXPECT_TRUE(sc.daemon().wait_for_stderr(re, 10s)) << sc.daemon().describe();
  for (const std::string& line : sc.daemon().stderr_lines()) {
    std::smatch m;
    if (std::regex_search(line, m, re)) return static_cast<uint16_t>(std::stoi(m[1]));
  }
  return 0;
}

TEST(Health, StatusSaysTheDaemonIsNotRunning) {
  Scenario sc({.sockets = 1});
  auto r = cli(sc, {"status"});
  EXPECT_EQ(r.code, cli::exit_code::kNoDaemon);
  EXPECT_NE(r.err.find("plugbridge status: daemon not reachable at "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is plugbridged running?"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Health, StatusAndMetricsFollowTheRunningDaemon) {
  Scenario sc({.sockets = 2, .extra_yaml = "metrics:\n  listen: \"127.0.0.1:0\"\n"});
  sc.start_daemon();
  const uint16_t port = metrics_port(sc);
  ASSERT_NE(port, 0);
  sc.wait_uplink_synced();
  sc.start_sim(2);
  sc.wait_sessions(2);

  // Counters move once readings are committed and a command is confirmed.
  EXPECT_EQ(sc.command_code(sc.cid(0), 1, "true", "health-1"), 0);
  std::string text;
  ASSERT_TRUE(test::wait_until(
      [&] {
        text = test::http_get(port, "/metrics", 5s).body;
        return test::prometheus_sample(text, "plugbridge_sessions_up") == 2 &&
               test::prometheus_sample(text, "plugbridge_readings_committed_total").value_or(0) > 0 &&
               test::prometheus_sample(text, "plugbridge_commands_total{code=\"0\"}").value_or(0) >= 1;
      },
      15s))
      << text << sc.daemon().describe();
  EXPECT_NE(text.find("# TYPE plugbridge_command_duration_seconds histogram\n"), std::string::npos);
  EXPECT_GE(test::prometheus_sample(text, "plugbridge_command_duration_seconds_count").value_or(0), 1);
  EXPECT_NE(text.find("# TYPE plugbridge_lan_handshakes_failed_total counter\n"), std::string::npos);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_lan_handshakes_failed_total{reason=\"wrong_key\"}"), 0);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_uplink_connected{uplink=\"tuya\"}"), 1);
  EXPECT_TRUE(test::prometheus_sample(text, "plugbridge_socket_power_watts{socket=\"" + sc.cid(1) + "\"}"));
  EXPECT_GT(test::prometheus_sample(text, "plugbridge_database_size_bytes").value_or(0), 0);
  EXPECT_EQ(test::http_get(port, "/nothing", 5s).status, 404);

  auto status = cli(sc, {"status"});
  ASSERT_EQ(status.code, 0) << status.err;
  EXPECT_NE(status.out.find("plugbridged is running"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("uplink tuya: connected, outbox "), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(" sessions: 2 up, 2 in the roster\n"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(" last commit: "), std::string::npos) << status.out;
  EXPECT_EQ(status.out.find("none since the daemon started"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(" clock: synchronised"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find(" storage: ok\n"), std::string::npos) << status.out;
  EXPECT_EQ(status.out.find("\033["), std::string::npos) << "colour without a terminal";

  auto raw = cli(sc, {"status", "--json"});
  ASSERT_EQ(raw.code, 0) << raw.err;
  const nlohmann::json j = nlohmann::json::parse(raw.out);
  EXPECT_EQ(j["lan"]["sessions_up"], 2);
  EXPECT_EQ(j["lan"]["roster"], 2);
  ASSERT_EQ(j["uplinks"].size(), 1u);
  EXPECT_EQ(j["uplinks"][0]["name"], "tuya");
  EXPECT_EQ(j["uplinks"][0]["connected"], true);
  EXPECT_GT(j["storage"]["database_bytes"].get<int64_t>(), 0);
  EXPECT_GE(j["commands"]["by_code"]["0"].get<int>(), 1);
  EXPECT_FALSE(j.contains("sockets"));

  // The broker goes: the uplink's state follows in both.
  sc.broker().stop();
  ASSERT_TRUE(test::wait_until(
      [&] {
        return test::prometheus_sample(test::http_get(port, "/metrics", 5s).body,
                                       "plugbridge_uplink_connected{uplink=\"tuya\"}") == 0;
      },
      15s));
  status = cli(sc, {"status"});
  EXPECT_NE(status.out.find("uplink tuya: disconnected, outbox "), std::string::npos) << status.out;
}

}  // namespace
}  // namespace pb::itest
