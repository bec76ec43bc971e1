// What every subcommand shares: the global options, the configuration, the read-only database,
// the time zone, time parsing and formatting, and errors that carry an exit code.
#pragma once

#include <date/tz.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "plugbridge/cli/cli.hpp"
#include "plugbridge/config/config.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/store/reader.hpp"

namespace pb::cli {

// A failure the user can act on: the message names the problem and the fix.
class CliError : public std::runtime_error {
 public:
  CliError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

struct GlobalOptions {
  std::string config_path = "/etc/plugbridge/plugbridge.yaml";
  std::string db_path;      // overrides the config's database
  std::string socket_path;  // overrides the config's control_socket
  std::string tz;           // overrides the config's timezone
};

class Context {
 public:
  Context(Terminal& term, GlobalOptions opts) : term_(term), opts_(std::move(opts)) {}

  Terminal& term() { return term_; }
  int64_t now_ms() const;
  bool color() const { return term_.out_is_tty && !term_.no_color; }

  // The configuration, loaded on first use. Optional: without a config file the CLI still works
  // with --db (the roster then comes from the database).
  const config::Config* config();
  // Throws CliError(kNoData) with the fix when it cannot be loaded and --db was not given.
  const config::Config& require_config();
  std::string db_path();
  std::string socket_path();
  // --socket when given.
  std::optional<std::string> explicit_socket_path() const {
    return opts_.socket_path.empty() ? std::nullopt : std::optional<std::string>(opts_.socket_path);
  }

  // The database's read API, read-only and safe while the daemon writes (WAL). Throws
  // CliError(kNoData) naming the fix.
  store::Reader& store();
  // Every known socket: the roster in config order, then cids only the database knows.
  struct SocketInfo {
    std::string cid, name;
  };
  std::vector<SocketInfo> sockets();
  // Throws CliError(kUsage) listing the known cids.
  void require_known_cid(const std::string& cid);

  const date::time_zone& zone();
  const energy::Calendar& calendar();

  // "2026-11-23", "2026-11-23 14:00[:ss]", "2026-11-23T14:00", "now", "today", "yesterday",
  // "-7d", "-12h", "-30m", or unix ms "@1700000000000". Local times are in zone(). Throws
  // CliError(kUsage) naming the accepted forms.
  int64_t parse_time(const std::string& text, const std::string& option);
  std::string local_time(int64_t ms, const char* fmt = "%Y-%m-%d %H:%M:%S");
  // ISO 8601 with offset: 2026-11-23T14:00:00+01:00
  std::string iso_time(int64_t ms);
  int64_t utc_offset_ms(int64_t ms);

 private:
  Terminal& term_;
  GlobalOptions opts_;
  bool config_tried_ = false;
  std::optional<config::Config> config_;
  std::string config_error_;
  std::unique_ptr<store::Reader> store_;
  const date::time_zone* zone_ = nullptr;
  std::unique_ptr<energy::Calendar> calendar_;
};

// Fixed-point text of an integer amount: fixed(12345, 1000, 3) = "12.345".
std::string fixed(int64_t value, int64_t divisor, int decimals);
// Energy for people: "12.4 Wh" below 1 kWh, "1.234 kWh" above. For CSV (`csv`): kWh with every
// digit the database has (mWh), no unit.
std::string energy_cell(int64_t mwh, bool csv);
// Pads/truncates to width columns, counting UTF-8 code points.
std::string pad_right(const std::string& s, size_t width);
std::string pad_left(const std::string& s, size_t width);
size_t display_width(const std::string& s);
std::string csv_field(const std::string& s);

}  // namespace pb::cli
