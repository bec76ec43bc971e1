// pb-bench-load: the load benchmark. Brings up mosquitto + the Tuya edge emulator, plugbridged
// with N sockets and plugsim running them (one reading per second each), waits until every socket
// has a session, then measures over a window: committed readings/s, reading→commit latency (from
// plugsim: reading taken → gateway's Ack), command round trip (cloud-side MQTT client → commands/
// response code 0), daemon CPU and peak RSS. Prints one table with each figure against its target.
// Everything runs on 127.0.0.1.
#include <MQTTAsync.h>
#include <mqtt/async_client.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pbfw/limits.hpp>
#include <pbfw/proto.hpp>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "plugbridge/cli/control_client.hpp"
#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/store/store.hpp"
#include "support/lan_flood.hpp"
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
  std::string daemon_yaml;         // top-level YAML appended to plugbridged's configuration
  std::string log_level = "info";  // plugbridged's log_level
  std::string daemon_log;          // where plugbridged's log is copied at the end (empty: nowhere)
  int max_handshakes = 0;          // plugbridged's lan.max_handshakes (0: its default)
  double prefill_days = 0;
  // > 0: plugbridged serves its Prometheus metrics, and after the window the daemon's CPU is taken
  // over three phases of `seconds` each: not scraped, scraped every scrape_s, not scraped again.
  double scrape_s = 0;
  uint32_t commit_interval_ms = 60'000;  // plugbridged's history.commit_interval_ms
  uint32_t raw_resolution_s = 60;        // plugbridged's history.raw_resolution_s
  // After the window: plugbridged restarted, every socket reconnecting at once; the time until all
  // are back is the figure.
  bool handshake_storm = false;
  // The mosquitto TLS-PSK baseline after the daemon's part: the same identities and keys, a client
  // per socket (up to baseline_max_clients) publishing a reading frame per reading interval, QoS 1.
  bool baseline = true;
  size_t baseline_max_clients = 10'000;
  size_t baseline_inflight = 2;  // publishes each client keeps in flight at the unbounded rate
  size_t baseline_procs = 4;     // processes the clients are spread over
  // Ingest ceiling: the N sockets at fast_interval_ms, readings committed/s beside what mosquitto
  // acks from N clients publishing as fast as it answers.
  bool ceiling = false;
  // Overload: the N sockets at fast_interval_ms (the peak), then N more at the same rate.
  bool overload = false;
  uint32_t fast_interval_ms = 50;  // plugsim's shortest reading interval
  size_t sim_procs = 2;            // plugsim processes for each N sockets of --ceiling and --overload
  // The LAN attack: this many idle connections against a plugbridged of its own with the default
  // lan: limits, from one address and then from 50, each held for lan_attack_s (0 = none).
  size_t lan_attack = 0;
  double lan_attack_s = 60;
  double lan_attack_reopen_per_s = 1000;  // the attacker reopens what the daemon closed
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

// The mosquitto TLS-PSK baseline: the same sockets' identities and keys on a plain MQTT broker,
// each socket a Paho C client publishing QoS 1 messages of one reading frame's bytes. Its figure is
// PUBACKs received per second: what a broker accepts from the same number of clients.

std::string mosquitto_executable() {
  // /usr/sbin is often not on a non-root PATH.
  for (const char* p : {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"})
    if (::access(p, X_OK) == 0) return p;
  return "mosquitto";
}

struct PskIdentity {
  std::string identity;
  std::string key_hex;
};

// mosquitto with one TLS 1.2 PSK listener on a free loopback port: the sockets' identities and keys,
// the wire contract's PSK suites (as plugbridged's listener), anonymous clients (the PSK is the
// credential), nothing kept on disk, no connection limit.
class PskBroker {
 public:
  explicit PskBroker(const std::vector<PskIdentity>& ids) {
    {
      std::ofstream psk(dir_.path() / "psk");
      for (const auto& id : ids) psk << id.identity << ":" << id.key_hex << "\n";
    }
    // A free port can be taken by someone else before mosquitto binds it: retry with another one.
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = test::free_tcp_port();
      {
        std::ofstream conf(dir_.path() / "mosquitto.conf");
        // As root mosquitto drops to its own user, who may not read the temporary directory.
        if (::geteuid() == 0) conf << "user root\n";
        conf << "allow_anonymous true\n"
             << "persistence false\n"
             << "max_connections -1\n"
             << "connection_messages false\n"
             << "log_dest file " << (dir_.path() / "mosquitto.log").string() << "\n"
             << "log_type error\n"
             << "log_type warning\n"
             << "listener " << port_ << " 127.0.0.1\n"
             << "psk_hint pb-bench\n"
             << "psk_file " << (dir_.path() / "psk").string() << "\n"
             << "tls_version tlsv1.2\n"
             << "ciphers " << pbfw::proto::kPskCipherList << "\n";
      }
      process_ = std::make_unique<test::Process>(
          std::vector<std::string>{mosquitto_executable(), "-c", (dir_.path() / "mosquitto.conf").string()});
      const bool up =
          test::wait_until([this] { return !process_->running() || test::port_accepts(port_); }, 10s);
      if (up && process_->running()) return;
      process_.reset();
    }
    throw std::runtime_error("mosquitto with a PSK listener did not start:\n" + log());
  }
  ~PskBroker() { stop(); }
  PskBroker(const PskBroker&) = delete;
  PskBroker& operator=(const PskBroker&) = delete;

  uint16_t port() const { return port_; }
  int pid() const { return process_ ? process_->pid() : -1; }
  std::string log() const { return read_text((dir_.path() / "mosquitto.log").string()); }
  void stop() {
    if (!process_) return;
    process_->signal(SIGTERM);
    if (!process_->wait_exit(10s)) {
      process_->signal(SIGKILL);
      process_->wait_exit(5s);
    }
    process_.reset();
  }

 private:
  test::TempDir dir_;
  uint16_t port_ = 0;
  std::unique_ptr<test::Process> process_;
};

// One reading frame as a socket sends it (pbfw::proto): the baseline's message body.
std::string reading_frame() {
  namespace proto = pbfw::proto;
  proto::Message m{};
  m.type = proto::MsgType::Reading;
  m.reading = proto::Reading{};
  m.reading.seq = 1;
  m.reading.flags =
      proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid | proto::kMeterOk | proto::kRelayOn;
  m.reading.voltage_mv = 230'000;
  m.reading.current_ua = 275'000;
  m.reading.power_mw = 60'000;
  m.reading.apparent_mva = 63'200;
  m.reading.power_factor_e4 = 9500;
  m.reading.energy_mwh = 1'234'567;
  m.reading.switch_count = 1;
  uint8_t buf[proto::kMaxFrame];
  const size_t n = proto::encode(m, buf, sizeof buf);
  if (n == 0) throw std::logic_error("cannot encode a reading frame");
  return {reinterpret_cast<const char*>(buf), n};
}

// N Paho C (MQTTAsync) clients on a PskBroker, one per identity, MQTT 3.1.1, clean sessions. Paho
// runs every client on its own two threads (send, receive; poll(), so past 1 024 descriptors).
class PskFleet {
 public:
  PskFleet(uint16_t port, const std::vector<PskIdentity>& ids, std::string payload)
      : payload_(std::move(payload)) {
    const std::string uri = "ssl://127.0.0.1:" + std::to_string(port);
    clients_.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      auto c = std::make_unique<Client>();
      c->fleet = this;
      c->index = i;
      c->identity = ids[i].identity;
      c->topic = "bench/" + ids[i].identity + "/reading";
      for (size_t k = 0; k + 1 < ids[i].key_hex.size(); k += 2)
        c->key.push_back(static_cast<unsigned char>(std::stoi(ids[i].key_hex.substr(k, 2), nullptr, 16)));
      MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
      co.MQTTVersion = MQTTVERSION_3_1_1;
      if (MQTTAsync_createWithOptions(&c->handle, uri.c_str(), c->identity.c_str(),
                                      MQTTCLIENT_PERSISTENCE_NONE, nullptr, &co) != MQTTASYNC_SUCCESS)
        throw std::runtime_error("MQTTAsync_createWithOptions failed for " + c->identity);
      MQTTAsync_setCallbacks(c->handle, c.get(), &PskFleet::on_connection_lost, &PskFleet::on_message,
                             nullptr);
      clients_.push_back(std::move(c));
    }
  }
  ~PskFleet() {
    loop_ = false;
    for (auto& c : clients_) {
      if (!c->connected) continue;
      MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
      d.timeout = 1000;
      d.onSuccess = &PskFleet::on_disconnected;
      d.onFailure = &PskFleet::on_disconnect_failed;
      d.context = c.get();
      {
        std::lock_guard lock(mutex_);
        ++disconnecting_;
      }
      if (MQTTAsync_disconnect(c->handle, &d) != MQTTASYNC_SUCCESS) disconnect_done();
    }
    {
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, 30s, [this] { return disconnecting_ == 0; });
    }
    for (auto& c : clients_) MQTTAsync_destroy(&c->handle);
  }
  PskFleet(const PskFleet&) = delete;
  PskFleet& operator=(const PskFleet&) = delete;

  // Connects every client, at most `window` handshakes at a time; returns how many are up.
  size_t connect(std::chrono::milliseconds deadline, size_t window = 256) {
    const auto until = Clock::now() + deadline;
    for (auto& c : clients_) {
      {
        std::unique_lock lock(mutex_);
        if (!cv_.wait_until(lock, until, [&] { return connecting_ < window; })) break;
        ++connecting_;
      }
      MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
      ssl.enableServerCertAuth = 0;
      ssl.verify = 0;
      ssl.disableDefaultTrustStore = 1;
      ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
      ssl.enabledCipherSuites = pbfw::proto::kPskCipherList;
      ssl.ssl_psk_cb = &PskFleet::on_psk;
      ssl.ssl_psk_context = c.get();
      MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer;
      opts.keepAliveInterval = 60;
      opts.cleansession = 1;
      opts.connectTimeout = 60;
      opts.ssl = &ssl;
      opts.onSuccess = &PskFleet::on_connected;
      opts.onFailure = &PskFleet::on_connect_failed;
      opts.context = c.get();
      if (MQTTAsync_connect(c->handle, &opts) != MQTTASYNC_SUCCESS) {
        std::lock_guard lock(mutex_);
        --connecting_;
        ++connect_failed_;
      }
    }
    std::unique_lock lock(mutex_);
    cv_.wait_until(lock, until, [this] { return connecting_ == 0; });
    return connected_;
  }

  // One QoS 1 publish by client i; false if Paho refused it.
  bool publish(size_t i) {
    Client& c = *clients_[i];
    if (!c.connected) return false;
    auto* p = new Pending{&c, Clock::now()};
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = &PskFleet::on_published;
    ro.onFailure = &PskFleet::on_publish_failed;
    ro.context = p;
    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = payload_.data();
    m.payloadlen = static_cast<int>(payload_.size());
    m.qos = 1;
    ++in_flight_;
    ++sent_;
    if (MQTTAsync_sendMessage(c.handle, c.topic.c_str(), &m, &ro) != MQTTASYNC_SUCCESS) {
      delete p;
      ++refused_;
      --sent_;
      finish_one();
      return false;
    }
    return true;
  }

  // Every client publishes one message per `interval`, the clients spread evenly over it, for
  // `seconds` from `from`.
  void run_paced(Clock::time_point from, std::chrono::duration<double> interval, double seconds) {
    const double rate = static_cast<double>(clients_.size()) / interval.count();
    const auto span = std::chrono::duration<double>(seconds);
    for (size_t k = 0;; ++k) {
      const auto at = from + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(static_cast<double>(k) / rate));
      if (at - from >= span) break;
      std::this_thread::sleep_until(at);  // publish pacing
      publish(k % clients_.size());
    }
  }

  // Unbounded: every client keeps `window` publishes in flight, sending the next on each PUBACK,
  // until stop_loop().
  void start_loop(size_t window) {
    loop_ = true;
    for (size_t w = 0; w < window; ++w)
      for (size_t i = 0; i < clients_.size(); ++i) publish(i);
  }
  // Stops the loop and waits until every publish is answered; false at the deadline.
  bool stop_loop(std::chrono::milliseconds deadline) {
    loop_ = false;
    return drain(deadline);
  }
  bool drain(std::chrono::milliseconds deadline) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, [this] { return in_flight_ == 0; });
  }

  struct Counts {
    uint64_t sent = 0, acked = 0, failed = 0, refused = 0;
  };
  Counts counts() const { return {sent_.load(), acked_.load(), failed_.load(), refused_.load()}; }
  size_t connected() {
    std::lock_guard lock(mutex_);
    return connected_;
  }
  size_t connect_failed() {
    std::lock_guard lock(mutex_);
    return connect_failed_;
  }
  size_t connections_lost() const { return lost_.load(); }
  // Publish -> PUBACK times (ms) since the last call.
  std::vector<double> take_latencies() {
    std::lock_guard lock(mutex_);
    std::vector<double> out;
    out.swap(latency_ms_);
    return out;
  }

 private:
  struct Client {
    PskFleet* fleet = nullptr;
    size_t index = 0;
    std::string identity, topic;
    std::vector<unsigned char> key;
    MQTTAsync handle = nullptr;
    std::atomic<bool> connected{false};
  };
  struct Pending {
    Client* client;
    Clock::time_point sent;
  };

  static unsigned on_psk(const char* /*hint*/, char* identity, unsigned max_identity_len, unsigned char* psk,
                         unsigned max_psk_len, void* context) {
    const auto* c = static_cast<Client*>(context);
    if (c->identity.size() + 1 > max_identity_len || c->key.size() > max_psk_len) return 0;
    std::memcpy(identity, c->identity.c_str(), c->identity.size() + 1);
    std::memcpy(psk, c->key.data(), c->key.size());
    return static_cast<unsigned>(c->key.size());
  }
  static void on_connected(void* context, MQTTAsync_successData* /*unused*/) {
    auto* c = static_cast<Client*>(context);
    c->connected = true;
    std::lock_guard lock(c->fleet->mutex_);
    ++c->fleet->connected_;
    --c->fleet->connecting_;
    c->fleet->cv_.notify_all();
  }
  static void on_connect_failed(void* context, MQTTAsync_failureData* /*unused*/) {
    auto* c = static_cast<Client*>(context);
    std::lock_guard lock(c->fleet->mutex_);
    ++c->fleet->connect_failed_;
    --c->fleet->connecting_;
    c->fleet->cv_.notify_all();
  }
  static void on_connection_lost(void* context, char* /*cause*/) {
    auto* c = static_cast<Client*>(context);
    if (c->connected.exchange(false)) ++c->fleet->lost_;
  }
  static int on_message(void* /*context*/, char* topic, int /*len*/, MQTTAsync_message* msg) {
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
  }
  static void on_disconnected(void* context, MQTTAsync_successData* /*unused*/) {
    static_cast<Client*>(context)->fleet->disconnect_done();
  }
  static void on_disconnect_failed(void* context, MQTTAsync_failureData* /*unused*/) {
    static_cast<Client*>(context)->fleet->disconnect_done();
  }
  void disconnect_done() {
    std::lock_guard lock(mutex_);
    --disconnecting_;
    cv_.notify_all();
  }
  static void on_published(void* context, MQTTAsync_successData* /*unused*/) {
    std::unique_ptr<Pending> p(static_cast<Pending*>(context));
    PskFleet& f = *p->client->fleet;
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - p->sent).count();
    ++f.acked_;
    {
      std::lock_guard lock(f.mutex_);
      f.latency_ms_.push_back(ms);
    }
    if (f.loop_) f.publish(p->client->index);
    f.finish_one();
  }
  static void on_publish_failed(void* context, MQTTAsync_failureData* /*unused*/) {
    std::unique_ptr<Pending> p(static_cast<Pending*>(context));
    ++p->client->fleet->failed_;
    p->client->fleet->finish_one();
  }
  void finish_one() {
    if (--in_flight_ == 0) {
      std::lock_guard lock(mutex_);
      cv_.notify_all();
    }
  }

  std::string payload_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::mutex mutex_;
  std::condition_variable cv_;
  size_t connecting_ = 0, connected_ = 0, connect_failed_ = 0, disconnecting_ = 0;
  std::vector<double> latency_ms_;
  std::atomic<bool> loop_{false};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint64_t> sent_{0}, acked_{0}, failed_{0}, refused_{0};
  std::atomic<size_t> lost_{0};
};

// The baseline's client side in a process of its own (pb-bench-load --baseline-client-port): a
// PskFleet on the identities of a file ("identity:hex" lines), answering commands on stdin with one
// JSON line each:
//   paced INTERVAL_MS SECONDS      -> {"ev":"paced", "acked", "failed", "s", "lat_us": [...]}
//   loop INFLIGHT WARMUP SECONDS   -> {"ev":"loop", ...} (as fast as PUBACKs come, after a warm-up)
//   quit
// Paho runs all of a process's clients on one send and one receive thread, so one process is
// bound by a core long before mosquitto is; the bench spreads the clients over a few.
int run_baseline_client(uint16_t port, const std::string& ids_file) {
  std::vector<PskIdentity> ids;
  std::istringstream in(read_text(ids_file));
  std::string line;
  while (std::getline(in, line))
    if (const auto colon = line.find(':'); colon != std::string::npos)
      ids.push_back({line.substr(0, colon), line.substr(colon + 1)});
  const auto emit = [](const json& j) { std::cout << j.dump() << std::endl; };
  size_t up = 0;
  {
    PskFleet fleet(port, ids, reading_frame());
    up = fleet.connect(300s);
    emit({{"ev", "connected"}, {"n", up}, {"failed", fleet.connect_failed()}});
    const auto report = [&](const char* ev, const PskFleet::Counts& k0, const PskFleet::Counts& k1,
                            double s) {
      json lat = json::array();
      for (double ms : fleet.take_latencies()) lat.push_back(static_cast<int64_t>(ms * 1000.0));
      emit({{"ev", ev},
            {"acked", k1.acked - k0.acked},
            {"failed", (k1.failed - k0.failed) + (k1.refused - k0.refused)},
            {"lost", fleet.connections_lost()},
            {"s", s},
            {"lat_us", std::move(lat)}});
    };
    while (std::getline(std::cin, line)) {
      std::istringstream cmd_in(line);
      std::string cmd;
      cmd_in >> cmd;
      if (cmd == "paced") {
        uint32_t interval_ms = 1000;
        double seconds = 0;
        cmd_in >> interval_ms >> seconds;
        fleet.take_latencies();
        const auto k0 = fleet.counts();
        const auto t0 = Clock::now();
        fleet.run_paced(t0, std::chrono::milliseconds(interval_ms), seconds);
        fleet.drain(10s);
        report("paced", k0, fleet.counts(), std::chrono::duration<double>(Clock::now() - t0).count());
      } else if (cmd == "loop") {
        size_t inflight = 1;
        double warmup = 0, seconds = 0;
        cmd_in >> inflight >> warmup >> seconds;
        fleet.start_loop(inflight);
        std::this_thread::sleep_for(std::chrono::duration<double>(warmup));  // the warm-up's length
        fleet.take_latencies();
        const auto k0 = fleet.counts();
        const auto t0 = Clock::now();
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));  // the window's length
        const auto k1 = fleet.counts();
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        fleet.stop_loop(30s);
        report("loop", k0, k1, s);
      } else if (cmd == "quit") {
        break;
      }
    }
  }
  return up > 0 ? 0 : 1;
}

// The baseline's clients, spread over `procs` processes of this program.
class BaselineClients {
 public:
  BaselineClients(uint16_t port, const std::vector<PskIdentity>& ids, size_t procs) {
    procs = std::max<size_t>(1, std::min(procs, ids.size()));
    const auto self = std::filesystem::read_symlink("/proc/self/exe");
    for (size_t p = 0; p < procs; ++p) {
      const auto file = dir_.path() / ("ids-" + std::to_string(p));
      {
        std::ofstream out(file);
        for (size_t i = p; i < ids.size(); i += procs)
          out << ids[i].identity << ":" << ids[i].key_hex << "\n";
      }
      procs_.push_back(std::make_unique<test::Process>(
          std::vector<std::string>{self.string(), "--baseline-client-port", std::to_string(port),
                                   "--baseline-client-ids", file.string()}));
    }
  }
  ~BaselineClients() {
    for (auto& p : procs_) p->write_stdin("quit");
    for (auto& p : procs_)
      if (!p->wait_exit(60s)) p->signal(SIGKILL);
  }
  BaselineClients(const BaselineClients&) = delete;
  BaselineClients& operator=(const BaselineClients&) = delete;

  size_t processes() const { return procs_.size(); }
  // Clients connected over all processes (each reports once it has tried them all).
  size_t wait_connected(std::chrono::milliseconds deadline) {
    size_t n = 0;
    for (auto& p : procs_) {
      const json j = reply(*p, 0, "connected", deadline);
      n += j.value("n", size_t{0});
    }
    return n;
  }
  // Sends a command to every process and sums their answers: acked, failed, lost, s (longest),
  // lat_ms (all samples).
  struct Result {
    uint64_t acked = 0, failed = 0, lost = 0;
    double s = 0;
    std::vector<double> lat_ms;
  };
  Result run(const std::string& command, const std::string& ev, std::chrono::milliseconds deadline) {
    std::vector<size_t> from;
    for (auto& p : procs_) {
      from.push_back(p->stdout_lines().size());
      p->write_stdin(command);
    }
    Result r;
    for (size_t i = 0; i < procs_.size(); ++i) {
      const json j = reply(*procs_[i], from[i], ev, deadline);
      r.acked += j.value("acked", uint64_t{0});
      r.failed += j.value("failed", uint64_t{0});
      r.lost += j.value("lost", uint64_t{0});
      r.s = std::max(r.s, j.value("s", 0.0));
      for (const auto& us : j["lat_us"]) r.lat_ms.push_back(us.get<double>() / 1000.0);
    }
    return r;
  }
  double cpu_seconds_total() const {
    double s = 0;
    for (const auto& p : procs_) s += cpu_seconds(p->pid());
    return s;
  }

 private:
  static json reply(test::Process& p, size_t from, const std::string& ev,
                    std::chrono::milliseconds deadline) {
    json out;
    size_t idx = 0;
    const bool ok = p.wait_for_stdout_line(
        [&](const std::string& l) {
          if (idx++ < from || l.find("\"ev\":\"" + ev + "\"") == std::string::npos) return false;
          out = json::parse(l, nullptr, false);
          return true;
        },
        deadline);
    if (!ok || !out.is_object())
      throw std::runtime_error("baseline client gave no '" + ev + "':\n" + p.describe());
    return out;
  }

  test::TempDir dir_;
  std::vector<std::unique_ptr<test::Process>> procs_;
};

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

// The mosquitto baseline's figures.
struct Baseline {
  bool ran = false;
  size_t clients = 0, connected = 0, procs = 0;
  uint64_t paced_failed = 0, lost = 0;
  double connect_s = 0, paced_s = 0, paced_acked_per_s = 0, paced_p50 = 0, paced_p99 = 0, paced_cpu_pct = 0,
         paced_client_cpu_pct = 0;
  double ceiling_s = 0, ceiling_acked_per_s = 0, ceiling_p50 = 0, ceiling_p99 = 0, ceiling_cpu_pct = 0,
         ceiling_client_cpu_pct = 0;
  double peak_rss_mb = 0;
  std::string error;  // why it did not run to the end
};

// A phase of the ceiling and overload runs: plugsim at the fast reading interval.
struct Phase {
  bool ran = false;
  size_t wanted = 0, up = 0, admitted_dropped = 0;
  double offered = 0, committed_per_s = 0, acked_per_s = 0, elapsed = 0, cpu_pct = 0, sim_cpu_pct = 0,
         rss_mb = 0;
  uint64_t sim_dropped = 0, sim_coarsened = 0;
};

// plugsim running the first `count` sockets of a configuration against the daemon on port.
std::vector<std::string> plugsim_argv(const Options& o, const std::filesystem::path& config, uint16_t port,
                                      size_t count, uint32_t interval_ms) {
  std::vector<std::string> argv{test::binary("plugsim").string(), "--config", config.string(), "--gateway",
                                "127.0.0.1:" + std::to_string(port), "--count", std::to_string(count),
                                "--reading-interval-ms", std::to_string(interval_ms), "--no-ack-events",
                                // Loads under the default 5 A limit: a switched-on socket that
                                // tripped at once would add two events to every third command.
                                "--watts", "60,800,5", "--log-level", "warning"};
  if (!o.sim_link.empty()) argv.insert(argv.end(), {"--link", o.sim_link});
  return argv;
}

// The LAN attack (--lan-attack N): a plugbridged of its own, with the default lan: limits (the
// main run lifts the per-address ones, its sockets all coming from 127.0.0.1) and one roster socket.
// A host opens N connections that never send a byte, reopening those the daemon closes at up to
// --lan-attack-reopen a second, first from one address (127.0.0.2), then from 50 (127.0.1.1-50);
// meanwhile a plugsim runs the roster socket. Figures: how much later its session is up than
// without the attack, and the daemon's lan: log lines a minute while the attack lasts.
struct LanAttack {
  struct Shape {
    std::string sources;
    double connect_s = -1;  // plugsim start -> its session_up, under the attack
    uint64_t attacker_connects = 0;
    size_t lines = 0;  // the daemon's lan: log lines while the attack lasted
    double seconds = 0;
    double lines_per_min() const { return seconds > 0 ? static_cast<double>(lines) * 60.0 / seconds : 0; }
  };
  bool ran = false;
  double clean_s = -1;  // the same without an attack
  std::vector<Shape> shapes;
};

LanAttack run_lan_attack(const Options& o, std::mt19937_64& rng) {
  LanAttack r;
  test::TempDir dir;
  const auto config = dir.path() / "attack.yaml";
  const uint16_t port = test::free_tcp_port();
  std::ofstream(config) << "gateway_id: gw-attack\n"
                        << "uplinks: []\n"
                        << "lan:\n  listen_address: 127.0.0.1\n  port: " << port << "\n"
                        << "database: " << (dir.path() / "attack.db").string() << "\n"
                        << "control_socket: \"\"\n"
                        << "sockets:\n  - cid: attack-probe\n    product_id: pbbenchpid\n    secret: "
                        << random_hex(rng, 16) << "\n";
  test::Process daemon({test::binary("plugbridged").string(), "--config", config.string()});
  if (!daemon.wait_for_stderr(std::regex("listening for sockets"), 30s))
    throw std::runtime_error("plugbridged (LAN attack) did not start:\n" + daemon.describe());
  // Seconds from plugsim's start until its socket's session is up (-1: not within 30 s).
  const auto probe = [&] {
    const auto t0 = Clock::now();
    test::Process sim(plugsim_argv(o, config, port, 1, 1000));
    const bool up = sim.wait_for_stdout_line(
        [](const std::string& line) { return line.find(R"("ev":"session_up")") != std::string::npos; }, 30s);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    sim.signal(SIGTERM);
    sim.wait_exit(10s);
    return up ? s : -1.0;
  };
  progress("LAN attack: the socket alone");
  r.clean_s = probe();
  std::vector<std::string> fifty;
  for (int i = 1; i <= 50; ++i) fifty.push_back("127.0.1." + std::to_string(i));
  for (const auto& sources : {std::vector<std::string>{"127.0.0.2"}, fifty}) {
    LanAttack::Shape sh;
    sh.sources = sources.size() == 1 ? "1 address" : std::to_string(sources.size()) + " addresses";
    progress("LAN attack: " + std::to_string(o.lan_attack) + " idle connections from " + sh.sources +
             " for " + fmt("%.0f", o.lan_attack_s) + " s, the socket connecting meanwhile");
    const size_t lines_before = daemon.stderr_lines().size();
    const auto a0 = Clock::now();
    test::LanFlood flood(port, sources, o.lan_attack, o.lan_attack_reopen_per_s);
    // The attack is in place once the attacker has opened as many connections as it holds.
    test::wait_until([&] { return flood.connects() >= o.lan_attack; }, 30s);
    sh.connect_s = probe();
    std::this_thread::sleep_until(a0 +
                                  std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.lan_attack_s)));  // the attack's length
    sh.seconds = std::chrono::duration<double>(Clock::now() - a0).count();
    sh.attacker_connects = flood.connects();
    sh.lines = daemon.count_stderr_lines("lan:", lines_before);
    flood.stop();
    r.shapes.push_back(sh);
  }
  daemon.signal(SIGTERM);
  daemon.wait_exit(30s);
  r.ran = true;
  return r;
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
  std::vector<PskIdentity> identities;
  // The metrics endpoint (--scrape): a free loopback port, taken a moment before the daemon binds it.
  const uint16_t metrics_port = o.scrape_s > 0 ? test::free_tcp_port() : 0;
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
    << "log_level: " << o.log_level << "\n"
    << "control_socket: " << control_path.string() << "\n"
    << "history: {commit_interval_ms: " << o.commit_interval_ms
    << ", raw_resolution_s: " << o.raw_resolution_s << "}\n"
    << (o.scrape_s > 0 ? "metrics: {listen: \"127.0.0.1:" + std::to_string(metrics_port) + "\"}\n" : "")
    << o.daemon_yaml << (o.daemon_yaml.empty() || o.daemon_yaml.back() == '\n' ? "" : "\n") << "sockets:\n";
  // The overload's second N sockets are in the roster from the start, idle until then.
  const size_t roster_size = o.overload ? 2 * o.sockets : o.sockets;
  std::vector<std::string> entries;
  for (size_t i = 0; i < roster_size; ++i) {
    char cid[32];
    std::snprintf(cid, sizeof cid, "bench-%04zu", i + 1);
    cids.emplace_back(cid);
    identities.push_back({cid, random_hex(rng, 16)});
    entries.push_back(std::string("  - cid: ") + cid + "\n" + "    product_id: pbbenchpid\n" +
                      "    secret: " + identities.back().key_hex + "\n" + "    name: Bench " + cid + "\n" +
                      "    location: bench\n");
  }
  const std::string config_head = y.str();
  // A configuration with the roster sockets [first, last) only: plugsim runs the sockets it lists.
  const auto write_config = [&](const std::filesystem::path& path, size_t first, size_t last) {
    std::ofstream out(path);
    out << config_head;
    for (size_t i = first; i < last; ++i) out << entries[i];
  };
  write_config(config_path, 0, roster_size);
  if (o.prefill_days > 0) {
    progress("writing " + fmt("%.1f", o.prefill_days) + " days of history for every socket");
    prefill(db_path.string(), std::vector<std::string>(cids.begin(), cids.begin() + o.sockets),
            o.prefill_days, o.raw_resolution_s);
  }

  progress("starting plugbridged with " + std::to_string(roster_size) + " sockets in the roster");
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
        return synced >= roster_size;
      },
      std::chrono::seconds(60 + roster_size / 20));
  if (!all_synced)
    throw std::runtime_error("only " + std::to_string(synced) + " sockets synced:\n" + daemon.describe());

  progress("connecting the cloud-side command client");
  Commander commander(broker, kGatewayId);

  progress("starting plugsim");
  test::Process sim(plugsim_argv(o, config_path, lan_port, o.sockets, o.reading_interval_ms));
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

  // The metrics' cost (--scrape): the daemon's CPU not scraped, scraped every scrape_s, not scraped
  // (the two unscraped phases bracket the scraped one against drift in the machine's load).
  struct ScrapePhase {
    double cpu_pct = 0;
    size_t scrapes = 0;
    double max_ms = 0, mean_ms = 0;
    size_t bytes = 0;
  };
  std::vector<ScrapePhase> scrape_phases;
  if (o.scrape_s > 0) {
    const auto phase = [&](bool scraped) {
      ScrapePhase ph;
      const double cpu0 = cpu_seconds(daemon.pid());
      const auto p0 = Clock::now();
      const auto span = std::chrono::duration<double>(o.seconds);
      for (size_t n = 0; scraped; ++n) {
        const auto at =
            p0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(n * o.scrape_s));
        if (at - p0 >= span) break;
        std::this_thread::sleep_until(at);  // scrape pacing
        const auto s0 = Clock::now();
        const test::HttpAnswer a = test::http_get(metrics_port, "/metrics", 10s);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - s0).count();
        if (a.status != 200)
          throw std::runtime_error("metrics scrape failed: " + a.body + "\n" + daemon.describe());
        ++ph.scrapes;
        ph.max_ms = std::max(ph.max_ms, ms);
        ph.mean_ms += ms;
        ph.bytes = a.body.size();
      }
      if (ph.scrapes) ph.mean_ms /= static_cast<double>(ph.scrapes);
      std::this_thread::sleep_until(p0 + std::chrono::duration_cast<Clock::duration>(span));
      ph.cpu_pct =
          (cpu_seconds(daemon.pid()) - cpu0) / std::chrono::duration<double>(Clock::now() - p0).count() * 100;
      return ph;
    };
    progress("metrics cost: " + fmt("%.0f", o.seconds) + " s not scraped, scraped every " +
             fmt("%.0f", o.scrape_s) + " s, not scraped");
    scrape_phases.push_back(phase(false));
    scrape_phases.push_back(phase(true));
    scrape_phases.push_back(phase(false));
  }

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

  // The ingest ceiling and the overload: plugsim at the fast reading interval on the N sockets
  // (the peak), then N more sockets at the same rate (2x). Each is measured from one commit to
  // another, as the window.
  test::Process& live = restarted ? *restarted : daemon;
  Phase peak, over;
  std::vector<std::unique_ptr<test::Process>> fast_sims;
  if (o.ceiling || o.overload) {
    sim.signal(SIGTERM);
    sim.wait_exit(10s);
    // The roster sockets [first, last) on --sim-procs plugsims (one is bound by a core at about
    // 13 000 readings/s), their stats readers appended to `fst`; returns the first's index.
    struct FastSim {
      test::Process* proc;
      size_t first, last;
    };
    std::vector<FastSim> groups;
    const auto fast_sim = [&](const std::string& name, size_t first, size_t last,
                              std::vector<std::unique_ptr<SimStats>>& fst) {
      const size_t k = std::max<size_t>(1, std::min(o.sim_procs, last - first));
      const size_t index = groups.size();
      for (size_t i = 0; i < k; ++i) {
        const size_t a = first + (last - first) * i / k, b = first + (last - first) * (i + 1) / k;
        const auto path = dir.path() / (name + "-" + std::to_string(i) + ".yaml");
        write_config(path, a, b);
        fast_sims.push_back(
            std::make_unique<test::Process>(plugsim_argv(o, path, lan_port, b - a, o.fast_interval_ms)));
        groups.push_back({fast_sims.back().get(), a, b});
        fst.push_back(std::make_unique<SimStats>(*fast_sims.back()));
      }
      return index;
    };
    const auto sims_cpu = [&] {
      double sum = 0;
      for (auto& p : fast_sims) sum += cpu_seconds(p->pid());
      return sum;
    };
    // Sessions up over the fast plugsims, and their readings dropped and coarsened.
    const auto fast_stats = [&](std::vector<std::unique_ptr<SimStats>>& fst) {
      json sum{{"sessions_up", 0u}, {"dropped", 0ull}, {"coarsened", 0ull}, {"acked", 0ull}};
      for (auto& s : fst) {
        const json j = s->get();
        for (const char* k : {"sessions_up", "dropped", "coarsened", "acked"})
          sum[k] = sum[k].get<uint64_t>() + j.value(k, uint64_t{0});
      }
      return sum;
    };
    // Sessions that were up and went down in a plugsim's output from line `from` on; `up` holds
    // the cids whose sessions were up at that line.
    const auto admitted_dropped = [](test::Process& p, size_t from, std::set<std::string> up) {
      size_t n = 0;
      const auto out = p.stdout_lines();
      for (size_t i = from; i < out.size(); ++i) {
        const bool is_up = out[i].find(R"("ev":"session_up")") != std::string::npos;
        const bool is_down = out[i].find(R"("ev":"disconnected")") != std::string::npos;
        if (!is_up && !is_down) continue;
        const auto j = json::parse(out[i], nullptr, false);
        if (j.is_discarded()) continue;
        const std::string cid = j.value("cid", "");
        if (is_up)
          up.insert(cid);
        else if (up.erase(cid) > 0)
          ++n;
      }
      return n;
    };
    const auto measure = [&](Phase& ph, std::vector<std::unique_ptr<SimStats>>& fst) {
      progress("waiting for a commit to start the window at");
      const json s0 = after_next_commit("to start the window at");
      const json p0 = fast_stats(fst);
      const double cpu0 = cpu_seconds(live.pid()), sim_cpu0 = sims_cpu();
      const auto f0 = Clock::now();
      std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));  // the window's length
      const json s1 = after_next_commit("to end the window at");
      ph.elapsed = std::chrono::duration<double>(Clock::now() - f0).count();
      const json p1 = fast_stats(fst);
      ph.cpu_pct = (cpu_seconds(live.pid()) - cpu0) / ph.elapsed * 100.0;
      ph.sim_cpu_pct = (sims_cpu() - sim_cpu0) / ph.elapsed * 100.0;
      ph.committed_per_s =
          static_cast<double>(s1.value("readings_committed", 0ull) - s0.value("readings_committed", 0ull)) /
          ph.elapsed;
      ph.acked_per_s = static_cast<double>(p1.value("acked", 0ull) - p0.value("acked", 0ull)) / ph.elapsed;
      ph.sim_dropped = p1.value("dropped", 0ull) - p0.value("dropped", 0ull);
      ph.sim_coarsened = p1.value("coarsened", 0ull) - p0.value("coarsened", 0ull);
      ph.up = p1.value("sessions_up", 0u);
      ph.rss_mb = status_mb(live.pid(), "VmRSS");
      ph.ran = true;
    };
    // Waits until `want` sessions are up over the plugsims, or no more came up for 30 s, or the
    // session timeout.
    const auto wait_sessions = [&](std::vector<std::unique_ptr<SimStats>>& fst, size_t want) {
      const auto start = Clock::now();
      size_t up = 0, most = 0;
      auto last_rise = start;
      for (;;) {
        up = fast_stats(fst).value("sessions_up", 0u);
        if (up > most) most = up, last_rise = Clock::now();
        if (up >= want || Clock::now() - last_rise > 30s ||
            Clock::now() - start > std::chrono::duration<double>(o.session_timeout_s))
          break;
        std::this_thread::sleep_for(500ms);  // polling cadence, not synchronisation
      }
      progress(std::to_string(up) + " of " + std::to_string(want) + " sessions up after " +
               fmt("%.1f", std::chrono::duration<double>(Clock::now() - start).count()) + " s; warming up " +
               fmt("%.0f", o.warmup_s) + " s");
      std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup_s));
    };
    const double per_socket = 1000.0 / o.fast_interval_ms;
    std::vector<std::unique_ptr<SimStats>> fst;
    progress("peak: " + std::to_string(o.sockets) + " sockets at 1 reading / " +
             std::to_string(o.fast_interval_ms) + " ms");
    fast_sim("roster-peak", 0, o.sockets, fst);
    wait_sessions(fst, o.sockets);
    peak.wanted = o.sockets;
    peak.offered = static_cast<double>(o.sockets) * per_socket;
    measure(peak, fst);
    progress("peak: " + fmt("%.0f", peak.committed_per_s) + " readings committed/s of " +
             fmt("%.0f", peak.offered) + " offered, daemon CPU " + fmt("%.0f", peak.cpu_pct) +
             " %, plugsim CPU " + fmt("%.0f", peak.sim_cpu_pct) + " %");
    if (o.overload) {
      progress("overload: " + std::to_string(o.sockets) + " more sockets at the same rate");
      // Every peak session is up now; the overload's are admitted once their session is.
      std::vector<size_t> from;
      for (const auto& g : groups) from.push_back(g.proc->stdout_lines().size());
      const size_t added = fast_sim("roster-overload", o.sockets, 2 * o.sockets, fst);
      wait_sessions(fst, 2 * o.sockets);
      over.wanted = 2 * o.sockets;
      over.offered = 2.0 * static_cast<double>(o.sockets) * per_socket;
      measure(over, fst);
      for (size_t i = 0; i < groups.size(); ++i) {
        const auto first = cids.begin() + static_cast<std::ptrdiff_t>(groups[i].first);
        const auto last = cids.begin() + static_cast<std::ptrdiff_t>(groups[i].last);
        over.admitted_dropped += i < added ? admitted_dropped(*groups[i].proc, from[i], {first, last})
                                           : admitted_dropped(*groups[i].proc, 0, {});
      }
      progress("overload: " + fmt("%.0f", over.committed_per_s) + " readings committed/s of " +
               fmt("%.0f", over.offered) + " offered, " + std::to_string(over.up) + " sessions up, " +
               std::to_string(over.admitted_dropped) + " admitted sessions dropped");
    }
    for (auto& p : fast_sims) p->signal(SIGTERM);
    for (auto& p : fast_sims) p->wait_exit(10s);
  }

  progress("stopping");
  sim.signal(SIGTERM);
  sim.wait_exit(10s);
  test::Process& last = live;
  last.signal(SIGTERM);
  if (const auto rc = last.wait_exit(30s); !daemon_rc || *daemon_rc == 0) daemon_rc = rc;
  if (!o.daemon_log.empty()) {
    std::error_code ec;
    std::filesystem::copy_file(last.stderr_path(), o.daemon_log,
                               std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) progress("cannot copy plugbridged's log to " + o.daemon_log + ": " + ec.message());
  }
  // One roll-up of a period's samples, unless the window had one: its bytes shared out over the
  // period's readings.
  const int64_t roll_period_ms = energy::roll_up_period_ms(int64_t{o.raw_resolution_s} * 1000);
  const bool rolled_in_window = mark_after != mark_before;
  const RollUp roll = rolled_in_window ? RollUp{0, 0} : measure_roll_up(db_path, roll_period_ms);

  LanAttack attack;
  if (o.lan_attack > 0) attack = run_lan_attack(o, rng);

  // The mosquitto TLS-PSK baseline, with plugbridged, plugsim and the emulator idle or gone: the
  // same identities and keys, one Paho client per socket (up to the cap), a reading frame per
  // reading interval, then (with --ceiling) as fast as mosquitto acks.
  Baseline base;
  if (o.baseline) {
    // A baseline that fails leaves the daemon's figures standing: reported, not fatal.
    try {
      base.clients = std::min(o.sockets, o.baseline_max_clients);
      progress("mosquitto TLS-PSK baseline: " + std::to_string(base.clients) + " clients");
      const std::vector<PskIdentity> ids(identities.begin(), identities.begin() + base.clients);
      PskBroker psk_broker(ids);
      {
        BaselineClients fleet(psk_broker.port(), ids, o.baseline_procs);
        const auto c0 = Clock::now();
        base.connected =
            fleet.wait_connected(std::chrono::milliseconds(static_cast<int64_t>(o.session_timeout_s * 1000)));
        base.connect_s = std::chrono::duration<double>(Clock::now() - c0).count();
        progress(std::to_string(base.connected) + " of " + std::to_string(base.clients) +
                 " clients connected after " + fmt("%.1f", base.connect_s) + " s (" +
                 std::to_string(fleet.processes()) + " client processes)");
        if (base.connected == 0)
          throw std::runtime_error("no baseline client connected:\n" + psk_broker.log());
        const int bpid = psk_broker.pid();
        const auto window_deadline =
            std::chrono::milliseconds(static_cast<int64_t>((o.seconds + o.warmup_s) * 1000) + 90'000);
        // Paced: the reading interval of the window.
        progress("baseline at 1 message / " + std::to_string(o.reading_interval_ms) + " ms per client for " +
                 fmt("%.0f", o.seconds) + " s");
        const double bcpu0 = cpu_seconds(bpid), ccpu0 = fleet.cpu_seconds_total();
        auto paced =
            fleet.run("paced " + std::to_string(o.reading_interval_ms) + " " + fmt("%.3f", o.seconds),
                      "paced", window_deadline);
        base.paced_s = paced.s;
        base.paced_cpu_pct = (cpu_seconds(bpid) - bcpu0) / paced.s * 100.0;
        base.paced_client_cpu_pct = (fleet.cpu_seconds_total() - ccpu0) / paced.s * 100.0;
        base.paced_acked_per_s = static_cast<double>(paced.acked) / paced.s;
        base.paced_failed = paced.failed;
        base.paced_p50 = percentile(paced.lat_ms, 0.50);
        base.paced_p99 = percentile(paced.lat_ms, 0.99);
        base.lost = paced.lost;
        if (o.ceiling) {
          progress("baseline unbounded: " + std::to_string(o.baseline_inflight) +
                   " publishes in flight per client, " + fmt("%.0f", o.warmup_s) + " s warm-up, " +
                   fmt("%.0f", o.seconds) + " s");
          // mosquitto's CPU over the clients' window: it starts after their warm-up.
          const std::string loop_cmd = "loop " + std::to_string(o.baseline_inflight) + " " +
                                       fmt("%.3f", o.warmup_s) + " " + fmt("%.3f", o.seconds);
          double ucpu0 = 0, uccpu0 = 0;
          std::optional<BaselineClients::Result> loop;
          std::thread sampler([&] {
            std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup_s));  // the warm-up's length
            ucpu0 = cpu_seconds(bpid);
            uccpu0 = fleet.cpu_seconds_total();
          });
          try {
            loop = fleet.run(loop_cmd, "loop", window_deadline);
          } catch (...) {
            sampler.join();
            throw;
          }
          sampler.join();
          base.ceiling_s = loop->s;
          // The CPU figures run on to the clients' drain after the window: at most a little high.
          const double cpu_span = std::chrono::duration<double>(o.seconds).count();
          base.ceiling_cpu_pct = (cpu_seconds(bpid) - ucpu0) / cpu_span * 100.0;
          base.ceiling_client_cpu_pct = (fleet.cpu_seconds_total() - uccpu0) / cpu_span * 100.0;
          base.ceiling_acked_per_s = static_cast<double>(loop->acked) / loop->s;
          base.ceiling_p50 = percentile(loop->lat_ms, 0.50);
          base.ceiling_p99 = percentile(loop->lat_ms, 0.99);
          base.lost = loop->lost;
          progress("baseline unbounded: " + fmt("%.0f", base.ceiling_acked_per_s) +
                   " PUBACKs/s, mosquitto CPU " + fmt("%.0f", base.ceiling_cpu_pct) + " %, clients' CPU " +
                   fmt("%.0f", base.ceiling_client_cpu_pct) + " %");
        }
        base.procs = fleet.processes();
        base.peak_rss_mb = status_mb(bpid, "VmHWM");
      }
      psk_broker.stop();
      base.ran = true;
    } catch (const std::exception& e) {
      base = Baseline{};
      base.error = e.what();
      progress("mosquitto baseline failed: " + base.error);
    }
  }

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
  // 12 bytes a reading at one reading a second (1 MB a socket-day); a socket reading less often
  // shares the same day's budget over fewer readings.
  const double written_per_reading_target = 12.0 * o.reading_interval_ms / 1000.0;
  const double written_mb_per_socket_day = written_per_reading * readings_per_socket_day / 1e6;
  const double growth_mb_per_socket_month = growth_per_reading * readings_per_socket_day * 30 / 1e6;
  const uint64_t dropped = end.value("dropped", 0u) - dropped_before;

  // The targets of the two reference shapes (10 000 sockets x 0.1 Hz, 1 000 x 1 Hz); other shapes
  // keep the general ones.
  const bool shape_10k = o.sockets == 10'000 && o.reading_interval_ms == 10'000;
  const bool shape_1k = o.sockets == 1000 && o.reading_interval_ms == 1000;
  const double rss_target = shape_10k ? 200 : shape_1k ? 40 : 100;
  const double cmd_p99_target = shape_1k ? 10 : 50;
  const double cpu_target = shape_1k ? 5 : 50;
  const bool shape_targets = shape_10k || shape_1k;
  const std::string le = shape_targets ? "<= " : "< ";
  const auto within = [&](double v, double target) { return shape_targets ? v <= target : v < target; };
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
      {"command round trip p99 (ms)", fmt("%.1f", cmd_p99), le + fmt("%.0f", cmd_p99_target),
       within(cmd_p99, cmd_p99_target) && !rtt.empty()},
      {"commands answered code 0", std::to_string(all_cmd.ok) + "/" + std::to_string(all_cmd.sent), "all",
       all_cmd.ok == all_cmd.sent},
      {"daemon CPU (% of one core)", fmt("%.1f", cpu_pct), le + fmt("%.0f", cpu_target),
       within(cpu_pct, cpu_target)},
      {"daemon peak RSS (MB, VmHWM)", fmt("%.1f", peak_rss_mb), le + fmt("%.0f", rss_target),
       within(peak_rss_mb, rss_target)},
      {"daemon disk writes per reading (bytes)", fmt("%.1f", written_per_reading),
       "<= " + fmt("%.0f", written_per_reading_target),
       written_per_reading >= 0 && written_per_reading <= written_per_reading_target},
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
  for (const auto& sh : attack.shapes) {
    const double delay = sh.connect_s - attack.clean_s;
    rows.push_back(
        {"LAN attack, " + std::to_string(o.lan_attack) + " idle from " + sh.sources + ": delay (s)",
         sh.connect_s < 0 ? "not up" : fmt("%.2f", delay), "< 2",
         sh.connect_s >= 0 && attack.clean_s >= 0 && delay < 2.0});
    rows.push_back(
        {"  lan log lines a minute", fmt("%.0f", sh.lines_per_min()), "< 100", sh.lines_per_min() < 100});
  }
  // Daemon readings committed/s against mosquitto's PUBACKs/s from as many clients.
  const auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  const double paced_ratio = ratio(readings_per_s, base.paced_acked_per_s);
  const double ceiling_ratio = ratio(peak.committed_per_s, base.ceiling_acked_per_s);
  const double overload_pct = ratio(over.committed_per_s, peak.committed_per_s) * 100.0;
  const bool same_clients = base.clients == o.sockets;
  if (base.ran)
    rows.push_back(
        {"readings committed/s / mosquitto PUBACKs/s (same rate)", fmt("%.2f", paced_ratio), "-", true});
  if (o.ceiling) {
    rows.push_back({"ingest ceiling: readings committed/s, " + std::to_string(o.sockets) + " sockets",
                    fmt("%.0f", peak.committed_per_s), "-", true});
    if (base.ran)
      rows.push_back(
          {"ingest ceiling / mosquitto PUBACKs/s" + std::string(same_clients ? "" : " (fewer clients)"),
           fmt("%.2f", ceiling_ratio), ">= 1.0", ceiling_ratio >= 1.0});
  }
  if (o.overload) {
    rows.push_back({"2x overload: readings committed/s, % of peak", fmt("%.1f", overload_pct), ">= 90",
                    overload_pct >= 90.0});
    rows.push_back({"2x overload: admitted sessions dropped", std::to_string(over.admitted_dropped), "0",
                    over.admitted_dropped == 0});
  }

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
  if (scrape_phases.size() == 3) {
    const double without = (scrape_phases[0].cpu_pct + scrape_phases[2].cpu_pct) / 2;
    const ScrapePhase& with = scrape_phases[1];
    std::printf(
        "\nmetrics (endpoint on, refreshed every second): daemon CPU %.2f %% of one core not scraped (%.2f, "
        "%.2f), %.2f %% scraped every %.0f s: difference %+.2f points, ratio %.3f;\n"
        "         %zu scrapes of %zu bytes, mean %.1f ms, max %.1f ms\n",
        without, scrape_phases[0].cpu_pct, scrape_phases[2].cpu_pct, with.cpu_pct, o.scrape_s,
        with.cpu_pct - without, without > 0 ? with.cpu_pct / without : 0.0, with.scrapes, with.bytes,
        with.mean_ms, with.max_ms);
  }
  if (attack.ran) {
    std::printf(
        "\nLAN attack (a plugbridged of its own, default lan: limits, one socket): the socket's session "
        "up %.2f s after plugsim started without an attack;\n",
        attack.clean_s);
    for (const auto& sh : attack.shapes)
      std::printf(
          "         from %s: up after %.2f s, the attacker connected %llu times in %.0f s, %zu lan log "
          "lines\n",
          sh.sources.c_str(), sh.connect_s, static_cast<unsigned long long>(sh.attacker_connects), sh.seconds,
          sh.lines);
  }
  if (!base.error.empty()) std::printf("\nmosquitto baseline failed: %s\n", base.error.c_str());
  if (base.ran || peak.ran) {
    std::printf(
        "\nside by side: plugbridged (%zu TLS-PSK sockets, readings persisted) and mosquitto (%zu TLS-PSK "
        "clients, QoS 1 publishes of a %zu-byte reading frame)\n",
        o.sockets, base.clients, reading_frame().size());
    std::printf("%-44s %16s %16s %8s\n", "figure", "plugbridged", "mosquitto", "ratio");
    const auto line = [](const std::string& what, const std::string& d, const std::string& m,
                         const std::string& r) {
      std::printf("%-44s %16s %16s %8s\n", what.c_str(), d.c_str(), m.c_str(), r.c_str());
    };
    const std::string per = "1 / " + std::to_string(o.reading_interval_ms) + " ms";
    line("sessions / clients up", std::to_string(held) + "/" + std::to_string(o.sockets),
         base.ran ? std::to_string(base.connected) + "/" + std::to_string(base.clients) : "-", "");
    if (base.ran) {
      line("committed / acked per s at " + per, fmt("%.1f", readings_per_s),
           fmt("%.1f", base.paced_acked_per_s), fmt("%.2f", paced_ratio));
      line("  record->ack / publish->PUBACK p50 (ms)", fmt("%.1f", commit_p50), fmt("%.1f", base.paced_p50),
           "");
      line("  record->ack / publish->PUBACK p99 (ms)", fmt("%.1f", commit_p99), fmt("%.1f", base.paced_p99),
           "");
      line("  CPU (% of one core)", fmt("%.1f", cpu_pct), fmt("%.1f", base.paced_cpu_pct),
           fmt("%.2f", ratio(cpu_pct, base.paced_cpu_pct)));
      line("  load generator CPU (plugsim / Paho clients)", fmt("%.1f", sim_cpu_pct),
           fmt("%.1f", base.paced_client_cpu_pct), "");
      line("peak RSS (MB, VmHWM)", fmt("%.1f", peak_rss_mb), fmt("%.1f", base.peak_rss_mb),
           fmt("%.2f", ratio(peak_rss_mb, base.peak_rss_mb)));
    }
    if (peak.ran) {
      line("ceiling: committed / acked per s", fmt("%.0f", peak.committed_per_s),
           base.ceiling_s > 0 ? fmt("%.0f", base.ceiling_acked_per_s) : "-",
           base.ceiling_s > 0 ? fmt("%.2f", ceiling_ratio) : "");
      line("  offered", fmt("%.0f", peak.offered) + " (1/" + std::to_string(o.fast_interval_ms) + " ms)",
           base.ceiling_s > 0 ? std::to_string(o.baseline_inflight) + " in flight" : "-", "");
      if (base.ceiling_s > 0)
        line("  publish->PUBACK p50 / p99 (ms)", "-",
             fmt("%.1f", base.ceiling_p50) + " / " + fmt("%.1f", base.ceiling_p99), "");
      line("  CPU (% of one core)", fmt("%.1f", peak.cpu_pct),
           base.ceiling_s > 0 ? fmt("%.1f", base.ceiling_cpu_pct) : "-", "");
      line("  load generator CPU (plugsim / Paho clients)", fmt("%.1f", peak.sim_cpu_pct),
           base.ceiling_s > 0 ? fmt("%.1f", base.ceiling_client_cpu_pct) : "-", "");
      line("  readings dropped / coarsened by sockets",
           std::to_string(peak.sim_dropped) + " / " + std::to_string(peak.sim_coarsened), "", "");
    }
    if (over.ran) {
      line("2x overload: sessions up", std::to_string(over.up) + "/" + std::to_string(over.wanted), "", "");
      line("  committed per s (offered)",
           fmt("%.0f", over.committed_per_s) + " (" + fmt("%.0f", over.offered) + ")", "",
           fmt("%.2f", ratio(over.committed_per_s, peak.committed_per_s)));
      line("  CPU (% of one core), RSS at end (MB)",
           fmt("%.1f", over.cpu_pct) + ", " + fmt("%.1f", over.rss_mb), "", "");
      line("  plugsim CPU (% of one core)", fmt("%.1f", over.sim_cpu_pct), "", "");
      line("  readings dropped / coarsened by sockets",
           std::to_string(over.sim_dropped) + " / " + std::to_string(over.sim_coarsened), "", "");
    }
    if (peak.ran && peak.committed_per_s >= 0.97 * peak.offered)
      std::printf(
          "ceiling: plugbridged committed what plugsim offered (%.0f of %.0f/s): its ceiling is higher\n",
          peak.committed_per_s, peak.offered);
    if (base.ran)
      std::printf(
          "mosquitto: %zu clients (in %zu processes) connected in %.1f s, %llu connections lost, %llu "
          "publishes failed%s\n",
          base.connected, base.procs, base.connect_s, static_cast<unsigned long long>(base.lost),
          static_cast<unsigned long long>(base.paced_failed),
          same_clients ? "" : " (fewer clients than sockets: --baseline-max-clients)");
  }
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
           {"targets",
            {{"shape", shape_10k  ? "10000x0.1Hz"
                       : shape_1k ? "1000x1Hz"
                                  : "general"},
             {"peak_rss_mb", rss_target},
             {"command_rtt_p99_ms", cmd_p99_target},
             {"daemon_cpu_pct", cpu_target},
             {"disk_write_bytes_per_reading", written_per_reading_target}}},
           {"loadavg_before", load_before},
           {"loadavg_after", load_after},
           {"pass", all_pass}};
    if (!base.error.empty()) j["mosquitto_baseline_error"] = base.error;
    if (scrape_phases.size() == 3)
      j["metrics_scrape"] = {
          {"interval_s", o.scrape_s},
          {"daemon_cpu_pct_not_scraped", {scrape_phases[0].cpu_pct, scrape_phases[2].cpu_pct}},
          {"daemon_cpu_pct_scraped", scrape_phases[1].cpu_pct},
          {"scrapes", scrape_phases[1].scrapes},
          {"scrape_bytes", scrape_phases[1].bytes},
          {"scrape_ms", {{"mean", scrape_phases[1].mean_ms}, {"max", scrape_phases[1].max_ms}}}};
    if (base.ran)
      j["mosquitto_baseline"] = {
          {"clients", base.clients},
          {"connected", base.connected},
          {"connect_s", base.connect_s},
          {"connections_lost", base.lost},
          {"acked_per_s", base.paced_acked_per_s},
          {"puback_ms", {{"p50", base.paced_p50}, {"p99", base.paced_p99}}},
          {"cpu_pct", base.paced_cpu_pct},
          {"client_cpu_pct", base.paced_client_cpu_pct},
          {"peak_rss_mb", base.peak_rss_mb},
          {"failed", base.paced_failed},
          {"ceiling_acked_per_s", base.ceiling_acked_per_s},
          {"ceiling_inflight_per_client", o.baseline_inflight},
          {"client_processes", base.procs},
          {"ceiling_puback_ms", {{"p50", base.ceiling_p50}, {"p99", base.ceiling_p99}}},
          {"ceiling_cpu_pct", base.ceiling_cpu_pct},
          {"ceiling_client_cpu_pct", base.ceiling_client_cpu_pct},
          {"readings_per_acked_ratio", paced_ratio}};
    const auto phase_json = [](const Phase& ph) {
      return json{{"sessions_wanted", ph.wanted},
                  {"sessions_up", ph.up},
                  {"offered_per_s", ph.offered},
                  {"readings_committed_per_s", ph.committed_per_s},
                  {"records_acked_per_s", ph.acked_per_s},
                  {"window_s", ph.elapsed},
                  {"daemon_cpu_pct", ph.cpu_pct},
                  {"plugsim_cpu_pct", ph.sim_cpu_pct},
                  {"daemon_rss_mb", ph.rss_mb},
                  {"readings_dropped", ph.sim_dropped},
                  {"readings_coarsened", ph.sim_coarsened},
                  {"admitted_sessions_dropped", ph.admitted_dropped}};
    };
    if (peak.ran) {
      j["ceiling"] = phase_json(peak);
      j["ceiling"]["reading_interval_ms"] = o.fast_interval_ms;
      j["ceiling"]["mosquitto_ratio"] = ceiling_ratio;
    }
    if (attack.ran) {
      j["lan_attack"] = {
          {"connections", o.lan_attack}, {"clean_connect_s", attack.clean_s}, {"shapes", json::array()}};
      for (const auto& sh : attack.shapes)
        j["lan_attack"]["shapes"].push_back({{"sources", sh.sources},
                                             {"connect_s", sh.connect_s},
                                             {"attacker_connects", sh.attacker_connects},
                                             {"seconds", sh.seconds},
                                             {"lan_log_lines", sh.lines},
                                             {"lan_log_lines_per_min", sh.lines_per_min()}});
    }
    if (over.ran) {
      j["overload"] = phase_json(over);
      j["overload"]["pct_of_peak"] = overload_pct;
    }
    std::ofstream(o.json_out) << j.dump(2) << "\n";
  }

  // Broken benchmark (nothing measured) always fails; missed targets only with --strict.
  if (readings_after <= readings_before || end.value("acked", 0ull) == 0 ||
      (all_cmd.sent > 0 && all_cmd.ok == 0) || daemon_rc != 0 || (attack.ran && attack.clean_s < 0)) {
    std::fprintf(
        stderr,
        "[bench] FAILED: no readings, acks or command answers measured, daemon exit != 0, or the LAN "
        "attack's socket never came up\n%s\n",
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
  app.add_option("--scrape", o.scrape_s,
                 "serve plugbridged's Prometheus metrics and, after the window, take its CPU over three "
                 "phases of --seconds: not scraped, scraped every this many seconds, not scraped (0 = off)");
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
  app.add_flag("!--no-baseline", o.baseline, "skip the mosquitto TLS-PSK baseline");
  app.add_option("--baseline-max-clients", o.baseline_max_clients,
                 "at most this many mosquitto baseline clients (one per socket up to it)")
      ->capture_default_str()
      ->check(CLI::Range(1, 20000));
  app.add_option("--baseline-inflight", o.baseline_inflight,
                 "publishes each baseline client keeps in flight at the unbounded rate (--ceiling)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--baseline-procs", o.baseline_procs,
                 "processes the mosquitto baseline's clients are spread over")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  uint16_t client_port = 0;
  std::string client_ids;
  app.add_option("--baseline-client-port", client_port)->group("");  // a baseline client process
  app.add_option("--baseline-client-ids", client_ids)->group("");
  app.add_flag("--ceiling", o.ceiling,
               "after the window: the sockets at --fast-interval-ms (readings committed/s), and mosquitto's "
               "PUBACKs/s from as many clients publishing unbounded");
  app.add_flag(
      "--overload", o.overload,
      "after the window: the sockets at --fast-interval-ms (the peak), then twice as many (throughput "
      "as % of the peak, admitted sessions dropped)");
  app.add_option("--sim-procs", o.sim_procs,
                 "plugsim processes for each N sockets of --ceiling and --overload")
      ->capture_default_str()
      ->check(CLI::Range(1, 8));
  app.add_option("--fast-interval-ms", o.fast_interval_ms,
                 "per-socket reading interval of --ceiling and --overload")
      ->capture_default_str()
      ->check(CLI::Range(50, 60000));
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
  app.add_option("--lan-attack", o.lan_attack,
                 "after the rest: N idle connections (from one address, then from 50) against a plugbridged "
                 "of its own with the default lan: limits, timing a socket's connection (0 = none)")
      ->check(CLI::Range(0, 100000));
  app.add_option("--lan-attack-seconds", o.lan_attack_s,
                 "how long each LAN attack lasts (log lines a minute)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 600.0));
  app.add_option("--lan-attack-reopen", o.lan_attack_reopen_per_s,
                 "connections a second the attacker reopens when the daemon closes them")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100000.0));
  app.add_option("--max-handshakes", o.max_handshakes, "plugbridged's lan.max_handshakes (0: its default)");
  app.add_option("--daemon-yaml", o.daemon_yaml,
                 "top-level YAML for plugbridged's configuration, e.g. 'clock: {max_wait_s: 0}' (not "
                 "history: see --commit-interval-ms)");
  app.add_option("--log-level", o.log_level, "plugbridged's log_level (debug logs every command's steps)")
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
  app.add_option("--daemon-log", o.daemon_log,
                 "copy plugbridged's log (of its last run) to this file at the end");
  CLI11_PARSE(app, argc, argv);
  if (client_port != 0) {
    const int rc = run_baseline_client(client_port, client_ids);
    wait_for_paho_threads(2s);
    return rc;
  }
  if (o.overload && 2 * o.sockets > 20000) {
    std::fprintf(stderr, "[bench] --overload needs a roster of 2 x --sockets: at most 10000 sockets\n");
    return 2;
  }
  // A descriptor per session or client, in this process and the ones it starts.
  if (rlimit lim{}; ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }

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
