// plugbridge: the command-line view of the gateway's database.
// First cut: `devices` and `history`; energy accounting, charts, export and live relay control
// through the daemon follow (issue "Energy history you can trust").
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>

#include "config/config.hpp"
#include "store/store.hpp"

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string local_time(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string ago(int64_t ms) {
  int64_t s = (now_ms() - ms) / 1000;
  if (s < 120) return std::to_string(s) + " s ago";
  if (s < 7200) return std::to_string(s / 60) + " min ago";
  return std::to_string(s / 3600) + " h ago";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"plugbridge: energy history and state of the sockets behind plugbridged"};
  app.require_subcommand(1);
  std::string config_path = "/etc/plugbridge/plugbridge.yaml";
  std::string db_path;
  app.add_option("-c,--config", config_path, "daemon configuration (for the roster and the database path)")
      ->capture_default_str();
  app.add_option("--db", db_path, "database file (default: the one in the configuration)");

  auto* devices = app.add_subcommand("devices", "every socket: relay, power now, energy counter, last seen");
  std::string cid;
  int64_t minutes = 10;
  auto* history = app.add_subcommand("history", "readings of one socket, one line per minute");
  history->add_option("cid", cid, "socket id")->required();
  history->add_option("--minutes", minutes, "how far back")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    pb::config::Config cfg;
    bool have_cfg = false;
    if (db_path.empty() || *devices) {
      cfg = pb::config::load_file(config_path);
      have_cfg = true;
      if (db_path.empty()) db_path = cfg.database;
    }
    pb::store::Store db(db_path, true);

    if (*devices) {
      std::printf("%-14s %-20s %-5s %10s %9s %8s %14s  %s\n", "CID", "NAME", "RELAY", "POWER W", "VOLTAGE", "CURR A",
                  "COUNTER kWh", "LAST SEEN");
      for (const auto& s : cfg.sockets) {
        auto r = db.latest_reading(s.cid);
        if (!r) {
          std::printf("%-14s %-20s %-5s %10s %9s %8s %14s  %s\n", s.cid.c_str(), s.name.c_str(), "-", "-", "-", "-", "-",
                      "never");
          continue;
        }
        bool meter_ok = r->flags & 0x08;
        std::printf("%-14s %-20s %-5s %10.1f %9.1f %8.3f %14.4f  %s\n", s.cid.c_str(), s.name.c_str(),
                    (r->flags & 0x10) ? "on" : "off", meter_ok ? r->power_mw / 1000.0 : 0.0,
                    meter_ok ? r->voltage_mv / 1000.0 : 0.0, meter_ok ? r->current_ua / 1e6 : 0.0,
                    static_cast<double>(r->energy_mwh) / 1e6, ago(r->ts_ms).c_str());
      }
      (void)have_cfg;
    } else if (*history) {
      auto rows = db.readings(cid, now_ms() - minutes * 60000, INT64_MAX);
      if (rows.empty()) {
        std::fprintf(stderr, "plugbridge: no readings of '%s' in the last %lld minutes\n", cid.c_str(),
                     static_cast<long long>(minutes));
        return 1;
      }
      std::printf("%-19s %10s %10s %10s %14s\n", "MINUTE", "AVG W", "MAX W", "READINGS", "COUNTER kWh");
      std::map<int64_t, std::vector<const pb::store::ReadingRow*>> by_minute;
      for (const auto& r : rows) by_minute[r.ts_ms / 60000].push_back(&r);
      for (const auto& [minute, rs] : by_minute) {
        double sum = 0, mx = 0;
        for (auto* r : rs) {
          sum += r->power_mw / 1000.0;
          mx = std::max(mx, r->power_mw / 1000.0);
        }
        std::printf("%-19s %10.1f %10.1f %10zu %14.4f\n", local_time(minute * 60000).c_str(), sum / rs.size(), mx,
                    rs.size(), static_cast<double>(rs.back()->energy_mwh) / 1e6);
      }
    }
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "plugbridge: %s\n", ex.what());
    return 2;
  }
  return 0;
}
