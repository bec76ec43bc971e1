// The metrics endpoint in-process: the wired Gateway with a fake LAN and uplink, the Exporter on a
// free loopback port, scraped over HTTP.
#include "plugbridge/metrics/metrics.hpp"

#include <gtest/gtest.h>

#include <regex>

#include "plugbridge/gateway/gateway.hpp"
#include "plugbridge/tuya/tuya.hpp"
#include "support/testsupport.hpp"
#include "tests/fakes.hpp"

namespace pb::metrics {
namespace {

using namespace std::chrono_literals;
using namespace gateway::testing;

constexpr uint32_t kCaps = proto::kCapRelay | proto::kCapMeter | proto::kCapCountdown;

class MetricsTest : public ::testing::Test {
 protected:
  MetricsTest() : cfg_(roster_config(3)), store_(dir_.file("t.db")), uplink_(io_) {
    cfg_.database = dir_.file("t.db");
    auto lan = std::make_unique<FakeLan>(io_);
    lan_ = lan.get();
    gw_ = std::make_unique<gateway::Gateway>(io_, cfg_, store_, &uplink_, std::move(lan));
    gw_->start();
    gw_->on_uplink_connected();
    Options o;
    o.listen = "127.0.0.1:0";
    o.max_socket_series = max_series_;
    exporter_ = std::make_unique<Exporter>(io_, *gw_, o);
  }
  ~MetricsTest() override {
    exporter_.reset();
    bool done = false;
    gw_->shutdown([&] { done = true; });
    run_until(io_, [&] { return done; });
  }

  std::string scrape() {
    const test::HttpAnswer a = test::http_get(exporter_->port(), "/metrics", 5s);
    EXPECT_EQ(a.status, 200) << a.body;
    return a.body;
  }

  std::shared_ptr<FakeLink> connect(const std::string& cid) {
    auto link = std::make_shared<FakeLink>(cid, kCaps);
    EXPECT_TRUE(lan_->connect(link));
    links_.push_back(link);
    return link;
  }

  size_t max_series_ = 2000;
  TempDir dir_;
  boost::asio::io_context io_;
  config::Config cfg_;
  store::Store store_;
  FakeUplink uplink_;
  FakeLan* lan_ = nullptr;
  std::unique_ptr<gateway::Gateway> gw_;
  std::unique_ptr<Exporter> exporter_;
  std::vector<std::shared_ptr<FakeLink>> links_;
};

TEST_F(MetricsTest, EveryMetricHasItsTypeAndUnitInTheName) {
  ASSERT_NE(exporter_->port(), 0);
  const std::string text = scrape();
  const std::vector<std::pair<std::string, std::string>> expected{
      {"plugbridge_sessions_up", "gauge"},
      {"plugbridge_roster_sockets", "gauge"},
      {"plugbridge_readings_received_total", "counter"},
      {"plugbridge_readings_committed_total", "counter"},
      {"plugbridge_commits_total", "counter"},
      {"plugbridge_commits_failed_total", "counter"},
      {"plugbridge_commit_duration_seconds", "histogram"},
      {"plugbridge_command_duration_seconds", "histogram"},
      {"plugbridge_records_waiting", "gauge"},
      {"plugbridge_last_commit_timestamp_seconds", "gauge"},
      {"plugbridge_storage_failing", "gauge"},
      {"plugbridge_database_size_bytes", "gauge"},
      {"plugbridge_disk_written_bytes_total", "counter"},
      {"plugbridge_clock_trusted", "gauge"},
      {"plugbridge_uplink_connected", "gauge"},
      {"plugbridge_uplink_outbox_messages", "gauge"},
      {"plugbridge_uplink_published_total", "counter"},
      {"plugbridge_uplink_failed_total", "counter"},
      {"plugbridge_socket_power_watts", "gauge"},
      {"plugbridge_socket_energy_kwh", "gauge"},
  };
  // Families with labels appear with their first series: commands_total with the first answer
  // (below), lan_handshakes_failed_total with the real LAN server (the integration test).
  for (const auto& [name, type] : expected) {
    EXPECT_NE(text.find("# TYPE " + name + " " + type + "\n"), std::string::npos) << name << "\n" << text;
  }
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_roster_sockets"), 3);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_sessions_up"), 0);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_uplink_connected{uplink=\"tuya\"}"), 1);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_clock_trusted"), 1);
  EXPECT_GT(test::prometheus_sample(text, "plugbridge_database_size_bytes").value_or(0), 0);
}

TEST_F(MetricsTest, CountersMoveWithReadingsCommitsAndCommands) {
  auto s1 = connect("s1");
  connect("s2");
  for (uint32_t seq = 1; seq <= 5; ++seq) lan_->deliver(s1, reading(seq));
  ASSERT_TRUE(run_until(io_, [&] { return gw_->stats().readings_committed >= 5; }));
  gw_->on_uplink_message("commands", cloud_command("s1", "r1", 1, true));
  const auto commands = s1->of(proto::MsgType::Command);
  ASSERT_EQ(commands.size(), 1u);
  lan_->deliver(s1, command_result(commands[0].command.cmd_id, proto::CommandStatus::Ok, true));
  gw_->on_uplink_message("commands", cloud_command("s3", "r2", 1, true));  // offline: 2001
  run_ready(io_);
  exporter_->update();

  const std::string text = scrape();
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_sessions_up"), 2);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_readings_received_total"), 5);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_readings_committed_total"), 5);
  EXPECT_GE(test::prometheus_sample(text, "plugbridge_commits_total").value_or(0), 1);
  EXPECT_GE(test::prometheus_sample(text, "plugbridge_commit_duration_seconds_count").value_or(0), 1);
  EXPECT_NE(text.find("# TYPE plugbridge_commands_total counter\n"), std::string::npos);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_commands_total{code=\"0\"}"), 1);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_commands_total{code=\"2001\"}"), 1);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_command_duration_seconds_count"), 1);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_command_duration_seconds_bucket{le=\"+Inf\"}"), 1);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_socket_power_watts{socket=\"s1\"}"), 23);
  EXPECT_DOUBLE_EQ(test::prometheus_sample(text, "plugbridge_socket_energy_kwh{socket=\"s1\"}").value_or(0),
                   1005 / 1e6);
  // No reading of s2 yet: not measured.
  const auto s2_power = test::prometheus_sample(text, "plugbridge_socket_power_watts{socket=\"s2\"}");
  ASSERT_TRUE(s2_power);
  EXPECT_TRUE(std::isnan(*s2_power));
  EXPECT_GE(test::prometheus_sample(text, "plugbridge_uplink_published_total{uplink=\"tuya\"}").value_or(0),
            1);

  // Counters keep going: more readings move them again, after the periodic refresh on the loop.
  for (uint32_t seq = 6; seq <= 8; ++seq) lan_->deliver(s1, reading(seq));
  ASSERT_TRUE(run_until(io_, [&] {
    return test::prometheus_sample(scrape(), "plugbridge_readings_committed_total").value_or(0) == 8;
  }));
}

TEST_F(MetricsTest, ExtraUplinksAppearInRegistrationOrder) {
  gw_->add_uplink_health([] {
    gateway::UplinkHealth u;
    u.name = "ha";
    u.type = "homeassistant";
    u.outbox_depth = 7;
    u.published = 3;
    return u;
  });
  const gateway::Health h = gw_->health();
  ASSERT_EQ(h.uplinks.size(), 2u);
  EXPECT_EQ(h.uplinks[0].name, "tuya");
  EXPECT_EQ(h.uplinks[1].name, "ha");
  exporter_->update();
  const std::string text = scrape();
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_uplink_outbox_messages{uplink=\"ha\"}"), 7);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_uplink_published_total{uplink=\"ha\"}"), 3);
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_uplink_connected{uplink=\"ha\"}"), 0);
}

TEST_F(MetricsTest, SocketSeriesGoWhenASocketLeavesTheRosterOnReload) {
  EXPECT_TRUE(test::prometheus_sample(scrape(), "plugbridge_socket_energy_kwh{socket=\"s2\"}"));
  config::Config next = cfg_;
  next.sockets.erase(next.sockets.begin() + 1);  // s2
  gw_->reload(next);
  exporter_->update();
  const std::string text = scrape();
  EXPECT_FALSE(test::prometheus_sample(text, "plugbridge_socket_energy_kwh{socket=\"s2\"}")) << text;
  EXPECT_FALSE(test::prometheus_sample(text, "plugbridge_socket_power_watts{socket=\"s2\"}")) << text;
  EXPECT_TRUE(test::prometheus_sample(text, "plugbridge_socket_power_watts{socket=\"s3\"}"));
  EXPECT_EQ(test::prometheus_sample(text, "plugbridge_roster_sockets"), 2);
  EXPECT_EQ(exporter_->socket_series(), 2u);
}

class MetricsCapTest : public MetricsTest {
 protected:
  MetricsCapTest() {
    exporter_.reset();
    Options o;
    o.listen = "127.0.0.1:0";
    o.max_socket_series = 2;
    exporter_ = std::make_unique<Exporter>(io_, *gw_, o);
  }
};

TEST_F(MetricsCapTest, OnlyTheFirstSocketsGetSeries) {
  const std::string text = scrape();
  EXPECT_TRUE(test::prometheus_sample(text, "plugbridge_socket_power_watts{socket=\"s1\"}"));
  EXPECT_TRUE(test::prometheus_sample(text, "plugbridge_socket_power_watts{socket=\"s2\"}"));
  EXPECT_FALSE(test::prometheus_sample(text, "plugbridge_socket_power_watts{socket=\"s3\"}"));
  // One leaves: the next in the roster takes its place.
  config::Config next = cfg_;
  next.sockets.erase(next.sockets.begin());
  gw_->reload(next);
  exporter_->update();
  const std::string after = scrape();
  EXPECT_FALSE(test::prometheus_sample(after, "plugbridge_socket_power_watts{socket=\"s1\"}"));
  EXPECT_TRUE(test::prometheus_sample(after, "plugbridge_socket_power_watts{socket=\"s3\"}"));
}

TEST(MetricsListen, ATakenPortIsAClearError) {
  boost::asio::io_context io;
  TempDir dir;
  config::Config cfg = roster_config(1);
  cfg.database = dir.file("t.db");
  store::Store store(cfg.database);
  gateway::Gateway gw(io, cfg, store, nullptr, std::make_unique<FakeLan>(io));
  Options o;
  o.listen = "127.0.0.1:0";
  Exporter first(io, gw, o);
  o.listen = "127.0.0.1:" + std::to_string(first.port());
  try {
    Exporter second(io, gw, o);
    ADD_FAILURE() << "a second listener on the same port";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("metrics.listen " + o.listen + ": cannot listen", 0), 0u)
        << e.what();
  }
}

}  // namespace
}  // namespace pb::metrics
