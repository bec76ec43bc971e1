// `plugbridge db check` and `plugbridge db recover`: the database's health, and a way out when it is
// damaged. check runs SQLite's integrity_check (read-only, safe while the daemon runs); recover
// copies whatever can still be read into a new file (store::recover_file), with the daemon stopped,
// and says how to put the new file in place.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "plugbridge/cli/control_client.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::cli {
namespace {

namespace fs = std::filesystem;

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
    return check_->parsed() ? check(ctx, path) : recover(ctx, path);
  }

 private:
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
  bool quick_ = false;
  double budget_s_ = 0;
  std::string output_;
};

}  // namespace

std::unique_ptr<Command> make_db() {
  return std::make_unique<Db>();
}

}  // namespace pb::cli
