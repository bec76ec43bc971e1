#include "responder.hpp"

#include <gtest/gtest.h>

namespace {

using nlohmann::json;
using pb::tuyaemu::Responder;
using pb::tuyaemu::ResponderOptions;

Responder make(std::optional<int> fail_code = std::nullopt, int fail_count = -1) {
  ResponderOptions o;
  o.gateway_id = "gw1";
  o.sync_fail_code = fail_code;
  o.sync_fail_count = fail_count;
  return Responder(o);
}

std::string sync_msg(const std::string& cid, const std::string& rid) {
  return json{{"t", 1700000000}, {"request_id", rid}, {"param", {{"cid", cid}, {"product_id", "p1"}}}}.dump();
}

std::string report_msg(const std::string& cid, const std::string& rid) {
  return json{{"t", 1700000000}, {"request_id", rid}, {"param", {{"cid", cid}, {"id", "1"}, {"value", true}}}}
      .dump();
}

TEST(Responder, SyncAnsweredWithSameRequestIdAndCodeZero) {
  auto r = make();
  auto res = r.handle("gateway_id/gw1/devices/sync", sync_msg("c1", "rid-1"), 42);
  ASSERT_EQ(res.replies.size(), 1u);
  EXPECT_TRUE(res.violations.empty());
  EXPECT_EQ(res.replies[0].topic, "gateway_id/gw1/devices/sync/response");
  const auto& p = res.replies[0].payload;
  EXPECT_EQ(p["t"], 42);
  EXPECT_EQ(p["request_id"], "rid-1");
  EXPECT_EQ(p["param"]["cid"], "c1");
  EXPECT_EQ(p["param"]["code"], 0);
  EXPECT_EQ(p["param"]["msg"], "success");
  EXPECT_TRUE(r.synced("c1"));
}

TEST(Responder, ReportOfUnsyncedCidIsDeviceNotExist) {
  auto r = make();
  auto res = r.handle("gateway_id/gw1/properties/report", report_msg("c9", "r2"), 1);
  ASSERT_EQ(res.replies.size(), 1u);
  EXPECT_EQ(res.replies[0].topic, "gateway_id/gw1/properties/report/response");
  EXPECT_EQ(res.replies[0].payload["param"]["code"], 2003);
  EXPECT_EQ(res.replies[0].payload["param"]["msg"], "device not exist");
  EXPECT_EQ(res.replies[0].payload["request_id"], "r2");

  r.handle("gateway_id/gw1/devices/sync", sync_msg("c9", "r3"), 1);
  res = r.handle("gateway_id/gw1/properties/report", report_msg("c9", "r4"), 1);
  ASSERT_EQ(res.replies.size(), 1u);
  EXPECT_EQ(res.replies[0].payload["param"]["code"], 0);
}

TEST(Responder, SyncFailsFirstNWithConfiguredCode) {
  auto r = make(500, 2);
  EXPECT_EQ(
      r.handle("gateway_id/gw1/devices/sync", sync_msg("c1", "a"), 1).replies[0].payload["param"]["code"],
      500);
  EXPECT_FALSE(r.synced("c1"));
  EXPECT_EQ(
      r.handle("gateway_id/gw1/devices/sync", sync_msg("c1", "b"), 1).replies[0].payload["param"]["code"],
      500);
  EXPECT_EQ(
      r.handle("gateway_id/gw1/devices/sync", sync_msg("c1", "c"), 1).replies[0].payload["param"]["code"], 0);
  EXPECT_TRUE(r.synced("c1"));
}

TEST(Responder, ReportFailuresOnRequest) {
  auto r = make();
  r.handle("gateway_id/gw1/devices/sync", sync_msg("c1", "s"), 1);
  r.fail_reports(500, 2);
  auto code = [&](const char* rid) {
    return r.handle("gateway_id/gw1/properties/report", report_msg("c1", rid), 1)
        .replies.at(0)
        .payload["param"]["code"]
        .get<int>();
  };
  EXPECT_EQ(code("a"), 500);
  EXPECT_EQ(code("b"), 500);
  EXPECT_EQ(code("c"), 0);
}

TEST(Responder, ShapeViolationsAreReported) {
  auto r = make();
  auto res = r.handle("gateway_id/gw1/devices/sync",
                      R"({"t":"123","request_id":7,"param":{"cid":"c1","product_id":"p"}})", 1);
  EXPECT_EQ(res.violations.size(), 2u);
  res = r.handle("gateway_id/gw1/devices/status", R"({"t":1,"request_id":"x","param":{"cid":"c1"}})", 1);
  ASSERT_EQ(res.violations.size(), 1u);
  EXPECT_NE(res.violations[0].find("array"), std::string::npos);
  EXPECT_TRUE(res.replies.empty());
  res = r.handle("gateway_id/gw1/properties/report", "not json", 1);
  EXPECT_EQ(res.violations.size(), 1u);
  EXPECT_TRUE(res.replies.empty());
  res = r.handle("gateway_id/gw1/devices/status",
                 R"({"t":1,"request_id":"x","param":[{"cid":"c1","status":true}]})", 1);
  EXPECT_TRUE(res.violations.empty());
}

TEST(Responder, IgnoresOwnEchoesAndOtherGateways) {
  auto r = make();
  EXPECT_TRUE(r.handle("gateway_id/gw1/devices/sync/response", "{}", 1).replies.empty());
  EXPECT_TRUE(r.handle("gateway_id/gw1/commands", "{}", 1).replies.empty());
  EXPECT_TRUE(r.handle("gateway_id/gw2/devices/sync", sync_msg("c", "r"), 1).replies.empty());
}

TEST(Responder, CommandShape) {
  auto r = make();
  auto out = r.make_command("c1", "1", json(true), "", 5);
  EXPECT_EQ(out.topic, "gateway_id/gw1/commands");
  EXPECT_EQ(out.payload["cid"], "c1");
  EXPECT_EQ(out.payload["param"]["id"], "1");
  EXPECT_EQ(out.payload["param"]["value"], true);
  EXPECT_EQ(out.payload["request_id"].get<std::string>().size(), 36u);
  EXPECT_EQ(r.make_command("c1", "1", json("1"), "my-id", 5).payload["request_id"], "my-id");
}

}  // namespace
