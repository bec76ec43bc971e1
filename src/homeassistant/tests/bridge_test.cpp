// The local MQTT uplink against a fake broker connection and a fake gateway: payloads, pacing,
// commands, roster changes. The integration test (tests/integration/homeassistant_test.cpp) runs
// it with a real mosquitto and daemon.
#include "plugbridge/homeassistant/bridge.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <pbfw/proto.hpp>
#include <thread>

#include "support/loop.hpp"

namespace pb::homeassistant {
namespace {

namespace proto = pbfw::proto;
using json = nlohmann::json;
using gateway::SocketView;

using test::run_ready;
using test::run_until;

struct Published {
  std::string topic, payload;
  bool retain = false;
};

class FakeMqtt final : public MqttPort {
 public:
  explicit FakeMqtt(boost::asio::io_context& io) : io_(io) {}
  bool connected() const override { return up; }
  void publish(const std::string& topic, std::string payload, bool retain,
               std::function<void(bool)> done) override {
    sent.push_back({topic, std::move(payload), retain});
    waiting.push_back(std::move(done));
  }
  // The broker acknowledges what it has (ok) or the link drops (not ok); completions are posted.
  void answer(bool ok = true) {
    for (auto& d : std::exchange(waiting, {}))
      if (d) boost::asio::post(io_, [d = std::move(d), ok] { d(ok); });
  }
  std::vector<Published> on(const std::string& topic) const {
    std::vector<Published> out;
    for (const auto& p : sent)
      if (p.topic == topic) out.push_back(p);
    return out;
  }
  bool up = true;
  std::vector<Published> sent;
  std::vector<std::function<void(bool)>> waiting;

 private:
  boost::asio::io_context& io_;
};

class FakeSockets final : public SocketSource {
 public:
  std::vector<std::string> roster() const override { return order; }
  std::optional<SocketView> socket_view(const std::string& cid) const override {
    auto it = views.find(cid);
    if (it == views.end()) return std::nullopt;
    return it->second;
  }
  void command(const std::string& cid, const std::string& kind, int64_t value,
               std::function<void(gateway::LocalResult)> done) override {
    commands.push_back({cid, kind, value});
    dones.push_back(std::move(done));
  }
  void add(const std::string& cid, const std::string& name) {
    SocketView v;
    v.cid = cid;
    v.name = name;
    v.product_id = "p1";
    order.push_back(cid);
    views[cid] = v;
  }
  struct Command {
    std::string cid, kind;
    int64_t value;
  };
  std::vector<std::string> order;
  std::map<std::string, SocketView> views;
  std::vector<Command> commands;
  std::vector<std::function<void(gateway::LocalResult)>> dones;
};

store::ReadingRow reading(uint32_t power_mw) {
  store::ReadingRow r;
  r.flags =
      proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid | proto::kRelayOn;
  r.voltage_mv = 230'400;
  r.current_ua = 104'000;
  r.power_mw = power_mw;
  return r;
}

SocketView kitchen() {
  SocketView v;
  v.cid = "s1";
  v.name = "Kitchen";
  v.location = "Kitchen";
  v.fw_version = "1.2.0";
  v.online = true;
  v.relay_on = true;
  v.last = reading(23'456);
  v.energy_known = true;
  v.energy_total_mwh = 1'234'567;
  v.last_seen_ms = 1'700'000'000'000;
  return v;
}

const Topics kTopics{"plugbridge", "homeassistant"};

TEST(Discovery, EveryEntityHasWhatHomeAssistantRequires) {
  const auto msgs = socket_discovery(kTopics, "gw1", "0.9.0", kitchen(), "Kitchen");
  ASSERT_EQ(msgs.size(), 5u);
  std::set<std::string> ids;
  for (const auto& m : msgs) {
    SCOPED_TRACE(m.topic);
    const json& p = m.payload;
    EXPECT_EQ(m.topic.rfind("homeassistant/", 0), 0u);
    EXPECT_EQ(m.topic.substr(m.topic.size() - 7), "/config");
    ASSERT_TRUE(p.contains("unique_id"));
    EXPECT_TRUE(ids.insert(p["unique_id"].get<std::string>()).second) << "unique ids differ";
    EXPECT_EQ(p["state_topic"], "plugbridge/Kitchen");
    EXPECT_EQ(p["availability_mode"], "all");
    EXPECT_EQ(p["availability"][0]["topic"], "plugbridge/bridge/state");
    EXPECT_EQ(p["availability"][1]["topic"], "plugbridge/Kitchen/availability");
    EXPECT_EQ(p["device"]["identifiers"], json::array({"plugbridge_s1"}));
    EXPECT_EQ(p["device"]["name"], "Kitchen");
    EXPECT_EQ(p["device"]["manufacturer"], "plugbridge");
    EXPECT_EQ(p["device"]["sw_version"], "1.2.0");
    EXPECT_EQ(p["device"]["suggested_area"], "Kitchen");
    EXPECT_EQ(p["device"]["via_device"], "plugbridge_bridge_gw1");
    EXPECT_EQ(p["origin"]["name"], "plugbridge");
    EXPECT_TRUE(p.contains("value_template"));
  }
  EXPECT_EQ(msgs[0].topic, "homeassistant/switch/s1/switch/config");
  EXPECT_EQ(msgs[0].payload["command_topic"], "plugbridge/Kitchen/set");
  EXPECT_EQ(msgs[0].payload["payload_on"], "ON");
  EXPECT_EQ(msgs[0].payload["payload_off"], "OFF");
  EXPECT_TRUE(msgs[0].payload["name"].is_null()) << "the device's main entity";
  const std::map<std::string, std::tuple<std::string, std::string, std::string>> sensors{
      {"homeassistant/sensor/s1/power/config", {"power", "W", "measurement"}},
      {"homeassistant/sensor/s1/voltage/config", {"voltage", "V", "measurement"}},
      {"homeassistant/sensor/s1/current/config", {"current", "A", "measurement"}},
      {"homeassistant/sensor/s1/energy/config", {"energy", "kWh", "total_increasing"}},
  };
  for (size_t i = 1; i < msgs.size(); ++i) {
    auto it = sensors.find(msgs[i].topic);
    ASSERT_NE(it, sensors.end()) << msgs[i].topic;
    const auto& [cls, unit, state_class] = it->second;
    EXPECT_EQ(msgs[i].payload["device_class"], cls);
    EXPECT_EQ(msgs[i].payload["unit_of_measurement"], unit);
    EXPECT_EQ(msgs[i].payload["state_class"], state_class);
    EXPECT_EQ(msgs[i].payload["value_template"], "{{ value_json." + cls + " }}");
  }
  // Stable: the same socket gives the same ids and topics (a restart does not duplicate entities).
  const auto again = socket_discovery(kTopics, "gw1", "0.9.1", kitchen(), "Kitchen");
  for (size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_EQ(again[i].topic, msgs[i].topic);
    EXPECT_EQ(again[i].payload["unique_id"], msgs[i].payload["unique_id"]);
  }
  std::vector<std::string> topics;
  for (const auto& m : msgs) topics.push_back(m.topic);
  EXPECT_EQ(socket_discovery_topics(kTopics, "s1"), topics);

  const DiscoveryMessage b = bridge_discovery(kTopics, "gw1", "0.9.0");
  EXPECT_EQ(b.topic, "homeassistant/binary_sensor/plugbridge_bridge_gw1/connection_state/config");
  EXPECT_EQ(b.payload["device"]["identifiers"], json::array({"plugbridge_bridge_gw1"}));
  EXPECT_EQ(b.payload["device_class"], "connectivity");
  EXPECT_EQ(b.payload["state_topic"], "plugbridge/bridge/state");
}

TEST(State, MeasurementsInUnitsAndEnergyOnlyOnceAccounted) {
  SocketView v = kitchen();
  v.countdown_ends_ms = 1'700'000'010'500;
  json j = state_payload(v, 1'700'000'000'000);
  EXPECT_EQ(j["state"], "ON");
  EXPECT_DOUBLE_EQ(j["power"].get<double>(), 23.456);
  EXPECT_DOUBLE_EQ(j["voltage"].get<double>(), 230.4);
  EXPECT_DOUBLE_EQ(j["current"].get<double>(), 0.104);
  EXPECT_DOUBLE_EQ(j["energy"].get<double>(), 1.234567);
  EXPECT_EQ(j["countdown"], 11);
  EXPECT_EQ(j["last_seen"], "2023-11-14T22:13:20Z");

  v.energy_known = false;  // never accounted: no energy rather than a 0 that a later total "resets"
  v.energy_total_mwh = 0;
  v.relay_on = false;
  v.countdown_ends_ms.reset();
  v.last->flags = proto::kMeterOk | proto::kNoMains;
  j = state_payload(v, 1'700'000'000'000);
  EXPECT_FALSE(j.contains("energy"));
  EXPECT_EQ(j["state"], "OFF");
  EXPECT_EQ(j["countdown"], 0);
  EXPECT_FALSE(j.contains("power")) << "not measured";
  EXPECT_EQ(j["voltage"], 0.0) << "no mains";

  v.last.reset();
  v.relay_on.reset();
  v.last_seen_ms = 0;
  EXPECT_EQ(state_payload(v, 0), json::object());
}

TEST(Topics, NamesWhenUsableElseCids) {
  std::vector<SocketView> roster(6);
  const char* names[][2] = {{"a", "Kitchen"}, {"b", "Hall/1"}, {"c", "Twin"},
                            {"d", "Twin"},    {"e", "bridge"}, {"f", ""}};
  for (size_t i = 0; i < roster.size(); ++i) roster[i].cid = names[i][0], roster[i].name = names[i][1];
  const auto t = socket_topics(roster);
  EXPECT_EQ(t.at("a"), "Kitchen");
  EXPECT_EQ(t.at("b"), "b");
  EXPECT_EQ(t.at("c"), "c");
  EXPECT_EQ(t.at("d"), "d");
  EXPECT_EQ(t.at("e"), "e");
  EXPECT_EQ(t.at("f"), "f");
}

TEST(Commands, WhatSetAccepts) {
  auto ok = [](const std::string& p, const std::string& kind, int64_t value) {
    const ParsedCommand c = parse_set(p);
    EXPECT_EQ(c.error, "") << p;
    EXPECT_EQ(c.kind, kind) << p;
    EXPECT_EQ(c.value, value) << p;
  };
  ok("ON", "relay", 1);
  ok("off", "relay", 0);
  ok("TOGGLE", "relay", -1);
  ok(R"({"state":"ON"})", "relay", 1);
  ok(R"({"state":"toggle"})", "relay", -1);
  ok(R"({"countdown":90})", "countdown", 90);
  ok(R"("OFF")", "relay", 0);
  for (const char* bad : {"", "MAYBE", R"({"state":1})", R"({"state":"ON","countdown":5})", R"({})",
                          R"({"countdown":-1})", R"({"countdown":1.5})", "[1]", "42"})
    EXPECT_NE(parse_set(bad).error, "") << bad;
  EXPECT_NE(parse_set(std::string(2000, 'x')).error, "");
}

class BridgeTest : public ::testing::Test {
 protected:
  BridgeTest() : mqtt_(io_) {
    cfg_.name = "ha";
    cfg_.state_interval_s = 1;
    sockets_.add("s1", "Kitchen");
    sockets_.add("s2", "Hall");
  }
  void make() {
    bridge_ = std::make_unique<Bridge>(io_, cfg_, "gw1", "0.9.0", sockets_, mqtt_, [] { return int64_t{0}; });
  }
  // Acknowledges until nothing more goes out.
  void settle() {
    for (int i = 0; i < 1000 && !mqtt_.waiting.empty(); ++i) {
      mqtt_.answer();
      run_ready(io_);
    }
  }
  size_t count(const std::string& topic) const { return mqtt_.on(topic).size(); }

  boost::asio::io_context io_;
  config::MqttUplink cfg_;
  FakeSockets sockets_;
  FakeMqtt mqtt_;
  std::unique_ptr<Bridge> bridge_;
};

TEST_F(BridgeTest, AConnectPublishesBridgeDiscoveryAvailabilityStateThenTheList) {
  make();
  EXPECT_EQ(
      bridge_->subscriptions(),
      (std::vector<std::string>{"plugbridge/+/set", "plugbridge/bridge/devices", "homeassistant/status"}));
  EXPECT_TRUE(mqtt_.sent.empty()) << "nothing before the connect";
  bridge_->on_connected();
  settle();
  ASSERT_FALSE(mqtt_.sent.empty());
  EXPECT_EQ(mqtt_.sent[0].topic, "plugbridge/bridge/state");
  EXPECT_EQ(mqtt_.sent[0].payload, "online");
  EXPECT_TRUE(mqtt_.sent[0].retain);
  for (const char* s : {"Kitchen", "Hall"}) {
    EXPECT_EQ(count(std::string("plugbridge/") + s), 1u) << s;
    EXPECT_EQ(count(std::string("plugbridge/") + s + "/availability"), 1u) << s;
  }
  EXPECT_EQ(count("homeassistant/switch/s1/switch/config"), 1u);
  EXPECT_EQ(count("homeassistant/sensor/s2/energy/config"), 1u);
  EXPECT_EQ(mqtt_.sent.back().topic, "plugbridge/bridge/devices") << "the list once what it lists is out";
  EXPECT_EQ(json::parse(mqtt_.sent.back().payload),
            json::parse(R"([{"cid":"s1","topic":"Kitchen"},{"cid":"s2","topic":"Hall"}])"));
  for (const auto& p : mqtt_.sent) EXPECT_TRUE(p.retain) << p.topic;
  EXPECT_EQ(mqtt_.on("plugbridge/Kitchen/availability")[0].payload, "offline");
}

TEST_F(BridgeTest, ThousandsOfSocketsArePacedByTheWindow) {
  for (int i = 3; i <= 500; ++i) sockets_.add("s" + std::to_string(i), "");
  make();
  bridge_->on_connected();
  run_ready(io_);
  EXPECT_LE(mqtt_.waiting.size(), Bridge::kWindow + 8) << "a socket's messages may pass the window by a few";
  EXPECT_GT(bridge_->health().waiting, 400u);
  settle();
  EXPECT_EQ(count("plugbridge/s500"), 1u);
  EXPECT_EQ(bridge_->health().waiting, 0u);
  EXPECT_EQ(bridge_->health().published, mqtt_.sent.size());
}

TEST_F(BridgeTest, MeasurementsAtMostEveryIntervalRelayAndAvailabilityAtOnce) {
  make();
  bridge_->on_connected();
  settle();
  const size_t first = count("plugbridge/Kitchen");
  for (int i = 0; i < 5; ++i) {
    sockets_.views["s1"].last = reading(10'000 + i);
    bridge_->socket_changed("s1", gateway::Observer::kReading);
  }
  settle();
  EXPECT_EQ(count("plugbridge/Kitchen"), first) << "within the interval: held";
  // The held change goes out when the interval ends, with the newest values.
  ASSERT_TRUE(run_until(io_, [&] {
    mqtt_.answer();
    return count("plugbridge/Kitchen") == first + 1;
  }));
  EXPECT_DOUBLE_EQ(json::parse(mqtt_.on("plugbridge/Kitchen").back().payload)["power"].get<double>(), 10.004);

  sockets_.views["s1"].relay_on = false;
  bridge_->socket_changed("s1", gateway::Observer::kRelay | gateway::Observer::kReading);
  EXPECT_EQ(count("plugbridge/Kitchen"), first + 2) << "a relay change at once";
  EXPECT_EQ(json::parse(mqtt_.on("plugbridge/Kitchen").back().payload)["state"], "OFF");
  sockets_.views["s1"].online = false;
  bridge_->socket_changed("s1", gateway::Observer::kOnline);
  EXPECT_EQ(mqtt_.on("plugbridge/Kitchen/availability").back().payload, "offline");
  bridge_->socket_changed("nope", gateway::Observer::kOnline);  // not in the roster: nothing
}

TEST_F(BridgeTest, CommandsGoThroughTheGatewayAndAreAnsweredWithTheState) {
  make();
  bridge_->on_connected();
  settle();
  const size_t before = count("plugbridge/Hall");
  bridge_->on_message("plugbridge/Hall/set", R"({"state":"OFF"})");
  ASSERT_EQ(sockets_.commands.size(), 1u);
  EXPECT_EQ(sockets_.commands[0].cid, "s2");
  EXPECT_EQ(sockets_.commands[0].kind, "relay");
  EXPECT_EQ(sockets_.commands[0].value, 0);
  sockets_.views["s2"].relay_on = false;
  gateway::LocalResult r;
  r.status = gateway::LocalResult::Status::Confirmed;
  r.relay_on = false;
  sockets_.dones[0](r);
  EXPECT_EQ(count("plugbridge/Hall"), before + 1);
  EXPECT_EQ(json::parse(mqtt_.on("plugbridge/Hall").back().payload)["state"], "OFF");

  // A failed one answers with the state as it is (an optimistic switch snaps back).
  bridge_->on_message("plugbridge/Hall/set", "TOGGLE");
  r.status = gateway::LocalResult::Status::Offline;
  sockets_.dones[1](r);
  settle();
  EXPECT_EQ(count("plugbridge/Hall"), before + 2);
  EXPECT_EQ(bridge_->health().commands_refused, 1u);

  bridge_->on_message("plugbridge/Hall/set", "MAYBE");
  bridge_->on_message("plugbridge/Nowhere/set", "ON");
  bridge_->on_message("plugbridge/s2/set", "ON");  // by cid: not its topic
  EXPECT_EQ(sockets_.commands.size(), 2u);
  EXPECT_EQ(bridge_->health().commands, 2u);
  EXPECT_EQ(bridge_->health().commands_refused, 4u);
}

TEST_F(BridgeTest, ASocketThatLeavesTheRosterLosesItsRetainedTopics) {
  make();
  bridge_->on_connected();
  settle();
  mqtt_.sent.clear();
  sockets_.order = {"s2"};
  sockets_.views.erase("s1");
  bridge_->roster_changed();
  settle();
  for (const std::string& t : socket_discovery_topics(kTopics, "s1")) {
    ASSERT_EQ(count(t), 1u) << t;
    EXPECT_EQ(mqtt_.on(t)[0].payload, "");
    EXPECT_TRUE(mqtt_.on(t)[0].retain);
  }
  EXPECT_EQ(mqtt_.on("plugbridge/Kitchen")[0].payload, "");
  EXPECT_EQ(mqtt_.on("plugbridge/Kitchen/availability")[0].payload, "");
  EXPECT_EQ(json::parse(mqtt_.on("plugbridge/bridge/devices").back().payload),
            json::parse(R"([{"cid":"s2","topic":"Hall"}])"));
  EXPECT_EQ(count("plugbridge/Hall"), 0u) << "the others are left alone";

  // Renamed: the old topics emptied, everything under the new one.
  mqtt_.sent.clear();
  sockets_.views["s2"].name = "Porch";
  bridge_->roster_changed();
  settle();
  EXPECT_EQ(mqtt_.on("plugbridge/Hall")[0].payload, "");
  EXPECT_EQ(count("plugbridge/Porch"), 1u);
  EXPECT_EQ(mqtt_.on("homeassistant/switch/s2/switch/config")[0].payload.find("plugbridge/Porch/set") !=
                std::string::npos,
            true);
}

TEST_F(BridgeTest, SocketsRemovedWhileStoppedAreCleanedFromTheKeptList) {
  make();
  bridge_->on_connected();
  settle();
  mqtt_.sent.clear();
  // The retained list of the previous run had s9 (gone) and s2 under another topic.
  bridge_->on_message(
      "plugbridge/bridge/devices",
      R"([{"cid":"s1","topic":"Kitchen"},{"cid":"s2","topic":"Old"},{"cid":"s9","topic":"Attic"}])");
  settle();
  EXPECT_EQ(count("homeassistant/switch/s9/switch/config"), 1u);
  EXPECT_EQ(mqtt_.on("plugbridge/Attic")[0].payload, "");
  EXPECT_EQ(mqtt_.on("plugbridge/Old")[0].payload, "");
  EXPECT_EQ(count("homeassistant/switch/s2/switch/config"), 0u) << "s2's entities stay";
  ASSERT_EQ(count("plugbridge/bridge/devices"), 1u) << "the current list again";
  // Our own list coming back changes nothing.
  mqtt_.sent.clear();
  bridge_->on_message("plugbridge/bridge/devices",
                      R"([{"cid":"s1","topic":"Kitchen"},{"cid":"s2","topic":"Hall"}])");
  settle();
  EXPECT_TRUE(mqtt_.sent.empty());
  bridge_->on_message("plugbridge/bridge/devices", "not json");
  EXPECT_TRUE(mqtt_.sent.empty());
}

TEST_F(BridgeTest, HomeAssistantOnlineGetsDiscoveryAgainAndAReconnectEverything) {
  make();
  bridge_->on_connected();
  settle();
  EXPECT_EQ(count("homeassistant/switch/s1/switch/config"), 1u);
  bridge_->on_message("homeassistant/status", "offline");
  settle();
  EXPECT_EQ(count("homeassistant/switch/s1/switch/config"), 1u);
  bridge_->on_message("homeassistant/status", "online");
  settle();
  EXPECT_EQ(count("homeassistant/switch/s1/switch/config"), 2u);
  EXPECT_EQ(count("plugbridge/Kitchen"), 2u);

  // The link drops with publishes in flight: they do not hold the window of the next link.
  bridge_->socket_changed("s1", gateway::Observer::kRelay);
  mqtt_.up = false;
  bridge_->on_disconnected();
  mqtt_.answer(false);
  run_ready(io_);
  bridge_->socket_changed("s2", gateway::Observer::kRelay);
  EXPECT_TRUE(mqtt_.waiting.empty()) << "nothing is sent while down";
  mqtt_.up = true;
  bridge_->on_connected();
  settle();
  EXPECT_EQ(count("plugbridge/Kitchen"), 4u);
  EXPECT_EQ(count("plugbridge/Hall"), 3u);
  EXPECT_TRUE(bridge_->health().connected);
}

TEST_F(BridgeTest, WithoutDiscoveryOnlyStateAndStopSaysOffline) {
  cfg_.discovery = false;
  make();
  EXPECT_EQ(bridge_->subscriptions().size(), 2u);
  bridge_->on_connected();
  settle();
  for (const auto& p : mqtt_.sent) EXPECT_EQ(p.topic.rfind("plugbridge/", 0), 0u) << p.topic;
  bool stopped = false;
  bridge_->stop([&] { stopped = true; });
  EXPECT_EQ(mqtt_.sent.back().topic, "plugbridge/bridge/state");
  EXPECT_EQ(mqtt_.sent.back().payload, "offline");
  EXPECT_FALSE(stopped) << "waits for the acknowledgement";
  settle();
  EXPECT_TRUE(stopped);
}

}  // namespace
}  // namespace pb::homeassistant
