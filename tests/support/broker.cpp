#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "support/testsupport.hpp"

namespace pb::test {

namespace {

using namespace std::chrono_literals;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::string mosquitto_executable() {
  // /usr/sbin is often not on a non-root PATH.
  for (const char* p : {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"})
    if (::access(p, X_OK) == 0) return p;
  return "mosquitto";
}

}  // namespace

namespace {

// mosquitto with dir/mosquitto.conf, once it accepts connections on port; null if it exited first.
std::unique_ptr<Process> start_mosquitto(const std::filesystem::path& dir, uint16_t port) {
  auto p = std::make_unique<Process>(
      std::vector<std::string>{mosquitto_executable(), "-c", (dir / "mosquitto.conf").string()});
  const bool up = wait_until([&] { return !p->running() || port_accepts(port); }, 10s);
  if (up && p->running()) return p;
  return nullptr;
}

// SIGTERM, SIGKILL after a grace period.
void stop_mosquitto(std::unique_ptr<Process>& p) {
  p->signal(SIGTERM);
  if (!p->wait_exit(5s)) {
    p->signal(SIGKILL);
    p->wait_exit(5s);
  }
  p.reset();
}

}  // namespace

MosquittoBroker::MosquittoBroker(std::string gateway_id, std::string username, BrokerOptions options)
    : gateway_id_(std::move(gateway_id)), username_(std::move(username)) {
  // A free port can be taken by someone else before mosquitto binds it: retry with another one.
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_tcp_port();
    Process make({(source_dir() / "tools/tuya-edge-emu/make-broker").string(), dir_.path().string(), "--port",
                  std::to_string(port_), "--gateway-id", gateway_id_, "--username", username_, "--san",
                  options.san});
    const auto rc = make.wait_exit(60s);
    if (rc != 0) throw std::runtime_error("make-broker failed:\n" + make.describe());
    std::istringstream pw(read_file(dir_.path() / "admin.password"));
    std::getline(pw, admin_password_);
    if (try_start()) return;
  }
  throw std::runtime_error("mosquitto did not start; log:\n" + log());
}

MosquittoBroker::~MosquittoBroker() {
  stop();
}

bool MosquittoBroker::try_start() {
  process_ = start_mosquitto(dir_.path(), port_);
  return process_ != nullptr;
}

void MosquittoBroker::start() {
  if (process_) return;
  if (!try_start()) throw std::runtime_error("mosquitto did not restart on port " + std::to_string(port_));
}

void MosquittoBroker::stop() {
  if (!process_) return;
  process_->signal(SIGCONT);  // a frozen broker handles the SIGTERM only once it runs
  stop_mosquitto(process_);
}

void MosquittoBroker::freeze() {
  if (process_) process_->signal(SIGSTOP);
}

void MosquittoBroker::kill() {
  if (!process_) return;
  process_->signal(SIGKILL);
  process_->wait_exit(5s);
  process_.reset();
}

std::string MosquittoBroker::log() const {
  return read_file(dir_.path() / "mosquitto.log");
}

std::string MosquittoBroker::gateway_password() const {
  const std::string input = gateway_id_ + username_;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &len, EVP_md5(), nullptr) != 1)
    throw std::runtime_error("EVP_Digest md5 failed");
  std::string hex;
  char byte[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(byte, sizeof byte, "%02x", digest[i]);
    hex += byte;
  }
  return hex;
}

PlainMosquittoBroker::PlainMosquittoBroker(std::string username, std::string password,
                                           const std::vector<std::pair<std::string, std::string>>& more_users)
    : username_(std::move(username)), password_(std::move(password)) {
  const auto passwd = dir_.path() / "passwd";
  Process make({"mosquitto_passwd", "-b", "-c", passwd.string(), username_, password_});
  if (make.wait_exit(30s) != 0) throw std::runtime_error("mosquitto_passwd failed:\n" + make.describe());
  for (const auto& [user, pass] : more_users) {
    Process add({"mosquitto_passwd", "-b", passwd.string(), user, pass});
    if (add.wait_exit(30s) != 0) throw std::runtime_error("mosquitto_passwd failed:\n" + add.describe());
  }
  // A free port can be taken by someone else before mosquitto binds it: retry with another one.
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_tcp_port();
    std::ofstream conf(dir_.path() / "mosquitto.conf", std::ios::trunc);
    conf << "# plugbridge test: plain-TCP broker with a password file.\n"
         << "user root\n"  // as root mosquitto would drop to the mosquitto user otherwise
         << "per_listener_settings false\n"
         << "persistence false\n"
         << "allow_anonymous false\n"
         << "password_file " << passwd.string() << "\n"
         << "set_tcp_nodelay true\n"
         << "listener " << port_ << " 127.0.0.1\n"
         << "log_dest file " << (dir_.path() / "mosquitto.log").string() << "\n"
         << "log_type all\n"
         << "connection_messages true\n"
         << "log_timestamp true\n";
    conf.close();
    if (try_start()) return;
  }
  throw std::runtime_error("mosquitto did not start; log:\n" + log());
}

PlainMosquittoBroker::~PlainMosquittoBroker() {
  stop();
}

bool PlainMosquittoBroker::try_start() {
  process_ = start_mosquitto(dir_.path(), port_);
  return process_ != nullptr;
}

void PlainMosquittoBroker::start() {
  if (process_) return;
  if (!try_start()) throw std::runtime_error("mosquitto did not restart on port " + std::to_string(port_));
}

void PlainMosquittoBroker::stop() {
  if (!process_) return;
  stop_mosquitto(process_);
}

std::string PlainMosquittoBroker::log() const {
  return read_file(dir_.path() / "mosquitto.log");
}

TuyaEmulator::TuyaEmulator(const MosquittoBroker& broker, std::string gateway_id,
                           std::vector<std::string> extra_args)
    : gateway_id_(std::move(gateway_id)) {
  std::vector<std::string> argv{binary("pb-tuya-emu").string(),
                                "--host",
                                "127.0.0.1",
                                "--port",
                                std::to_string(broker.port()),
                                "--ca",
                                broker.ca_file().string(),
                                "--user",
                                broker.admin_user(),
                                "--password",
                                broker.admin_password(),
                                "--gateway-id",
                                gateway_id_};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<Process>(std::move(argv));
  if (!wait_subscribed(1, 15s))
    throw std::runtime_error("pb-tuya-emu did not subscribe:\n" + process_->describe());
}

void TuyaEmulator::send_command(const std::string& cid, int dp, const std::string& value_json,
                                const std::string& request_id) {
  process_->write_stdin("command " + cid + " " + std::to_string(dp) + " " + value_json +
                        (request_id.empty() ? "" : " " + request_id));
}

void TuyaEmulator::send_raw(const std::string& text) {
  process_->write_stdin("raw " + text);
}

void TuyaEmulator::fail_reports(int code, int count) {
  process_->write_stdin("report-fail " + std::to_string(code) + " " + std::to_string(count));
}

std::vector<nlohmann::json> TuyaEmulator::events() const {
  std::vector<nlohmann::json> out;
  for (const auto& line : process_->stdout_lines()) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

std::vector<nlohmann::json> TuyaEmulator::seen(const std::string& topic_suffix) const {
  const std::string topic = "gateway_id/" + gateway_id_ + "/" + topic_suffix;
  std::vector<nlohmann::json> out;
  for (auto& e : events())
    if (e.value("dir", "") == "in" && e.value("topic", "") == topic) out.push_back(e["payload"]);
  return out;
}

bool TuyaEmulator::wait_for(const std::string& topic_suffix, std::function<bool(const nlohmann::json&)> pred,
                            std::chrono::milliseconds deadline) {
  const std::string topic = "gateway_id/" + gateway_id_ + "/" + topic_suffix;
  return process_->wait_for_stdout_line(
      [&](const std::string& line) {
        auto e = nlohmann::json::parse(line, nullptr, false);
        if (e.is_discarded() || !e.is_object()) return false;
        return e.value("dir", "") == "in" && e.value("topic", "") == topic && pred(e["payload"]);
      },
      deadline);
}

std::vector<std::string> TuyaEmulator::violations() const {
  std::vector<std::string> out;
  for (auto& e : events())
    if (e.value("dir", "") == "violation") out.push_back(e.value("error", ""));
  return out;
}

bool TuyaEmulator::wait_subscribed(std::size_t n, std::chrono::milliseconds deadline) {
  std::size_t count = 0;
  return process_->wait_for_stdout_line(
      [&](const std::string& line) {
        auto e = nlohmann::json::parse(line, nullptr, false);
        if (!e.is_discarded() && e.is_object() && e.value("event", "") == "subscribed") ++count;
        return count >= n;
      },
      deadline);
}

}  // namespace pb::test
