// The CLI against a control socket answering like the daemon: devices, relay, countdown.
#include "cli_fixture.hpp"

namespace pb::cli {
namespace {

using namespace test;
namespace fs = std::filesystem;
using json = nlohmann::json;

TEST_F(CliTest, DevicesLiveFromTheDaemon) {
  fill();
  FakeDaemon d(sock_path(), [](const json& req, control::Reply reply) {
    ASSERT_EQ(req["cmd"], "status");
    reply(json::parse(R"({"ok": true, "sockets": [
      {"cid": "kettle", "name": "Kettle", "online": true, "relay": true,
       "reading": {"ts_ms": 1795428000000, "meter_ok": true, "power_mw": 998700, "voltage_mv": 230000,
                   "current_ua": 4342000, "energy_mwh": 1, "energy_epoch": 0}},
      {"cid": "lamp", "name": "Desk lamp", "online": false, "relay": null, "reading": null}]})"));
  });
  auto r = run({"devices"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "CID     NAME       ONLINE   RELAY  POWER W     TODAY  LAST SEEN\n"
            "kettle  Kettle     online   on       998.7  125.0 Wh  2026-11-23 11:00:00 (60 min ago)\n"
            "lamp    Desk lamp  offline  -            -   10.0 Wh  never\n");
}

// A quantity the meter did not measure is null in the daemon's answer: "-", never 0; no mains says so.
TEST_F(CliTest, DevicesShowAPowerNotMeasuredAndNoMains) {
  fill();
  FakeDaemon d(sock_path(), [](const json&, control::Reply reply) {
    reply(json::parse(R"({"ok": true, "sockets": [
      {"cid": "kettle", "name": "Kettle", "online": true, "relay": true,
       "reading": {"ts_ms": 1795428000000, "meter_ok": true, "no_mains": false, "power_mw": null,
                   "voltage_mv": 230000, "current_ua": 4342000, "energy_mwh": 1, "energy_epoch": 0}},
      {"cid": "lamp", "name": "Desk lamp", "online": true, "relay": true,
       "reading": {"ts_ms": 1795428000000, "meter_ok": true, "no_mains": true, "power_mw": null,
                   "voltage_mv": null, "current_ua": null, "energy_mwh": 1, "energy_epoch": 0}}]})"));
  });
  auto r = run({"devices"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "CID     NAME       ONLINE  RELAY   POWER W     TODAY  LAST SEEN\n"
            "kettle  Kettle     online  on            -  125.0 Wh  2026-11-23 11:00:00 (60 min ago)\n"
            "lamp    Desk lamp  online  on     no mains   10.0 Wh  2026-11-23 11:00:00 (60 min ago)\n");
  auto j = json::parse(run({"devices", "--format", "json"}).out);
  EXPECT_TRUE(j["sockets"][0]["power_mw"].is_null());
  EXPECT_EQ(j["sockets"][0]["no_mains"], false);
  EXPECT_TRUE(j["sockets"][1]["power_mw"].is_null());
  EXPECT_EQ(j["sockets"][1]["no_mains"], true);
}

// The socket runs the countdown; the daemon passes on when it flips the relay (from its readings).
TEST_F(CliTest, DevicesShowARunningCountdown) {
  fill();
  const int64_t now = berlin("2026-11-23 12:00");
  FakeDaemon d(sock_path(), [now](const json&, control::Reply reply) {
    reply({{"ok", true},
           {"sockets",
            {{{"cid", "kettle"},
              {"name", "Kettle"},
              {"online", true},
              {"relay", true},
              {"countdown_ends_ms", now + 41'001},
              {"reading", nullptr}},
             {{"cid", "lamp"},
              {"name", "Desk lamp"},
              {"online", true},
              {"relay", false},
              {"countdown_ends_ms", now + 7'230'000},
              {"reading", nullptr}}}}});
  });
  auto r = run({"devices"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(" on (off in 42 s) "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" off (on in 2 h 1 min) "), std::string::npos) << r.out;
  auto j = json::parse(run({"devices", "--format", "json"}).out);
  EXPECT_EQ(j["sockets"][0]["countdown_ends_ms"], now + 41'001);
  EXPECT_EQ(j["sockets"][1]["relay"], false);
}

TEST_F(CliTest, DevicesHideACountdownThatAlreadyRanOut) {
  fill();
  const int64_t now = berlin("2026-11-23 12:00");
  FakeDaemon d(sock_path(), [now](const json&, control::Reply reply) {
    reply({{"ok", true},
           {"sockets",
            {{{"cid", "kettle"},
              {"name", "Kettle"},
              {"online", false},
              {"relay", true},
              {"countdown_ends_ms", now - 1},
              {"reading", nullptr}},
             {{"cid", "lamp"},
              {"name", "Desk lamp"},
              {"online", false},
              {"relay", nullptr},
              {"countdown_ends_ms", nullptr},
              {"reading", nullptr}}}}});
  });
  auto r = run({"devices"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find(" in "), std::string::npos) << r.out;
  EXPECT_TRUE(
      json::parse(run({"devices", "--format", "json"}).out)["sockets"][0]["countdown_ends_ms"].is_null());
}

TEST_F(CliTest, RelayAndCountdownAnswers) {
  fill();
  FakeDaemon d(sock_path(), [](const json& req, control::Reply reply) {
    const std::string cid = req.value("cid", "");
    if (req["cmd"] == "countdown")
      return reply({{"ok", false},
                    {"cid", cid},
                    {"error", "unsupported"},
                    {"message", "the socket firmware does not support countdown"}});
    if (cid == "lamp")
      return reply({{"ok", false}, {"cid", cid}, {"error", "offline"}, {"message", "socket is offline"}});
    if (cid != "kettle")
      return reply({{"ok", false},
                    {"cid", cid},
                    {"error", "unknown_cid"},
                    {"message", "cid 'x' is not in the roster"}});
    reply({{"ok", true},
           {"cid", cid},
           {"relay", req["state"] != "off"},
           {"message", "confirmed by the socket"}});
  });
  auto on = run({"relay", "kettle", "on"});
  EXPECT_EQ(on.code, 0) << on.err;
  EXPECT_EQ(on.out, "kettle: relay on (confirmed by the socket)\n");
  EXPECT_EQ(run({"relay", "kettle", "off"}).out, "kettle: relay off (confirmed by the socket)\n");
  auto off = run({"relay", "lamp", "off"});
  EXPECT_EQ(off.code, exit_code::kFailed);
  EXPECT_EQ(off.err,
            "plugbridge relay: lamp: socket is offline\n  fix: check that the socket is powered and on the "
            "network (plugbridge devices)\n");
  EXPECT_EQ(run({"relay", "x", "on"}).code, exit_code::kUsage);
  EXPECT_EQ(run({"relay", "kettle", "dim"}).code, exit_code::kUsage);
  auto cd = run({"countdown", "kettle", "60"});
  EXPECT_EQ(cd.code, exit_code::kFailed);
  EXPECT_EQ(cd.err,
            "plugbridge countdown: kettle: the socket firmware does not support countdown\n  fix: update "
            "the socket firmware\n");
}

TEST_F(CliTest, RelayRefusalsNameTheFix) {
  fill();
  FakeDaemon d(sock_path(), [](const json& req, control::Reply reply) {
    const std::string cid = req.value("cid", "");
    if (cid == "kettle")
      return reply({{"ok", false},
                    {"cid", cid},
                    {"error", "rejected"},
                    {"message", "switching is disabled (switch_enabled is false)"}});
    reply({{"ok", false},
           {"cid", cid},
           {"error", "shutting_down"},
           {"message", "the gateway is shutting down"}});
  });
  auto disabled = run({"relay", "kettle", "on"});
  EXPECT_EQ(disabled.code, exit_code::kFailed);
  EXPECT_EQ(disabled.err,
            "plugbridge relay: kettle: switching is disabled (switch_enabled is false)\n  fix: switching was "
            "disabled from the Tuya app (switch_enabled); enable it there again\n");
  auto stopping = run({"relay", "lamp", "off"});
  EXPECT_EQ(stopping.code, exit_code::kFailed);
  EXPECT_EQ(stopping.err,
            "plugbridge relay: lamp: the gateway is shutting down\n  fix: plugbridged is stopping; try again "
            "once it has restarted (systemctl status plugbridged)\n");
}

TEST_F(CliTest, RejectedJumpEventsSayWhatWasRejected) {
  {
    store::Store db(db_path());
    db.commit({{"kettle", berlin("2026-11-23 10:00"), "rejected_jump", std::nullopt, std::nullopt, 50000,
                "counter 1000000/0 -> 1050000/0 in 10 s, limit 3500 W"}});
  }
  auto r = run({"events", "--from", "2026-11-23", "--kind", "rejected_jump", "--format", "csv"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "time,cid,kind,what\n"
            "2026-11-23T10:00:00+01:00,kettle,rejected_jump,\"implausible energy jump rejected: counter "
            "1000000/0 -> 1050000/0 in 10 s, limit 3500 W\"\n");
}

// The daemon's health on one screen: aligned, no colour without a terminal; the raw object with --json.
TEST_F(CliTest, StatusShowsTheDaemonsHealth) {
  const int64_t now = berlin("2026-11-23 12:00");
  json answer = json::parse(R"({"ok": true, "sockets": [],
    "storage": {"ok": true, "records_waiting": 3, "commits": 10, "readings_committed": 100,
                "database_bytes": 3145728, "last_commit_seconds": 0.0142},
    "clock": {"state": "trusted", "trusted": true, "now_ms": 0},
    "lan": {"sessions_up": 1, "roster": 2, "handshakes_failed": {"refused": 0, "unknown_identity": 2, "timeout": 1}},
    "commands": {"by_code": {"0": 4}, "confirmed": 4},
    "uplinks": [{"name": "tuya", "type": "tuya", "connected": true, "outbox_depth": 5, "published": 9,
                 "failed": 0, "last_error": ""},
                {"name": "ha", "type": "homeassistant", "connected": false, "outbox_depth": 0, "published": 0,
                 "failed": 0, "last_error": "connection refused"}]})");
  answer["storage"]["last_commit_ms"] = now - 42'000;
  FakeDaemon d(sock_path(), [&answer](const json& req, control::Reply reply) {
    ASSERT_EQ(req["cmd"], "status");
    ASSERT_EQ(req["sockets"], false) << "status must stay cheap: no roster";
    reply(answer);
  });
  auto r = run({"status"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "plugbridged is running (" + sock_path() +
                       ")\n"
                       "                uplink tuya: connected, outbox 5\n"
                       "  uplink ha (homeassistant): disconnected, outbox 0 (connection refused)\n"
                       "                   sessions: 1 up, 2 in the roster\n"
                       "          handshakes failed: 3 (timeout 1, unknown_identity 2)\n"
                       "                last commit: 2026-11-23 11:59:18 (42 s ago, took 14 ms)\n"
                       "                    waiting: 3 records\n"
                       "                      clock: synchronised (trusted)\n"
                       "                   database: 3.0 MiB\n"
                       "                    storage: ok\n");
  auto colored = run({"status"}, /*tty=*/true);
  EXPECT_NE(colored.out.find("\033[32mconnected\033[0m"), std::string::npos) << colored.out;

  auto j = run({"status", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  const json parsed = json::parse(j.out);
  EXPECT_EQ(parsed["uplinks"][1]["name"], "ha");
  EXPECT_EQ(parsed["lan"]["roster"], 2);
  EXPECT_FALSE(parsed.contains("sockets"));
}

TEST_F(CliTest, StatusSaysWhyTheClockAndTheStorageAreNotRight) {
  FakeDaemon d(sock_path(), [](const json&, control::Reply reply) {
    reply(json::parse(R"({"ok": true, "sockets": [],
      "storage": {"ok": false, "records_waiting": 1, "failure": "database or disk is full", "last_commit_ms": null},
      "clock": {"state": "waiting", "trusted": false, "reason": "the system clock says 2000-01-01"},
      "lan": {"sessions_up": 0, "roster": 2, "handshakes_failed": {}}, "uplinks": []})"));
  });
  auto r = run({"status"});
  EXPECT_EQ(r.code, exit_code::kFailed);
  EXPECT_NE(r.out.find("       uplink: none (LAN only)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  last commit: none since the daemon started\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("      waiting: 1 record\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("        clock: not synchronised (waiting): the system clock says 2000-01-01\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("      storage: failing: database or disk is full\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("handshakes"), std::string::npos) << r.out;
}

TEST_F(CliTest, StatusWithoutTheDaemonSaysSo) {
  auto r = run({"status"});
  EXPECT_EQ(r.code, exit_code::kNoDaemon);
  EXPECT_EQ(r.err.rfind("plugbridge status: daemon not reachable at " + sock_path(), 0), 0u) << r.err;
  EXPECT_NE(r.err.find("is plugbridged running?"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pb::cli
