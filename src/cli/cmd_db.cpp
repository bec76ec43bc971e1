// `plugbridge db check` and `plugbridge db recover`: the database's health, and a way out when it is
// damaged. check runs SQLite's integrity_check (read-only, safe while the daemon runs); recover
// copies whatever can still be read into a new file (store::recover_file), with the daemon stopped,
// and says how to put the new file in place.
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "plugbridge/cli/control_client.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string megabytes(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

class Db : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub =
        app.add_subcommand("db", "check the database, or recover what can be read from a damaged one");
    sub->require_subcommand(1);
    check_ = sub->add_subcommand("check",
                                 "SQLite's integrity check of the database (read-only; the daemon may run)");
    check_->add_flag("--quick", quick_, "quick_check: skips matching indexes against their tables (faster)");
    check_->add_option("--budget", budget_s_, "stop after this many seconds (0 = no limit)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    stats_ = sub->add_subcommand(
        "stats", "where the database's bytes are: per table, per socket, and how long the disk lasts");
    add_format_option(stats_, format_, false);
    recover_ = sub->add_subcommand(
        "recover", "copy what can be read of a damaged database into a new file (stop the daemon first)");
    recover_->add_option("-o,--output", output_, "the new file (default: the database's name + .recovered)");
    sub->footer(
        "The daemon checks its database at start (quick_check) and refuses a damaged one, naming these\n"
        "commands. recover reads every table from both ends of its key order, so a damaged page costs\n"
        "the rows on it; it leaves the damaged file as it is and prints the commands that put the new\n"
        "file in place.");
    return sub;
  }

  int run(Context& ctx) override {
    const std::string path = ctx.db_path();
    if (!fs::exists(path)) throw CliError(exit_code::kNoData, "no database at " + path);
    if (check_->parsed()) return check(ctx, path);
    if (stats_->parsed()) return stats(ctx, path);
    return recover(ctx, path);
  }

 private:
  int stats(Context& ctx, const std::string& path) {
    store::DbStats st;
    try {
      st = store::db_stats(path);
    } catch (const store::StoreError& e) {
      throw CliError(exit_code::kNoData, e.what());
    }
    // Raw history: the samples table (the readings table of a database before schema 5).
    int64_t raw_bytes = 0, raw_rows = 0;
    for (const auto& t : st.tables)
      if (t.name == "samples" || t.name == "readings") raw_bytes = t.bytes, raw_rows = t.rows;
    int64_t first = 0, last = 0;
    for (const auto& k : st.sockets) {
      if (k.samples == 0) continue;
      first = first == 0 ? k.first_ms : std::min(first, k.first_ms);
      last = std::max(last, k.last_ms);
    }
    // Raw samples a day, from the span they cover (an hour at least, else the rate is noise).
    const double span_days = static_cast<double>(last - first) / 86'400'000.0;
    const double raw_per_day = span_days >= 1.0 / 24 ? static_cast<double>(raw_bytes) / span_days : 0;
    struct statvfs vfs {};
    const std::string dir = fs::path(path).has_parent_path() ? fs::path(path).parent_path().string() : ".";
    const int64_t free_bytes = ::statvfs(dir.c_str(), &vfs) == 0
                                   ? static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize)
                                   : -1;
    // The daemon's budget and raw window, as its configuration says (defaults without one).
    config::History history;
    if (const config::Config* cfg = ctx.config()) history = cfg->history;
    const int64_t budget = int64_t{history.max_db_mb} << 20;
    const int64_t used = st.file_bytes - st.free_pages_bytes;
    // Days of raw samples that fit beside everything else (buckets, events... which are kept).
    const double raw_days_fit =
        budget > 0 && raw_per_day > 0
            ? std::max(0.0, static_cast<double>(budget - (used - raw_bytes)) / raw_per_day)
            : -1;
    auto raw_size = [&](const store::DbStats::Socket& k) {
      return raw_rows > 0 ? raw_bytes * k.samples / raw_rows : 0;
    };

    auto& out = ctx.term().out;
    if (format_ == "json") {
      json tables = json::array(), sockets = json::array();
      for (const auto& t : st.tables)
        tables.push_back({{"name", t.name}, {"bytes", t.bytes}, {"rows", t.rows}});
      for (const auto& k : st.sockets)
        sockets.push_back({{"cid", k.cid},
                           {"samples", k.samples},
                           {"first_ms", k.first_ms},
                           {"last_ms", k.last_ms},
                           {"raw_bytes", raw_size(k)},
                           {"buckets", k.buckets}});
      json doc{{"path", path},
               {"schema_version", st.schema_version},
               {"file_bytes", st.file_bytes},
               {"wal_bytes", st.wal_bytes},
               {"free_page_bytes", st.free_pages_bytes},
               {"tables", tables},
               {"sockets", sockets},
               {"raw_bytes_per_day", raw_per_day},
               {"used_bytes", used},
               {"budget_bytes", budget},
               {"raw_days", history.raw_days},
               {"raw_days_fit", raw_days_fit < 0 ? json() : json(raw_days_fit)},
               {"filesystem_free_bytes", free_bytes}};
      out << doc.dump(2) << '\n';
      return exit_code::kOk;
    }
    out << path << ": " << megabytes(st.file_bytes) << " (WAL " << megabytes(st.wal_bytes) << ", free pages "
        << megabytes(st.free_pages_bytes) << "), schema " << st.schema_version << "\n\n";
    Table t;
    t.columns = {{"TABLE", "table"}, {"SIZE", "bytes", true}, {"ROWS", "rows", true}};
    for (const auto& x : st.tables)
      t.rows.push_back({x.name, megabytes(x.bytes), x.rows < 0 ? "-" : std::to_string(x.rows)});
    t.print(out);
    out << '\n';
    Table k;
    k.columns = {{"SOCKET", "cid"},
                 {"RAW SAMPLES", "samples", true},
                 {"RAW DAYS", "days", true},
                 {"RAW SIZE", "raw_bytes", true},
                 {"BUCKETS", "buckets", true}};
    for (const auto& x : st.sockets)
      k.rows.push_back({x.cid, std::to_string(x.samples),
                        x.samples ? fixed((x.last_ms - x.first_ms) / 86'400, 1000, 1) : "-",
                        megabytes(raw_size(x)), std::to_string(x.buckets)});
    k.print(out);
    if (raw_per_day > 0 && free_bytes >= 0) {
      out << "\nRaw samples grow about " << megabytes(static_cast<int64_t>(raw_per_day))
          << " a day (all sockets, until "
          << "history.raw_days prunes them); " << megabytes(free_bytes)
          << " free on the file system: room for about "
          << static_cast<int64_t>(static_cast<double>(free_bytes) / raw_per_day) << " days of them.\n";
    }
    if (budget > 0) {
      out << "Size budget (history.max_db_mb): " << history.max_db_mb << " MiB, " << megabytes(used)
          << " in use";
      if (raw_days_fit >= 0)
        out << ": room for about " << static_cast<int64_t>(raw_days_fit)
            << " days of raw samples at this rate"
            << (raw_days_fit < history.raw_days
                    ? " (fewer than history.raw_days = " + std::to_string(history.raw_days) +
                          ": the oldest are pruned first)"
                    : " (history.raw_days = " + std::to_string(history.raw_days) + " prunes first)");
      out << ".\n";
    }
    return exit_code::kOk;
  }

  int check(Context& ctx, const std::string& path) {
    const auto budget = budget_s_ > 0 ? std::chrono::milliseconds(static_cast<int64_t>(budget_s_ * 1000))
                                      : std::chrono::milliseconds(std::chrono::hours(24 * 365));
    const store::IntegrityReport r = store::check_file(path, budget, !quick_);
    const char* what = quick_ ? "quick_check" : "integrity_check";
    auto& out = ctx.term().out;
    if (r.ok) {
      out << path << ": " << (r.complete ? "ok" : "no damage found so far") << " (" << what << ", "
          << r.took.count() << " ms" << (r.complete ? "" : ", stopped at --budget") << ")\n";
      return exit_code::kOk;
    }
    out << path << ": damaged (" << what << ", " << r.took.count() << " ms):\n";
    for (std::string p : r.problems) {
      for (size_t at = 0; (at = p.find('\n', at)) != std::string::npos; at += 3) p.replace(at, 1, "\n  ");
      out << "  " << p << '\n';
    }
    out << "Recover what can be read into a new file: systemctl stop plugbridged; plugbridge db recover\n";
    return exit_code::kNoData;
  }

  int recover(Context& ctx, const std::string& path) {
    // The daemon writes the file: a copy taken meanwhile would miss what it writes next.
    try {
      control_request(ctx.socket_path(), {{"cmd", "status"}}, std::chrono::seconds(2));
      throw CliError(exit_code::kFailed,
                     "plugbridged is running on this database: stop it first (systemctl stop plugbridged)");
    } catch (const CliError& e) {
      if (e.code() != exit_code::kNoDaemon) throw;
    }
    const std::string out_path = output_.empty() ? path + ".recovered" : output_;
    if (fs::exists(out_path))
      throw CliError(exit_code::kUsage, out_path + " exists already: remove it or pass --output");
    auto& out = ctx.term().out;
    store::RecoverReport report;
    try {
      report = store::recover_file(path, out_path);
    } catch (const store::StoreError& e) {
      std::error_code ec;
      fs::remove(out_path, ec);
      throw CliError(exit_code::kFailed, std::string("nothing could be recovered: ") + e.what());
    }
    for (const auto& t : report.tables)
      out << "  " << t.name << ": " << t.rows << " rows"
          << (t.damaged ? " (damaged pages skipped: rows on them are lost)" : "") << '\n';
    // The new file belongs to whoever owned the old one (the daemon's user).
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      if (::chown(out_path.c_str(), st.st_uid, st.st_gid) != 0 && errno != EPERM)
        out << "warning: could not give " << out_path << " the owner of " << path << '\n';
      ::chmod(out_path.c_str(), st.st_mode & 07777);
    }
    const store::IntegrityReport r = store::check_file(out_path, std::chrono::hours(1), true);
    if (!r.ok) {
      out << out_path << " is not sound either:\n";
      for (const auto& p : r.problems) out << "  " << p << '\n';
      return exit_code::kFailed;
    }
    out << "recovered into " << out_path << " (integrity_check ok). To use it:\n"
        << "  mv " << path << " " << path << ".damaged && mv " << out_path << " " << path << "\n"
        << "  rm -f " << path << "-wal " << path << "-shm; systemctl start plugbridged\n";
    return exit_code::kOk;
  }

  CLI::App* check_ = nullptr;
  CLI::App* recover_ = nullptr;
  CLI::App* stats_ = nullptr;
  std::string format_ = "table";
  bool quick_ = false;
  double budget_s_ = 0;
  std::string output_;
};

}  // namespace

std::unique_ptr<Command> make_db() {
  return std::make_unique<Db>();
}

}  // namespace pb::cli
