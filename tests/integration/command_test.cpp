// Issue 5 command handling end to end: one command in flight per socket, answers in arrival order,
// a socket that never confirms (plugsim mute-commands), a socket going offline with commands queued,
// the queue bound, and DP 17 switch_enabled enforced and kept by the socket firmware.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "scenario.hpp"

namespace pb::itest {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// request_ids of commands/response messages, in arrival order.
std::vector<std::string> answered_ids(Scenario& sc) {
  std::vector<std::string> out;
  for (const auto& j : sc.emu().seen("commands/response")) out.push_back(j.value("request_id", ""));
  return out;
}

int code_of(Scenario& sc, const std::string& request_id, std::chrono::milliseconds deadline) {
  auto r = sc.command_response(request_id, deadline);
  return r ? (*r)["param"].value("code", -1) : -1;
}

json last_dp(const Scenario& sc, const std::string& cid, int dp) {
  auto r = sc.reports(cid, dp);
  return r.empty() ? json() : r.back()["param"]["value"];
}

bool wait_dp(const Scenario& sc, const std::string& cid, int dp, const json& want,
             std::chrono::milliseconds deadline = 10s) {
  return test::wait_until([&] { return last_dp(sc, cid, dp) == want; }, deadline);
}

// Waits for a plugsim event of `ev` for `cid` beyond the first `after` of them.
bool wait_sim_event(Scenario& sc, const std::string& ev, const std::string& cid, size_t after,
                    std::chrono::milliseconds deadline = 10s) {
  auto count = [&] {
    size_t n = 0;
    for (const auto& e : sim_events(sc.sim(), ev)) n += e.value("cid", "") == cid;
    return n;
  };
  return test::wait_until([&] { return count() > after; }, deadline);
}

size_t sim_count(Scenario& sc, const std::string& ev, const std::string& cid) {
  size_t n = 0;
  for (const auto& e : sim_events(sc.sim(), ev)) n += e.value("cid", "") == cid;
  return n;
}

void mute(Scenario& sc, const std::string& cid, bool on) {
  const size_t before = sim_count(sc, "commands_muted", cid);
  sc.sim().write_stdin(std::string(on ? "mute-commands " : "unmute-commands ") + cid);
  ASSERT_TRUE(wait_sim_event(sc, "commands_muted", cid, before)) << sc.sim().describe();
}

// Relay events of the simulated socket with a given cause.
size_t sim_relay_changes(Scenario& sc, const std::string& cid, const std::string& cause) {
  size_t n = 0;
  for (const auto& e : sim_events(sc.sim(), "relay"))
    n += e.value("cid", "") == cid && e.value("cause", "") == cause;
  return n;
}

TEST(Commands, BackToBackCommandsForOneSocketAreAnsweredInOrder) {
  Scenario sc({.sockets = 1});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_sessions(1);
  const auto cid = sc.cid(0);

  // Each is validated when its turn comes: DP 1 right after DP 17 false meets switching disabled.
  const std::vector<std::pair<std::string, int>> want = {
      {"o-1", 0}, {"o-2", 0}, {"o-3", 2002}, {"o-4", 0}, {"o-5", 0}, {"o-6", 1103}, {"o-7", 0}, {"o-8", 0}};
  sc.emu().send_command(cid, 1, "true", "o-1");
  sc.emu().send_command(cid, 17, "false", "o-2");
  sc.emu().send_command(cid, 1, "false", "o-3");
  sc.emu().send_command(cid, 17, "\"true\"", "o-4");
  sc.emu().send_command(cid, 1, "\"0\"", "o-5");
  sc.emu().send_command(cid, 48, "\"lots\"", "o-6");
  sc.emu().send_command(cid, 9, "true", "o-7");
  sc.emu().send_command(cid, 6, "\"100000\"", "o-8");
  for (const auto& [rid, code] : want)
    EXPECT_EQ(code_of(sc, rid, 10s), code) << rid << sc.daemon().describe();
  std::vector<std::string> order;
  for (const auto& id : answered_ids(sc))
    if (id.rfind("o-", 0) == 0) order.push_back(id);
  std::vector<std::string> want_order;
  for (const auto& w : want) want_order.push_back(w.first);
  EXPECT_EQ(order, want_order);

  // The socket executed them one at a time in the same order; the refused relay never reached it.
  std::vector<std::string> kinds;
  for (const auto& e : sim_events(sc.sim(), "command"))
    if (e.value("cid", "") == cid)
      kinds.push_back(e.value("kind", "") + "=" + std::to_string(e.value("value", -1)));
  EXPECT_EQ(kinds, (std::vector<std::string>{"set_relay=1", "set_switch_enabled=0", "set_switch_enabled=1",
                                             "set_relay=0", "set_current_limit=10000"}))
      << sc.sim().describe();
  EXPECT_TRUE(wait_dp(sc, cid, 1, false));
  EXPECT_TRUE(wait_dp(sc, cid, 17, true));
  EXPECT_TRUE(wait_dp(sc, cid, 6, 100000));
}

TEST(Commands, UnconfirmedCommandTimesOutThenTheNextGoesOnAndTheLateResultIsIgnored) {
  Scenario sc({.sockets = 1, .command_timeout_s = 2});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_sessions(1);
  const auto cid = sc.cid(0);
  mute(sc, cid, true);

  const auto t0 = Clock::now();
  sc.emu().send_command(cid, 1, "true", "m-a");
  sc.emu().send_command(cid, 6, "100000", "m-b");
  ASSERT_EQ(code_of(sc, "m-a", 10s), 2001) << sc.daemon().describe();
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 1900ms);
  EXPECT_LT(waited, 4s) << "answered within the deadline";
  // m-b was not sent before m-a gave up, so its own 2 s have only begun.
  EXPECT_FALSE(sc.command_response("m-b", 0ms)) << "m-b answered while m-a was in flight";
  ASSERT_TRUE(wait_sim_event(sc, "command", cid, 0)) << sc.sim().describe();

  // The socket answers again: m-a's held result comes late and must not be taken for m-b's.
  mute(sc, cid, false);
  EXPECT_EQ(code_of(sc, "m-b", 10s), 0) << sc.daemon().describe();
  EXPECT_TRUE(sc.daemon().wait_for_stderr(std::regex("ignoring the result of command"), 5s))
      << sc.daemon().describe();
  EXPECT_TRUE(wait_dp(sc, cid, 6, 100000));
  // The socket did switch on for m-a (only the confirmation was lost): its readings say so.
  EXPECT_TRUE(wait_dp(sc, cid, 1, true)) << sc.daemon().describe();
  EXPECT_EQ(sc.command_code(cid, 1, "false", "m-c"), 0);
  EXPECT_TRUE(wait_dp(sc, cid, 1, false));
}

TEST(Commands, QueuedCommandsAreAnswered2001WhenTheSocketGoesOfflineAndTheQueueIsBounded) {
  Scenario sc({.sockets = 1, .command_timeout_s = 30});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_sessions(1);
  const auto cid = sc.cid(0);
  mute(sc, cid, true);

  // 16 per socket (the one in flight included); the 17th is refused at once with 500.
  std::vector<std::string> ids;
  for (int i = 0; i < 17; ++i) {
    ids.push_back("q-" + std::to_string(i));
    sc.emu().send_command(cid, 18, std::to_string(100 + i), ids.back());
  }
  EXPECT_EQ(code_of(sc, "q-16", 10s), 500) << sc.daemon().describe();
  ASSERT_TRUE(wait_sim_event(sc, "result_held", cid, 0)) << sc.sim().describe();
  EXPECT_EQ(sim_count(sc, "command", cid), 1u) << "one command in flight";

  const auto t0 = Clock::now();
  sc.sim().write_stdin("disconnect " + cid);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(code_of(sc, ids[i], 10s), 2001) << ids[i];
  EXPECT_LT(Clock::now() - t0, 10s) << "answered when the socket went, not after the 30 s timeout";
  std::vector<std::string> order;
  for (const auto& id : answered_ids(sc))
    if (id.rfind("q-", 0) == 0) order.push_back(id);
  std::vector<std::string> want{"q-16"};
  want.insert(want.end(), ids.begin(), ids.begin() + 16);
  EXPECT_EQ(order, want);
  EXPECT_TRUE(sc.daemon().wait_for_stderr(std::regex("socket went offline before its turn"), 1s));
}

TEST(SwitchLock, DisabledInTheSocketButtonIgnoredStateKeptAcrossPowerCutAndDaemonRestart) {
  Scenario sc({.sockets = 1});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_sessions(1);
  const auto cid = sc.cid(0);

  ASSERT_EQ(sc.command_code(cid, 17, "false", "s-off"), 0) << sc.daemon().describe();
  EXPECT_TRUE(wait_dp(sc, cid, 17, false));
  const size_t button_switches = sim_relay_changes(sc, cid, "button");
  sc.sim().write_stdin("button " + cid);
  ASSERT_TRUE(wait_sim_event(sc, "switch_locked", cid, 0)) << sc.sim().describe();
  EXPECT_EQ(sim_relay_changes(sc, cid, "button"), button_switches);
  EXPECT_EQ(sc.command_code(cid, 1, "true", "s-relay"), 2002);

  // Kept by the socket across a power cut...
  const size_t sessions = sim_count(sc, "session_up", cid);
  sc.sim().write_stdin("power-cut " + cid + " 0.2");
  ASSERT_TRUE(wait_sim_event(sc, "session_up", cid, sessions, 20s)) << sc.sim().describe();
  sc.sim().write_stdin("press " + cid + " 100");  // through the firmware's debounced input
  ASSERT_TRUE(wait_sim_event(sc, "switch_locked", cid, 1)) << sc.sim().describe();
  EXPECT_EQ(sim_relay_changes(sc, cid, "button"), button_switches);

  // ...and a daemon that starts from scratch reports the socket's truth, not its default (true).
  sc.daemon().signal(SIGTERM);
  ASSERT_TRUE(sc.daemon().wait_exit(15s));
  const size_t reports_before = sc.reports(cid, 17).size();
  sc.start_daemon();
  ASSERT_TRUE(test::wait_until([&] { return sc.reports(cid, 17).size() > reports_before; }, 20s))
      << sc.daemon().describe();
  // Not the daemon's default (true) before the socket told: DP 17 waits for its reading.
  const auto after_restart = sc.reports(cid, 17);
  for (size_t i = reports_before; i < after_restart.size(); ++i)
    EXPECT_EQ(after_restart[i]["param"]["value"], false) << i;
  EXPECT_EQ(sc.command_code(cid, 1, "true", "s-relay-2"), 2002);

  ASSERT_EQ(sc.command_code(cid, 17, "true", "s-on"), 0);
  EXPECT_TRUE(wait_dp(sc, cid, 17, true));
  sc.sim().write_stdin("button " + cid);
  ASSERT_TRUE(test::wait_until([&] { return sim_relay_changes(sc, cid, "button") > button_switches; }, 10s))
      << sc.sim().describe();
}

TEST(SwitchLock, ReappliedToASocketThatLostItsState) {
  Scenario sc({.sockets = 1});
  sc.start_daemon();
  sc.wait_uplink_synced();
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_sessions(1);
  const auto cid = sc.cid(0);
  ASSERT_EQ(sc.command_code(cid, 17, "false", "r-off"), 0) << sc.daemon().describe();

  // A replacement socket with the same identity and fresh (default) state.
  sc.sim().signal(SIGKILL);
  ASSERT_TRUE(sc.sim().wait_exit(10s));
  std::filesystem::remove_all(sc.dir() / "sim-state");
  sc.start_sim(1, {"--watts", "60"});
  sc.wait_sessions(1);
  ASSERT_TRUE(test::wait_until(
      [&] {
        for (const auto& e : sim_events(sc.sim(), "command"))
          if (e.value("kind", "") == "set_switch_enabled" && e.value("value", -1) == 0 &&
              e.value("status", "") == "ok")
            return true;
        return false;
      },
      10s))
      << sc.sim().describe() << sc.daemon().describe();
  sc.sim().write_stdin("button " + cid);
  EXPECT_TRUE(wait_sim_event(sc, "switch_locked", cid, 0)) << sc.sim().describe();
  EXPECT_TRUE(wait_dp(sc, cid, 17, false));
}

}  // namespace
}  // namespace pb::itest
