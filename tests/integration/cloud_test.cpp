// The device-direct platforms end to end: plugbridged with the Tuya edge and an Aliyun IoT or
// Tencent IoT Explorer uplink, against a plain mosquitto whose password file holds each device's
// login as the platform computes it. Those passwords are computed here with the openssl command
// line, independently of the daemon's code; a mosquitto_sub plays the platform's side.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "mqtt_watcher.hpp"
#include "scenario.hpp"

namespace pb::itest {
namespace {

using json = nlohmann::json;

// The last word of a shell pipeline's output (openssl dgst prints "HMAC-SHA256(stdin)= <hex>").
std::string shell(const std::string& script) {
  test::Process p({"/bin/sh", "-c", script});
  const std::optional<int> rc = p.wait_exit(20s);
  if (rc != 0) throw std::runtime_error("shell failed: " + script + "\n" + p.describe());
  const std::vector<std::string> lines = p.stdout_lines();
  if (lines.empty()) throw std::runtime_error("no output: " + script);
  const std::string& last = lines.back();
  return last.substr(last.find_last_of(' ') + 1);
}

// Hex HMAC-SHA256 of `data` with a text key, by openssl (no quote characters in either).
std::string hmac_sha256_text_key(const std::string& key, const std::string& data) {
  return shell("printf %s '" + data + "' | openssl dgst -sha256 -hmac '" + key + "'");
}

// Hex HMAC-SHA256 of `data` keyed with the bytes a base64 text decodes to.
std::string hmac_sha256_base64_key(const std::string& key_b64, const std::string& data) {
  const std::string hex =
      shell("printf %s '" + key_b64 + "' | base64 -d | od -An -v -tx1 | tr -d ' \\n'; echo");
  return shell("printf %s '" + data + "' | openssl dgst -sha256 -mac HMAC -macopt hexkey:" + hex);
}

std::string random_alnum(size_t n) {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += kChars[rng() % (sizeof kChars - 1)];
  return s;
}

json parse(const std::string& p) {
  return json::parse(p, nullptr, false);
}

// The newest report of a property on a topic, in `w`'s messages; null if none yet.
json last_value(const Watcher& w, const std::string& topic, const std::string& identifier, bool aliyun) {
  json out;
  for (const Msg& m : w.on(topic)) {
    const json j = parse(m.payload);
    if (!j.is_object() || !j.contains("params") || !j["params"].contains(identifier)) continue;
    out = aliyun ? j["params"][identifier]["value"] : j["params"][identifier];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

struct AliyunDevice {
  std::string name, secret;
};
constexpr const char* kProductKey = "a1PbTestKey";

// The platform's formula: user "<deviceName>&<productKey>", password the HMAC of the sorted
// parameters keyed with the device secret (securemode=3: plain TCP), for the broker's password file.
std::vector<std::pair<std::string, std::string>> aliyun_logins(const std::vector<AliyunDevice>& devs) {
  std::vector<std::pair<std::string, std::string>> users;
  for (const AliyunDevice& d : devs)
    users.emplace_back(d.name + "&" + kProductKey,
                       hmac_sha256_text_key(d.secret, "clientId" + d.name + "deviceName" + d.name +
                                                          "productKey" + kProductKey));
  return users;
}

// An aliyun uplink to `cloud` (plain TCP) with these more keys, and roster socket i as devs[i]
// (with its secret from `secret(i)`).
void aliyun_scenario(ScenarioOptions& o, const test::PlainMosquittoBroker& cloud,
                     const std::string& more_keys, const std::vector<AliyunDevice>& devs,
                     std::function<std::string(size_t)> secret) {
  o.extra_yaml =
      "uplinks:\n  - type: aliyun\n    host: 127.0.0.1\n    port: " + std::to_string(cloud.port()) +
      "\n    tls: false\n" + more_keys;
  o.socket_yaml = [&devs, secret = std::move(secret)](size_t i) {
    return "    aliyun:\n      product_key: " + std::string(kProductKey) +
           "\n      device_name: " + devs[i].name + "\n      device_secret: " + secret(i) + "\n";
  };
}

TEST(Aliyun, ReportsPropertySetAndAWrongSecretAgainstARealBroker) {
  std::vector<AliyunDevice> devs{
      {"plug-001", random_alnum(32)}, {"plug-002", random_alnum(32)}, {"plug-003", random_alnum(32)}};
  test::PlainMosquittoBroker cloud("platform", "platform-secret", aliyun_logins(devs));
  // The third socket's secret in the roster is not the one the platform has.
  const std::string wrong_secret = random_alnum(32);
  ScenarioOptions o;
  o.sockets = 3;
  aliyun_scenario(o, cloud, "    state_interval_s: 1\n    connect_rate_per_s: 20\n", devs,
                  [&](size_t i) { return i == 2 ? wrong_secret : devs[i].secret; });
  Scenario sc(o);
  Watcher w(cloud, {"/sys/#"});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(3);
  sc.wait_sessions(3);

  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(devs[i].name);
    const std::string post =
        "/sys/" + std::string(kProductKey) + "/" + devs[i].name + "/thing/event/property/post";
    // Every property, in the Alink shape, the energy once the first reading is accounted.
    for (const char* id : {"PowerSwitch", "RealTimePower", "RMSVoltage", "RMSCurrent", "TotalConsumption"}) {
      ASSERT_TRUE(w.wait_on(post,
                            [&](const std::string& p) {
                              const json j = parse(p);
                              return j.is_object() && j.contains("params") && j["params"].contains(id);
                            }))
          << id << "\n"
          << sc.daemon().describe();
    }
    const json j = parse(w.on(post).back().payload);
    EXPECT_EQ(j["method"], "thing.event.property.post");
    EXPECT_EQ(j["version"], "1.0");
    EXPECT_TRUE(j["id"].is_string() && !j["id"].get<std::string>().empty()) << j;
    ASSERT_EQ(j["params"].size(), 1u) << j;
    const json& prop = j["params"].begin().value();
    EXPECT_TRUE(prop["value"].is_number()) << j;
    EXPECT_GT(prop["time"].get<int64_t>(), int64_t{1'600'000'000'000}) << "unix ms";
    EXPECT_GT(last_value(w, post, "RMSVoltage", true).get<double>(), 100.0) << "volts, not millivolts";
  }

  // Property set from the platform: the relay switches, the answer comes in Alink's shape, and the
  // new state is reported.
  const std::string base = "/sys/" + std::string(kProductKey) + "/" + devs[0].name;
  const std::string set = base + "/thing/service/property/set";
  int id = 100;
  for (int want : {1, 0, 1}) {
    const std::string rid = std::to_string(++id);
    publish(cloud, set,
            R"({"method":"thing.service.property.set","id":")" + rid + R"(","params":{"PowerSwitch":)" +
                std::to_string(want) + R"(},"version":"1.0.0"})");
    ASSERT_TRUE(w.wait_on(set + "_reply", [&](const std::string& p) {
      const json r = parse(p);
      return r.is_object() && r.value("id", "") == rid;
    })) << sc.daemon().describe();
    const json reply = parse(w.on(set + "_reply").back().payload);
    EXPECT_EQ(reply["code"], 200) << reply;
    ASSERT_TRUE(test::wait_until(
        [&] { return last_value(w, base + "/thing/event/property/post", "PowerSwitch", true) == json(want); },
        10s))
        << want;
  }
  // A read-only property cannot be set: answered with an error code, the relay stays.
  publish(
      cloud, set,
      R"({"method":"thing.service.property.set","id":"200","params":{"RMSVoltage":1},"version":"1.0.0"})");
  ASSERT_TRUE(
      w.wait_on(set + "_reply", [](const std::string& p) { return parse(p).value("id", "") == "200"; }));
  EXPECT_NE(parse(w.on(set + "_reply").back().payload)["code"], 200);

  // The wrong secret: a clear error naming the socket and the roster key, never the secret, and no
  // report of that device; the other sockets and the Tuya edge carry on.
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("sock-003.*(bad user name or password|not authorized).*"
                                                     "sockets\\[2\\]\\.aliyun\\.device_secret"),
                                          20s))
      << sc.daemon().describe();
  EXPECT_TRUE(w.on("/sys/" + std::string(kProductKey) + "/plug-003/thing/event/property/post").empty());
  for (const std::string& line : sc.daemon().stderr_lines()) {
    EXPECT_EQ(line.find(wrong_secret), std::string::npos) << "a secret in the log: " << line;
    for (const AliyunDevice& d : devs) EXPECT_EQ(line.find(d.secret), std::string::npos) << line;
  }
  EXPECT_EQ(sc.command_code(sc.cid(2), 1, "true", "tuya-1"), 0) << "the Tuya edge still commands the socket";
  EXPECT_FALSE(sc.reports(sc.cid(2), 1).empty());

  // plugbridge status: the platform uplink, not connected while one device is refused, and why.
  const CliRun st = cli(sc, {"status", "--json"});
  ASSERT_EQ(st.code, 0) << st.err;
  const json status = json::parse(st.out);
  const auto up = std::find_if(status["uplinks"].begin(), status["uplinks"].end(),
                               [](const json& u) { return u.value("name", "") == "aliyun"; });
  ASSERT_NE(up, status["uplinks"].end()) << status;
  EXPECT_EQ((*up)["type"], "aliyun");
  EXPECT_EQ((*up)["connected"], false);
  const std::string why = (*up)["last_error"];
  EXPECT_NE(why.find("1 of 3 devices not connected"), std::string::npos) << why;
  EXPECT_NE(why.find("sock-003"), std::string::npos) << why;
  EXPECT_GT((*up)["published"].get<int>(), 0);
}

// After a start, hundreds of sockets come online at once: their devices connect at the configured
// pace, not all together. Six at two a second take at least 2.5 s from the first to the last.
TEST(Aliyun, NewConnectionsArePaced) {
  std::vector<AliyunDevice> devs;
  for (int i = 1; i <= 6; ++i) devs.push_back({"pace-00" + std::to_string(i), random_alnum(32)});
  test::PlainMosquittoBroker cloud("platform", "platform-secret", aliyun_logins(devs));
  ScenarioOptions o;
  o.sockets = 6;
  aliyun_scenario(o, cloud, "    connect_rate_per_s: 2\n", devs, [&](size_t i) { return devs[i].secret; });
  Scenario sc(o);
  sc.start_daemon();
  sc.start_sim(6);
  sc.wait_sessions(6);
  // mosquitto's log: "<unix s>: New client connected from ... as pace-001|securemode=3,...".
  auto connect_times = [&] {
    std::vector<int64_t> t;
    std::istringstream log(cloud.log());
    for (std::string line; std::getline(log, line);)
      if (line.find("New client connected") != std::string::npos &&
          line.find(" as pace-") != std::string::npos)
        t.push_back(std::stoll(line.substr(0, line.find(':'))));
    return t;
  };
  ASSERT_TRUE(test::wait_until([&] { return connect_times().size() >= 6; }, 20s)) << cloud.log();
  const std::vector<int64_t> t = connect_times();
  EXPECT_GE(*std::max_element(t.begin(), t.end()) - *std::min_element(t.begin(), t.end()), 2)
      << "six connections at two a second span at least 2.5 s\n"
      << cloud.log();
}

// ---------------------------------------------------------------------------------------------

constexpr const char* kProductId = "PBTEST0001";
constexpr const char* kConnId = "PBT01";
constexpr int kLifetime = 10;  // s: a renewal every few seconds

TEST(Tencent, ReportsControlRenewalAndAnOutageAgainstARealBroker) {
  const std::vector<std::string> names{"dev1", "dev2"};
  std::vector<std::string> psks;
  for (size_t i = 0; i < names.size(); ++i) psks.push_back(shell("openssl rand -base64 16"));
  // The platform's formula: user "<pid><dn>;12010126;<connid>;<expiry>", password the HMAC-SHA256
  // of the user keyed with the decoded PSK, then ";hmacsha256". The expiry is the end of the
  // next whole lifetime period: every period of the next three minutes is in the file.
  std::vector<std::pair<std::string, std::string>> users;
  const int64_t now = std::time(nullptr);
  for (size_t i = 0; i < names.size(); ++i)
    for (int64_t t = now - kLifetime; t <= now + 180; t += kLifetime) {
      const int64_t expiry = (t / kLifetime + 2) * kLifetime;
      const std::string user =
          std::string(kProductId) + names[i] + ";12010126;" + kConnId + ";" + std::to_string(expiry);
      users.emplace_back(user, hmac_sha256_base64_key(psks[i], user) + ";hmacsha256");
    }
  test::PlainMosquittoBroker cloud("platform", "platform-secret", users);
  ScenarioOptions o;
  o.sockets = 2;
  o.extra_yaml = "uplinks:\n  - type: tencent\n    name: explorer\n    host: 127.0.0.1\n    port: " +
                 std::to_string(cloud.port()) + "\n    tls: false\n    connid: " + kConnId +
                 "\n    token_lifetime_s: " + std::to_string(kLifetime) +
                 "\n    state_interval_s: 1\n    connect_rate_per_s: 20\n";
  o.socket_yaml = [&](size_t i) {
    return "    tencent:\n      product_id: " + std::string(kProductId) + "\n      device_name: " + names[i] +
           "\n      psk: " + psks[i] + "\n";
  };
  Scenario sc(o);
  Watcher w(cloud, {"$thing/#"});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(2);
  sc.wait_sessions(2);

  const std::string up = "$thing/up/property/" + std::string(kProductId) + "/" + names[0];
  const std::string down = "$thing/down/property/" + std::string(kProductId) + "/" + names[0];
  for (const char* id : {"power_switch", "power", "voltage", "current", "energy"}) {
    ASSERT_TRUE(w.wait_on(up,
                          [&](const std::string& p) {
                            const json j = parse(p);
                            return j.is_object() && j.value("method", "") == "report" &&
                                   j["params"].contains(id);
                          }))
        << id << "\n"
        << sc.daemon().describe();
  }
  const json report = parse(w.on(up).back().payload);
  EXPECT_TRUE(report["clientToken"].is_string()) << report;
  EXPECT_GT(report["timestamp"].get<int64_t>(), int64_t{1'600'000'000'000}) << "unix ms";

  // Control: answered with control_reply and the same clientToken, the relay switched and reported.
  for (int want : {1, 0}) {
    const std::string token = "tok-" + std::to_string(want);
    publish(cloud, down,
            R"({"method":"control","clientToken":")" + token + R"(","params":{"power_switch":)" +
                std::to_string(want) + "}}");
    ASSERT_TRUE(w.wait_on(up, [&](const std::string& p) {
      const json r = parse(p);
      return r.value("method", "") == "control_reply" && r.value("clientToken", "") == token;
    })) << sc.daemon().describe();
    ASSERT_TRUE(
        test::wait_until([&] { return last_value(w, up, "power_switch", false) == json(want); }, 10s));
  }
  for (const Msg& m : w.on(up)) {
    const json r = parse(m.payload);
    if (r.value("method", "") == "control_reply") {
      EXPECT_EQ(r["code"], 0) << r;
    }
  }

  // The password expires: the daemon logs in again with a new one before (the broker saw a second
  // user name for the device, both from the file).
  ASSERT_TRUE(test::wait_until(
      [&] {
        std::set<std::string> seen;
        const std::string log = cloud.log();
        const std::string needle = std::string("u'") + kProductId + names[0] + ";12010126;";
        for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1))
          seen.insert(log.substr(at, log.find('\'', at + 2) - at));
        return seen.size() >= 2;
      },
      30s))
      << cloud.log();

  // The platform away: a relay change made meanwhile (from the local CLI) waits in the outbox,
  // through a restart of the daemon too, and arrives with its own time once the platform is back.
  cloud.stop();
  const int64_t switched_ms = static_cast<int64_t>(std::time(nullptr)) * 1000;
  const CliRun r = cli(sc, {"relay", sc.cid(0), "on"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  sc.daemon().signal(SIGTERM);
  ASSERT_EQ(sc.daemon().wait_exit(15s), 0) << sc.daemon().describe();
  {
    store::Store db(sc.db_path().string());
    EXPECT_FALSE(db.outbox_rows("explorer").empty()) << "the report waits in the outbox";
  }
  cloud.start();
  auto subscribes = [&] {
    const std::string log = cloud.log();
    size_t n = 0;
    for (size_t at = log.find("Received SUBSCRIBE"); at != std::string::npos;
         at = log.find("Received SUBSCRIBE", at + 1))
      ++n;
    return n;
  };
  const size_t before = subscribes();
  Watcher again(cloud, {"$thing/#"});
  ASSERT_TRUE(test::wait_until([&] { return subscribes() > before; }, 10s)) << cloud.log();
  sc.start_daemon();
  ASSERT_TRUE(again.wait_on(
      up,
      [&](const std::string& p) {
        const json j = parse(p);
        if (j.value("method", "") != "report" || j["params"].value("power_switch", -1) != 1) return false;
        const int64_t t = j["timestamp"].get<int64_t>();
        return t >= switched_ms - 2000 && t <= switched_ms + 5000;
      },
      40s))
      << sc.daemon().describe();
  ASSERT_TRUE(test::wait_until(
      [&] {
        store::Store db(sc.db_path().string(), true);
        return db.outbox_rows("explorer").empty();
      },
      20s))
      << "acknowledged rows leave the outbox";
}

// ---------------------------------------------------------------------------------------------

// A self-hosted broker where every socket logs in on its own (type mqtt, per_socket): the login
// and topics from the uplink's templates, the password from each roster entry.
TEST(PerSocketMqtt, EachSocketLogsInWithItsOwnPasswordAndTopics) {
  const std::vector<std::string> passwords{random_alnum(20), random_alnum(20)};
  test::PlainMosquittoBroker broker("site", "site-secret",
                                    {{"sock-001", passwords[0]}, {"sock-002", passwords[1]}});
  ScenarioOptions o;
  o.sockets = 2;
  o.extra_yaml = "uplinks:\n  - type: mqtt\n    name: site\n    per_socket: true\n    port: " +
                 std::to_string(broker.port()) +
                 "\n    client_id: \"plug-{cid}\"\n    report_topic: \"site/{cid}/state\"\n"
                 "    command_topic: \"site/{cid}/set\"\n    reply_topic: \"site/{cid}/reply\"\n"
                 "    state_interval_s: 1\n    connect_rate_per_s: 20\n";
  o.socket_yaml = [&](size_t i) { return "    mqtt: {password: " + passwords[i] + "}\n"; };
  Scenario sc(o);
  Watcher w(broker, {"site/#"});
  sc.start_daemon();
  sc.start_sim(2);
  sc.wait_sessions(2);
  for (const std::string cid : {"sock-001", "sock-002"}) {
    for (const char* id : {"switch", "power", "voltage", "current", "energy"})
      ASSERT_TRUE(w.wait_on("site/" + cid + "/state",
                            [&](const std::string& p) {
                              const json j = parse(p);
                              return j.is_object() && j.contains("params") && j["params"].contains(id) &&
                                     j["time"].get<int64_t>() > int64_t{1'600'000'000'000};
                            }))
          << cid << " " << id << "\n"
          << sc.daemon().describe();
  }
  publish(broker, "site/sock-002/set", R"({"id":"c1","params":{"switch":1}})");
  ASSERT_TRUE(w.wait_on("site/sock-002/reply", [](const std::string& p) {
    return parse(p) == json{{"id", "c1"}, {"ok", true}};
  })) << sc.daemon().describe();
  ASSERT_TRUE(test::wait_until(
      [&] { return last_value(w, "site/sock-002/state", "switch", false) == json(1); }, 10s));
  EXPECT_NE(broker.log().find("as plug-sock-001"), std::string::npos) << "the client id from the template";
  for (const std::string& line : sc.daemon().stderr_lines())
    for (const std::string& pw : passwords) EXPECT_EQ(line.find(pw), std::string::npos) << line;
}

}  // namespace
}  // namespace pb::itest
