#include <gtest/gtest.h>
#include <mqtt/async_client.h>

#include "support/testsupport.hpp"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using pb::test::MosquittoBroker;
using pb::test::TuyaEmulator;

const std::string kGw = "gw-test-1";
const std::string kUser = "vendor-x";

// Paho's queue wants a relative timeout: consume the next message before a steady deadline.
mqtt::const_message_ptr next_message(mqtt::async_client& c, std::chrono::steady_clock::time_point until) {
  const auto left = until - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return nullptr;
  return c.try_consume_message_for(std::chrono::duration_cast<std::chrono::milliseconds>(left));
}

// A minimal stand-in for the daemon's uplink: a Paho client with the gateway credentials.
class GatewayClient {
 public:
  explicit GatewayClient(const MosquittoBroker& broker)
      : broker_(broker), client_("ssl://127.0.0.1:" + std::to_string(broker.port()), kGw) {
    client_.start_consuming();
  }
  ~GatewayClient() {
    try {
      if (client_.is_connected()) client_.disconnect()->wait_for(2s);
    } catch (const mqtt::exception&) {
    }
  }
  void connect(const std::string& password, const std::string& host_ca = {}) {
    auto ssl = mqtt::ssl_options_builder()
                   .trust_store(host_ca.empty() ? broker_.ca_file().string() : host_ca)
                   .enable_server_cert_auth(true)
                   .verify(true)
                   .finalize();
    auto opts = mqtt::connect_options_builder()
                    .mqtt_version(MQTTVERSION_3_1_1)
                    .user_name(kUser)
                    .password(password)
                    .ssl(std::move(ssl))
                    .clean_session(true)
                    .connect_timeout(5s)
                    .finalize();
    client_.connect(opts)->wait();
  }
  void subscribe(const std::string& suffix) {
    client_.subscribe("gateway_id/" + kGw + "/" + suffix, 1)->wait();
  }
  void publish(const std::string& suffix, const json& payload) {
    client_.publish("gateway_id/" + kGw + "/" + suffix, payload.dump(), 1, false)->wait();
  }
  // Next message on the topic suffix, skipping others; null json on timeout.
  json next(const std::string& suffix, std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (auto msg = next_message(client_, until)) {
      if (msg->get_topic() == "gateway_id/" + kGw + "/" + suffix) return json::parse(msg->get_payload_str());
    }
    return nullptr;
  }
  mqtt::async_client& raw() { return client_; }

 private:
  const MosquittoBroker& broker_;
  mqtt::async_client client_;
};

json sync_msg(const std::string& cid, const std::string& rid) {
  return {{"t", 1700000000}, {"request_id", rid}, {"param", {{"cid", cid}, {"product_id", "pid1"}}}};
}

// mosquitto_pub as a second client: Paho C delays every additional in-process client's connect by
// about 2 s (eclipse-paho/paho.mqtt.c#1430), a separate process does not.
std::vector<std::string> mosquitto_pub(const MosquittoBroker& broker, const std::string& user,
                                       const std::string& password, const std::string& ca) {
  return {"mosquitto_pub",
          "-h",
          "127.0.0.1",
          "-p",
          std::to_string(broker.port()),
          "--cafile",
          ca,
          "-u",
          user,
          "-P",
          password,
          "-i",
          "pubcli",
          "-t",
          "gateway_id/" + kGw + "/devices/status",
          "-m",
          "{}",
          "-q",
          "1"};
}

TEST(MosquittoBroker, TlsAndPasswordAuth) {
  MosquittoBroker broker(kGw, kUser);
  EXPECT_NE(broker.port(), 0);
  EXPECT_TRUE(std::filesystem::exists(broker.ca_file()));
  EXPECT_EQ(broker.gateway_password().size(), 32u);

  GatewayClient good(broker);
  ASSERT_NO_THROW(good.connect(broker.gateway_password()));
  EXPECT_TRUE(good.raw().is_connected());

  // Positive control, so the failures below are down to the one thing changed.
  pb::test::Process ok(mosquitto_pub(broker, kUser, broker.gateway_password(), broker.ca_file().string()));
  EXPECT_EQ(ok.wait_exit(10s), 0) << ok.describe();

  pb::test::Process bad(
      mosquitto_pub(broker, kUser, "0123456789abcdef0123456789abcdef", broker.ca_file().string()));
  EXPECT_NE(bad.wait_exit(10s).value_or(0), 0) << bad.describe();
  EXPECT_TRUE(bad.wait_for_stderr(std::regex("not authori[sz]ed"), 5s)) << bad.describe();

  // The server certificate must verify against our CA only.
  pb::test::TempDir other;
  std::filesystem::copy_file(broker.dir() / "server.crt", other.path() / "not-the-ca.crt");
  pb::test::Process untrusting(
      mosquitto_pub(broker, kUser, broker.gateway_password(), (other.path() / "not-the-ca.crt").string()));
  EXPECT_NE(untrusting.wait_exit(10s).value_or(0), 0) << untrusting.describe();

  const std::string log = broker.log();
  EXPECT_NE(log.find("u'" + kUser + "'"), std::string::npos) << log;
  EXPECT_NE(log.find("not authorised"), std::string::npos) << log;
}

TEST(MosquittoBroker, AclConfinesGatewayToItsTopics) {
  MosquittoBroker broker(kGw, kUser);
  // An admin observer of every gateway's topics; the broker forwards one client's messages in order,
  // so once the allowed message arrives a forwarded forbidden one would have arrived first.
  // stdbuf: mosquitto_sub block-buffers a piped stdout.
  pb::test::Process observer({"stdbuf",
                              "-oL",
                              "mosquitto_sub",
                              "-h",
                              "127.0.0.1",
                              "-p",
                              std::to_string(broker.port()),
                              "--cafile",
                              broker.ca_file().string(),
                              "-u",
                              broker.admin_user(),
                              "-P",
                              broker.admin_password(),
                              "-i",
                              "observer",
                              "-q",
                              "1",
                              "-v",
                              "-d",
                              "-t",
                              "gateway_id/#"});
  ASSERT_TRUE(observer.wait_for_stdout(std::regex("received SUBACK"), 10s)) << observer.describe();

  GatewayClient gw(broker);
  gw.connect(broker.gateway_password());
  gw.raw().publish("gateway_id/other-gw/devices/sync", std::string("forbidden"), 1, false)->wait();
  gw.publish("devices/status", json{{"marker", 1}});
  ASSERT_TRUE(observer.wait_for_stdout(std::regex("^gateway_id/" + kGw + "/devices/status "), 10s))
      << observer.describe();
  for (const auto& line : observer.stdout_lines())
    EXPECT_EQ(line.find("gateway_id/other-gw"), std::string::npos);
}

TEST(TuyaEmulator, AnswersSyncAndReports) {
  MosquittoBroker broker(kGw, kUser);
  TuyaEmulator emu(broker, kGw);
  GatewayClient gw(broker);
  gw.connect(broker.gateway_password());
  gw.subscribe("devices/sync/response");
  gw.subscribe("properties/report/response");

  gw.publish(
      "properties/report",
      {{"t", 1700000000}, {"request_id", "r0"}, {"param", {{"cid", "c1"}, {"id", "1"}, {"value", true}}}});
  json resp = gw.next("properties/report/response", 5s);
  ASSERT_FALSE(resp.is_null());
  EXPECT_EQ(resp["request_id"], "r0");
  EXPECT_EQ(resp["param"]["code"], 2003);

  gw.publish("devices/sync", sync_msg("c1", "req-123"));
  resp = gw.next("devices/sync/response", 5s);
  ASSERT_FALSE(resp.is_null());
  EXPECT_EQ(resp["request_id"], "req-123");
  EXPECT_EQ(resp["param"]["cid"], "c1");
  EXPECT_EQ(resp["param"]["code"], 0);
  EXPECT_EQ(resp["param"]["msg"], "success");
  EXPECT_TRUE(resp["t"].is_number_integer());

  gw.publish(
      "properties/report",
      {{"t", 1700000000}, {"request_id", "r1"}, {"param", {{"cid", "c1"}, {"id", "1"}, {"value", true}}}});
  resp = gw.next("properties/report/response", 5s);
  ASSERT_FALSE(resp.is_null());
  EXPECT_EQ(resp["param"]["code"], 0);

  EXPECT_TRUE(emu.wait_for(
      "devices/sync", [](const json& p) { return p["request_id"] == "req-123"; }, 5s));
  EXPECT_EQ(emu.seen("devices/sync").size(), 1u);
  EXPECT_TRUE(emu.violations().empty());

  gw.publish("devices/sync", {{"t", "not-an-int"}, {"request_id", "x"}, {"param", {{"cid", "c2"}}}});
  EXPECT_TRUE(emu.process().wait_for_stdout(std::regex(R"("dir":"violation")"), 5s))
      << emu.process().describe();
}

TEST(TuyaEmulator, SyncFailureInjection) {
  MosquittoBroker broker(kGw, kUser);
  TuyaEmulator emu(broker, kGw, {"--sync-fail-code", "500", "--sync-fail-count", "1"});
  GatewayClient gw(broker);
  gw.connect(broker.gateway_password());
  gw.subscribe("devices/sync/response");
  gw.publish("devices/sync", sync_msg("c1", "a"));
  json resp = gw.next("devices/sync/response", 5s);
  ASSERT_FALSE(resp.is_null());
  EXPECT_EQ(resp["param"]["code"], 500);
  gw.publish("devices/sync", sync_msg("c1", "b"));
  resp = gw.next("devices/sync/response", 5s);
  ASSERT_FALSE(resp.is_null());
  EXPECT_EQ(resp["param"]["code"], 0);
}

TEST(TuyaEmulator, ForwardsStdinCommands) {
  MosquittoBroker broker(kGw, kUser);
  TuyaEmulator emu(broker, kGw);
  GatewayClient gw(broker);
  gw.connect(broker.gateway_password());
  gw.subscribe("commands");

  emu.send_command("c7", 1, "false", "cmd-1");
  json cmd = gw.next("commands", 5s);
  ASSERT_FALSE(cmd.is_null()) << emu.process().describe();
  EXPECT_EQ(cmd["cid"], "c7");
  EXPECT_EQ(cmd["request_id"], "cmd-1");
  EXPECT_EQ(cmd["param"]["id"], "1");
  EXPECT_EQ(cmd["param"]["value"], false);
  EXPECT_TRUE(cmd["t"].is_number_integer());

  emu.send_command("c7", 48, R"({"a": 1})", "");
  cmd = gw.next("commands", 5s);
  ASSERT_FALSE(cmd.is_null());
  EXPECT_EQ(cmd["param"]["value"], json({{"a", 1}}));
  EXPECT_EQ(cmd["request_id"].get<std::string>().size(), 36u);

  emu.send_raw("this is not json");
  auto until = std::chrono::steady_clock::now() + 5s;
  std::string raw;
  if (auto msg = next_message(gw.raw(), until)) raw = msg->get_payload_str();
  EXPECT_EQ(raw, "this is not json");

  // The emulator sees its own command echoed back.
  EXPECT_TRUE(emu.wait_for(
      "commands", [](const json& p) { return p.value("request_id", "") == "cmd-1"; }, 5s));

  emu.process().write_stdin("quit");
  EXPECT_EQ(emu.process().wait_exit(5s), 0) << emu.process().describe(60);
}

TEST(MosquittoBroker, StopStartSamePortAndEmulatorResubscribes) {
  MosquittoBroker broker(kGw, kUser);
  TuyaEmulator emu(broker, kGw);
  const auto port = broker.port();
  broker.stop();
  EXPECT_FALSE(broker.running());
  {
    pb::test::Process refused(
        mosquitto_pub(broker, kUser, broker.gateway_password(), broker.ca_file().string()));
    EXPECT_NE(refused.wait_exit(10s).value_or(0), 0) << refused.describe();
  }
  broker.start();
  EXPECT_EQ(broker.port(), port);
  ASSERT_TRUE(emu.wait_subscribed(2, 15s)) << emu.process().describe();

  GatewayClient gw(broker);
  gw.connect(broker.gateway_password());
  gw.subscribe("devices/sync/response");
  gw.publish("devices/sync", sync_msg("c1", "after-restart"));
  json resp = gw.next("devices/sync/response", 5s);
  ASSERT_FALSE(resp.is_null()) << emu.process().describe();
  EXPECT_EQ(resp["request_id"], "after-restart");
}

}  // namespace
