// `plugbridge reload`: the running daemon re-reads its configuration (roster, limits, report rules,
// heartbeat, log level) without dropping the other sockets; prints what changed or why the file was
// refused (the daemon keeps the previous configuration then).
#include <chrono>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "plugbridge/cli/control_client.hpp"

namespace pb::cli {
namespace {

using json = nlohmann::json;

class Reload : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub = app.add_subcommand(
        "reload",
        "make the running daemon re-read its configuration (the roster too) and wait for the outcome");
    sub->footer(
        "Sockets added to the roster are accepted at once; removed or re-keyed ones are disconnected; the\n"
        "others keep their sessions. A configuration the daemon refuses changes nothing. The listen\n"
        "address, database, control socket, gateway id and uplink need a restart (said in the answer).");
    return sub;
  }
  int run(Context& ctx) override {
    // Reading a large roster and closing sessions is quick; the daemon answers once it is applied.
    json r = control_request(ctx.socket_path(), {{"cmd", "reload"}}, std::chrono::seconds(30));
    const std::string message = r.value("message", std::string());
    if (r.value("ok", false)) {
      ctx.term().out << message << '\n';
      return exit_code::kOk;
    }
    const std::string error = r.value("error", std::string("failed"));
    if (error == "config") throw CliError(exit_code::kNoData, message);
    if (error == "bad_request" || error == "unsupported")
      throw CliError(exit_code::kFailed, "this plugbridged cannot reload (" + message +
                                             "); restart it: systemctl restart plugbridged");
    throw CliError(exit_code::kFailed, message.empty() ? error : message);
  }
};

}  // namespace

std::unique_ptr<Command> make_reload() {
  return std::make_unique<Reload>();
}

}  // namespace pb::cli
