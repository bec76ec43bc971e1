// A simulated year, checked against the truth: a few sockets (the real firmware core on a simulated
// HLW8032 and the real flash log on a file) feeding the gateway's real accounting (energy::Accountant)
// and store (store::Store, SQLite in a temp dir), on an injected clock: no sleeping, no wall clock.
// Seeded faults on the way: a 10 000 kWh counter wrap, factory resets, firmware reboots, duplicate and
// reordered records, gateway SIGKILLs (the process's objects abandoned without a commit and reopened
// from the file as the daemon starts), socket-to-gateway outages of minutes to days, and the DST
// changes of the configured zone. The stored days, months and totals are compared with the integral
// of the power the loads drew (docs/schema.md, "The simulated year").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace pb::year {

struct Options {
  uint64_t seed = 20260101;
  std::string start = "2026-01-01";  // first local day (YYYY-MM-DD) in `zone`
  int days = 365;
  int sockets = 5;  // load profiles repeat (with their own seeds) beyond five
  std::string zone = "Europe/Berlin";
  std::filesystem::path dir;  // where the database and the flash files go; empty: a temp dir, removed
  // A reboot while the records since a factory reset wait for their ack (the socket offline) loses
  // the energy counted before the reset since the last reading the gateway got: by design, so such a
  // reboot waits for the ack unless this is set (PB_YEAR_REBOOT_BEFORE_RESET_ACKED=1).
  bool reboot_before_reset_acked = false;
};

// Overrides from the environment: PB_YEAR_SEED, PB_YEAR_START, PB_YEAR_DAYS, PB_YEAR_SOCKETS, and
// PB_YEAR_DIR (kept afterwards: the database and the flash files to look at).
Options options_from_env(Options defaults);

struct SocketFigures {
  std::string cid, profile;
  double true_kwh = 0, stored_kwh = 0, error_pct = 0;  // over [first day, last day] of the run
  double worst_day_wh = 0;                             // largest |stored - true| of a local day
  double worst_day_of_tol = 0;  // the largest day error as a fraction of that day's tolerance
  double max_day_kwh = 0;       // the largest stored day
  int dst_days = 0;             // days of 23 or 25 hours checked
  double worst_dst_day_wh = 0;  // the largest |stored - true| of those
  double design_loss_wh = 0;    // what the firmware's counter lost at reboots (persist interval)
  int wraps = 0, resets = 0, reboots = 0, outages = 0, dups = 0, reorders = 0, coarsened = 0,
      rejected_jumps = 0;
  int days_checked = 0, months_checked = 0;
};

struct Result {
  std::vector<SocketFigures> sockets;
  int kills = 0;
  int gateway_outages = 0;
  double seconds = 0;                 // wall time of the run
  std::vector<std::string> failures;  // every bound that did not hold
  std::string table() const;
};

Result run(const Options& options);

}  // namespace pb::year
