// `plugbridge relay CID on|off|toggle`, `plugbridge countdown CID SECONDS` and `plugbridge calibrate`:
// through the daemon's control socket to the socket; prints the confirmed state or the reason.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <pbfw/limits.hpp>
#include <thread>
#include <tuple>
#include <vector>

#include "commands.hpp"
#include "plugbridge/cli/control_client.hpp"

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
  else if (error == "rejected" && message.find("no load") != std::string::npos)
    fix = "plug in a resistive load and switch the relay on (plugbridge relay " + cid + " on)";
  else if (error == "rejected" && message.find("relay is off") != std::string::npos)
    fix = "plugbridge relay " + cid + " on";
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
    sub->add_option("seconds", seconds_, "0.." + std::to_string(int64_t{pbfw::proto::kMaxCountdownS}))
        ->required()
        ->check(CLI::Range(int64_t{0}, int64_t{pbfw::proto::kMaxCountdownS}));
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

constexpr const char* kCalibrateHelp =
    R"(How to calibrate (like Tasmota's VoltageSet / CurrentSet / PowerSet):
  1. Plug a purely resistive load of steady power into the socket, within its limits (at most
     1100 W; 5 A unless configured): a heater on a low setting, incandescent (not LED) lamps, a
     small kettle. Switch the relay on (plugbridge relay CID on).
  2. Measure it with a reference meter between the wall and the socket (or read the mains voltage
     with a multimeter) while plugbridge devices shows a steady power.
  3. Run, with the reference values:  plugbridge calibrate CID --voltage 231.4 --power 998.5
     The voltage is calibrated first (it sets Kv); --power then sets Ki with the new Kv
     (--current A instead of --power also sets Ki).
The socket computes its constants from its latest meter frame, keeps them in its flash (they
survive power cuts and updates; a factory reset goes back to the device-information page's),
and applies them from the next frame. plugbridge then prints what the socket measures.
--kv / --ki set the raw constants (0.01..100, e.g. from a unit calibrated before); they
cannot be read back from the socket. The daemon refuses when the socket is offline, the relay is
off, nothing draws power, or a value is more than a factor 2 from the measured one.)";

class Calibrate : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub = app.add_subcommand("calibrate", "calibrate a socket's meter against a known resistive load");
    sub->add_option("cid", cid_, "socket id")->required();
    auto* v =
        sub->add_option("--voltage", voltage_, "true mains voltage now, V")->check(CLI::Range(50.0, 300.0));
    auto* i =
        sub->add_option("--current", current_, "true load current now, A")->check(CLI::Range(0.01, 20.0));
    auto* p = sub->add_option("--power", power_, "true load power now, W")->check(CLI::Range(1.0, 6000.0));
    auto* kv = sub->add_option("--kv", kv_, "set Kv directly (0.01..100)")->check(CLI::Range(0.01, 100.0));
    auto* ki = sub->add_option("--ki", ki_, "set Ki directly (0.01..100)")->check(CLI::Range(0.01, 100.0));
    i->excludes(p);
    for (auto* raw : {kv, ki})
      for (auto* m : {v, i, p}) raw->excludes(m);
    sub->footer(kCalibrateHelp);
    return sub;
  }
  int run(Context& ctx) override {
    // (quantity, control value, text); the voltage first: --power/--current compute Ki with Kv.
    std::vector<std::tuple<std::string, int64_t, std::string>> steps;
    auto milli = [](double x) { return static_cast<int64_t>(std::llround(x * 1000.0)); };
    auto text = [](const char* what, double x, const char* unit) {
      char b[64];
      if (*unit)
        std::snprintf(b, sizeof b, "%s %.3f %s", what, x, unit);
      else  // a raw constant: all the digits the socket keeps (x 10^6)
        std::snprintf(b, sizeof b, "%s %.6f", what, x);
      return std::string(b);
    };
    if (voltage_) steps.emplace_back("voltage", milli(*voltage_), text("voltage", *voltage_, "V"));
    if (current_) steps.emplace_back("current", milli(*current_), text("current", *current_, "A"));
    if (power_) steps.emplace_back("power", milli(*power_), text("power", *power_, "W"));
    if (kv_) steps.emplace_back("kv", std::llround(*kv_ * 1e6), text("Kv", *kv_, ""));
    if (ki_) steps.emplace_back("ki", std::llround(*ki_ * 1e6), text("Ki", *ki_, ""));
    if (steps.empty())
      throw CliError(exit_code::kUsage,
                     "calibrate: give --voltage, --current or --power (or --kv/--ki)\n  fix: "
                     "plugbridge calibrate --help explains the procedure");
    std::string done;
    for (const auto& [quantity, value, what] : steps) {
      json r = control_request(
          ctx.socket_path(), {{"cmd", "calibrate"}, {"cid", cid_}, {"quantity", quantity}, {"value", value}},
          answer_timeout(ctx));
      try {
        report(ctx, r, cid_, cid_ + ": " + what + " set (confirmed and kept by the socket)");
      } catch (const CliError& e) {
        if (done.empty()) throw;
        throw CliError(e.code(), std::string(e.what()) + "\n  (" + done + " was applied)");
      }
      done += (done.empty() ? "" : ", ") + what;
    }
    show_new_reading(ctx);
    return exit_code::kOk;
  }

 private:
  // The constants apply from the socket's next meter frame: wait for a reading sampled after that
  // (the daemon's clock) and show it.
  void show_new_reading(Context& ctx) {
    using namespace std::chrono;
    const auto wall = [] {
      return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    };
    const int64_t after = wall() + 200;
    const auto deadline = steady_clock::now() + seconds(10);
    while (steady_clock::now() < deadline) {
      json r = control_request(ctx.socket_path(), {{"cmd", "status"}}, seconds(5));
      for (const auto& s : r.value("sockets", json::array())) {
        if (s.value("cid", "") != cid_ || !s.contains("reading") || !s["reading"].is_object()) continue;
        const json& rd = s["reading"];
        if (rd.value("ts_ms", int64_t{0}) < after || !rd.value("meter_ok", false)) continue;
        if (rd.value("no_mains", false)) {
          ctx.term().out << cid_ << ": now measures no mains\n";
          return;
        }
        // A quantity the meter did not measure is null: "-".
        const auto show = [&](const char* key, double scale, int places, const char* unit) {
          if (!rd.contains(key) || !rd[key].is_number()) return std::string("- ") + unit;
          char b[48];
          std::snprintf(b, sizeof b, "%.*f %s", places, rd[key].get<double>() / scale, unit);
          return std::string(b);
        };
        ctx.term().out << cid_ << ": now measures " << show("voltage_mv", 1000.0, 1, "V") << ", "
                       << show("current_ua", 1e6, 3, "A") << ", " << show("power_mw", 1000.0, 1, "W") << '\n';
        return;
      }
      std::this_thread::sleep_for(milliseconds(200));  // polling the daemon, not synchronising a test
    }
    ctx.term().out << cid_ << ": no new reading within 10 s; check with plugbridge devices\n";
  }

  std::string cid_;
  std::optional<double> voltage_, current_, power_, kv_, ki_;
};

}  // namespace

std::unique_ptr<Command> make_calibrate() {
  return std::make_unique<Calibrate>();
}
std::unique_ptr<Command> make_relay() {
  return std::make_unique<Relay>();
}
std::unique_ptr<Command> make_countdown() {
  return std::make_unique<Countdown>();
}

}  // namespace pb::cli
