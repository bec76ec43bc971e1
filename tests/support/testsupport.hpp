// Test support for integration tests: temp dirs, child processes with captured output,
// condition waits with deadlines, a TLS mosquitto broker + Tuya edge emulator pair, and a
// plain-TCP mosquitto.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace pb::test {

// pb_testsupport disables OpenSSL's atexit cleanup before main (Paho threads outliving main would
// crash in it at exit); true if that worked.
bool openssl_atexit_disabled();

// Binds 127.0.0.1:0, reads the kernel-chosen port back and closes the socket.
uint16_t free_tcp_port();
// True if a TCP connection to 127.0.0.1:port is accepted.
bool port_accepts(uint16_t port);
// HTTP/1.0 GET of http://127.0.0.1:port/path: the status code and the body ({0, reason} when
// the connection fails or no complete answer comes within the deadline).
struct HttpAnswer {
  int status = 0;
  std::string body;
};
HttpAnswer http_get(uint16_t port, const std::string& path, std::chrono::milliseconds deadline);
// The value of the sample `series` (name with its labels, as printed) in a Prometheus text
// scrape; nullopt if absent.
std::optional<double> prometheus_sample(const std::string& text, const std::string& series);

// A self-signed EC CA (ca.crt, ca.key) with common name `cn` in dir.
void make_test_ca(const std::filesystem::path& dir, const std::string& cn);

// A fresh 0755 directory under $TMPDIR (or /tmp); removed by the destructor unless the
// environment has PB_KEEP_TEST_DIRS=1 (for post-mortem debugging).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Polls cond with short waits until it is true or the deadline passes; returns the final value.
bool wait_until(std::function<bool()> cond, std::chrono::milliseconds deadline);

// A built executable: $PB_BIN_DIR/name, else CMAKE_BINARY_DIR/bin/name (compile definition).
std::filesystem::path binary(const std::string& name);
// The source tree (for scripts such as tools/tuya-edge-emu/make-broker).
std::filesystem::path source_dir();

// A child process (posix_spawnp, own process group). stdin is a pipe; stdout and stderr are each
// captured line by line into memory and into files in a private TempDir.
class Process {
 public:
  explicit Process(std::vector<std::string> argv, std::map<std::string, std::string> extra_env = {});
  ~Process();  // SIGKILL to the process group if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  void write_stdin(const std::string& line);  // appends '\n' if missing
  void close_stdin();

  bool wait_for_stdout(const std::regex& re, std::chrono::milliseconds deadline);
  bool wait_for_stderr(const std::regex& re, std::chrono::milliseconds deadline);
  // Any stdout line (already captured or arriving before the deadline) satisfying pred.
  bool wait_for_stdout_line(const std::function<bool(const std::string&)>& pred,
                            std::chrono::milliseconds deadline);
  std::vector<std::string> stdout_lines() const;
  std::vector<std::string> stderr_lines() const;
  // stderr lines from the from-th on that contain `text`.
  size_t count_stderr_lines(const std::string& text, size_t from = 0) const;
  std::filesystem::path stdout_path() const;
  std::filesystem::path stderr_path() const;
  // The command line and the last lines of both streams, for assertion messages.
  std::string describe(std::size_t last_lines = 30) const;

  void signal(int sig);
  // Exit code, or 128+signal if killed by a signal; nullopt if still running at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds deadline);
  bool running();

 private:
  struct Stream;
  void reap(bool block);
  bool wait_for_line(Stream& s, const std::function<bool(const std::string&)>& pred,
                     std::chrono::milliseconds deadline);

  std::vector<std::string> argv_;
  TempDir dir_;
  int pid_ = -1;
  int stdin_fd_ = -1;
  std::mutex exit_mutex_;
  std::optional<int> exit_code_;
  std::unique_ptr<Stream> out_;
  std::unique_ptr<Stream> err_;
};

struct BrokerOptions {
  // The server certificate's subjectAltName (make-broker --san).
  std::string san = "DNS:localhost,IP:127.0.0.1,IP:::1";
};

// mosquitto set up by tools/tuya-edge-emu/make-broker (TLS 1.2+, password file, ACL) on a free
// loopback port. The gateway user is `username` with password md5(gateway_id + username).
class MosquittoBroker {
 public:
  MosquittoBroker(std::string gateway_id, std::string username, BrokerOptions options = {});
  ~MosquittoBroker();
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  uint16_t port() const { return port_; }
  std::filesystem::path ca_file() const { return dir_.path() / "ca.crt"; }
  std::filesystem::path dir() const { return dir_.path(); }
  std::string admin_user() const { return "tuya-edge"; }
  std::string admin_password() const { return admin_password_; }
  const std::string& gateway_id() const { return gateway_id_; }
  const std::string& username() const { return username_; }
  // lowercase hex md5(gateway_id + username), computed independently of make-broker.
  std::string gateway_password() const;

  void stop();    // SIGTERM (and SIGCONT, for a frozen one), SIGKILL after a grace period
  void freeze();  // SIGSTOP: connections stay open, nothing is answered (a hung broker)
  void kill();    // SIGKILL: gone without a word; what it had not acknowledged stays unacknowledged
  void start();   // same port, CA and credentials; returns once the port accepts connections
  bool running() const { return process_ != nullptr; }
  std::string log() const;  // mosquitto.log contents

 private:
  bool try_start();

  std::string gateway_id_;
  std::string username_;
  TempDir dir_;
  uint16_t port_ = 0;
  std::string admin_password_;
  std::unique_ptr<Process> process_;
};

// A plain-TCP mosquitto (no TLS, no ACL) on a free loopback port, like a local Home Assistant
// broker: user `username` with `password` from a password file; no anonymous clients.
class PlainMosquittoBroker {
 public:
  // `username` is the one the tests use (username(), password()); `more_users` (user, password) are
  // in the password file too, e.g. devices logging in with a platform's formula.
  PlainMosquittoBroker(std::string username, std::string password,
                       const std::vector<std::pair<std::string, std::string>>& more_users = {});
  ~PlainMosquittoBroker();
  PlainMosquittoBroker(const PlainMosquittoBroker&) = delete;
  PlainMosquittoBroker& operator=(const PlainMosquittoBroker&) = delete;

  uint16_t port() const { return port_; }
  const std::string& username() const { return username_; }
  const std::string& password() const { return password_; }
  std::filesystem::path dir() const { return dir_.path(); }

  void stop();   // SIGTERM, SIGKILL after a grace period
  void start();  // same port and credentials; returns once the port accepts connections
  bool running() const { return process_ != nullptr; }
  std::string log() const;  // mosquitto.log contents

 private:
  bool try_start();

  std::string username_;
  std::string password_;
  TempDir dir_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> process_;
};

// pb-tuya-emu run against a MosquittoBroker as the admin user. Construction returns once the
// emulator has subscribed to gateway_id/GW/#.
class TuyaEmulator {
 public:
  TuyaEmulator(const MosquittoBroker& broker, std::string gateway_id,
               std::vector<std::string> extra_args = {});

  void send_command(const std::string& cid, int dp, const std::string& value_json,
                    const std::string& request_id);
  void send_raw(const std::string& text);
  // The next `count` properties/report are answered with `code` (pb-tuya-emu `report-fail`).
  void fail_reports(int code, int count);
  // Payloads of "in" messages on gateway_id/GW/<topic_suffix>, in arrival order. Note the emulator
  // also sees its own publishes (responses, commands) echoed back by the broker.
  std::vector<nlohmann::json> seen(const std::string& topic_suffix) const;
  bool wait_for(const std::string& topic_suffix, std::function<bool(const nlohmann::json&)> pred,
                std::chrono::milliseconds deadline);
  // Payload-shape violations the emulator logged (human-readable).
  std::vector<std::string> violations() const;
  // Waits until the emulator has (re)subscribed at least n times (1 after construction).
  bool wait_subscribed(std::size_t n, std::chrono::milliseconds deadline);
  // All parsed JSON log lines.
  std::vector<nlohmann::json> events() const;
  Process& process() { return *process_; }

 private:
  std::string gateway_id_;
  std::unique_ptr<Process> process_;
};

}  // namespace pb::test
