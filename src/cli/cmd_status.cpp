// `plugbridge status`: the running daemon's health on one screen (the control socket's `status`
// without the roster): uplinks, sessions, the last commit, records waiting, the clock, the
// database's size and a storage failure if any. `--json` prints the daemon's answer as it is.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"
#include "plugbridge/cli/control_client.hpp"

namespace pb::cli {
namespace {

using json = nlohmann::json;

// "1.5 MiB", "312 KiB", "900 B".
std::string bytes_text(int64_t n) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(n));
  else
    std::snprintf(buf, sizeof buf, v < 10 ? "%.1f %s" : "%.0f %s", v, kUnits[u]);
  return buf;
}

// "3 s", "4 min", "2 h 5 min", "3 d".
std::string age_text(int64_t ms) {
  if (ms < 0) ms = 0;
  const int64_t s = ms / 1000;
  if (s < 120) return std::to_string(s) + " s";
  if (s < 7200) return std::to_string(s / 60) + " min";
  if (s < 172800) return std::to_string(s / 3600) + " h " + std::to_string(s / 60 % 60) + " min";
  return std::to_string(s / 86400) + " d";
}

std::string seconds_text(double s) {
  char buf[32];
  if (s < 1)
    std::snprintf(buf, sizeof buf, "%.0f ms", s * 1000);
  else
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

int64_t int_or(const json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : fallback;
}

class Status : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub =
        app.add_subcommand("status", "the running daemon's health: uplinks, sessions, commits, clock, disk");
    sub->add_flag("--json", json_, "print the daemon's status object as JSON (docs/control-protocol.md)");
    sub->footer(
        "Asks the daemon over its control socket; the roster's sockets are left out (plugbridge devices\n"
        "lists them). Exit 1 when the daemon cannot write its database.");
    return sub;
  }

  int run(Context& ctx) override {
    json r =
        control_request(ctx.socket_path(), {{"cmd", "status"}, {"sockets", false}}, std::chrono::seconds(5));
    if (!r.value("ok", false))
      throw CliError(exit_code::kFailed, r.value("message", std::string("the daemon refused the request")));
    r.erase("sockets");
    std::ostream& out = ctx.term().out;
    const json storage = r.value("storage", json::object());
    const bool storage_ok = storage.value("ok", true);
    if (json_) {
      out << r.dump(2) << '\n';
      return storage_ok ? exit_code::kOk : exit_code::kFailed;
    }
    const bool color = ctx.color();
    auto paint = [color](const std::string& s, bool good) {
      return color ? std::string(good ? "\033[32m" : "\033[31m") + s + "\033[0m" : s;
    };
    std::vector<std::pair<std::string, std::string>> lines;

    for (const json& u : r.value("uplinks", json::array())) {
      std::string v =
          paint(u.value("connected", false) ? "connected" : "disconnected", u.value("connected", false));
      v += ", outbox " + std::to_string(u.value("outbox_depth", 0));
      const std::string error = u.value("last_error", std::string());
      if (!u.value("connected", false) && !error.empty()) v += " (" + error + ")";
      const std::string name = u.value("name", std::string("?"));
      const std::string type = u.value("type", std::string());
      lines.emplace_back("uplink " + name + (type.empty() || type == name ? "" : " (" + type + ")"), v);
    }
    if (!r.contains("uplinks") || r["uplinks"].empty()) lines.emplace_back("uplink", "none (LAN only)");

    const json lan = r.value("lan", json::object());
    lines.emplace_back("sessions", std::to_string(lan.value("sessions_up", 0)) + " up, " +
                                       std::to_string(lan.value("roster", 0)) + " in the roster");
    uint64_t failed = 0;
    std::string reasons;
    const json handshakes = lan.value("handshakes_failed", json::object());
    for (const auto& [reason, n] : handshakes.items()) {
      if (!n.is_number_unsigned() || n.get<uint64_t>() == 0) continue;
      failed += n.get<uint64_t>();
      reasons += (reasons.empty() ? "" : ", ") + reason + " " + std::to_string(n.get<uint64_t>());
    }
    if (failed > 0) lines.emplace_back("handshakes failed", std::to_string(failed) + " (" + reasons + ")");

    const int64_t last = int_or(storage, "last_commit_ms", 0);
    if (last > 0) {
      std::string v = ctx.local_time(last) + " (" + age_text(ctx.now_ms() - last) + " ago";
      if (auto it = storage.find("last_commit_seconds"); it != storage.end() && it->is_number())
        v += ", took " + seconds_text(it->get<double>());
      lines.emplace_back("last commit", v + ")");
    } else {
      lines.emplace_back("last commit", "none since the daemon started");
    }
    const int64_t waiting = int_or(storage, "records_waiting", 0);
    lines.emplace_back("waiting", std::to_string(waiting) + (waiting == 1 ? " record" : " records"));

    const json clock = r.value("clock", json::object());
    if (clock.value("trusted", true))
      lines.emplace_back("clock",
                         paint("synchronised", true) + " (" + clock.value("state", std::string()) + ")");
    else
      lines.emplace_back("clock", paint("not synchronised", false) + " (" +
                                      clock.value("state", std::string()) +
                                      "): " + clock.value("reason", std::string("no reason given")));

    const int64_t db = int_or(storage, "database_bytes", -1);
    lines.emplace_back("database", db >= 0 ? bytes_text(db) : std::string("size unknown"));
    if (storage_ok)
      lines.emplace_back("storage", paint("ok", true));
    else
      lines.emplace_back("storage", paint("failing", false) + ": " + storage.value("failure", std::string()));

    size_t width = 0;
    for (const auto& [k, v] : lines) width = std::max(width, display_width(k));
    out << "plugbridged is running (" << ctx.socket_path() << ")\n";
    for (const auto& [k, v] : lines) out << "  " << pad_left(k, width) << ": " << v << '\n';
    return storage_ok ? exit_code::kOk : exit_code::kFailed;
  }

 private:
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> make_status() {
  return std::make_unique<Status>();
}

}  // namespace pb::cli
