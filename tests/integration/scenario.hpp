// One end-to-end setup: broker + Tuya emulator + plugbridged (+ plugsim) in a temp dir.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "plugbridge/store/store.hpp"
#include "support/testsupport.hpp"

namespace pb::itest {

using namespace std::chrono_literals;

struct RosterSocket {
  std::string cid;
  std::string secret_hex;
};

struct ScenarioOptions {
  int sockets = 2;
  int heartbeat_s = 30;
  int command_timeout_s = 3;
  std::string username = "tuya-vendor";  // what the broker knows
  std::string config_username;           // what the daemon is told (default: username)
  std::string extra_yaml;                // appended at top level
  std::string uplink_yaml;               // appended to the uplink: section ("  key: value\n" lines)
  int configured = -1;                   // roster sockets in the daemon's file at first (-1: all)
  std::string database;                  // the daemon's database file (default: plugbridge.db in dir())
  std::map<std::string, std::string> daemon_env;  // added to plugbridged's environment
  // history.commit_interval_ms, unless extra_yaml has a history or retention section: short, so
  // tests see samples soon (the daemon's default is a minute).
  int commit_interval_ms = 300;
  // The daemon's per-address LAN limits as configured by default; off otherwise, as every simulated
  // socket connects from 127.0.0.1.
  bool lan_limits = false;
  int handshake_timeout_s = 5;
  // More lines of roster socket i's entry ("    key: value\n"), e.g. its platform credentials.
  std::function<std::string(size_t i)> socket_yaml;
};

class Scenario {
 public:
  explicit Scenario(ScenarioOptions opts = {});

  const std::vector<RosterSocket>& roster() const { return roster_; }
  const std::string& cid(size_t i) const { return roster_.at(i).cid; }
  test::MosquittoBroker& broker() { return broker_; }
  test::TuyaEmulator& emu() { return *emu_; }
  test::Process& daemon() { return *daemon_; }
  test::Process& sim() { return *sim_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path db_path() const {
    return opts_.database.empty() ? dir_.path() / "plugbridge.db" : std::filesystem::path(opts_.database);
  }
  std::filesystem::path config_path() const { return dir_.path() / "plugbridge.yaml"; }
  // plugsim's roster: every socket of roster(), whatever the daemon's file holds.
  std::filesystem::path sim_config_path() const { return dir_.path() / "plugsim.yaml"; }
  // (Re)writes the daemon's file with these sockets (atomically: a reload never sees half a file).
  void write_config(const std::vector<RosterSocket>& sockets, const std::string& extra_yaml = "");
  std::filesystem::path control_socket() const { return dir_.path() / "control.sock"; }
  uint16_t lan_port() const { return lan_port_; }

  // Starts plugbridged and waits until it listens on the LAN port.
  void start_daemon();
  // Waits until the daemon is connected to the broker and every roster socket is synced.
  void wait_uplink_synced();
  // Starts plugsim for the first `count` roster sockets with the given extra arguments.
  void start_sim(size_t count, std::vector<std::string> extra_args = {});
  // Waits until plugsim reported a session for every simulated socket.
  void wait_sessions(size_t count);
  // Waits until the first `count` roster sockets have an energy state in the database: their first
  // reading is committed, so the energy counted from then on is the counters' whole climb.
  void wait_energy_baselines(size_t count);

  // The emulator's answer to a command, or nullopt.
  std::optional<nlohmann::json> command_response(const std::string& request_id,
                                                 std::chrono::milliseconds deadline);
  // Sends a command and returns the answered code (or -1 if none arrived).
  int command_code(const std::string& cid, int dp, const std::string& value_json,
                   const std::string& request_id);

  // properties/report payloads for one cid and DP, in arrival order.
  std::vector<nlohmann::json> reports(const std::string& cid, int dp) const;

 private:
  ScenarioOptions opts_;
  test::TempDir dir_;
  std::vector<RosterSocket> roster_;
  test::MosquittoBroker broker_;
  std::unique_ptr<test::TuyaEmulator> emu_;
  uint16_t lan_port_ = 0;
  std::unique_ptr<test::Process> daemon_;
  std::unique_ptr<test::Process> sim_;
  size_t daemon_starts_ = 0;

  std::string config_text(const std::vector<RosterSocket>& sockets, const std::string& extra_yaml) const;
};

// JSON lines of a plugsim process with a given "ev".
std::vector<nlohmann::json> sim_events(const test::Process& sim, const std::string& ev);

// The seqs of the socket events of one socket boot stored in db (a seq stored twice appears twice).
std::multiset<uint32_t> stored_event_seqs(const store::Store& db, const std::string& cid, uint32_t boot);

// Every socket event (relay change, trip) plugsim made with a seq up to the highest one it saw acked
// (acks are cumulative) must be stored once, for `sockets` sockets with one boot each: "" if so,
// else what is wrong. Readings are not stored one by one (samples): their energy is checked apart.
std::string unstored_acked_events(Scenario& sc, size_t sockets);

// After a clean stop of the daemon: every seq plugsim saw acked is committed (in a socket's energy
// state or an event: Store::last_seq), for `sockets` sockets with one boot each: "" if so.
std::string uncommitted_acked_records(Scenario& sc, size_t sockets);

// The energy of one socket (one epoch) as stored, against its counter: "" if the all-time total
// (energy state), the sum of the stored samples and the buckets' total agree, and the counter climbed
// by that total since a first reading of at most first_mwh (what a socket counted before the
// gateway's first reading of it: nothing lost since); else what is wrong.
std::string energy_mismatch(const store::Store& db, const std::string& cid, int64_t first_mwh);

// Highest seq plugsim saw acked per (cid, boot). Acks are cumulative.
std::map<std::pair<std::string, uint32_t>, uint32_t> highest_acked(const test::Process& sim);

// The plugbridge CLI run in-process against the scenario's config, so its output is exact and complete
// when it returns.
struct CliRun {
  int code;
  std::string out, err;
};
CliRun cli(const Scenario& sc, std::vector<std::string> args);

}  // namespace pb::itest
