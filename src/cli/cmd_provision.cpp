// `plugbridge provision --count N --product-id PID [--prefix NAME] [--out DIR] [--gateway HOST:PORT]
// [--mcu g070kb|g030k8] [--kv K] [--ki K]`: mints N socket identities (cid + 128-bit PSK from OpenSSL's
// CSPRNG), writes one Intel HEX image of the device-information page per socket, then appends the
// sockets to the configuration's roster, then asks the running daemon to reload it.
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <pbfw/device_info.hpp>
#include <pbfw/limits.hpp>
#include <set>
#include <stm32g0/layout.hpp>

#include "commands.hpp"
#include "plugbridge/cli/control_client.hpp"
#include "plugbridge/common/utc.hpp"
#include "plugbridge/ihex/intel_hex.hpp"
#include "roster_writer.hpp"

namespace pb::cli {
namespace {

namespace fs = std::filesystem;

constexpr size_t kSecretBytes = pbfw::proto::kPskMin;  // 128-bit PSK
constexpr int kMaxCount = 10000;

bool cid_chars(const std::string& s) {
  return std::all_of(s.begin(), s.end(), pbfw::proto::valid_cid_char);
}

// "1.88" -> 1880000 within the firmware's accepted calibration range.
uint32_t calibration_e6(double k, const char* option) {
  const double e6 = std::round(k * 1e6);
  if (!(e6 >= pbfw::proto::kMinCalibrationE6 && e6 <= pbfw::proto::kMaxCalibrationE6))  // also NaN
    throw CliError(exit_code::kUsage, std::string(option) + " must be 0.01..100");
  return static_cast<uint32_t>(e6);
}

std::string utc_stamp(int64_t ms) {
  return format_utc(ms, "%Y-%m-%d %H:%M UTC");
}

// An exclusive, non-blocking flock on `.<name>.lock` next to the roster: the roster itself is replaced
// by rename, so a lock on it would not be seen by a run that opens the new file. The holder writes its
// pid into the lock file so a refused run can say whom it waits for. The file is left in place (removing
// it would let two runs lock two different files). No lock if the directory cannot be written to
// (loading or writing the configuration then fails with the real reason).
class RosterLock {
 public:
  explicit RosterLock(const std::string& file) {
    const fs::path p(file);
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    path_ = (dir / ("." + p.filename().string() + ".lock")).string();
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0) return;
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      std::string holder;
      if (err == EWOULDBLOCK) {
        char buf[32] = {};
        const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
        if (n > 0) holder = std::string(buf, static_cast<size_t>(n));
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      }
      ::close(fd_);
      fd_ = -1;
      if (err != EWOULDBLOCK)
        throw CliError(exit_code::kFailed,
                       "cannot lock " + path_ + ": " + std::strerror(err) + "; nothing was written");
      throw CliError(exit_code::kFailed,
                     "another writer is changing " + file + ": " +
                         (holder.empty() ? std::string("a process") : "process " + holder) + " holds " +
                         path_ +
                         " (another `plugbridge provision`?); nothing was written: wait for it to finish, "
                         "then run again");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
      // Only informational: the lock is what matters.
    }
  }
  ~RosterLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  RosterLock(const RosterLock&) = delete;
  RosterLock& operator=(const RosterLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

class Provision : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub = app.add_subcommand(
        "provision",
        "create socket identities: roster entries plus one Intel HEX device-information page each");
    sub->add_option("--count", count_, "how many sockets (1.." + std::to_string(kMaxCount) + ")")->required();
    sub->add_option("--product-id", product_id_, "Tuya product id of the sockets")->required();
    sub->add_option("--prefix", prefix_,
                    "cids are PREFIX-0001, PREFIX-0002, ... after the highest one in use")
        ->capture_default_str();
    sub->add_option("--config", config_,
                    "configuration whose `sockets:` list gets the new sockets "
                    "(default: the global --config)");
    sub->add_option("--out", out_, "directory for the CID.hex files (created if missing)")
        ->capture_default_str();
    sub->add_option("--gateway", gateway_,
                    "HOST:PORT the sockets dial (default: lan.listen_address:lan.port when that is a "
                    "concrete address)");
    sub->add_option("--mcu", mcu_, "g070kb (page at 0x0801B000) or g030k8 (0x0800B000)")
        ->check(CLI::IsMember({"g070kb", "g030k8"}))
        ->capture_default_str();
    sub->add_option("--kv", kv_, "HLW8032 voltage calibration default (Kv)")->capture_default_str();
    sub->add_option("--ki", ki_, "HLW8032 current calibration default (Ki)")->capture_default_str();
    sub->footer(
        "The HEX files hold each socket's secret: keep them like passwords and delete them once the units "
        "are programmed.\nRestart plugbridged afterwards so it accepts the new sockets.");
    return sub;
  }

  int run(Context& ctx) override {
    if (count_ < 1 || count_ > kMaxCount)
      throw CliError(exit_code::kUsage, "--count must be 1.." + std::to_string(kMaxCount));
    if (product_id_.empty() || product_id_.size() > pbfw::DeviceInfo::kProductIdMax ||
        !cid_chars(product_id_))
      throw CliError(exit_code::kUsage, "--product-id must be 1..32 characters of [A-Za-z0-9_-]");
    if (prefix_.empty() || !cid_chars(prefix_) || prefix_.size() > pbfw::DeviceInfo::kCidMax - 5)
      throw CliError(exit_code::kUsage, "--prefix must be 1..27 characters of [A-Za-z0-9_-]");
    const uint32_t kv = calibration_e6(kv_, "--kv"), ki = calibration_e6(ki_, "--ki");

    // Held until the roster is renamed into place, so concurrent runs cannot mint the same cids.
    const std::string config_path = config_.empty() ? ctx.require_config().source_file : config_;
    const RosterLock lock(config_path);
    const config::Config cfg = load_config(config_path);
    const auto [host, port] = gateway(cfg);
    const uint32_t page = mcu_ == "g030k8" ? stm32g0::kG030K8.devinfo_start : stm32g0::kG070KB.devinfo_start;

    std::set<std::string> cids;
    std::set<std::vector<uint8_t>> secrets;
    int next = 1;
    for (const auto& s : cfg.sockets) {
      cids.insert(s.cid);
      secrets.insert(s.secret);
      next = std::max(next, sequence_number(s.cid) + 1);
    }

    std::vector<NewSocket> fresh;
    for (int i = 0; i < count_; ++i, ++next) {
      NewSocket s;
      char num[16];
      std::snprintf(num, sizeof num, "%04d", next);
      s.cid = prefix_ + "-" + num;
      if (s.cid.size() > pbfw::DeviceInfo::kCidMax)
        throw CliError(exit_code::kUsage,
                       "cid " + s.cid + " would be longer than 32 characters; use a shorter --prefix");
      if (!cids.insert(s.cid).second) throw CliError(exit_code::kFailed, "cid " + s.cid + " already in use");
      s.product_id = product_id_;
      do {  // a repeat is astronomically unlikely, but two units with one key would lock each other out
        s.secret.assign(kSecretBytes, 0);
        if (RAND_bytes(s.secret.data(), static_cast<int>(kSecretBytes)) != 1)
          throw CliError(exit_code::kFailed, "OpenSSL RAND_bytes failed: no secure random numbers");
      } while (!secrets.insert(s.secret).second);
      fresh.push_back(std::move(s));
    }

    const fs::path out_dir(out_);
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) throw CliError(exit_code::kFailed, "cannot create " + out_ + ": " + ec.message());
    std::vector<fs::path> written;
    auto undo = [&] {
      for (const auto& p : written) fs::remove(p, ec);
    };
    try {
      for (const NewSocket& s : fresh) {
        const fs::path file = out_dir / (s.cid + ".hex");
        write_hex(file, device_info(s, host, port, kv, ki), page);
        written.push_back(file);
      }
      // The roster last: if it cannot be written, no HEX file survives to program a unit the daemon rejects.
      std::ifstream in(cfg.source_file, std::ios::binary);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!in && !in.eof()) throw CliError(exit_code::kNoData, "cannot read " + cfg.source_file);
      write_config_atomically(cfg.source_file,
                              append_sockets(text, fresh,
                                             "plugbridge provision: " + std::to_string(count_) + " x " +
                                                 product_id_ + ", " + utc_stamp(ctx.now_ms())));
    } catch (...) {
      undo();
      throw;
    }

    auto& out = ctx.term().out;
    for (size_t i = 0; i < fresh.size(); ++i) out << fresh[i].cid << "  " << written[i].string() << '\n';
    out << "added " << fresh.size() << " socket" << (fresh.size() == 1 ? "" : "s") << " to "
        << cfg.source_file << '\n';
    ask_daemon_to_reload(ctx, cfg);
    return exit_code::kOk;
  }

 private:
  // The roster is written whatever the daemon says: its answer is reported, never an error.
  static void ask_daemon_to_reload(Context& ctx, const config::Config& cfg) {
    auto& out = ctx.term().out;
    const std::string socket = ctx.explicit_socket_path().value_or(cfg.control_socket);
    if (socket.empty()) {
      out << "the control socket is disabled in " << cfg.source_file
          << ": run `sudo systemctl reload plugbridged` to accept the new sockets\n";
      return;
    }
    nlohmann::json r;
    try {
      r = control_request(socket, {{"cmd", "reload"}}, std::chrono::seconds(30));
    } catch (const CliError& e) {
      if (e.code() == exit_code::kNoDaemon)
        out << "the daemon is not running (nobody answers at " << socket
            << "); start it or run `plugbridge reload` later\n";
      else
        ctx.term().err << "plugbridge provision: could not ask the daemon to reload: " << e.what()
                       << "\n  run `plugbridge reload` (or `sudo systemctl reload plugbridged`) later\n";
      return;
    }
    if (r.value("ok", false)) {
      out << "daemon reloaded: " << r.value("message", std::string()) << '\n';
    } else if (r.value("error", std::string()) == "bad_request") {
      // A daemon from before reload over the control socket.
      ctx.term().err << "plugbridge provision: the running daemon could not reload (it does not know the "
                        "command: "
                     << r.value("message", std::string("bad request"))
                     << "); run `sudo systemctl reload plugbridged` to accept the new sockets\n";
    } else {
      ctx.term().err << "plugbridge provision: the daemon did not reload: "
                     << r.value("message", r.value("error", std::string("failed")))
                     << "\n  it keeps running on the previous configuration; fix the file, then run "
                        "`plugbridge reload`\n";
    }
  }

  static config::Config load_config(const std::string& path) {
    try {
      return config::load_file(path);
    } catch (const std::exception& e) {
      throw CliError(exit_code::kNoData, std::string("cannot read the configuration: ") + e.what());
    }
  }

  // The N of "PREFIX-N" (0 for other cids), so new cids continue after the highest in use.
  int sequence_number(const std::string& cid) const {
    const std::string head = prefix_ + "-";
    if (cid.rfind(head, 0) != 0 || cid.size() == head.size() || cid.size() > head.size() + 9) return 0;
    const std::string tail = cid.substr(head.size());
    if (!std::all_of(tail.begin(), tail.end(), [](char c) { return c >= '0' && c <= '9'; })) return 0;
    return std::stoi(tail);
  }

  std::pair<std::string, uint16_t> gateway(const config::Config& cfg) const {
    std::string host;
    long port = 0;
    if (gateway_.empty()) {
      const std::string& a = cfg.lan.listen_address;
      if (a.empty() || a == "0.0.0.0" || a == "::" || cfg.lan.port == 0)
        throw CliError(exit_code::kUsage, "--gateway HOST:PORT is required: the configuration listens on " +
                                              a + ":" + std::to_string(cfg.lan.port) +
                                              ", which a socket cannot dial");
      host = a;
      port = cfg.lan.port;
    } else {
      const size_t colon = gateway_.rfind(':');
      if (colon == std::string::npos || colon == 0)
        throw CliError(exit_code::kUsage, "--gateway must be HOST:PORT, e.g. 192.168.1.10:6690");
      host = gateway_.substr(0, colon);
      const std::string p = gateway_.substr(colon + 1);
      if (p.empty() || p.size() > 5 ||
          !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw CliError(exit_code::kUsage, "--gateway port must be 1..65535");
      port = std::stol(p);
    }
    if (port < 1 || port > 65535) throw CliError(exit_code::kUsage, "--gateway port must be 1..65535");
    if (host.size() > pbfw::DeviceInfo::kHostMax)
      throw CliError(exit_code::kUsage, "gateway host is longer than 63 characters");
    // The socket passes the host to ESP-AT inside a quoted AT command: a name or an IPv4 address only.
    if (!std::all_of(host.begin(), host.end(), [](char c) {
          return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '-';
        }))
      throw CliError(exit_code::kUsage, "gateway host '" + host + "' must be a host name or IPv4 address");
    return {host, static_cast<uint16_t>(port)};
  }

  static std::vector<uint8_t> device_info(const NewSocket& s, const std::string& host, uint16_t port,
                                          uint32_t kv, uint32_t ki) {
    pbfw::DeviceInfo info{};
    std::memcpy(info.cid, s.cid.data(), s.cid.size());
    std::memcpy(info.product_id, s.product_id.data(), s.product_id.size());
    std::memcpy(info.psk, s.secret.data(), s.secret.size());
    info.psk_len = static_cast<uint8_t>(s.secret.size());
    std::memcpy(info.gateway_host, host.data(), host.size());
    info.gateway_port = port;
    info.kv_e6 = kv;
    info.ki_e6 = ki;
    // Padded with erased flash (0xFF) to whole 64-bit double words, the STM32G0's programming unit.
    std::vector<uint8_t> bytes((pbfw::kDeviceInfoSize + 7) / 8 * 8, 0xFF);
    if (!pbfw::encode_device_info(info, bytes.data()))
      throw CliError(exit_code::kUsage, "the device information for " + s.cid + " is invalid");
    return bytes;
  }

  static void write_hex(const fs::path& file, const std::vector<uint8_t>& page_bytes, uint32_t address) {
    const std::string text = ihex::write(address, page_bytes);
    // Created 0600 (it holds the secret) and never over an existing file.
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
      throw CliError(exit_code::kFailed,
                     file.string() + " already exists; remove it or choose another --out");
    if (fd < 0)
      throw CliError(exit_code::kFailed, "cannot create " + file.string() + ": " + std::strerror(errno));
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = errno;
        ::close(fd);
        ::unlink(file.c_str());
        throw CliError(exit_code::kFailed, "cannot write " + file.string() + ": " + std::strerror(err));
      }
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  }

  int count_ = 0;
  std::string product_id_;
  std::string prefix_ = "socket";
  std::string config_;
  std::string out_ = ".";
  std::string gateway_;
  std::string mcu_ = "g070kb";
  double kv_ = pbfw::proto::kDefaultKvE6 / 1e6;
  double ki_ = pbfw::proto::kDefaultKiE6 / 1e6;
};

}  // namespace

std::unique_ptr<Command> make_provision() {
  return std::make_unique<Provision>();
}

}  // namespace pb::cli
