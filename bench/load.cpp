// pb-bench-load: the load benchmark. Brings up mosquitto + the Tuya edge emulator, plugbridged
// with N sockets and plugsim running them (one reading per second each), waits until every socket
// has a session, then measures over a window: committed readings/s, reading→commit latency (from
// plugsim: reading taken → gateway's Ack), command round trip (cloud-side MQTT client → commands/
// response code 0), daemon CPU and peak RSS. Prints one table with each figure against its target.
// Everything runs on 127.0.0.1.
#include <mqtt/async_client.h>
#include <sqlite3.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "plugbridge/cli/control_client.hpp"
#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/store/store.hpp"
#include "support/testsupport.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace test = pb::test;
namespace store = pb::store;
namespace energy = pb::energy;

constexpr const char* kGatewayId = "gw-bench";
constexpr const char* kUsername = "bench-vendor";

struct Options {
  size_t sockets = 1000;
  double seconds = 60;
  double warmup_s = 5;
  // Commands in the storage window: 0.5/s over 1 000 sockets is 43 switchings per socket-day (an
  // automation switching every socket every half hour). The burst after it stresses the command
  // path: its round trip is the figure, and its disk bytes give the cost of one command.
  double command_rate = 0.5;
  double burst_rate = 5;
  double burst_seconds = 30;
  uint32_t reading_interval_ms = 1000;
  double session_timeout_s = 180;
  bool strict = false;
  bool broker_nodelay = false;
  std::string sim_link;  // plugsim --link (empty: plugsim's default)
  std::string json_out;
  std::string daemon_yaml;  // top-level YAML appended to plugbridged's configuration
  int max_handshakes = 0;   // plugbridged's lan.max_handshakes (0: its default)
  double prefill_days = 0;
  uint32_t commit_interval_ms = 60'000;  // plugbridged's history.commit_interval_ms
  uint32_t raw_resolution_s = 60;        // plugbridged's history.raw_resolution_s
  // After the window: plugbridged restarted, every socket reconnecting at once; the time until all
  // are back is the figure.
  bool handshake_storm = false;
};

void progress(const std::string& msg) {
  std::cerr << "[bench] " << msg << std::endl;
}

std::string random_hex(std::mt19937_64& rng, size_t bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rng() & 0xff);
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15).
double cpu_seconds(int pid) {
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Field 3 (state) is the first after the name; utime is field 14.
  for (int i = 3; i <= 13; ++i) in >> field;
  in >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A "Vm...:" line of /proc/PID/status in MB.
double status_mb(int pid, const std::string& key) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream v(line.substr(key.size() + 1));
      double kb = 0;
      v >> kb;
      return kb / 1024.0;
    }
  }
  return 0;
}

std::string loadavg() {
  std::string s = read_text("/proc/loadavg");
  std::istringstream in(s);
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// One integer from a query on a read-only connection (WAL lets it read while the daemon writes).
int64_t query_int(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    const std::string err = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error("open " + db_path.string() + ": " + err);
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  const std::string err = sqlite3_errmsg(db);
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (n < 0) throw std::runtime_error(sql + ": " + err);
  return n;
}

int64_t rolled_up_ms(const std::filesystem::path& db_path) {
  return query_int(db_path,
                   "SELECT coalesce((SELECT value FROM history_marks WHERE name = 'rolled_up_ms'), 0)");
}

// The database's size as SQLite sees it (pages in use or free, the WAL's newer pages included).
int64_t db_bytes(const std::filesystem::path& db_path) {
  return query_int(db_path, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()");
}

// Bytes the process caused to be written to storage (/proc/PID/io write_bytes), -1 if unknown.
int64_t disk_write_bytes(int pid) {
  std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/io"));
  std::string key;
  int64_t value = 0;
  while (in >> key >> value)
    if (key == "write_bytes:") return value;
  return -1;
}

// Nearest-rank percentile of a sample (sorted in place), 0 when empty.
double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<size_t>(std::max(1.0, std::ceil(q * static_cast<double>(v.size()))));
  return v[std::min(rank, v.size()) - 1];
}

// The cloud side of commands: publishes DP 1 commands as the platform and times each until its
// commands/response arrives.
class Commander {
 public:
  Commander(const test::MosquittoBroker& broker, const std::string& gateway_id)
      : prefix_("gateway_id/" + gateway_id + "/"),
        client_("ssl://127.0.0.1:" + std::to_string(broker.port()), "pb-bench-commander") {
    client_.set_message_callback([this](mqtt::const_message_ptr msg) { on_message(msg); });
    auto ssl = mqtt::ssl_options_builder()
                   .trust_store(broker.ca_file().string())
                   .enable_server_cert_auth(true)
                   .verify(true)
                   .finalize();
    auto opts = mqtt::connect_options_builder()
                    .mqtt_version(MQTTVERSION_3_1_1)
                    .user_name(broker.admin_user())
                    .password(broker.admin_password())
                    .ssl(std::move(ssl))
                    .clean_session(true)
                    .keep_alive_interval(std::chrono::seconds(20))
                    .connect_timeout(std::chrono::seconds(10))
                    .finalize();
    client_.connect(opts)->wait();
    client_.subscribe(prefix_ + "commands/response", 1)->wait();
  }
  ~Commander() {
    try {
      client_.disconnect()->wait_for(std::chrono::seconds(2));
    } catch (const mqtt::exception&) {
    }
  }

  void send(const std::string& cid, bool on) {
    const std::string rid = "bench-" + std::to_string(next_id_++);
    const json cmd{{"t", std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count()},
                   {"cid", cid},
                   {"request_id", rid},
                   {"param", {{"id", 1}, {"value", on}}}};
    const std::string text = cmd.dump();
    {
      std::lock_guard lock(mutex_);
      pending_[rid] = Clock::now();
      ++sent_;
    }
    client_.publish(prefix_ + "commands", text.data(), text.size(), 1, false);
  }

  struct Result {
    size_t sent = 0, ok = 0, failed = 0;
    std::vector<double> rtt_ms;  // code-0 answers only
  };
  Result result() {
    std::lock_guard lock(mutex_);
    return {sent_, ok_, failed_, rtt_ms_};
  }
  size_t outstanding() {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }

 private:
  void on_message(const mqtt::const_message_ptr& msg) {
    const auto now = Clock::now();
    const auto j = json::parse(msg->to_string(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;
    const std::string rid = j.value("request_id", "");
    const int code = j.value("param", json::object()).value("code", -1);
    std::lock_guard lock(mutex_);
    auto it = pending_.find(rid);
    if (it == pending_.end()) return;
    if (code == 0) {
      ++ok_;
      rtt_ms_.push_back(std::chrono::duration<double, std::milli>(now - it->second).count());
    } else {
      ++failed_;
    }
    pending_.erase(it);
  }

  std::string prefix_;
  mqtt::async_client client_;
  std::atomic<uint64_t> next_id_{1};
  std::mutex mutex_;
  std::map<std::string, Clock::time_point> pending_;
  size_t sent_ = 0, ok_ = 0, failed_ = 0;
  std::vector<double> rtt_ms_;
};

// Asks plugsim for a stats line and returns it (the n-th stats line of the run).
class SimStats {
 public:
  explicit SimStats(test::Process& sim) : sim_(sim) {}
  json get() {
    sim_.write_stdin("stats");
    const size_t want = ++requested_;
    size_t n = 0;
    json out;
    const bool ok = sim_.wait_for_stdout_line(
        [&](const std::string& line) {
          if (line.find(R"("ev":"stats")") == std::string::npos || ++n < want) return false;
          out = json::parse(line, nullptr, false);
          return true;
        },
        15s);
    if (!ok || !out.is_object())
      throw std::runtime_error("plugsim did not answer 'stats':\n" + sim_.describe());
    return out;
  }

 private:
  test::Process& sim_;
  size_t requested_ = 0;
};

// Paho's worker threads are detached and wind down after the last client is gone; let them finish
// so their OpenSSL thread state is freed before exit (LeakSanitizer).
void wait_for_paho_threads(std::chrono::milliseconds deadline) {
  test::wait_until(
      [] {
        std::error_code ec;
        const auto n = std::distance(std::filesystem::directory_iterator("/proc/self/task", ec),
                                     std::filesystem::directory_iterator());
        return ec || n <= 1;
      },
      deadline);
}

struct Row {
  std::string what;
  std::string value;
  std::string target;
  bool pass;
};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// History written before the daemon starts, so the tables have the page layout of a database in
// use (a fresh one packs many sockets' rows into each page): samples at the raw resolution for the
// whole span, rolled up into buckets and hours up to the start of the current roll-up period, as
// the daemon leaves them (the period's samples wait for its roll-up).
// No energy state, so the accountant starts from plugsim's own counters.
void prefill(const std::string& db_path, const std::vector<std::string>& cids, double days,
             uint32_t resolution_s) {
  store::Store db(db_path, store::StoreOptions{.synchronous = "OFF"});
  const int64_t now = unix_now_ms();
  const int64_t width = int64_t{resolution_s} * 1000;
  const int64_t end = now - now % width;
  const auto count = static_cast<int64_t>(days * 86'400'000 / static_cast<double>(width));
  store::EnergyUpdate e;
  for (int64_t k = count; k >= 1; --k) {  // in time order, all sockets per sample, as the daemon
    for (const auto& cid : cids) {
      store::BucketUpdate u;
      u.cid = cid;
      u.start_ms = end - k * width;
      u.samples = resolution_s;
      u.energy_mwh = 28 * u.samples;
      u.power_sum_mw = u.samples * 100'000;
      u.power_min_mw = 90'000;
      u.power_max_mw = 110'000;
      u.voltage_min_mv = 228'000;
      u.voltage_max_mv = 232'000;
      u.current_max_ua = 480'000;
      e.samples.push_back(u);
    }
    if (e.samples.size() >= 50'000 || k == 1) {
      db.commit({}, e);
      e.samples.clear();
    }
  }
  db.roll_up(energy::floor_to(now, energy::roll_up_period_ms(width)));
}

// What one roll-up writes: run on the database the daemon left (the samples of the current
// roll-up period: prefilled up to the window, then the daemon's), write_bytes of this process
// around it and the checkpoint that follows.
struct RollUp {
  int64_t written = -1, growth = 0;
};
RollUp measure_roll_up(const std::filesystem::path& db_path, int64_t period_ms) {
  store::Store db(db_path.string());
  const int64_t before_pages = db_bytes(db_path);
  const int64_t before = disk_write_bytes(static_cast<int>(::getpid()));
  const int64_t now = unix_now_ms();
  db.roll_up(energy::floor_to(now, period_ms) + period_ms);  // every sample written, to the period's end
  db.checkpoint();
  const int64_t after = disk_write_bytes(static_cast<int>(::getpid()));
  return {before < 0 ? -1 : after - before, db_bytes(db_path) - before_pages};
}

int run(const Options& o) {
  std::mt19937_64 rng{std::random_device{}()};
  test::TempDir dir;
  const auto config_path = dir.path() / "plugbridge.yaml";
  const auto db_path = dir.path() / "plugbridge.db";
  const auto control_path = dir.path() / "control.sock";
  progress("load average at start: " + loadavg());

  progress("starting mosquitto and the Tuya edge emulator");
  test::MosquittoBroker broker(kGatewayId, kUsername);
  if (o.broker_nodelay) {
    broker.stop();
    std::ofstream(broker.dir() / "mosquitto.conf", std::ios::app) << "set_tcp_nodelay true\n";
    broker.start();
  }
  test::TuyaEmulator emu(broker, kGatewayId);

  std::vector<std::string> cids;
  std::ostringstream y;
  const uint16_t lan_port = test::free_tcp_port();
  y << "gateway_id: " << kGatewayId << "\n"
    << "uplink:\n"
    << "  host: localhost\n"
    << "  port: " << broker.port() << "\n"
    << "  ca_file: " << broker.ca_file().string() << "\n"
    << "  username: " << kUsername << "\n"
    << "  command_timeout_s: 5\n"
    << "lan:\n"
    << "  listen_address: 127.0.0.1\n"
    << "  port: " << lan_port
    << "\n"
    // Every simulated socket connects from 127.0.0.1: no per-address limits.
    << "  max_handshakes_per_address: 0\n"
    << "  new_connections_per_address_per_s: 0\n"
    << (o.max_handshakes > 0 ? "  max_handshakes: " + std::to_string(o.max_handshakes) + "\n" : "")
    << "database: " << db_path.string() << "\n"
    << "heartbeat_s: 30\n"
    << "log_level: info\n"
    << "control_socket: " << control_path.string() << "\n"
    << "history: {commit_interval_ms: " << o.commit_interval_ms
    << ", raw_resolution_s: " << o.raw_resolution_s << "}\n"
    << o.daemon_yaml << (o.daemon_yaml.empty() || o.daemon_yaml.back() == '\n' ? "" : "\n") << "sockets:\n";
  for (size_t i = 0; i < o.sockets; ++i) {
    char cid[32];
    std::snprintf(cid, sizeof cid, "bench-%04zu", i + 1);
    cids.emplace_back(cid);
    y << "  - cid: " << cid << "\n"
      << "    product_id: pbbenchpid\n"
      << "    secret: " << random_hex(rng, 16) << "\n"
      << "    name: Bench " << cid << "\n"
      << "    location: bench\n";
  }
  std::ofstream(config_path) << y.str();
  if (o.prefill_days > 0) {
    progress("writing " + fmt("%.1f", o.prefill_days) + " days of history for every socket");
    prefill(db_path.string(), cids, o.prefill_days, o.raw_resolution_s);
  }

  progress("starting plugbridged with " + std::to_string(o.sockets) + " sockets in the roster");
  test::Process daemon({test::binary("plugbridged").string(), "--config", config_path.string()});
  if (!daemon.wait_for_stderr(std::regex("listening for sockets"), 30s))
    throw std::runtime_error("plugbridged did not start:\n" + daemon.describe());

  // Every roster socket synced, so reports flow during the window as in production.
  size_t synced = 0;
  const bool all_synced = emu.process().wait_for_stdout_line(
      [&](const std::string& line) {
        if (line.find("devices/sync/response") == std::string::npos ||
            line.find(R"("dir":"out")") == std::string::npos)
          return false;
        const auto j = json::parse(line, nullptr, false);
        if (!j.is_discarded() && j["payload"]["param"].value("code", -1) == 0) ++synced;
        return synced >= o.sockets;
      },
      std::chrono::seconds(60 + o.sockets / 20));
  if (!all_synced)
    throw std::runtime_error("only " + std::to_string(synced) + " sockets synced:\n" + daemon.describe());

  progress("connecting the cloud-side command client");
  Commander commander(broker, kGatewayId);

  progress("starting plugsim");
  std::vector<std::string> sim_argv{test::binary("plugsim").string(), "--config", config_path.string(),
                                    "--gateway", "127.0.0.1:" + std::to_string(lan_port), "--count",
                                    std::to_string(o.sockets), "--reading-interval-ms",
                                    std::to_string(o.reading_interval_ms), "--no-ack-events",
                                    // Loads under the default 5 A limit: a switched-on socket that
                                    // tripped at once would add two events to every third command.
                                    "--watts", "60,800,5", "--log-level", "warning"};
  if (!o.sim_link.empty()) sim_argv.insert(sim_argv.end(), {"--link", o.sim_link});
  test::Process sim(sim_argv);
  SimStats stats(sim);
  const auto sessions_start = Clock::now();
  json st;
  for (;;) {
    st = stats.get();
    if (st.value("sessions_up", 0u) >= o.sockets) break;
    if (Clock::now() - sessions_start > std::chrono::duration<double>(o.session_timeout_s))
      throw std::runtime_error("only " + std::to_string(st.value("sessions_up", 0u)) + " of " +
                               std::to_string(o.sockets) + " sessions up:\n" + sim.describe() + "\n" +
                               daemon.describe());
    std::this_thread::sleep_for(500ms);  // polling cadence, not synchronisation
  }
  const double connect_s = std::chrono::duration<double>(Clock::now() - sessions_start).count();
  progress("all " + std::to_string(o.sockets) + " sessions up after " + fmt("%.1f", connect_s) +
           " s; warming up " + fmt("%.0f", o.warmup_s) + " s");
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup_s));

  // The daemon's storage counters (control status): commits and readings committed.
  auto storage = [&] {
    const json r =
        pb::cli::control_request(control_path.string(), {{"cmd", "status"}, {"sockets", false}}, 10s);
    return r.value("storage", json::object());
  };
  // The window runs from one commit to another, so it holds whole commit intervals: readings wait
  // up to one in memory, and a window cut through one would miscount the bytes per reading.
  auto after_next_commit = [&](const std::string& what) {
    const uint64_t commits = storage().value("commits", 0ull);
    const auto deadline = Clock::now() + std::chrono::milliseconds(2 * o.commit_interval_ms + 10'000);
    for (;;) {
      const json now = storage();
      if (now.value("commits", 0ull) > commits) return now;
      if (Clock::now() > deadline) throw std::runtime_error("no commit " + what + ":\n" + daemon.describe());
      std::this_thread::sleep_for(50ms);  // polling cadence, not synchronisation
    }
  };
  progress("waiting for a commit to start the window at");
  const json storage_before = after_next_commit("to start the window at");

  // Measurement window.
  progress("measuring for " + fmt("%.0f", o.seconds) + " s and up to the next commit (load average " +
           loadavg() + ")");
  const std::string load_before = loadavg();
  const size_t sim_lines_before = sim.stdout_lines().size();
  const auto dropped_before = stats.get().value("dropped", 0u);
  sim.write_stdin("stats reset");
  const uint64_t readings_before = storage_before.value("readings_committed", 0ull);
  const int64_t mark_before = rolled_up_ms(db_path);
  const int64_t db_bytes_before = db_bytes(db_path);
  const int64_t written_before = disk_write_bytes(daemon.pid());
  const double cpu_before = cpu_seconds(daemon.pid());
  const double sim_cpu_before = cpu_seconds(sim.pid());
  const auto t0 = Clock::now();

  std::uniform_int_distribution<size_t> pick(0, o.sockets - 1);
  std::vector<bool> relay_on(o.sockets, false);
  // Commands to random sockets at `rate` for `seconds` from `from`, toggling their relays.
  const auto send_commands = [&](Clock::time_point from, double rate, double seconds) {
    const auto span = std::chrono::duration<double>(seconds);
    if (rate > 0) {
      for (size_t n = 0;; ++n) {
        const auto at = from + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(n) / rate));
        if (at - from >= span) break;
        std::this_thread::sleep_until(at);  // command pacing
        const size_t i = pick(rng);
        relay_on[i] = !relay_on[i];
        commander.send(cids[i], relay_on[i]);
      }
    }
    std::this_thread::sleep_until(from + std::chrono::duration_cast<Clock::duration>(span));
  };
  send_commands(t0, o.command_rate, o.seconds);
  const json end = stats.get();  // acks and their latency over the window itself
  const double sim_window = std::chrono::duration<double>(Clock::now() - t0).count();
  const json storage_after = after_next_commit("to end the window at");

  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu_after = cpu_seconds(daemon.pid());
  const double sim_cpu_after = cpu_seconds(sim.pid());
  const uint64_t readings_after = storage_after.value("readings_committed", 0ull);
  const uint64_t events_in_window =
      storage_after.value("events_committed", 0ull) - storage_before.value("events_committed", 0ull);
  const uint64_t commits_in_window =
      storage_after.value("commits", 0ull) - storage_before.value("commits", 0ull);
  const int64_t written_after = disk_write_bytes(daemon.pid());
  const int64_t db_bytes_after = db_bytes(db_path);
  const int64_t mark_after = rolled_up_ms(db_path);
  const std::string load_after = loadavg();
  test::wait_until([&] { return commander.outstanding() == 0; }, 10s);
  const auto window_cmd = commander.result();

  // The command burst: round trips under load, and what the commands add to the disk writes over
  // the readings' own rate of the window.
  double burst_bytes_per_command = -1;
  uint64_t burst_commits = 0;
  if (o.burst_rate > 0 && o.burst_seconds > 0) {
    progress("command burst: " + fmt("%.1f", o.burst_rate) + "/s for " + fmt("%.0f", o.burst_seconds) + " s");
    const json burst_storage_before = storage();
    const int64_t burst_written_before = disk_write_bytes(daemon.pid());
    const auto b0 = Clock::now();
    send_commands(b0, o.burst_rate, o.burst_seconds);
    test::wait_until([&] { return commander.outstanding() == 0; }, 10s);
    const double burst_s = std::chrono::duration<double>(Clock::now() - b0).count();
    const int64_t burst_written = disk_write_bytes(daemon.pid()) - burst_written_before;
    burst_commits = storage().value("commits", 0ull) - burst_storage_before.value("commits", 0ull);
    const size_t burst_sent = commander.result().sent - window_cmd.sent;
    const double readings_rate = static_cast<double>(written_after - written_before) / elapsed;
    if (burst_written_before >= 0 && burst_sent > 0)
      burst_bytes_per_command = std::max(0.0, static_cast<double>(burst_written) - readings_rate * burst_s) /
                                static_cast<double>(burst_sent);
  }
  const auto all_cmd = commander.result();
  // The round trip of the burst's commands (or of the window's, without a burst).
  Commander::Result cmd = all_cmd;
  if (all_cmd.sent > window_cmd.sent) {
    cmd.sent -= window_cmd.sent;
    cmd.ok -= window_cmd.ok;
    cmd.failed -= window_cmd.failed;
    cmd.rtt_ms.erase(cmd.rtt_ms.begin(),
                     cmd.rtt_ms.begin() + static_cast<std::ptrdiff_t>(window_cmd.rtt_ms.size()));
  }
  std::vector<double> window_rtt = window_cmd.rtt_ms;

  const double peak_rss_mb = status_mb(daemon.pid(), "VmHWM");
  const double rss_mb = status_mb(daemon.pid(), "VmRSS");
  size_t disconnects = 0;
  const auto lines = sim.stdout_lines();
  for (size_t i = sim_lines_before; i < lines.size(); ++i)
    disconnects += lines[i].find(R"("ev":"disconnected")") != std::string::npos ? 1 : 0;

  // The storm: plugbridged stops (SIGTERM, as a package upgrade restarts it) while every socket is
  // up, and starts again; each socket reconnects with its backoff.
  std::optional<int> daemon_rc;
  double storm_s = -1;
  std::unique_ptr<test::Process> restarted;
  if (o.handshake_storm) {
    progress("handshake storm: restarting plugbridged under " + std::to_string(o.sockets) + " sockets");
    daemon.signal(SIGTERM);
    daemon_rc = daemon.wait_exit(30s);
    for (;;) {  // every session noticed the restart
      if (stats.get().value("sessions_up", o.sockets) == 0) break;
      std::this_thread::sleep_for(100ms);  // polling cadence
    }
    restarted = std::make_unique<test::Process>(
        std::vector<std::string>{test::binary("plugbridged").string(), "--config", config_path.string()});
    if (!restarted->wait_for_stderr(std::regex("listening for sockets"), 60s))
      throw std::runtime_error("plugbridged did not restart:\n" + restarted->describe());
    const auto storm_start = Clock::now();
    for (;;) {
      if (stats.get().value("sessions_up", 0u) >= o.sockets) break;
      if (Clock::now() - storm_start > std::chrono::duration<double>(o.session_timeout_s))
        throw std::runtime_error(
            "after the restart only " + std::to_string(stats.get().value("sessions_up", 0u)) + " of " +
            std::to_string(o.sockets) + " sessions came back:\n" + restarted->describe());
      std::this_thread::sleep_for(100ms);  // polling cadence, not synchronisation
    }
    storm_s = std::chrono::duration<double>(Clock::now() - storm_start).count();
    progress("all " + std::to_string(o.sockets) + " sessions back " + fmt("%.1f", storm_s) +
             " s after plugbridged listened again");
  }

  progress("stopping");
  sim.signal(SIGTERM);
  sim.wait_exit(10s);
  test::Process& last = restarted ? *restarted : daemon;
  last.signal(SIGTERM);
  if (const auto rc = last.wait_exit(30s); !daemon_rc || *daemon_rc == 0) daemon_rc = rc;
  // One roll-up of a period's samples, unless the window had one: its bytes shared out over the
  // period's readings.
  const int64_t roll_period_ms = energy::roll_up_period_ms(int64_t{o.raw_resolution_s} * 1000);
  const bool rolled_in_window = mark_after != mark_before;
  const RollUp roll = rolled_in_window ? RollUp{0, 0} : measure_roll_up(db_path, roll_period_ms);

  // Figures.
  const double expected_rate = static_cast<double>(o.sockets) * 1000.0 / o.reading_interval_ms;
  const double readings_per_s = static_cast<double>(readings_after - readings_before) / elapsed;
  const double acked_per_s = static_cast<double>(end.value("acked", 0ull)) / sim_window;
  const double cpu_pct = (cpu_after - cpu_before) / elapsed * 100.0;
  const double sim_cpu_pct = (sim_cpu_after - sim_cpu_before) / elapsed * 100.0;
  const auto& lat = end["latency_ms"];
  const double commit_p50 = lat.value("p50", 0.0), commit_p99 = lat.value("p99", 0.0);
  std::vector<double> rtt = cmd.rtt_ms;
  const double cmd_p50 = percentile(rtt, 0.50), cmd_p99 = percentile(rtt, 0.99);
  const double cmd_max = rtt.empty() ? 0 : rtt.back();
  const double window_rtt_p50 = percentile(window_rtt, 0.50);
  const double window_rtt_max = window_rtt.empty() ? 0 : window_rtt.back();
  const size_t held = end.value("sessions_up", 0u);
  // Storage: per reading committed in the window (plus the roll-up shared out over its period
  // of readings), and per socket-day at this reading interval.
  const double window_readings =
      static_cast<double>(std::max<int64_t>(static_cast<int64_t>(readings_after - readings_before), 1));
  const double readings_per_period =
      static_cast<double>(o.sockets) * static_cast<double>(roll_period_ms) / o.reading_interval_ms;
  const double roll_written_per_reading = static_cast<double>(roll.written) / readings_per_period;
  const double roll_growth_per_reading = static_cast<double>(roll.growth) / readings_per_period;
  const double written_per_reading =
      written_before < 0 || roll.written < 0
          ? -1.0
          : static_cast<double>(written_after - written_before) / window_readings + roll_written_per_reading;
  const double growth_per_reading =
      static_cast<double>(db_bytes_after - db_bytes_before) / window_readings + roll_growth_per_reading;
  const double readings_per_socket_day = 86'400'000.0 / o.reading_interval_ms;
  const double written_mb_per_socket_day = written_per_reading * readings_per_socket_day / 1e6;
  const double growth_mb_per_socket_month = growth_per_reading * readings_per_socket_day * 30 / 1e6;
  const uint64_t dropped = end.value("dropped", 0u) - dropped_before;

  std::vector<Row> rows{
      {"sockets held (sessions up, disconnects in window)",
       std::to_string(held) + "/" + std::to_string(o.sockets) + ", " + std::to_string(disconnects), "all, 0",
       held == o.sockets && disconnects == 0},
      {"sustained readings committed /s", fmt("%.1f", readings_per_s),
       ">= " + fmt("%.1f", 0.99 * expected_rate), readings_per_s >= 0.99 * expected_rate},
      {"records acked /s", fmt("%.1f", acked_per_s), ">= " + fmt("%.1f", 0.99 * expected_rate),
       acked_per_s >= 0.99 * expected_rate},
      {"record->ack latency p50 (ms)", fmt("%.1f", commit_p50), "-", true},
      {"record->ack latency p99 (ms)", fmt("%.1f", commit_p99), "< 500", commit_p99 < 500.0},
      {"command round trip p50 (ms)", fmt("%.1f", cmd_p50), "-", true},
      {"command round trip p99 (ms)", fmt("%.1f", cmd_p99), "< 50", cmd_p99 < 50.0 && !rtt.empty()},
      {"commands answered code 0", std::to_string(all_cmd.ok) + "/" + std::to_string(all_cmd.sent), "all",
       all_cmd.ok == all_cmd.sent},
      {"daemon CPU (% of one core)", fmt("%.1f", cpu_pct), "< 50", cpu_pct < 50.0},
      {"daemon peak RSS (MB, VmHWM)", fmt("%.1f", peak_rss_mb), "< 100", peak_rss_mb < 100.0},
      {"daemon disk writes per reading (bytes)", fmt("%.1f", written_per_reading), "<= 12",
       written_per_reading >= 0 && written_per_reading <= 12.0},
      {"  = MB written per socket-day", fmt("%.1f", written_mb_per_socket_day), "<= 1",
       written_per_reading >= 0 && written_mb_per_socket_day <= 1.0},
      {"  of which the roll-up (every " + fmt("%.0f", static_cast<double>(roll_period_ms) / 3.6e6) + " h)",
       rolled_in_window ? "in window" : fmt("%.2f", roll_written_per_reading), "-", true},
      {"disk writes per command of the burst (bytes)",
       burst_bytes_per_command < 0 ? "-" : fmt("%.0f", burst_bytes_per_command), "-", true},
      {"database growth per reading (bytes)", fmt("%.2f", growth_per_reading), "-", true},
      {"  = MB per socket per 30 days", fmt("%.1f", growth_mb_per_socket_month), "<= 2",
       growth_mb_per_socket_month <= 2.0},
  };
  if (o.handshake_storm)
    rows.push_back(
        {"handshake storm: all sessions back after a restart (s)", fmt("%.1f", storm_s), "-", true});

  std::printf(
      "\nplugbridge load benchmark: %zu sockets, 1 reading / %u ms each, %.1f s window at %.1f commands/s, "
      "then %.0f s at %.1f commands/s (the round trips)\n",
      o.sockets, o.reading_interval_ms, elapsed, o.command_rate, o.burst_seconds, o.burst_rate);
  std::printf("%-52s %16s %10s  %s\n", "figure", "measured", "target", "");
  bool all_pass = true;
  for (const auto& r : rows) {
    const bool has_target = r.target != "-";
    std::printf("%-52s %16s %10s  %s\n", r.what.c_str(), r.value.c_str(), r.target.c_str(),
                has_target ? (r.pass ? "PASS" : "MISS") : "");
    all_pass = all_pass && r.pass;
  }
  std::printf(
      "\ncontext: records acked in window %llu (p90 %.1f ms, max %.1f ms, mean %.1f ms); "
      "readings dropped by sockets %llu;\n"
      "         command rtt max %.1f ms, failed answers %zu, unanswered %zu; in the window p50 %.1f ms, max "
      "%.1f ms (%zu commands); burst commits %llu;\n"
      "         daemon RSS at end %.1f MB;\n"
      "         %llu commits in the window, %llu events committed (%.1f/s; each event commit writes a few "
      "pages);\n"
      "         plugsim CPU %.1f %% of one core; all sessions up after %.1f s; daemon exit %s;\n"
      "         load average before window %s, after %s (%ld CPUs online)\n",
      static_cast<unsigned long long>(end.value("acked", 0ull)), lat.value("p90", 0.0), lat.value("max", 0.0),
      lat.value("mean", 0.0), static_cast<unsigned long long>(dropped), cmd_max, all_cmd.failed,
      all_cmd.sent - all_cmd.ok - all_cmd.failed, window_rtt_p50, window_rtt_max, window_cmd.sent,
      static_cast<unsigned long long>(burst_commits), rss_mb,
      static_cast<unsigned long long>(commits_in_window), static_cast<unsigned long long>(events_in_window),
      static_cast<double>(events_in_window) / elapsed, sim_cpu_pct, connect_s,
      daemon_rc ? std::to_string(*daemon_rc).c_str() : "timeout", load_before.c_str(), load_after.c_str(),
      ::sysconf(_SC_NPROCESSORS_ONLN));
  std::fflush(stdout);

  if (!o.json_out.empty()) {
    json j{{"sockets", o.sockets},
           {"commit_interval_ms", o.commit_interval_ms},
           {"raw_resolution_s", o.raw_resolution_s},
           {"records_acked_per_s", acked_per_s},
           {"roll_up_write_bytes", roll.written},
           {"roll_up_in_window", rolled_in_window},
           {"roll_up_period_h", static_cast<double>(roll_period_ms) / 3.6e6},
           {"commits_in_window", commits_in_window},
           {"events_committed_per_s", static_cast<double>(events_in_window) / elapsed},
           {"prefill_days", o.prefill_days},
           {"window_s", elapsed},
           {"sessions_held", held},
           {"disconnects", disconnects},
           {"readings_per_s", readings_per_s},
           {"ack_latency_ms", lat},
           {"command_rtt_ms", {{"p50", cmd_p50}, {"p99", cmd_p99}, {"max", cmd_max}}},
           {"commands", {{"sent", all_cmd.sent}, {"ok", all_cmd.ok}, {"failed", all_cmd.failed}}},
           {"window_command_rate", o.command_rate},
           {"window_command_rtt_ms", {{"p50", window_rtt_p50}, {"max", window_rtt_max}}},
           {"burst", {{"rate", o.burst_rate}, {"seconds", o.burst_seconds}, {"commits", burst_commits}}},
           {"disk_write_bytes_per_command", burst_bytes_per_command},
           {"daemon_cpu_pct", cpu_pct},
           {"daemon_peak_rss_mb", peak_rss_mb},
           {"daemon_disk_write_bytes_per_reading", written_per_reading},
           {"db_growth_bytes_per_reading", growth_per_reading},
           {"disk_write_mb_per_socket_day", written_mb_per_socket_day},
           {"db_growth_mb_per_socket_30_days", growth_mb_per_socket_month},
           {"plugsim_cpu_pct", sim_cpu_pct},
           {"handshake_storm_s", storm_s},
           {"loadavg_before", load_before},
           {"loadavg_after", load_after},
           {"pass", all_pass}};
    std::ofstream(o.json_out) << j.dump(2) << "\n";
  }

  // Broken benchmark (nothing measured) always fails; missed targets only with --strict.
  if (readings_after <= readings_before || end.value("acked", 0ull) == 0 ||
      (all_cmd.sent > 0 && all_cmd.ok == 0) || daemon_rc != 0) {
    std::fprintf(stderr,
                 "[bench] FAILED: no readings, acks or command answers measured, or daemon exit != 0\n%s\n",
                 (restarted ? *restarted : daemon).describe().c_str());
    return 1;
  }
  return (o.strict && !all_pass) ? 3 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pb-bench-load: plugbridged under N simulated sockets (see bench/README.md)"};
  Options o;
  app.add_option("--sockets", o.sockets, "simulated sockets")
      ->capture_default_str()
      ->check(CLI::Range(1, 20000));
  app.add_option("--seconds", o.seconds, "measurement window")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--warmup", o.warmup_s, "seconds after all sessions are up before measuring")
      ->capture_default_str();
  app.add_option("--command-rate", o.command_rate, "DP 1 commands per second during the window (0 = none)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--burst-rate", o.burst_rate, "DP 1 commands per second in the burst after the window")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--burst-seconds", o.burst_seconds, "length of the command burst (0 = none)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--reading-interval-ms", o.reading_interval_ms, "per-socket reading interval")
      ->capture_default_str()
      ->check(CLI::Range(50, 60000));
  app.add_option("--session-timeout", o.session_timeout_s,
                 "give up if not all sessions are up after S seconds")
      ->capture_default_str();
  app.add_flag("--broker-nodelay", o.broker_nodelay,
               "mosquitto with set_tcp_nodelay (isolates Nagle delays)");
  app.add_option("--sim-link", o.sim_link,
                 "plugsim --link: direct (asio TLS) or esp-at (default: plugsim's)");
  app.add_flag("--strict", o.strict, "exit 3 if any target is missed");
  app.add_flag("--handshake-storm", o.handshake_storm,
               "after the window, restart plugbridged and time until every socket is back");
  app.add_option("--json", o.json_out, "also write the figures to this file as JSON");
  app.add_option("--commit-interval-ms", o.commit_interval_ms,
                 "plugbridged's history.commit_interval_ms (readings gather this long before a commit)")
      ->capture_default_str()
      ->check(CLI::Range(10, 600'000));
  app.add_option("--raw-resolution-s", o.raw_resolution_s, "plugbridged's history.raw_resolution_s")
      ->capture_default_str()
      ->check(CLI::Range(1, 900));
  app.add_option("--prefill-days", o.prefill_days,
                 "start on a database with this many days of samples, buckets and hours per socket "
                 "(the page layout of a database in use)")
      ->check(CLI::Range(0.0, 400.0));
  app.add_option("--max-handshakes", o.max_handshakes, "plugbridged's lan.max_handshakes (0: its default)");
  app.add_option("--daemon-yaml", o.daemon_yaml,
                 "top-level YAML for plugbridged's configuration, e.g. 'clock: {max_wait_s: 0}' (not "
                 "history: see --commit-interval-ms)");
  CLI11_PARSE(app, argc, argv);

  int rc = 1;
  try {
    rc = run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[bench] error: %s\n", e.what());
    rc = 1;
  }
  wait_for_paho_threads(2s);
  return rc;
}
