// `plugbridge relay CID on|off|toggle` and `plugbridge countdown CID SECONDS`: through the
// daemon's control socket to the socket; prints the confirmed state or the reason.
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/control_client.hpp"

namespace pb::cli {
namespace {

using json = nlohmann::json;

// The daemon gives up after uplink.command_timeout_s (default 5 s); wait a little longer.
std::chrono::milliseconds answer_timeout(Context& ctx) {
  int s = 5;
  if (const auto* c = ctx.config()) s = c->uplink.command_timeout_s;
  return std::chrono::seconds(s + 5);
}

int report(Context& ctx, const json& r, const std::string& cid, const std::string& done_text) {
  if (r.value("ok", false)) {
    ctx.term().out << done_text << '\n';
    return exit_code::kOk;
  }
  const std::string error = r.value("error", std::string("failed"));
  const std::string message = r.value("message", std::string());
  std::string fix;
  int code = exit_code::kFailed;
  if (error == "offline")
    fix = "check that the socket is powered and on the network (plugbridge devices)";
  else if (error == "timeout")
    fix = "the socket did not confirm; try again, check its Wi-Fi signal";
  else if (error == "unknown_cid") {
    fix = "use a cid from the daemon's roster (plugbridge devices)";
    code = exit_code::kUsage;
  } else if (error == "unsupported")
    fix = "update the socket firmware";
  else if (error == "rejected" && message.find("switch_enabled") != std::string::npos)
    fix = "switching was disabled from the Tuya app (switch_enabled); enable it there again";
  else if (error == "shutting_down")
    fix = "plugbridged is stopping; try again once it has restarted (systemctl status plugbridged)";
  else if (error == "bad_request")
    code = exit_code::kUsage;
  throw CliError(code,
                 cid + ": " + (message.empty() ? error : message) + (fix.empty() ? "" : "\n  fix: " + fix));
}

class Relay : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub = app.add_subcommand("relay", "switch a socket through the daemon (works with the cloud down)");
    sub->add_option("cid", cid_, "socket id")->required();
    sub->add_option("state", state_, "on, off or toggle")
        ->required()
        ->check(CLI::IsMember({"on", "off", "toggle"}));
    return sub;
  }
  int run(Context& ctx) override {
    json r = control_request(ctx.socket_path(), {{"cmd", "relay"}, {"cid", cid_}, {"state", state_}},
                             answer_timeout(ctx));
    std::string state =
        r.contains("relay") && r["relay"].is_boolean() ? (r["relay"].get<bool>() ? "on" : "off") : state_;
    return report(ctx, r, cid_, cid_ + ": relay " + state + " (confirmed by the socket)");
  }

 private:
  std::string cid_, state_;
};

class Countdown : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub =
        app.add_subcommand("countdown", "flip the relay after SECONDS (0 cancels), run by the socket");
    sub->add_option("cid", cid_, "socket id")->required();
    sub->add_option("seconds", seconds_, "0..86400")->required()->check(CLI::Range(0, 86400));
    return sub;
  }
  int run(Context& ctx) override {
    json r = control_request(ctx.socket_path(), {{"cmd", "countdown"}, {"cid", cid_}, {"seconds", seconds_}},
                             answer_timeout(ctx));
    return report(ctx, r, cid_,
                  seconds_ == 0 ? cid_ + ": countdown cancelled"
                                : cid_ + ": relay flips in " + std::to_string(seconds_) +
                                      " s (confirmed by the socket)");
  }

 private:
  std::string cid_;
  int seconds_ = 0;
};

}  // namespace

std::unique_ptr<Command> make_relay() {
  return std::make_unique<Relay>();
}
std::unique_ptr<Command> make_countdown() {
  return std::make_unique<Countdown>();
}

}  // namespace pb::cli
