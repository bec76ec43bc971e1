// The uplink loses nothing: a broker outage while loads change and a socket trips, and reports the
// platform refuses. PB_OUTAGE_S sets the outage length (default 20 s; the "several minutes" run is
// PB_OUTAGE_S=300, see README "When the cloud is down").
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>

#include "plugbridge/store/store.hpp"
#include "scenario.hpp"

namespace pb::itest {
namespace {

using nlohmann::json;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int outage_seconds() {
  const char* e = std::getenv("PB_OUTAGE_S");
  return e ? std::max(5, std::atoi(e)) : 20;
}

// One properties/report the emulator received.
struct Report {
  int64_t at_ms = 0;  // when the emulator got it
  std::string cid;
  int dp = 0;
  json value;
  int64_t t = 0;  // the report's own time (s)
};

std::vector<Report> reports(const test::TuyaEmulator& emu) {
  std::vector<Report> out;
  for (const auto& e : emu.events()) {
    if (e.value("dir", "") != "in" || !e.value("topic", "").ends_with("/properties/report")) continue;
    const auto& p = e["payload"];
    out.push_back({e["at_ms"], p["param"].value("cid", ""), std::stoi(p["param"].value("id", "0")),
                   p["param"]["value"], p["t"]});
  }
  return out;
}

std::vector<Report> of(const std::vector<Report>& all, const std::string& cid, int dp) {
  std::vector<Report> out;
  for (const auto& r : all)
    if (r.cid == cid && r.dp == dp) out.push_back(r);
  return out;
}

template <typename T>
std::vector<T> dedup(std::vector<T> v) {
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::vector<bool> relay_reports(const std::vector<Report>& all, const std::string& cid) {
  std::vector<bool> out;
  for (const auto& r : of(all, cid, 1)) out.push_back(r.value.get<bool>());
  return dedup(out);
}

// Relay states the socket went through (plugsim's relay events), starting from off.
std::vector<bool> relay_history(const test::Process& sim, const std::string& cid) {
  std::vector<bool> out{false};
  for (const auto& e : sim_events(sim, "relay"))
    if (e.value("cid", "") == cid) out.push_back(e.value("on", false));
  return dedup(out);
}

size_t relay_changes(const test::Process& sim, const std::string& cid) {
  size_t n = 0;
  for (const auto& e : sim_events(sim, "relay")) n += e.value("cid", "") == cid;
  return n;
}

bool stored_relay_event(const std::filesystem::path& db_path, const std::string& cid, int64_t value,
                        int64_t since_ms) {
  store::Store db(db_path.string(), true);
  for (const auto& e : db.events(cid, since_ms, INT64_MAX))
    if (e.kind == "relay" && e.value == value) return true;
  return false;
}

double last_watts(const std::vector<Report>& all, const std::string& cid) {
  auto p = of(all, cid, 3);
  return p.empty() ? -1 : p.back().value.get<double>() / 1e4;
}

TEST(Outbox, BrokerOutageLosesNothingAndDrainsAtTheConfiguredRate) {
  constexpr int kRate = 20;
  const int outage_s = outage_seconds();
  Scenario sc({.sockets = 3, .uplink_yaml = "  outbox_rate_per_s: 20\n  reconnect_max_s: 2\n"});
  sc.start_daemon();
  sc.start_sim(3, {"--watts", "100,200,300", "--pf", "1.0", "--volts", "230"});
  sc.wait_sessions(3);
  sc.wait_uplink_synced();
  const std::string a = sc.cid(0), b = sc.cid(1), c = sc.cid(2);
  for (const auto& cid : {a, b, c}) ASSERT_EQ(sc.command_code(cid, 1, "true", "on-" + cid), 0);
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto all = reports(sc.emu());
        return last_watts(all, a) > 90 && last_watts(all, b) > 190 && last_watts(all, c) > 290;
      },
      20s))
      << sc.daemon().describe();

  // The broker hangs: a's over-current trip goes into a connection nobody acknowledges any more,
  // then the broker dies. Those reports were in flight when the link dropped.
  const int64_t outage_from = now_ms();
  sc.broker().freeze();
  sc.sim().write_stdin("load " + a + " 2000");  // 8.7 A against the default 5 A limit
  ASSERT_TRUE(test::wait_until([&] { return stored_relay_event(sc.db_path(), a, 0, outage_from); }, 15s))
      << sc.sim().describe();
  sc.broker().kill();
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("uplink down"), 30s)) << sc.daemon().describe();

  // While it is down: a is switched on again at its button, b's load changes, c toggles thrice.
  sc.sim().write_stdin("load " + a + " 100");
  sc.sim().write_stdin("button " + a);
  ASSERT_TRUE(test::wait_until([&] { return stored_relay_event(sc.db_path(), a, 1, outage_from); }, 15s));
  sc.sim().write_stdin("load " + b + " 600");
  for (int i = 0; i < 3; ++i) {
    const size_t before = relay_changes(sc.sim(), c);
    sc.sim().write_stdin("button " + c);
    ASSERT_TRUE(test::wait_until([&] { return relay_changes(sc.sim(), c) > before; }, 10s));
  }
  ASSERT_TRUE(test::wait_until(
      [&] {
        store::Store db(sc.db_path().string(), true);
        auto r = db.latest_sample(b);
        return r && r->power_max_mw > 550'000 && stored_relay_event(sc.db_path(), c, 0, outage_from + 1);
      },
      15s));
  {
    store::Store db(sc.db_path().string(), true);
    EXPECT_FALSE(db.outbox_rows().empty()) << "nothing waits in the outbox during the outage";
  }
  // Hold the outage for its length (the scenario's duration, not a synchronisation).
  test::wait_until([&] { return now_ms() >= outage_from + outage_s * 1000; },
                   std::chrono::seconds(outage_s + 5));

  const int64_t back = now_ms();
  // A real tedge's platform side is up with its broker; the emulator needs a moment to subscribe
  // again, so the daemon is held meanwhile (else its first devices/sync may go unheard: +10 s).
  sc.daemon().signal(SIGSTOP);
  sc.broker().start();
  const bool emu_back = sc.emu().wait_subscribed(2, 30s);
  sc.daemon().signal(SIGCONT);
  ASSERT_TRUE(emu_back) << sc.emu().process().describe();
  const auto final_relay = [&](const std::string& cid) -> bool {
    return relay_history(sc.sim(), cid).back();
  };
  const bool arrived = test::wait_until(
      [&] {
        auto all = reports(sc.emu());
        for (const auto& cid : {a, b, c}) {
          const std::vector<bool> got = relay_reports(all, cid);
          if (got.empty() || got.back() != final_relay(cid)) return false;
        }
        auto faults = of(all, a, 19);
        store::Store db(sc.db_path().string(), true);
        return std::abs(last_watts(all, a) - 100) < 5 && std::abs(last_watts(all, b) - 600) < 15 &&
               last_watts(all, c) == 0 && !faults.empty() && faults.back().value == 0 &&
               db.outbox_rows().empty();
      },
      90s);
  const int64_t done = now_ms();
  ASSERT_TRUE(arrived) << sc.daemon().describe(60);

  const auto all = reports(sc.emu());
  // Every relay state each socket went through, in order, none missing (repeats of the same state,
  // from full reports, fold together).
  for (const auto& cid : {a, b, c}) {
    auto want = relay_history(sc.sim(), cid);
    auto got = relay_reports(all, cid);
    if (!got.empty() && !want.empty() && got.front() != want.front())
      want.erase(want.begin());  // first report after the first switch
    EXPECT_EQ(got, want) << cid;
  }
  // a's fault: set by the trip, cleared by switching on; the trip's reports kept their own time and
  // were sent again after the broker came back (they were in flight when it hung).
  std::vector<int64_t> faults;
  for (const auto& r : of(all, a, 19)) faults.push_back(r.value.get<int64_t>());
  faults = dedup(faults);
  ASSERT_GE(faults.size(), 2u);
  EXPECT_NE(faults[faults.size() - 2], 0);
  EXPECT_EQ(faults.back(), 0);
  bool trip_seen = false, was_on = false;
  for (const auto& r : of(all, a, 1)) {
    if (r.value == true) was_on = true;
    if (r.value != false || !was_on || trip_seen) continue;  // the first "off" after "on": the trip
    trip_seen = true;
    EXPECT_GE(r.at_ms, back) << "the trip report arrived before the broker came back?";
    EXPECT_LT(r.t * 1000, back) << "the trip report lost its own time";
  }
  EXPECT_TRUE(trip_seen);

  // At most the configured rate (plus one 20 ms tick's worth, plus receive jitter) in any second.
  std::vector<int64_t> at;
  for (const auto& r : all)
    if (r.at_ms >= back) at.push_back(r.at_ms);
  size_t worst = 0;
  for (size_t i = 0; i < at.size(); ++i) {
    size_t n = 0;
    for (size_t j = i; j < at.size() && at[j] - at[i] < 1000; ++j) ++n;
    worst = std::max(worst, n);
  }
  EXPECT_GE(at.size(), 3u * 20) << "the outbox should hold about a full report per socket";
  EXPECT_LE(worst, static_cast<size_t>(kRate + 3));
  int64_t resynced = 0;  // the daemon's first devices/sync after the outage
  for (const auto& e : sc.emu().events())
    if (e.value("dir", "") == "in" && e.value("topic", "").ends_with("/devices/sync") && e["at_ms"] >= back) {
      resynced = e["at_ms"];
      break;
    }
  std::cout << "[ figures  ] outage " << outage_s << " s; " << at.size()
            << " reports after the broker returned; "
            << "all latest values and events " << (done - back) << " ms after its restart, "
            << (done - resynced) << " ms after the daemon's first devices/sync; busiest second " << worst
            << " reports (rate " << kRate << "/s)\n";
  EXPECT_TRUE(sc.emu().violations().empty());
}

TEST(Outbox, RefusedReportsAreRetriedAfterABackoffWithoutFlooding) {
  Scenario sc({.sockets = 1});
  sc.start_daemon();
  sc.start_sim(1, {"--watts", "100"});
  sc.wait_sessions(1);
  sc.wait_uplink_synced();
  const auto cid = sc.cid(0);
  ASSERT_EQ(sc.command_code(cid, 1, "true", "on"), 0);
  ASSERT_TRUE(test::wait_until(
      [&] {
        auto r = relay_reports(reports(sc.emu()), cid);
        return !r.empty() && r.back();
      },
      10s));

  const int64_t fail_from = now_ms();
  sc.emu().fail_reports(500, 1'000'000);  // the platform has a bad moment
  ASSERT_EQ(sc.command_code(cid, 1, "false", "off"), 0);
  ASSERT_TRUE(sc.daemon().wait_for_stderr(std::regex("refused with code 500"), 10s))
      << sc.daemon().describe();
  sc.emu().fail_reports(500, 0);  // and recovers
  // The platform's answers: request_id -> code, and when the first refusal went out.
  const auto answers = [&] {
    std::map<std::string, int> code;
    int64_t first_refusal = 0;
    for (const auto& e : sc.emu().events()) {
      if (e.value("dir", "") != "out" || !e.value("topic", "").ends_with("/properties/report/response"))
        continue;
      const int c = e["payload"]["param"].value("code", -1);
      code[e["payload"].value("request_id", "")] = c;
      if (c == 500 && first_refusal == 0) first_refusal = e["at_ms"];
    }
    return std::make_pair(code, first_refusal);
  };
  // The switch-off (refused, or queued behind refused reports) is accepted once the backoff (5 s)
  // is over, with the time of the switch as its t.
  std::optional<json> accepted;
  ASSERT_TRUE(test::wait_until(
      [&] {
        const auto [code, first_refusal] = answers();
        for (const auto& e : sc.emu().events()) {
          if (e.value("dir", "") != "in" || !e.value("topic", "").ends_with("/properties/report")) continue;
          const auto& p = e["payload"];
          if (p["param"].value("id", "") != "1" || p["param"]["value"] != false || e["at_ms"] < fail_from)
            continue;
          auto c = code.find(p.value("request_id", ""));
          if (c != code.end() && c->second == 0) {
            accepted = e;
            return true;
          }
        }
        return false;
      },
      30s))
      << sc.daemon().describe();
  const int64_t first_refusal = answers().second;
  ASSERT_GT(first_refusal, 0);
  EXPECT_GE((*accepted)["at_ms"].get<int64_t>() - first_refusal, 4000);
  EXPECT_LE((*accepted)["payload"]["t"].get<int64_t>() * 1000, first_refusal)
      << "the retry lost its own time";
  EXPECT_GE((*accepted)["payload"]["t"].get<int64_t>() * 1000, fail_from - 1000);
  // No flood meanwhile: after the refusals of the first second, nothing of this socket until the
  // retries after the backoff (the switch-off among them, in its place in the outbox's order).
  for (const auto& r : reports(sc.emu()))
    if (r.at_ms > first_refusal + 1000) {
      EXPECT_GE(r.at_ms - first_refusal, 4000) << "report of DP " << r.dp << " " << r.at_ms - first_refusal
                                               << " ms after the first refusal, during the backoff";
      break;
    }
  size_t lines = 0;
  for (const auto& l : sc.daemon().stderr_lines())
    lines += l.find("refused with code 500") != std::string::npos;
  EXPECT_EQ(lines, 1u) << "one line per burst of refusals";
}

}  // namespace
}  // namespace pb::itest
