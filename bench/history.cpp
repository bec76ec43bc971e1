// pb-bench-history: a year of history for N sockets, then the CLI's history and energy queries
// timed beside a naive SQL aggregation over the raw samples (bench/README.md).
//
// Generation: every socket's 10-second readings are simulated for the whole span and written as
// samples (Store::commit): one-minute samples for the last --raw-days, one per quarter-hour before;
// Store::roll_up then fills the buckets and hours as the daemon does (all but the last roll-up period,
// whose samples wait for it), and the samples before the raw window are pruned as the daemon's
// retention does. Big transactions, synchronous=OFF. The queries run from the hours first, then
// again once the local days are rolled up (energy::roll_up_days, as the daemon's retention does).
#include <date/date.h>
#include <sqlite3.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "plugbridge/cli/cli.hpp"
#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/energy/totals.hpp"
#include "plugbridge/store/store.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string cid_of(int i) {
  std::ostringstream s;
  s << "hist-" << std::setw(4) << std::setfill('0') << i;
  return s.str();
}

// Deterministic per-socket load: a base load, a daily cycle and a socket-specific appliance that
// runs a few hours a day. Power in mW at unix second t.
uint32_t power_mw(int socket, int64_t t) {
  const double day = static_cast<double>(t % 86400) / 86400.0;
  const double base = 5000.0 + 400.0 * socket;
  const double cycle = 60000.0 * (1.0 + std::sin(6.283185307 * (day + socket * 0.01)));
  const bool appliance = ((t / 3600 + socket) % 24) < 3;
  return static_cast<uint32_t>(base + cycle + (appliance ? 900000.0 : 0.0));
}

// The median of `runs` timings of fn (ms).
template <class F>
double median_ms(int runs, F fn) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    fn();
    t.push_back(ms_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int run_cli(const std::vector<std::string>& args, int64_t now_ms, std::string* out_text = nullptr) {
  std::ostringstream out, err;
  pb::cli::Terminal term{out, err};
  term.now_ms = now_ms;
  const int code = pb::cli::run(args, term);
  if (code != 0) std::cerr << "plugbridge exited " << code << ": " << err.str();
  if (out_text) *out_text = out.str();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  int sockets = 100, days = 365, raw_days = 35, interval_s = 10, runs = 5;
  std::string dir, zone = "Europe/Berlin";
  bool keep = false;
  CLI::App app{"pb-bench-history: history/energy query times on N sockets x a year of readings"};
  app.add_option("--sockets", sockets, "sockets")->capture_default_str();
  app.add_option("--days", days, "days of history")->capture_default_str();
  app.add_option("--raw-days", raw_days, "raw samples (1 min) kept for the last N days")
      ->capture_default_str();
  app.add_option("--interval-s", interval_s, "reading interval")->capture_default_str();
  app.add_option("--runs", runs, "timed runs per query (median)")->capture_default_str();
  app.add_option("--zone", zone, "IANA time zone of the calendar")->capture_default_str();
  app.add_option("--dir", dir, "work directory (default: a new temporary one)");
  app.add_flag("--keep", keep, "keep the database");
  CLI11_PARSE(app, argc, argv);
  raw_days = std::min(raw_days, days);

  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "pb-bench-history-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return 1;
    dir = tmpl;
  }
  fs::create_directories(dir);
  const std::string db_path = (fs::path(dir) / "pb.db").string();
  const std::string config_path = (fs::path(dir) / "pb.yaml").string();
  fs::remove(db_path);
  {
    std::ofstream cfg(config_path);
    cfg << "gateway_id: bench\nuplink: {enabled: false}\ndatabase: " << db_path
        << "\ncontrol_socket: " << (fs::path(dir) / "c.sock").string() << "\ntimezone: " << zone
        << "\nsockets:\n";
    for (int i = 0; i < sockets; ++i)
      cfg << "  - cid: " << cid_of(i) << "\n    product_id: p\n    secret: 0011223344556677889900000000"
          << std::setw(4) << std::setfill('0') << i << std::setfill(' ') << "\n";
  }

  // The history ends at a local midnight, so "yesterday" and the months are complete.
  const date::sys_days end_day = date::sys_days{date::year{2026} / 11 / 23};
  const int64_t end_s = std::chrono::duration_cast<std::chrono::seconds>(end_day.time_since_epoch()).count();
  const int64_t start_s = end_s - int64_t{days} * 86400;
  const int64_t raw_from_s = end_s - int64_t{raw_days} * 86400;
  const int64_t now_ms = end_s * 1000 + 12 * 3600 * 1000;  // noon of the day after

  auto t_gen = Clock::now();
  int64_t samples_written = 0, total_mwh = 0;
  int64_t buckets_written = 0;
  {
    // Samples as the daemon writes them, rolled up into buckets and hours as it does: one sample a
    // quarter-hour before the raw window (pruned once rolled up), one a minute inside it.
    pb::store::Store store(db_path, pb::store::StoreOptions{.synchronous = "OFF"});
    constexpr int64_t kDayBatch = 1;  // one day of all sockets per transaction
    std::vector<uint64_t> counter_mwh_x3600(static_cast<size_t>(sockets), 0);  // mWh * 3600 (mW * s)
    for (int64_t chunk = start_s; chunk < end_s; chunk += kDayBatch * 86400) {
      const int64_t chunk_end = std::min(end_s, chunk + kDayBatch * 86400);
      pb::store::EnergyUpdate up;
      for (int s = 0; s < sockets; ++s) {
        const std::string cid = cid_of(s);
        uint64_t& acc = counter_mwh_x3600[static_cast<size_t>(s)];
        for (int64_t q = chunk; q < chunk_end; q += 900) {
          const int64_t width = q >= raw_from_s ? 60 : 900;
          for (int64_t m = q; m < q + 900; m += width) {
            pb::store::BucketUpdate b;
            b.cid = cid;
            b.start_ms = m * 1000;
            const uint64_t before = acc / 3600;
            for (int64_t t = m; t < m + width; t += interval_s) {
              const uint32_t p = power_mw(s, t);
              acc += static_cast<uint64_t>(p) * static_cast<uint64_t>(interval_s);
              const uint32_t v = 229000 + static_cast<uint32_t>((t / 60 + s) % 4000);
              const uint32_t i = static_cast<uint32_t>(uint64_t{p} * 1000000 / v);
              if (b.samples == 0) {
                b.power_min_mw = b.power_max_mw = p;
                b.voltage_min_mv = b.voltage_max_mv = v;
                b.current_max_ua = i;
              } else {
                b.power_min_mw = std::min<int64_t>(b.power_min_mw, p);
                b.power_max_mw = std::max<int64_t>(b.power_max_mw, p);
                pb::store::merge_min(b.voltage_min_mv, v);
                pb::store::merge_max(b.voltage_max_mv, v);
                pb::store::merge_max(b.current_max_ua, i);
              }
              ++b.samples;
              b.power_sum_mw += p;
            }
            b.energy_mwh = static_cast<int64_t>(acc / 3600 - before);
            total_mwh += b.energy_mwh;
            up.samples.push_back(std::move(b));
          }
        }
      }
      samples_written += static_cast<int64_t>(up.samples.size());
      store.commit({}, up);
    }
    // Up to the last roll-up before the end: the samples of one roll-up period (6 h) wait, as in the
    // daemon's database just before its next roll-up, and every query adds them.
    buckets_written =
        static_cast<int64_t>(store.roll_up(end_s * 1000 - pb::energy::roll_up_period_ms(60'000)));
    while (store.prune_samples(raw_from_s * 1000, 100'000) > 0) {
    }
  }
  const double gen_s = ms_since(t_gen) / 1000.0;
  {
    // Fold the WAL into the main file so its size is the database's.
    sqlite3* db = nullptr;
    sqlite3_open(db_path.c_str(), &db);
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  const double db_bytes = static_cast<double>(fs::file_size(db_path));
  const double socket_years = sockets * (days / 365.0);

  // The CLI queries, in-process (what `plugbridge` runs, minus process start).
  const std::string from = date::format("%F", end_day - date::days{days});
  const std::string to = date::format("%F", end_day);
  std::vector<std::string> hist = {"--config", config_path, "history", "--all", "--by",     "day",
                                   "--from",   from,        "--to",    to,      "--format", "csv"};
  std::string hist_out, hist_hours_out;
  std::vector<std::string> energy = {"--config", config_path, "energy", "--format", "csv"};
  // First from the hours alone (no local days rolled up yet), then as the daemon keeps it: every
  // local day before the last roll-up rolled up into a row (timed per day).
  if (run_cli(hist, now_ms, &hist_hours_out) != 0 || run_cli(energy, now_ms) != 0) return 1;
  const double t_history_hours = median_ms(runs, [&] { run_cli(hist, now_ms); });
  const double t_energy_hours = median_ms(runs, [&] { run_cli(energy, now_ms); });
  size_t days_rolled = 0;
  double t_days = 0;
  {
    pb::store::Store store(db_path, pb::store::StoreOptions{.synchronous = "OFF"});
    const pb::energy::Calendar cal(zone);
    const auto t0 = Clock::now();
    days_rolled = pb::energy::roll_up_days(store, cal, static_cast<size_t>(days) + 1);
    t_days = ms_since(t0);
  }
  if (run_cli(hist, now_ms, &hist_out) != 0) return 1;
  if (hist_out != hist_hours_out) {
    std::cerr << "history differs with the days rolled up\n";
    return 1;
  }
  const double t_history = median_ms(runs, [&] { run_cli(hist, now_ms); });
  const double t_energy = median_ms(runs, [&] { run_cli(energy, now_ms); });
  // The daemon's today and this-month totals of every socket (read at its start and at each local
  // midnight), with the samples of the last period waiting: LiveTotals, one snapshot for all
  // sockets, against a read per socket (each scanning the waiting samples of all sockets).
  double t_totals_each = 0, t_totals_live = 0;
  int64_t totals_check = 0;
  {
    pb::store::Store store(db_path);
    const pb::energy::Calendar cal(zone);
    const int64_t at = end_s * 1000 - 1;
    const date::year_month_day today = cal.local_date(at);
    const pb::energy::Range day = cal.day(today), month = cal.month(today.year() / today.month());
    int64_t each_sum = 0, live_sum = 0;
    t_totals_each = median_ms(runs, [&] {
      each_sum = 0;
      for (int i = 0; i < sockets; ++i)
        each_sum += store.energy_sum(cid_of(i), day.from_ms, day.to_ms) +
                    store.energy_sum(cid_of(i), month.from_ms, month.to_ms);
    });
    t_totals_live = median_ms(runs, [&] {
      pb::energy::LiveTotals live(cal);
      live_sum = 0;
      for (int i = 0; i < sockets; ++i) {
        const auto& t = live.get(store, cid_of(i), at);
        live_sum += t.day_mwh + t.month_mwh;
      }
    });
    totals_check = each_sum - live_sum;
  }
  // The same queries once the last period is rolled up too: what the samples waiting for their
  // roll-up cost the queries, as a ratio measured in this run.
  {
    pb::store::Store store(db_path);
    store.roll_up(end_s * 1000);
  }
  const double t_history_rolled = median_ms(runs, [&] { run_cli(hist, now_ms); });
  const double t_energy_rolled = median_ms(runs, [&] { run_cli(energy, now_ms); });

  // Naive: per socket and local day from the raw samples, over the raw window (all raw there is),
  // with SQLite's own localtime; and the same days over the quarter-hour buckets.
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  int64_t naive_rows = 0;
  auto naive = [&](const std::string& sql) {
    return median_ms(std::max(1, runs / 2), [&] {
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
      naive_rows = 0;
      while (sqlite3_step(st) == SQLITE_ROW) ++naive_rows;
      sqlite3_finalize(st);
    });
  };
  setenv("TZ", zone.c_str(), 1);
  tzset();
  const double t_naive_raw = naive(
      "SELECT socket, date(start_ms / 1000, 'unixepoch', 'localtime') AS d, sum(energy_mwh) "
      "FROM samples GROUP BY socket, d");
  const int64_t naive_raw_rows = naive_rows;
  const double t_naive_buckets = naive(
      "SELECT date(start_ms / 1000, 'unixepoch', 'localtime') AS d, sum(energy_mwh), count(DISTINCT cid) "
      "FROM energy_buckets GROUP BY d");
  const int64_t naive_bucket_rows = naive_rows;
  sqlite3_close(db);

  const double per_raw_day = t_naive_raw / std::max(1, raw_days);
  auto row = [](const std::string& label, double ms, const std::string& note) {
    std::cout << std::left << std::setw(52) << label << std::right << std::setw(10) << ms << "   " << note
              << "\n";
  };
  auto target = [](double ms) { return std::string("< 100 ms ") + (ms < 100 ? "PASS" : "MISS"); };
  std::cout << std::fixed << std::setprecision(1);
  std::cout << "pb-bench-history: " << sockets << " sockets x " << days << " days of " << interval_s
            << "-s readings (raw for the last " << raw_days << " days), zone " << zone << "\n"
            << "generated in " << gen_s << " s: " << samples_written << " samples rolled up into "
            << buckets_written << " buckets, " << total_mwh / 1e6 << " kWh\n"
            << "database: " << db_bytes / 1e6 << " MB = " << db_bytes / socket_years / 1e6
            << " MB per socket-year (raw window included)\n"
            << "local days rolled up: " << days_rolled << " in " << t_days << " ms ("
            << t_days / std::max<double>(1.0, static_cast<double>(days_rolled)) << " ms a day of " << sockets
            << " sockets)\n\n"
            << std::left << std::setw(52) << "query" << std::right << std::setw(10) << "median ms"
            << "\n";
  row("plugbridge history --all --by day (" + std::to_string(days) + " days)", t_history, target(t_history));
  row("plugbridge energy (all sockets)", t_energy, target(t_energy));
  row("  the same from the hours (no days): history", t_history_hours,
      "days make it x" + std::to_string(t_history_hours / std::max(t_history, 0.001)).substr(0, 4) +
          " faster");
  row("  the same from the hours (no days): energy", t_energy_hours,
      "days make it x" + std::to_string(t_energy_hours / std::max(t_energy, 0.001)).substr(0, 4) + " faster");
  row("  the same, everything rolled up: history", t_history_rolled,
      "tail costs x" + std::to_string(t_history / std::max(t_history_rolled, 0.001)).substr(0, 4));
  row("  the same, everything rolled up: energy", t_energy_rolled,
      "tail costs x" + std::to_string(t_energy / std::max(t_energy_rolled, 0.001)).substr(0, 4));
  row("daemon totals, every socket, one snapshot", t_totals_live,
      "x" + std::to_string(t_totals_each / std::max(t_totals_live, 0.001)).substr(0, 5) +
          " faster than a read per socket (" + std::to_string(t_totals_each).substr(0, 6) + " ms)" +
          (totals_check == 0 ? "" : "; TOTALS DIFFER"));
  std::ostringstream extra;
  extra << std::fixed << std::setprecision(0) << naive_raw_rows << " rows; ~" << per_raw_day * days
        << " ms for " << days << " days if raw were kept";
  row("naive SQL: raw samples by socket, day (" + std::to_string(raw_days) + " days)", t_naive_raw,
      extra.str());
  row("naive SQL: 15-min buckets by day (" + std::to_string(days) + " days)", t_naive_buckets,
      std::to_string(naive_bucket_rows) + " rows");
  std::cout << std::setprecision(0) << "ratios: naive raw (" << days
            << " days, extrapolated) / history = " << per_raw_day * days / std::max(t_history, 0.001)
            << "x; naive buckets / history = " << t_naive_buckets / std::max(t_history, 0.001) << "x\n";
  if (!keep) fs::remove_all(dir);
  // Fails only if nothing was measured.
  return hist_out.empty() || samples_written == 0 || totals_check != 0 || days_rolled == 0 ? 1 : 0;
}
