#include "scenario.hpp"

#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "plugbridge/cli/cli.hpp"
#include "plugbridge/energy/totals.hpp"

namespace pb::itest {

namespace {
std::string random_hex(size_t bytes) {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<unsigned>(rng() & 0xff);
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}
}  // namespace

Scenario::Scenario(ScenarioOptions opts) : opts_(std::move(opts)), broker_("gw-test", opts_.username) {
  for (int i = 0; i < opts_.sockets; ++i) {
    char cid[32];
    std::snprintf(cid, sizeof cid, "sock-%03d", i + 1);
    roster_.push_back({cid, random_hex(16)});
  }
  emu_ = std::make_unique<test::TuyaEmulator>(broker_, "gw-test");
  lan_port_ = test::free_tcp_port();

  std::ofstream(sim_config_path()) << config_text(roster_, opts_.extra_yaml);
  std::vector<RosterSocket> configured = roster_;
  if (opts_.configured >= 0) configured.resize(static_cast<size_t>(opts_.configured));
  write_config(configured, opts_.extra_yaml);
}

std::string Scenario::config_text(const std::vector<RosterSocket>& sockets,
                                  const std::string& extra_yaml) const {
  std::ostringstream y;
  y << "gateway_id: gw-test\n"
    << "uplink:\n"
    << "  host: localhost\n"
    << "  port: " << broker_.port() << "\n"
    << "  ca_file: " << broker_.ca_file().string() << "\n"
    << "  username: " << (opts_.config_username.empty() ? opts_.username : opts_.config_username) << "\n"
    << "  command_timeout_s: " << opts_.command_timeout_s << "\n"
    << opts_.uplink_yaml << "lan:\n"
    << "  listen_address: 127.0.0.1\n"
    << "  port: " << lan_port_ << "\n"
    << "  keepalive_s: 5\n"
    << "  handshake_timeout_s: " << opts_.handshake_timeout_s
    << "\n"
    // Every simulated socket connects from 127.0.0.1: no per-address limits unless asked.
    << (opts_.lan_limits ? "" : "  max_handshakes_per_address: 0\n  new_connections_per_address_per_s: 0\n")
    << "database: " << db_path().string() << "\n"
    << "control_socket: " << control_socket().string() << "\n"
    << "heartbeat_s: " << opts_.heartbeat_s << "\n"
    << "log_level: debug\n";
  if (extra_yaml.find("history:") == std::string::npos && extra_yaml.find("retention:") == std::string::npos)
    y << "history: {commit_interval_ms: " << opts_.commit_interval_ms << "}\n";
  y << extra_yaml << "sockets:\n";
  for (const auto& s : sockets) {
    y << "  - cid: " << s.cid << "\n"
      << "    product_id: pbtestpid\n"
      << "    secret: " << s.secret_hex << "\n"
      << "    name: Socket " << s.cid << "\n"
      << "    location: lab\n";
    if (opts_.socket_yaml)
      for (size_t i = 0; i < roster_.size(); ++i)
        if (roster_[i].cid == s.cid) y << opts_.socket_yaml(i);
  }
  return y.str();
}

void Scenario::write_config(const std::vector<RosterSocket>& sockets, const std::string& extra_yaml) {
  const auto tmp = config_path().string() + ".tmp";
  std::ofstream(tmp) << config_text(sockets, extra_yaml);
  std::filesystem::rename(tmp, config_path());
}

void Scenario::start_daemon() {
  daemon_ = std::make_unique<test::Process>(
      std::vector<std::string>{test::binary("plugbridged").string(), "--config", config_path().string()},
      opts_.daemon_env);
  ++daemon_starts_;
  if (!daemon_->wait_for_stderr(std::regex("listening for sockets"), 15s))
    throw std::runtime_error("plugbridged did not start:\n" + daemon_->describe());
}

void Scenario::wait_uplink_synced() {
  for (const auto& s : roster_) {
    bool ok = emu_->wait_for(
        "devices/sync/response",
        [&](const nlohmann::json& j) {
          return j.value("param", nlohmann::json::object()).value("cid", "") == s.cid;
        },
        20s);
    if (!ok) throw std::runtime_error("no devices/sync for " + s.cid + ":\n" + daemon_->describe());
  }
}

void Scenario::start_sim(size_t count, std::vector<std::string> extra_args) {
  std::vector<std::string> argv{
      test::binary("plugsim").string(),         "--config", sim_config_path().string(), "--gateway",
      "127.0.0.1:" + std::to_string(lan_port_), "--count",  std::to_string(count),      "--state-dir",
      (dir_.path() / "sim-state").string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  sim_ = std::make_unique<test::Process>(argv);
}

void Scenario::wait_energy_baselines(size_t count) {
  const auto have_all = [&] {
    std::set<std::string> have;
    for (const auto& st : store::Store(db_path().string(), true).energy_states()) have.insert(st.cid);
    for (size_t i = 0; i < count; ++i)
      if (!have.count(roster_.at(i).cid)) return false;
    return true;
  };
  if (!test::wait_until(have_all, 20s))
    throw std::runtime_error("no first reading stored for every socket:\n" + daemon_->describe());
}

void Scenario::wait_sessions(size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const auto& c = roster_.at(i).cid;
    bool ok = sim_->wait_for_stdout_line(
        [&](const std::string& line) {
          auto j = nlohmann::json::parse(line, nullptr, false);
          return !j.is_discarded() && j.value("ev", "") == "session_up" && j.value("cid", "") == c;
        },
        20s);
    if (!ok)
      throw std::runtime_error("no session for " + c + ":\n" + sim_->describe() + "\n" + daemon_->describe());
  }
}

std::optional<nlohmann::json> Scenario::command_response(const std::string& request_id,
                                                         std::chrono::milliseconds deadline) {
  std::optional<nlohmann::json> found;
  emu_->wait_for(
      "commands/response",
      [&](const nlohmann::json& j) {
        if (j.value("request_id", "") != request_id) return false;
        found = j;
        return true;
      },
      deadline);
  return found;
}

int Scenario::command_code(const std::string& cid, int dp, const std::string& value_json,
                           const std::string& request_id) {
  emu_->send_command(cid, dp, value_json, request_id);
  auto r = command_response(request_id, 10s);
  if (!r) return -1;
  return (*r)["param"].value("code", -1);
}

std::vector<nlohmann::json> Scenario::reports(const std::string& cid, int dp) const {
  std::vector<nlohmann::json> out;
  for (const auto& j : emu_->seen("properties/report")) {
    const auto& p = j["param"];
    if (p.value("cid", "") == cid && p.value("id", "") == std::to_string(dp)) out.push_back(j);
  }
  return out;
}

std::multiset<uint32_t> stored_event_seqs(const store::Store& db, const std::string& cid, uint32_t boot) {
  std::multiset<uint32_t> stored;
  for (const auto& e : db.events(cid, 0, INT64_MAX))
    if (e.boot == boot && e.seq) stored.insert(*e.seq);
  return stored;
}

std::string unstored_acked_events(Scenario& sc, size_t sockets) {
  const auto acked = highest_acked(sc.sim());
  if (acked.size() != sockets)
    return std::to_string(acked.size()) + " socket boots acked, expected " + std::to_string(sockets);
  store::Store db(sc.db_path().string(), true);
  std::map<std::pair<std::string, uint32_t>, std::multiset<uint32_t>> stored;
  size_t checked = 0;
  for (const char* ev : {"relay", "trip"}) {
    for (const auto& e : sim_events(sc.sim(), ev)) {
      const std::pair<std::string, uint32_t> key{e["cid"].get<std::string>(), e["boot"].get<uint32_t>()};
      const uint32_t seq = e["seq"].get<uint32_t>();
      const auto a = acked.find(key);
      if (a == acked.end() || seq > a->second) continue;  // not acked: the socket still has it
      if (stored.count(key) == 0) stored[key] = stored_event_seqs(db, key.first, key.second);
      if (stored[key].count(seq) != 1)
        return key.first + " " + ev + " event seq " + std::to_string(seq) + " (acked up to " +
               std::to_string(a->second) + ") stored " + std::to_string(stored[key].count(seq)) + " times";
      ++checked;
    }
  }
  return checked > 0 ? "" : "no acked socket event to check";
}

std::string uncommitted_acked_records(Scenario& sc, size_t sockets) {
  const auto acked = highest_acked(sc.sim());
  if (acked.size() != sockets)
    return std::to_string(acked.size()) + " socket boots acked, expected " + std::to_string(sockets);
  store::Store db(sc.db_path().string(), true);
  for (const auto& [key, max_seq] : acked)
    if (const uint32_t committed = db.last_seq(key.first, key.second); committed < max_seq)
      return key.first + " acked up to seq " + std::to_string(max_seq) + ", committed up to " +
             std::to_string(committed);
  return "";
}

std::string energy_mismatch(const store::Store& db, const std::string& cid, int64_t first_mwh) {
  std::optional<store::EnergyStateRow> state;
  for (const auto& st : db.energy_states())
    if (st.cid == cid) state = st;
  if (!state) return cid + ": no energy state";
  int64_t samples = 0;
  for (const auto& s : db.samples(cid, INT64_MIN, INT64_MAX)) samples += s.energy_mwh;
  const int64_t buckets = energy::all_time_total(db, cid);
  const int64_t first = static_cast<int64_t>(state->energy_mwh) - state->total_mwh;
  std::ostringstream why;
  if (samples != state->total_mwh)
    why << cid << ": samples hold " << samples << " mWh, the energy state " << state->total_mwh << "; ";
  if (buckets != state->total_mwh)
    why << cid << ": the buckets hold " << buckets << " mWh, the energy state " << state->total_mwh << "; ";
  if (state->total_mwh <= 0) why << cid << ": no energy counted; ";
  if (first < 0 || first > first_mwh)
    why << cid << ": the counter is at " << state->energy_mwh << " mWh but " << state->total_mwh
        << " mWh were counted: " << first << " mWh before the first reading (at most " << first_mwh
        << " expected): energy lost";
  return why.str();
}

std::vector<nlohmann::json> sim_events(const test::Process& sim, const std::string& ev) {
  std::vector<nlohmann::json> out;
  for (const auto& line : sim.stdout_lines()) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("ev", "") == ev) out.push_back(std::move(j));
  }
  return out;
}

std::map<std::pair<std::string, uint32_t>, uint32_t> highest_acked(const test::Process& sim) {
  std::map<std::pair<std::string, uint32_t>, uint32_t> acked;
  for (const auto& e : sim_events(sim, "acked")) {
    auto key = std::make_pair(e["cid"].get<std::string>(), e["boot"].get<uint32_t>());
    acked[key] = std::max(acked[key], e["seq"].get<uint32_t>());
  }
  return acked;
}

CliRun cli(const Scenario& sc, std::vector<std::string> args) {
  std::ostringstream out, err;
  cli::Terminal t{out, err};
  args.insert(args.begin(), {"--config", sc.config_path().string()});
  int code = cli::run(args, t);
  return {code, out.str(), err.str()};
}

}  // namespace pb::itest
