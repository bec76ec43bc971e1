// The local MQTT uplink end to end: plugbridged with the Tuya edge and a second, plain mosquitto
// with a password, as Home Assistant users run it; a mosquitto_sub watches what Home Assistant
// would see.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "mqtt_watcher.hpp"
#include "scenario.hpp"

namespace pb::itest {
namespace {

using json = nlohmann::json;

// Two sockets, and the daemon's configuration with `broker` as a local MQTT uplink (its password
// in a file beside the broker's own files).
ScenarioOptions with_local_broker(const test::PlainMosquittoBroker& b) {
  const std::filesystem::path password_file = b.dir() / "plugbridge.password";
  std::ofstream(password_file) << b.password() << "\n";
  ScenarioOptions o;
  o.sockets = 2;
  o.extra_yaml =
      "uplinks:\n"
      "  - type: mqtt\n"
      "    name: homeassistant\n"
      "    port: " +
      std::to_string(b.port()) + "\n    username: " + b.username() +
      "\n    password_file: " + password_file.string() + "\n    state_interval_s: 1\n";
  return o;
}

// How long each broker is away in the outage test: PB_HA_OUTAGE_S (default 3 s; the `long` run: a
// minute).
std::chrono::seconds outage_length() {
  const char* e = std::getenv("PB_HA_OUTAGE_S");
  return std::chrono::seconds(e ? std::max(1, std::atoi(e)) : 3);
}

bool has_keys(const json& j, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (!j.contains(k)) return false;
  return true;
}

TEST(HomeAssistant, DiscoveryStateCommandsAndAvailabilityAgainstARealBroker) {
  test::PlainMosquittoBroker ha("ha-user", "ha-secret-1");
  ScenarioOptions o = with_local_broker(ha);
  Scenario sc(o);
  Watcher w(ha, {"plugbridge/#", "homeassistant/#"});
  sc.start_daemon();
  sc.start_sim(2);
  sc.wait_sessions(2);

  const std::string bridge_state = "plugbridge/bridge/state";
  ASSERT_TRUE(w.wait_on(bridge_state, [](const std::string& p) { return p == "online"; })) << w.describe();
  std::map<std::string, std::string> unique_ids;  // config topic -> unique_id
  for (size_t i = 0; i < 2; ++i) {
    const std::string cid = sc.cid(i), topic = "plugbridge/Socket " + cid;
    SCOPED_TRACE(cid);
    // Every entity, with what Home Assistant requires of it.
    for (const char* obj : {"switch", "power", "voltage", "current", "energy"}) {
      const std::string component = std::string(obj) == "switch" ? "switch" : "sensor";
      const std::string config_topic = "homeassistant/" + component + "/" + cid + "/" + obj + "/config";
      // Sent at the connect, and again with the firmware's version once the socket said Hello.
      ASSERT_TRUE(w.wait_on(config_topic, [](const std::string& p) {
        return json::parse(p, nullptr, false).value("device", json::object()).contains("sw_version");
      })) << config_topic;
      const Msg m = w.on(config_topic).back();
      const json j = json::parse(m.payload);
      EXPECT_TRUE(
          has_keys(j, {"unique_id", "state_topic", "value_template", "availability", "device", "origin"}))
          << m.payload;
      EXPECT_EQ(j["state_topic"], topic);
      EXPECT_TRUE(has_keys(j["device"], {"identifiers", "name", "manufacturer", "model", "via_device"}));
      EXPECT_EQ(j["device"]["name"], "Socket " + cid);
      EXPECT_EQ(j["device"]["suggested_area"], "lab");
      EXPECT_FALSE(j["device"].value("sw_version", "").empty()) << "the firmware's version from its Hello";
      if (component == "switch") {
        EXPECT_EQ(j["command_topic"], topic + "/set");
        EXPECT_TRUE(has_keys(j, {"payload_on", "payload_off"}));
      } else {
        EXPECT_TRUE(has_keys(j, {"device_class", "unit_of_measurement", "state_class"}));
      }
      if (std::string(obj) == "energy") {
        EXPECT_EQ(j["device_class"], "energy");
        EXPECT_EQ(j["state_class"], "total_increasing");
        EXPECT_EQ(j["unit_of_measurement"], "kWh");
      }
      unique_ids[config_topic] = j["unique_id"];
    }
    ASSERT_TRUE(w.wait_on(topic + "/availability", [](const std::string& p) { return p == "online"; }));
    ASSERT_TRUE(w.wait_on(topic, [](const std::string& p) {
      const json s = json::parse(p, nullptr, false);
      return s.is_object() && s.contains("power") && s.contains("voltage") && s.contains("energy") &&
             s.contains("state") && s.contains("last_seen");
    })) << w.describe();
  }
  // The gateway's own device, which the sockets' via_device names.
  ASSERT_TRUE(w.wait(
      [](const Msg& m) { return m.topic.find("/connection_state/config") != std::string::npos; }, 10s));

  // A command round trip through the gateway's command queue: the answer is the resulting state.
  const std::string topic0 = "plugbridge/Socket " + sc.cid(0);
  for (const char* want : {"ON", "OFF", "ON"}) {
    publish(ha, topic0 + "/set", std::string(R"({"state":")") + want + "\"}");
    ASSERT_TRUE(w.wait_on(
        topic0,
        [&](const std::string& p) { return json::parse(p, nullptr, false).value("state", "") == want; }))
        << want << "\n"
        << sc.daemon().describe();
  }
  publish(ha, topic0 + "/set", "TOGGLE");
  ASSERT_TRUE(w.wait_on(topic0, [](const std::string& p) {
    return json::parse(p, nullptr, false).value("state", "") == "OFF";
  }));
  // The energy total, as long as the daemon runs and after a restart, never goes down.
  auto energies = [&] {
    std::vector<double> e;
    for (const Msg& m : w.on(topic0)) {
      const json s = json::parse(m.payload, nullptr, false);
      if (s.is_object() && s.contains("energy")) e.push_back(s["energy"].get<double>());
    }
    return e;
  };

  // Stopped: the bridge says offline (retained), which makes every entity unavailable.
  sc.daemon().signal(SIGTERM);
  ASSERT_EQ(sc.daemon().wait_exit(15s), 0) << sc.daemon().describe();
  ASSERT_TRUE(w.wait_on(
      bridge_state, [](const std::string& p) { return p == "offline"; }, 5s));
  const double before = energies().back();

  // Started again: the same unique ids (no duplicated entities), an energy total that goes on.
  const size_t seen = w.messages().size();
  sc.start_daemon();
  ASSERT_TRUE(w.wait_after(
      seen, [&](const Msg& m) { return m.topic == bridge_state && m.payload == "online"; }, 20s));
  ASSERT_TRUE(w.wait_after(
      seen, [&](const Msg& m) { return m.topic == topic0; }, 20s));
  for (const auto& [config_topic, id] : unique_ids) {
    ASSERT_TRUE(w.wait_on(config_topic, [&](const std::string& p) {
      return json::parse(p, nullptr, false).value("unique_id", "") == id;
    })) << config_topic;
  }
  ASSERT_TRUE(w.wait_on(
      topic0, [](const std::string& p) { return json::parse(p, nullptr, false).contains("energy"); }));
  const std::vector<double> all = energies();
  for (size_t i = 1; i < all.size(); ++i)
    EXPECT_GE(all[i], all[i - 1]) << "energy went down at message " << i;
  EXPECT_GE(all.back(), before);

  // A socket leaving the roster: its device goes from Home Assistant (empty retained configs).
  sc.write_config({sc.roster()[0]}, o.extra_yaml);
  sc.daemon().signal(SIGHUP);
  const std::string gone = "homeassistant/switch/" + sc.cid(1) + "/switch/config";
  ASSERT_TRUE(w.wait_on(gone, [](const std::string& p) { return p.empty(); })) << sc.daemon().describe();
  ASSERT_TRUE(w.wait_on("plugbridge/Socket " + sc.cid(1), [](const std::string& p) { return p.empty(); }));
  // Retained messages left: a new subscriber (Home Assistant restarting) sees no trace of it.
  sc.daemon().signal(SIGTERM);
  ASSERT_EQ(sc.daemon().wait_exit(15s), 0);
  Watcher later(ha, {"homeassistant/#", "plugbridge/#"});
  ASSERT_TRUE(later.wait_on(
      "plugbridge/bridge/devices", [](const std::string&) { return true; }, 10s));
  for (const Msg& m : later.messages()) {
    EXPECT_EQ(m.topic.find(sc.cid(1)), std::string::npos) << m.topic;
  }
}

TEST(HomeAssistant, OneBrokerDownNeverDelaysTheOtherAndCatchesUpWhenBack) {
  test::PlainMosquittoBroker ha("ha-user", "ha-secret-2");
  ScenarioOptions o = with_local_broker(ha);
  o.commit_interval_ms = 200;
  Scenario sc(o);
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(2);
  sc.wait_sessions(2);
  const std::string cid = sc.cid(0), topic = "plugbridge/Socket " + cid;
  {
    Watcher w(ha, {"plugbridge/#"});
    // Off, as the simulated socket starts.
    ASSERT_TRUE(w.wait_on(topic, [](const std::string& p) {
      return json::parse(p, nullptr, false).value("state", "") == "OFF";
    }));
  }

  // The local broker goes away: the Tuya edge keeps getting reports, and a cloud command works.
  ha.stop();
  // Cloud commands all through the outage, one a second (a user at the app), each answered and
  // reported at once; the last one switches the relay on.
  const auto outage = outage_length();
  const auto down_at = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    const bool on = i % 2 == 0;
    const size_t reports_before = sc.reports(cid, 1).size();
    const auto sent = std::chrono::steady_clock::now();
    ASSERT_EQ(sc.command_code(cid, 1, on ? "true" : "false", "ha-down-" + std::to_string(i)), 0)
        << sc.daemon().describe();
    ASSERT_TRUE(test::wait_until([&] { return sc.reports(cid, 1).size() > reports_before; }, 10s))
        << sc.daemon().describe();
    EXPECT_LT(std::chrono::steady_clock::now() - sent, 5s) << "the Tuya edge waited for the local broker";
    if (on && std::chrono::steady_clock::now() - down_at >= outage) break;
    std::this_thread::sleep_for(1s);  // the pace of the user, not a synchronisation
  }

  // Back: the relay switched while it was away is what the local broker has now.
  ha.start();
  Watcher w(ha, {"plugbridge/#"});
  ASSERT_TRUE(w.wait_on(
      topic, [](const std::string& p) { return json::parse(p, nullptr, false).value("state", "") == "ON"; },
      40s))
      << w.describe() << sc.daemon().describe();
  ASSERT_TRUE(w.wait_on(topic + "/availability", [](const std::string& p) { return p == "online"; }));

  // The Tuya edge goes away: the local broker keeps getting the state at once.
  sc.broker().stop();
  const size_t seen = w.on(topic).size();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(outage).count();
  ASSERT_TRUE(
      test::wait_until([&] { return w.on(topic).size() >= seen + static_cast<size_t>(secs); }, outage + 10s))
      << "measurements every state_interval_s (1 s) while the Tuya edge is down";
  sc.broker().start();
  sc.wait_uplink_synced();
}

}  // namespace
}  // namespace pb::itest
