#include "plugbridge/cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <optional>
#include <utility>

#include "commands.hpp"
#include "context.hpp"

namespace pb::cli {

namespace {
constexpr const char* kExitCodes =
    "Exit codes:\n"
    "  0  done\n"
    "  1  the daemon or the socket refused or failed (socket offline, no confirmation, not supported)\n"
    "  2  bad arguments (unknown option, bad date, unknown cid)\n"
    "  3  configuration or database missing or unreadable (reload: the daemon refused the configuration)\n"
    "  4  daemon not reachable (not running, or no access to its control socket)";

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The first word that is not an option (nor a global option's value), when it names no command:
// the word and the closest command (within 2 edits, or one it starts), "" when none is close.
std::optional<std::pair<std::string, std::string>> unknown_command(const std::vector<std::string>& args,
                                                                   const CLI::App& app) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") return std::nullopt;
    if (a.size() > 1 && a[0] == '-') {
      // A global option with a separate value: skip the value.
      if (a.find('=') == std::string::npos) {
        const CLI::Option* o = app.get_option_no_throw(a);
        if (o && o->get_expected_min() > 0) ++i;
      }
      continue;
    }
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      if (sub->get_name() == a) return std::nullopt;
      names.push_back(sub->get_name());
    }
    std::string best;
    size_t best_d = 3;
    for (const std::string& n : names) {
      const size_t d = n.rfind(a, 0) == 0 ? 1 : edit_distance(a, n);
      if (d < best_d) {
        best_d = d;
        best = n;
      }
    }
    return std::make_pair(a, best);
  }
  return std::nullopt;
}

}  // namespace

int run(const std::vector<std::string>& args, Terminal& term) {
  CLI::App app{"plugbridge: energy history and live control of the sockets behind plugbridged"};
  app.name("plugbridge");
  app.require_subcommand(1);
  // Global options after the subcommand too (`plugbridge history kettle --config FILE`): an option the
  // subcommand does not know falls through to this level.
  app.fallthrough();
  GlobalOptions opts;
  app.add_option("-c,--config", opts.config_path, "daemon configuration (roster, database, control socket)")
      ->capture_default_str();
  app.add_option("--db", opts.db_path, "database file (default: the configuration's `database`)");
  app.add_option("--socket", opts.socket_path,
                 "daemon control socket (default: the configuration's `control_socket`, "
                 "/run/plugbridge/control.sock)");
  app.add_option("--tz", opts.tz,
                 "IANA time zone for days and months (default: the configuration's, else the system's)");

  std::vector<std::unique_ptr<Command>> commands;
  commands.push_back(make_devices());
  commands.push_back(make_energy());
  commands.push_back(make_history());
  commands.push_back(make_events());
  commands.push_back(make_relay());
  commands.push_back(make_countdown());
  commands.push_back(make_calibrate());
  commands.push_back(make_export());
  commands.push_back(make_provision());
  commands.push_back(make_reload());
  commands.push_back(make_db());
  commands.push_back(make_status());
  std::vector<std::pair<CLI::App*, Command*>> subs;
  for (auto& c : commands) {
    CLI::App* sub = c->add(app);
    const std::string own = sub->get_footer();
    sub->footer(own.empty() ? std::string(kExitCodes) : own + "\n\n" + kExitCodes);
    subs.emplace_back(sub, c.get());
  }
  // After the subcommands: they would inherit it as their own footer and print it twice.
  app.footer(kExitCodes);

  if (auto unknown = unknown_command(args, app)) {
    term.err << "plugbridge: unknown command '" << unknown->first << "'";
    if (!unknown->second.empty()) term.err << "; did you mean '" << unknown->second << "'?";
    term.err << "\nRun plugbridge --help for the commands.\n";
    return exit_code::kUsage;
  }

  std::vector<std::string> argv_store{"plugbridge"};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& a : argv_store) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp& e) {
    app.exit(e, term.out, term.err);
    return exit_code::kOk;
  } catch (const CLI::CallForAllHelp& e) {
    app.exit(e, term.out, term.err);
    return exit_code::kOk;
  } catch (const CLI::ParseError& e) {
    app.exit(e, term.out, term.err);
    return exit_code::kUsage;
  }

  Context ctx(term, opts);
  for (auto& [sub, cmd] : subs) {
    if (!sub->parsed()) continue;
    try {
      return cmd->run(ctx);
    } catch (const CliError& e) {
      term.err << "plugbridge " << sub->get_name() << ": " << e.what() << '\n';
      return e.code();
    } catch (const std::exception& e) {
      term.err << "plugbridge " << sub->get_name() << ": " << e.what() << '\n';
      return exit_code::kFailed;
    }
  }
  return exit_code::kUsage;
}

}  // namespace pb::cli
