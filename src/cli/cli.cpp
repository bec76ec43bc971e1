#include "plugbridge/cli/cli.hpp"

#include <CLI/CLI.hpp>

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
}  // namespace

int run(const std::vector<std::string>& args, Terminal& term) {
  CLI::App app{"plugbridge: energy history and live control of the sockets behind plugbridged"};
  app.name("plugbridge");
  app.require_subcommand(1);
  app.footer(kExitCodes);
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
  std::vector<std::pair<CLI::App*, Command*>> subs;
  for (auto& c : commands) {
    CLI::App* sub = c->add(app);
    const std::string own = sub->get_footer();
    sub->footer(own.empty() ? std::string(kExitCodes) : own + "\n\n" + kExitCodes);
    subs.emplace_back(sub, c.get());
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
