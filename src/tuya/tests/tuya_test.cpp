#include "plugbridge/tuya/tuya.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace pb::tuya {
namespace {

using nlohmann::json;

TEST(Md5Password, MatchesMd5sumOfClientIdThenUsername) {
  // printf '%s' 'gw1user' | md5sum
  EXPECT_EQ(md5_password("gw1", "user"), "2a8dc2e39a509c10ce9df0f4bd856413");
  // printf '%s' 'gw-0001vendorX' | md5sum
  EXPECT_EQ(md5_password("gw-0001", "vendorX"), "7c8795af881f427f3123c565e622372c");
  EXPECT_EQ(md5_password("", ""), "d41d8cd98f00b204e9800998ecf8427e");
  // Order matters: username then clientId is a different password.
  EXPECT_NE(md5_password("user", "gw1"), md5_password("gw1", "user"));
}

TEST(ConnackMeaning, NamesEveryCode) {
  EXPECT_EQ(connack_meaning(0), "connection accepted");
  EXPECT_NE(connack_meaning(1).find("unacceptable protocol version"), std::string::npos);
  EXPECT_NE(connack_meaning(2).find("identifier rejected"), std::string::npos);
  EXPECT_NE(connack_meaning(3).find("server unavailable"), std::string::npos);
  EXPECT_NE(connack_meaning(4).find("bad user name or password"), std::string::npos);
  EXPECT_NE(connack_meaning(4).find("md5"), std::string::npos);
  EXPECT_NE(connack_meaning(5).find("not authorized"), std::string::npos);
  EXPECT_NE(connack_meaning(135).find("unknown"), std::string::npos);
  EXPECT_NE(connack_meaning(135).find("135"), std::string::npos);
}

TEST(CodeMessage, SpecStrings) {
  EXPECT_EQ(code_message(code::kSuccess), "success");
  EXPECT_EQ(code_message(code::kUpstream), "tedge error");
  EXPECT_EQ(code_message(code::kSystem), "system error,please contact the admin");
  EXPECT_EQ(code_message(code::kBadTime), "request time is invalid");
  EXPECT_EQ(code_message(code::kParamsEmpty), "params is empty");
  EXPECT_EQ(code_message(code::kRange), "params range invalid");
  EXPECT_EQ(code_message(code::kNull), "params is null");
  EXPECT_EQ(code_message(code::kType), "params type is incorrect");
  EXPECT_EQ(code_message(code::kOffline), "device is offline");
  EXPECT_EQ(code_message(code::kUnsupported), "command or value not support");
  EXPECT_EQ(code_message(code::kNoDevice), "device not exist");
  EXPECT_EQ(code_message(42), "unknown error");
  EXPECT_NE(code_meaning(code::kNoDevice).find("unknown cid"), std::string::npos);
  EXPECT_NE(code_meaning(77).find("77"), std::string::npos);
}

TEST(Topic, GatewayPrefix) {
  EXPECT_EQ(topic("gw1", "devices/sync"), "gateway_id/gw1/devices/sync");
  EXPECT_EQ(topic("gw1", suffix::kReportResponse), "gateway_id/gw1/properties/report/response");
  EXPECT_EQ(topic("gw1", suffix::kCommands), "gateway_id/gw1/commands");
}

TEST(RequestId, IsRandomUuidV4) {
  const std::regex uuid4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto id = new_request_id();
    EXPECT_TRUE(std::regex_match(id, uuid4)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST(Builders, SyncMatchesSpecExample) {
  auto expected = json::parse(R"({"t":1627280000,"request_id":"cd0fd3c3-bd15-42f6-8bf9-d230a0000000",
 "param":{"cid":"92dda538fc2e636fd4b0c37f0000","product_id":"<pid>",
          "vendor_code":"","comm_type":"mqtt","device_ip":"","mac_address":"",
          "device_name":"","device_desc":"","install_location":"",
          "device_server_id":"","product_sub_type":""}})");
  SyncParams p;
  p.cid = "92dda538fc2e636fd4b0c37f0000";
  p.product_id = "<pid>";
  EXPECT_EQ(make_sync(p, 1627280000, "cd0fd3c3-bd15-42f6-8bf9-d230a0000000"), expected);

  p.name = "kettle";
  p.desc = "kitchen socket";
  p.location = "kitchen";
  p.ip = "192.168.1.20";
  p.mac = "aa:bb:cc:dd:ee:ff";
  auto j = make_sync(p, 5, "r");
  EXPECT_EQ(j["param"]["device_name"], "kettle");
  EXPECT_EQ(j["param"]["device_desc"], "kitchen socket");
  EXPECT_EQ(j["param"]["install_location"], "kitchen");
  EXPECT_EQ(j["param"]["device_ip"], "192.168.1.20");
  EXPECT_EQ(j["param"]["mac_address"], "aa:bb:cc:dd:ee:ff");
  EXPECT_TRUE(j["t"].is_number_integer());
}

TEST(Builders, ReportMatchesSpecExample) {
  auto expected = json::parse(R"({"t":1627280000,"request_id":"cd0fd3c3-bd15-42f6-8bf9-d230a0000000",
 "param":{"cid":"ee1880aca600","id":"1","value":true}})");
  EXPECT_EQ(make_report("ee1880aca600", 1, true, 1627280000, "cd0fd3c3-bd15-42f6-8bf9-d230a0000000"),
            expected);
  auto v = make_report("c", 5, 2305000, 1, "r");
  EXPECT_EQ(v["param"]["id"], "5");
  EXPECT_EQ(v["param"]["value"], 2305000);
  EXPECT_TRUE(v["param"]["value"].is_number_integer());
}

TEST(Builders, StatusMatchesSpecExample) {
  auto expected = json::parse(R"({"t":1627280000,"request_id":"cd0fd3c3-bd15-42f6-8bf9-d230a0000000",
 "param":[{"cid":"92dda538fc2e636fd4b0c37f0000","status":true},
          {"cid":"da538fc2ebffdb463692dfd0000","status":false}]})");
  EXPECT_EQ(make_status({{"92dda538fc2e636fd4b0c37f0000", true}, {"da538fc2ebffdb463692dfd0000", false}},
                        1627280000, "cd0fd3c3-bd15-42f6-8bf9-d230a0000000"),
            expected);
  auto empty = make_status({}, 1, "r");
  EXPECT_TRUE(empty["param"].is_array());
  EXPECT_TRUE(empty["param"].empty());
}

TEST(Builders, CommandResponseMatchesSpecExample) {
  auto expected = json::parse(R"({"t":1627280000,"cid":"92dda538fc2e636fd4b0c37f0000",
 "request_id":"cd0fd3c3-bd15-42f6-8bf9-d230a0000000","param":{"msg":"success","code":0}})");
  EXPECT_EQ(make_command_response("92dda538fc2e636fd4b0c37f0000", "cd0fd3c3-bd15-42f6-8bf9-d230a0000000", 0,
                                  1627280000),
            expected);
  auto err = make_command_response("c", "r", code::kUnsupported, 2);
  EXPECT_EQ(err["param"]["code"], 2002);
  EXPECT_EQ(err["param"]["msg"], "command or value not support");
}

TEST(ParseResponse, SyncResponse) {
  std::string error;
  auto r =
      parse_response(R"({"t":1,"request_id":"abc","param":{"cid":"c1","msg":"success","code":0}})", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->request_id, "abc");
  EXPECT_EQ(r->cid, "c1");
  EXPECT_EQ(r->code, 0);
  EXPECT_EQ(r->msg, "success");

  r = parse_response(R"({"request_id":"x","param":{"code":2003,"msg":"device not exist"}})", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->code, 2003);
  EXPECT_EQ(r->cid, "");
}

TEST(ParseResponse, Rejects) {
  std::string error;
  EXPECT_FALSE(parse_response("{not json", &error));
  EXPECT_NE(error.find("JSON"), std::string::npos);
  EXPECT_FALSE(parse_response("[1,2]", &error));
  EXPECT_FALSE(parse_response(R"({"param":{"code":0}})", &error));
  EXPECT_NE(error.find("request_id"), std::string::npos);
  EXPECT_FALSE(parse_response(R"({"request_id":"a","param":{"msg":"success"}})", &error));
  EXPECT_NE(error.find("code"), std::string::npos);
  EXPECT_FALSE(parse_response(R"({"request_id":"a","param":{"code":"0"}})", &error));
  EXPECT_FALSE(parse_response(R"({"request_id":"a","param":[]})", &error));
  EXPECT_FALSE(parse_response(R"({"request_id":"a"})", nullptr));  // null error pointer is allowed
}

TEST(ParseCommand, SpecExample) {
  auto p = parse_command(R"({"t":1627280000,"cid":"92dda538fc2e636fd4b0c37f0000",
 "request_id":"cd0fd3c3-bd15-42f6-8bf9-d230a0000000","param":{"id":"1","value":"1"}})");
  ASSERT_TRUE(p.command) << p.error;
  EXPECT_EQ(p.error_code, 0);
  EXPECT_EQ(p.command->request_id, "cd0fd3c3-bd15-42f6-8bf9-d230a0000000");
  EXPECT_EQ(p.command->cid, "92dda538fc2e636fd4b0c37f0000");
  EXPECT_EQ(p.command->dp_id, 1);
  EXPECT_EQ(p.command->value, "1");
  EXPECT_EQ(p.request_id, "cd0fd3c3-bd15-42f6-8bf9-d230a0000000");
  EXPECT_EQ(p.cid, "92dda538fc2e636fd4b0c37f0000");
}

TEST(ParseCommand, IntegerIdAndNativeValue) {
  auto p = parse_command(R"({"cid":"c","request_id":"r","param":{"id":6,"value":100000}})");
  ASSERT_TRUE(p.command) << p.error;
  EXPECT_EQ(p.command->dp_id, 6);
  EXPECT_EQ(p.command->value, 100000);
}

struct BadCommand {
  const char* payload;
  int code;
  const char* request_id;
  const char* cid;
};

class ParseCommandBad : public ::testing::TestWithParam<BadCommand> {};

TEST_P(ParseCommandBad, AnswersWithCode) {
  const auto& c = GetParam();
  auto p = parse_command(c.payload);
  EXPECT_FALSE(p.command);
  EXPECT_EQ(p.error_code, c.code) << p.error;
  EXPECT_FALSE(p.error.empty());
  EXPECT_EQ(p.request_id, c.request_id);
  EXPECT_EQ(p.cid, c.cid);
}

INSTANTIATE_TEST_SUITE_P(
    Payloads, ParseCommandBad,
    ::testing::Values(
        BadCommand{"{\"cid\":", code::kType, "", ""},  // bad JSON
        BadCommand{"[]", code::kType, "", ""},         // not an object
        BadCommand{R"({"cid":"c","param":{"id":"1","value":true}})", code::kParamsEmpty, "",
                   "c"},  // no request_id
        BadCommand{R"({"cid":"c","request_id":null,"param":{}})", code::kNull, "", "c"},
        BadCommand{R"({"cid":"c","request_id":7,"param":{}})", code::kType, "", "c"},
        BadCommand{R"({"request_id":"r","param":{"id":"1","value":true}})", code::kParamsEmpty, "r",
                   ""},  // no cid
        BadCommand{R"({"request_id":"r","cid":"","param":{"id":"1","value":true}})", code::kParamsEmpty, "r",
                   ""},
        BadCommand{R"({"request_id":"r","cid":"c"})", code::kParamsEmpty, "r", "c"},        // no param
        BadCommand{R"({"request_id":"r","cid":"c","param":null})", code::kNull, "r", "c"},  // null param
        BadCommand{R"({"request_id":"r","cid":"c","param":"x"})", code::kType, "r", "c"},   // param type
        BadCommand{R"({"request_id":"r","cid":"c","param":{}})", code::kParamsEmpty, "r",
                   "c"},  // empty param
        BadCommand{R"({"request_id":"r","cid":"c","param":{"value":true}})", code::kParamsEmpty, "r", "c"},
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":null,"value":true}})", code::kNull, "r", "c"},
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":"","value":true}})", code::kParamsEmpty, "r",
                   "c"},
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":"one","value":true}})", code::kType, "r",
                   "c"},
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":"1x","value":true}})", code::kType, "r", "c"},
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":1.5,"value":true}})", code::kType, "r", "c"},
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":true,"value":true}})", code::kType, "r", "c"},
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":"0","value":true}})", code::kRange, "r", "c"},
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":"99999999999999999999","value":1}})",
                   code::kRange, "r", "c"},
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":"1"}})", code::kParamsEmpty, "r",
                   "c"},  // no value
        BadCommand{R"({"request_id":"r","cid":"c","param":{"id":"1","value":null}})", code::kNull, "r",
                   "c"}));

}  // namespace
}  // namespace pb::tuya
