#include "plugbridge/cloud/profile.hpp"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

namespace pb::cloud {
namespace {

using config::DeviceUplink;
using nlohmann::json;

const std::string kAliyunSecret = "9fKq2Lx7Vb3Nc8Rt5Wm1Zp4Hs6Jd0GxQ";
const std::string kTencentPsk = "IyXmUW5sU/q1vnb5yzTkeQ==";

DeviceUplink aliyun_uplink() {
  DeviceUplink u;
  u.platform = DeviceUplink::Platform::Aliyun;
  u.name = "aliyun";
  u.host = "{product_key}.iot-as-mqtt.cn-shanghai.aliyuncs.com";
  u.port = 1883;
  return u;
}

DeviceUplink tencent_uplink() {
  DeviceUplink u;
  u.platform = DeviceUplink::Platform::Tencent;
  u.name = "tencent";
  u.host = "{product_id}.iotcloud.tencentdevices.com";
  u.port = 8883;
  return u;
}

config::SocketEntry socket_with_devices() {
  config::SocketEntry s;
  s.cid = "kettle";
  s.aliyun = config::AliyunDevice{"a1wFylTxYeD", "plug-0001", kAliyunSecret};
  s.tencent = config::TencentDevice{"CS0SLTKSYA", "dev1", kTencentPsk};
  return s;
}

TEST(CloudCrypto, HmacHex) {
  // RFC 4231 test case 2 and RFC 2202 test case 2.
  EXPECT_EQ(hmac_hex("hmacsha256", "Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hmac_hex("hmacsha1", "Jefe", "what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
  EXPECT_THROW(hmac_hex("hmacmd5", "k", "d"), std::invalid_argument);
  EXPECT_THROW(hmac_hex("HMACSHA256", "k", "d"), std::invalid_argument);
}

TEST(CloudCrypto, Base64IsStrict) {
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("Zg=="), "f");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_EQ(base64_decode("Zm9v"), "foo");
  EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(base64_decode("+/+/"), std::string("\xfb\xff\xbf", 3));
  const std::optional<std::string> key = base64_decode(kTencentPsk);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->size(), 16u);
  EXPECT_EQ(static_cast<unsigned char>((*key)[0]), 0x23);
  EXPECT_EQ(static_cast<unsigned char>((*key)[15]), 0x79);
  for (const char* bad :
       {"Zg",     "Zg=",   "Zg===", "Z===",     "====", "Zm9",  "Zm9v=",       "Z=g=", "=Zm9", "Zm=v",
        "Zm9v\n", " Zm9v", "Zm 9v", "Zm9v\r\n", "Zm9-", "Zm9_", "Zm9\xc3\xa9", "Zh==", "Zm9=", "Zm8=Zm8="})
    EXPECT_FALSE(base64_decode(bad)) << "'" << bad << "'";
}

TEST(CloudLogin, TencentVector) {
  const config::TencentDevice d{"CS0SLTKSYA", "dev1", kTencentPsk};
  const Login l = tencent_login(tencent_uplink(), d, "ZR5GT", 2623045740);
  EXPECT_EQ(l.host, "CS0SLTKSYA.iotcloud.tencentdevices.com");
  EXPECT_EQ(l.client_id, "CS0SLTKSYAdev1");
  EXPECT_EQ(l.username, "CS0SLTKSYAdev1;12010126;ZR5GT;2623045740");
  EXPECT_EQ(l.password, "2debdc61b009ef8d09597f106f6f8ca36f101415459b0623780a81e711e7257c;hmacsha256");

  DeviceUplink sha1 = tencent_uplink();
  sha1.sign_method = "hmacsha1";
  // echo -n "CS0SLTKSYAdev1;12010126;ZR5GT;2623045740" | openssl dgst -sha1 -mac HMAC
  //   -macopt hexkey:$(echo -n "IyXmUW5sU/q1vnb5yzTkeQ==" | base64 -d | xxd -p)
  EXPECT_EQ(tencent_login(sha1, d, "ZR5GT", 2623045740).password,
            "5dc2e1c6c71edcf7f2eff546c81e72579583b583;hmacsha1");

  EXPECT_THROW(tencent_login(tencent_uplink(), {"CS0SLTKSYA", "dev1", "not base64!"}, "ZR5GT", 1),
               std::invalid_argument);
}

TEST(CloudLogin, AliyunVectors) {
  const config::AliyunDevice d{"a1wFylTxYeD", "plug-0001", kAliyunSecret};
  DeviceUplink u = aliyun_uplink();
  Login l = aliyun_login(u, d, 1789000000123);
  EXPECT_EQ(l.host, "a1wFylTxYeD.iot-as-mqtt.cn-shanghai.aliyuncs.com");
  EXPECT_EQ(l.client_id, "plug-0001|securemode=2,signmethod=hmacsha256|");
  EXPECT_EQ(l.username, "plug-0001&a1wFylTxYeD");
  // echo -n "clientIdplug-0001deviceNameplug-0001productKeya1wFylTxYeD" |
  //   openssl dgst -sha256 -hmac 9fKq2Lx7Vb3Nc8Rt5Wm1Zp4Hs6Jd0GxQ
  EXPECT_EQ(l.password, "fafec9d47bc7430d46a8f4c481406910f3b8198605162f6bb5d922a3cb1b61c0");

  u.sign_method = "hmacsha1";
  u.tls = false;
  l = aliyun_login(u, d, 1789000000123);
  EXPECT_EQ(l.client_id, "plug-0001|securemode=3,signmethod=hmacsha1|");
  // echo -n "clientIdplug-0001deviceNameplug-0001productKeya1wFylTxYeD" |
  //   openssl dgst -sha1 -hmac 9fKq2Lx7Vb3Nc8Rt5Wm1Zp4Hs6Jd0GxQ
  EXPECT_EQ(l.password, "4a08c8bdecd85fb189d8bca904e6f2807536f1d5");

  u = aliyun_uplink();
  u.timestamp = true;
  l = aliyun_login(u, d, 1789000000123);
  EXPECT_EQ(l.client_id, "plug-0001|securemode=2,signmethod=hmacsha256,timestamp=1789000000123|");
  // echo -n "clientIdplug-0001deviceNameplug-0001productKeya1wFylTxYeDtimestamp1789000000123" |
  //   openssl dgst -sha256 -hmac 9fKq2Lx7Vb3Nc8Rt5Wm1Zp4Hs6Jd0GxQ
  EXPECT_EQ(l.password, "695a915e404f64f464940d3c618bc3e39f71f4419fe7ff413674b42ce7b65694");

  u.host = "{product_key}.{product_key}.example.com";
  EXPECT_EQ(aliyun_login(u, d, 0).host, "a1wFylTxYeD.a1wFylTxYeD.example.com");
}

TEST(CloudLogin, TencentExpiryAndRenewal) {
  EXPECT_EQ(tencent_expiry(0, 86400), 172800);
  EXPECT_EQ(tencent_expiry(86399, 86400), 172800);
  EXPECT_EQ(tencent_expiry(86400, 86400), 259200);
  EXPECT_EQ(tencent_expiry(1'700'000'000, 3600), (1'700'000'000 / 3600 + 2) * 3600);
  for (int64_t now = 1'700'000'000; now < 1'700'000'000 + 7200; now += 97) {
    const int64_t e = tencent_expiry(now, 3600);
    EXPECT_GT(e - now, 3600);
    EXPECT_LE(e - now, 7200);
    EXPECT_EQ(e % 3600, 0);
    // Renewed at the latest half a period before it expires, never before the login.
    EXPECT_EQ(tencent_renew_at(e, 3600), e - 1800);
    EXPECT_GT(tencent_renew_at(e, 3600), now);
  }
  EXPECT_EQ(tencent_renew_at(1000, 61), 970);
}

TEST(CloudLogin, TencentConnid) {
  const std::set<char> allowed{'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L',
                               'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X',
                               'Y', 'Z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'};
  std::set<std::string> seen;
  std::set<char> used;
  uint64_t r = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 2000; ++i) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    const std::string c = tencent_connid(r);
    ASSERT_EQ(c.size(), 5u) << c;
    for (char ch : c) {
      EXPECT_TRUE(allowed.count(ch)) << c;
      used.insert(ch);
    }
    seen.insert(c);
  }
  EXPECT_EQ(used.size(), allowed.size());  // every character drawn
  EXPECT_GT(seen.size(), 1990u);           // and not a few values repeated
  EXPECT_EQ(tencent_connid(0), "AAAAA");
  EXPECT_EQ(tencent_connid(uint64_t{1} + 36 * 35), "B9AAA");
}

TEST(CloudProfile, TencentLoginThroughTheProfile) {
  const config::SocketEntry s = socket_with_devices();
  DeviceUplink u = tencent_uplink();
  u.token_lifetime_s = 3600;
  auto p = make_profile(u);
  EXPECT_TRUE(p->has_device(s));
  Login l = p->login(s, 1'700'000'000'123, 0);
  const int64_t expiry = tencent_expiry(1'700'000'000, 3600);
  EXPECT_EQ(l.username, "CS0SLTKSYAdev1;12010126;AAAAA;" + std::to_string(expiry));
  EXPECT_EQ(l.password, tencent_login(u, *s.tencent, "AAAAA", expiry).password);
  EXPECT_EQ(p->renew_at(l), expiry - 1800);
  // A fixed connid wins over the random one.
  u.connid = "ZR5GT";
  l = make_profile(u)->login(s, 1'700'000'000'123, 12345);
  EXPECT_EQ(l.username, "CS0SLTKSYAdev1;12010126;ZR5GT;" + std::to_string(expiry));
  EXPECT_EQ(p->secret_key_name(), "tencent.psk");

  config::SocketEntry none;
  none.cid = "lamp";
  EXPECT_FALSE(p->has_device(none));
  EXPECT_THROW(p->login(none, 0, 0), std::invalid_argument);
}

TEST(CloudProfile, AliyunLoginThroughTheProfile) {
  const config::SocketEntry s = socket_with_devices();
  DeviceUplink u = aliyun_uplink();
  u.timestamp = true;
  auto p = make_profile(u);
  EXPECT_TRUE(p->has_device(s));
  const Login l = p->login(s, 1789000000123, 99);
  EXPECT_EQ(l.client_id, "plug-0001|securemode=2,signmethod=hmacsha256,timestamp=1789000000123|");
  EXPECT_EQ(l.password, "695a915e404f64f464940d3c618bc3e39f71f4419fe7ff413674b42ce7b65694");
  EXPECT_FALSE(p->renew_at(l));
  EXPECT_EQ(p->secret_key_name(), "aliyun.device_secret");
  config::SocketEntry none;
  EXPECT_FALSE(p->has_device(none));
  EXPECT_THROW(p->login(none, 0, 0), std::invalid_argument);
}

TEST(CloudProfile, AliyunTopicsAndPayloads) {
  const config::SocketEntry s = socket_with_devices();
  auto p = make_profile(aliyun_uplink());
  EXPECT_EQ(p->subscriptions(s),
            (std::vector<std::string>{"/sys/a1wFylTxYeD/plug-0001/thing/service/property/set",
                                      "/sys/a1wFylTxYeD/plug-0001/thing/event/property/post_reply"}));
  EXPECT_EQ(p->report_topic(s), "/sys/a1wFylTxYeD/plug-0001/thing/event/property/post");

  const json report = json::parse(p->report_payload(
      {{"PowerSwitch", 1}, {"RealTimePower", property_value(3, 12345)}}, 1700000000123, "42"));
  EXPECT_EQ(report, json::parse(R"({"id":"42","version":"1.0","method":"thing.event.property.post",
      "params":{"PowerSwitch":{"value":1,"time":1700000000123},
                "RealTimePower":{"value":12.3,"time":1700000000123}}})"));

  const std::string set_topic = "/sys/a1wFylTxYeD/plug-0001/thing/service/property/set";
  std::optional<Down> d = p->parse(
      set_topic,
      R"({"method":"thing.service.property.set","id":"123","params":{"PowerSwitch":1},"version":"1.0.0"})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Down::Kind::Set);
  EXPECT_EQ(d->id, "123");
  EXPECT_EQ(d->params, json({{"PowerSwitch", 1}}));
  // A numeric id is kept as text.
  d = p->parse(set_topic, R"({"method":"thing.service.property.set","id":456,"params":{"PowerSwitch":0}})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Down::Kind::Set);
  EXPECT_EQ(d->id, "456");

  auto [topic, payload] = p->set_reply(s, set_topic, *d, true, "");
  EXPECT_EQ(topic, set_topic + "_reply");
  EXPECT_EQ(json::parse(payload), json::parse(R"({"id":"456","code":200,"data":{}})"));
  std::tie(topic, payload) = p->set_reply(s, set_topic, *d, false, "socket offline");
  EXPECT_EQ(topic, set_topic + "_reply");
  EXPECT_EQ(json::parse(payload),
            json::parse(R"({"id":"456","code":460,"data":{},"message":"socket offline"})"));

  const std::string reply_topic = "/sys/a1wFylTxYeD/plug-0001/thing/event/property/post_reply";
  d = p->parse(reply_topic,
               R"({"code":200,"data":{},"id":"42","message":"success","method":"thing.event.property.post",)"
               R"("version":"1.0"})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Down::Kind::ReportReply);
  EXPECT_EQ(d->id, "42");
  EXPECT_EQ(d->code, 200);
  EXPECT_TRUE(d->ok);
  d = p->parse(reply_topic, R"({"code":6106,"data":{},"id":"43","message":"too many properties"})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Down::Kind::ReportReply);
  EXPECT_EQ(d->code, 6106);
  EXPECT_FALSE(d->ok);

  // Valid JSON that is not one of ours: Other.
  for (const auto& [t, m] : std::vector<std::pair<std::string, std::string>>{
           {set_topic, R"({"method":"thing.service.property.get","id":"1","params":{}})"},
           {set_topic, R"({"method":"thing.service.property.set","id":"1","params":[1]})"},
           {set_topic, R"({"id":"1"})"},
           {reply_topic, R"({"id":"1","code":"200"})"},
           {reply_topic, R"({"id":"1"})"},
           {"/sys/a1wFylTxYeD/plug-0001/thing/event/other", R"({"id":"1","code":200})"}}) {
    d = p->parse(t, m);
    ASSERT_TRUE(d) << m;
    EXPECT_EQ(d->kind, Down::Kind::Other) << m;
  }
}

TEST(CloudProfile, TencentTopicsAndPayloads) {
  const config::SocketEntry s = socket_with_devices();
  auto p = make_profile(tencent_uplink());
  EXPECT_EQ(p->subscriptions(s), (std::vector<std::string>{"$thing/down/property/CS0SLTKSYA/dev1"}));
  EXPECT_EQ(p->report_topic(s), "$thing/up/property/CS0SLTKSYA/dev1");

  const json report = json::parse(
      p->report_payload({{"power_switch", 1}, {"power", property_value(3, 12345)}}, 1700000000123, "r-7"));
  EXPECT_EQ(report, json::parse(R"({"method":"report","clientToken":"r-7","timestamp":1700000000123,
      "params":{"power_switch":1,"power":12.3}})"));
  EXPECT_NE(p->report_payload({{"power", property_value(3, 12345)}}, 1, "x").find("\"power\":12.3"),
            std::string::npos);

  const std::string down = "$thing/down/property/CS0SLTKSYA/dev1";
  std::optional<Down> d =
      p->parse(down, R"({"method":"control","clientToken":"clt-1","params":{"power_switch":1}})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Down::Kind::Set);
  EXPECT_EQ(d->id, "clt-1");
  EXPECT_EQ(d->params, json({{"power_switch", 1}}));

  auto [topic, payload] = p->set_reply(s, down, *d, true, "");
  EXPECT_EQ(topic, "$thing/up/property/CS0SLTKSYA/dev1");
  EXPECT_EQ(json::parse(payload),
            json::parse(R"({"method":"control_reply","clientToken":"clt-1","code":0,"status":"success"})"));
  std::tie(topic, payload) = p->set_reply(s, down, *d, false, "socket offline");
  EXPECT_EQ(topic, "$thing/up/property/CS0SLTKSYA/dev1");
  EXPECT_EQ(
      json::parse(payload),
      json::parse(R"({"method":"control_reply","clientToken":"clt-1","code":1,"status":"socket offline"})"));

  d = p->parse(down, R"({"method":"report_reply","clientToken":"r-7","code":0,"status":"success"})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Down::Kind::ReportReply);
  EXPECT_EQ(d->id, "r-7");
  EXPECT_TRUE(d->ok);
  d = p->parse(down, R"({"method":"report_reply","clientToken":99,"code":406,"status":"bad params"})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Down::Kind::ReportReply);
  EXPECT_EQ(d->id, "99");
  EXPECT_EQ(d->code, 406);
  EXPECT_FALSE(d->ok);

  for (const char* m : {R"({"method":"get_status_reply","clientToken":"1","code":0})",
                        R"({"method":"control","clientToken":"1","params":"power_switch"})",
                        R"({"method":"control","clientToken":"1"})",
                        R"({"method":"report_reply","code":"0"})", R"({"method":7})", R"({})"}) {
    d = p->parse(down, m);
    ASSERT_TRUE(d) << m;
    EXPECT_EQ(d->kind, Down::Kind::Other) << m;
  }
}

TEST(CloudProfile, ParseNeverThrowsOnGarbage) {
  const std::vector<std::pair<std::unique_ptr<Profile>, std::vector<std::pair<std::string, std::string>>>>
      cases = [] {
        std::vector<std::pair<std::unique_ptr<Profile>, std::vector<std::pair<std::string, std::string>>>> v;
        v.emplace_back(
            make_profile(aliyun_uplink()),
            std::vector<std::pair<std::string, std::string>>{
                {"/sys/a1wFylTxYeD/plug-0001/thing/service/property/set",
                 R"({"method":"thing.service.property.set","id":"123","params":{"PowerSwitch":1},"version":"1.0.0"})"},
                {"/sys/a1wFylTxYeD/plug-0001/thing/event/property/post_reply",
                 R"({"code":200,"data":{},"id":"42","message":"success","method":"thing.event.property.post"})"}});
        v.emplace_back(make_profile(tencent_uplink()),
                       std::vector<std::pair<std::string, std::string>>{
                           {"$thing/down/property/CS0SLTKSYA/dev1",
                            R"({"method":"control","clientToken":"clt-1","params":{"power_switch":1}})"},
                           {"$thing/down/property/CS0SLTKSYA/dev1",
                            R"({"method":"report_reply","clientToken":"r-7","code":0,"status":"success"})"}});
        return v;
      }();
  for (const auto& [p, messages] : cases) {
    for (const auto& [topic, full] : messages) {
      for (size_t n = 0; n < full.size(); ++n) {
        std::optional<Down> d;
        EXPECT_NO_THROW(d = p->parse(topic, full.substr(0, n))) << full.substr(0, n);
        EXPECT_FALSE(d) << "a truncated message is not JSON: " << full.substr(0, n);
        // One byte changed: whatever it parses to, it never throws.
        for (const char c : {'\0', '"', '}', '\xff', '1'}) {
          std::string changed = full;
          changed[n] = c;
          EXPECT_NO_THROW(p->parse(topic, changed)) << changed;
        }
      }
    }
    for (const char* junk :
         {"", "null", "[]", "[{\"method\":\"control\"}]", "\"text\"", "42", "{\"code\":1e999}",
          "{\"id\":{\"a\":1},\"code\":99999999999999999999}", "\xef\xbb\xbf{}", "{\"a\":\"\xff\"}"})
      EXPECT_NO_THROW(p->parse("x", junk)) << junk;
    EXPECT_FALSE(p->parse("x", "null"));
    EXPECT_FALSE(p->parse("x", "[]"));
  }
  // Codes beyond an int are no codes.
  auto p = make_profile(aliyun_uplink());
  const std::optional<Down> d =
      p->parse("/sys/a/b/thing/event/property/post_reply", R"({"id":"1","code":99999999999999999999})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Down::Kind::Other);
}

TEST(CloudProfile, PropertyMapAndIdentifiers) {
  EXPECT_EQ(property_dp("switch"), 1);
  EXPECT_EQ(property_dp("forward_energy_total"), 50);
  EXPECT_FALSE(property_dp("add_ele"));
  EXPECT_EQ(default_identifier(DeviceUplink::Platform::Aliyun, "power_current"), "RealTimePower");
  EXPECT_EQ(default_identifier(DeviceUplink::Platform::Tencent, "cur_current"), "current");
  EXPECT_EQ(default_identifier(DeviceUplink::Platform::Tencent, "nope"), "");

  // Left out in code: the platform's defaults.
  auto p = make_profile(aliyun_uplink());
  EXPECT_EQ(p->identifier(1), "PowerSwitch");
  EXPECT_EQ(p->identifier(50), "TotalConsumption");
  EXPECT_EQ(p->identifier(2), "");
  EXPECT_EQ(p->dp_of("RMSVoltage"), 5);
  EXPECT_FALSE(p->dp_of("Voltage"));
  EXPECT_FALSE(p->dp_of(""));

  DeviceUplink u = tencent_uplink();
  u.properties = {{"switch", "relay"}, {"cur_current", ""}};
  p = make_profile(u);
  EXPECT_EQ(p->identifier(1), "relay");
  EXPECT_EQ(p->dp_of("relay"), 1);
  EXPECT_FALSE(p->dp_of("power_switch"));
  EXPECT_EQ(p->identifier(7), "");  // disabled
  EXPECT_EQ(p->identifier(3), "power");
  EXPECT_EQ(p->uplink().properties.at("voltage_current"), "voltage");
}

TEST(CloudProfile, PropertyValuesInThePlatformsUnits) {
  EXPECT_EQ(property_value(1, 1), json(1));
  EXPECT_EQ(property_value(1, 0), json(0));
  EXPECT_TRUE(property_value(1, 1).is_number_integer());
  EXPECT_EQ(property_value(3, 12345).dump(), "12.3");  // mW -> W
  EXPECT_EQ(property_value(3, 12350).dump(), "12.4");  // half away from zero
  EXPECT_EQ(property_value(3, 12349).dump(), "12.3");
  EXPECT_EQ(property_value(3, -12350).dump(), "-12.4");
  EXPECT_EQ(property_value(3, 0).dump(), "0.0");
  EXPECT_EQ(property_value(3, 100).dump(), "0.1");
  EXPECT_EQ(property_value(5, 229949).dump(), "229.9");  // mV -> V
  EXPECT_EQ(property_value(5, 229950).dump(), "230.0");
  EXPECT_EQ(property_value(7, 1234567).dump(), "1.235");  // µA -> A
  EXPECT_EQ(property_value(7, 500).dump(), "0.001");
  EXPECT_EQ(property_value(7, 499).dump(), "0.0");
  EXPECT_EQ(property_value(50, 1234567).dump(), "1.235");  // mWh -> kWh
  EXPECT_EQ(property_value(50, 1234499).dump(), "1.234");
  EXPECT_EQ(property_value(50, 98765432100).dump(), "98765.432");
  for (int dp : {3, 5, 7, 50}) EXPECT_TRUE(property_value(dp, 1).is_number()) << dp;
}

TEST(CloudProfile, PerSocketMqttTemplatesAndPayloads) {
  DeviceUplink u;
  u.platform = DeviceUplink::Platform::Mqtt;
  u.name = "site";
  u.host = "broker.lan";
  u.gateway_id = "gw1";
  u.client_id = "plug-{gateway_id}-{cid}";
  u.username = "{username}";
  u.password = "{password}";
  u.report_topic = "site/{name}/state";
  const std::unique_ptr<Profile> p = make_profile(u);
  config::SocketEntry s;
  s.cid = "kettle";
  s.name = "Kettle";
  s.mqtt = config::MqttDevice{"", "pa{cid}55"};
  EXPECT_TRUE(p->has_device(s));
  const Login l = p->login(s, 0, 0);
  EXPECT_EQ(l.host, "broker.lan");
  EXPECT_EQ(l.client_id, "plug-gw1-kettle");
  EXPECT_EQ(l.username, "kettle") << "no username: the cid";
  EXPECT_EQ(l.password, "pa{cid}55") << "a value is never filled in again";
  EXPECT_FALSE(p->renew_at(l));
  EXPECT_EQ(p->report_topic(s), "site/Kettle/state");
  EXPECT_EQ(p->subscriptions(s), std::vector<std::string>{"plugbridge/kettle/set"});
  EXPECT_EQ(p->identifier(1), "switch");
  EXPECT_EQ(p->dp_of("power"), 3);

  const json r = json::parse(p->report_payload(json{{"switch", 1}}, 1'700'000'000'123, "r1"));
  EXPECT_EQ(r, (json{{"id", "r1"}, {"time", 1'700'000'000'123}, {"params", {{"switch", 1}}}}));
  const std::optional<Down> d = p->parse("plugbridge/kettle/set", R"({"id":7,"params":{"switch":0}})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Down::Kind::Set);
  EXPECT_EQ(d->id, "7");
  EXPECT_EQ(d->params, (json{{"switch", 0}}));
  EXPECT_EQ(p->parse("plugbridge/kettle/set", R"({"id":"x"})")->kind, Down::Kind::Other);
  EXPECT_FALSE(p->parse("plugbridge/kettle/set", "on"));
  const auto [topic, ok] = p->set_reply(s, "plugbridge/kettle/set", *d, true, "");
  EXPECT_EQ(topic, "plugbridge/kettle/set/reply");
  EXPECT_EQ(json::parse(ok), (json{{"id", "7"}, {"ok", true}}));
  EXPECT_EQ(json::parse(p->set_reply(s, "", *d, false, "offline").second),
            (json{{"id", "7"}, {"ok", false}, {"error", "offline"}}));
}

}  // namespace
}  // namespace pb::cloud
