// `plugbridge devices`: every socket with online/offline, relay, power now, today's kWh, last
// seen. Live from the daemon when it runs, else from the database (and said so).
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "plugbridge/cli/control_client.hpp"
#include "plugbridge/energy/totals.hpp"

namespace pb::cli {
namespace {

using json = nlohmann::json;

struct Row {
  std::string cid, name;
  std::optional<bool> online, relay;
  std::optional<int64_t> power_mw, last_ms;
  int64_t today_mwh = 0;
  std::optional<int64_t> countdown_ends_ms;  // live only: the socket's countdown flips the relay then
  bool no_mains = false;                     // live only: the socket's meter sees no mains voltage
};

std::string ago(int64_t now, int64_t then) {
  int64_t s = (now - then) / 1000;
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + " s ago";
  if (s < 7200) return std::to_string(s / 60) + " min ago";
  if (s < 172800) return std::to_string(s / 3600) + " h ago";
  return std::to_string(s / 86400) + " days ago";
}

// Time left on a countdown, rounded up (it never shows 0 while one runs).
std::string time_left(int64_t ms) {
  const int64_t s = (ms + 999) / 1000;
  if (s < 120) return std::to_string(s) + " s";
  const int64_t min = (s + 59) / 60;
  if (min < 120) return std::to_string(min) + " min";
  return std::to_string(min / 60) + " h " + std::to_string(min % 60) + " min";
}

class Devices : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub =
        app.add_subcommand("devices", "every socket: online, relay, power now, today's kWh, last seen");
    add_format_option(sub, format_);
    sub->add_flag("--offline", offline_, "do not ask the daemon; show the database's view only");
    return sub;
  }

  int run(Context& ctx) override {
    auto& store = ctx.store();
    const store::Reader::Snapshot snapshot(store);  // one view of the database for all rows
    const int64_t now = ctx.now_ms();
    std::vector<Row> rows;
    for (const auto& s : ctx.sockets()) rows.push_back({s.cid, s.name, {}, {}, {}, {}, 0, {}, false});

    std::string live_error;
    bool live = false;
    json storage;  // the daemon's database health (status answer)
    json clock;    // the daemon's view of the system clock
    if (!offline_) {
      try {
        json r = control_request(ctx.socket_path(), {{"cmd", "status"}}, std::chrono::seconds(5));
        if (r.value("ok", false) && r["sockets"].is_array()) {
          live = true;
          if (r.contains("storage") && r["storage"].is_object()) storage = r["storage"];
          if (r.contains("clock") && r["clock"].is_object()) clock = r["clock"];
          std::map<std::string, const json*> by_cid;
          for (const auto& s : r["sockets"]) by_cid[s.value("cid", "")] = &s;
          for (auto& row : rows) {
            auto it = by_cid.find(row.cid);
            if (it == by_cid.end()) continue;
            const json& s = *it->second;
            row.online = s.value("online", false);
            if (s["relay"].is_boolean()) row.relay = s["relay"].get<bool>();
            if (s.contains("countdown_ends_ms") && s["countdown_ends_ms"].is_number_integer() &&
                s["countdown_ends_ms"].get<int64_t>() > now)
              row.countdown_ends_ms = s["countdown_ends_ms"].get<int64_t>();
            if (s["reading"].is_object()) {
              const json& rd = s["reading"];
              row.last_ms = rd.value("ts_ms", int64_t{0});
              // power_mw is null when the meter did not measure it (or there are no mains).
              if (rd.value("meter_ok", false) && rd.contains("power_mw") &&
                  rd["power_mw"].is_number_integer())
                row.power_mw = rd["power_mw"].get<int64_t>();
              row.no_mains = rd.value("no_mains", false);
            }
          }
        } else {
          live_error = r.value("message", std::string("unexpected answer"));
        }
      } catch (const CliError& e) {
        live_error = e.what();
        live_error = live_error.substr(0, live_error.find('\n'));
      }
    }
    std::map<std::string, store::EnergyStateRow> states;
    for (auto& st : store.energy_states()) states[st.cid] = st;
    for (auto& row : rows) {
      // The daemon only knows readings since it started; the database fills the rest.
      if (!row.last_ms) {
        if (auto st = states.find(row.cid); st != states.end()) row.last_ms = st->second.ts_ms;
        if (auto r = store.latest_sample(row.cid); r && r->samples > 0 && !live)
          row.power_mw = r->power_sum_mw / r->samples;  // the mean of the newest stored sample
        if (!live) {
          const auto events = store.events(row.cid, INT64_MIN / 2, now + 1);
          for (auto e = events.rbegin(); e != events.rend(); ++e)
            if (e->kind == "relay") {
              row.relay = e->value != 0;  // the newest relay change the socket reported
              break;
            }
        }
      }
      row.today_mwh = energy::day_total(store, ctx.calendar(), row.cid, ctx.calendar().local_date(now));
    }

    auto& out = ctx.term().out;
    if (format_ == "json") {
      json arr = json::array();
      for (const auto& r : rows) {
        json j{{"cid", r.cid}, {"name", r.name}};
        j["online"] = r.online ? json(*r.online) : json();
        j["relay"] = r.relay ? json(*r.relay) : json();
        j["countdown_ends_ms"] = r.countdown_ends_ms ? json(*r.countdown_ends_ms) : json();
        j["power_mw"] = r.power_mw ? json(*r.power_mw) : json();
        j["no_mains"] = r.no_mains;
        j["today_mwh"] = r.today_mwh;
        j["last_seen_ms"] = r.last_ms ? json(*r.last_ms) : json();
        arr.push_back(j);
      }
      json doc{{"source", live ? "daemon" : "database"}, {"sockets", arr}};
      if (!storage.is_null()) doc["storage"] = storage;
      if (!clock.is_null()) doc["clock"] = clock;
      out << doc.dump(2) << '\n';
    } else {
      Table t;
      t.columns = {{"CID", "cid"},
                   {"NAME", "name"},
                   {"ONLINE", "online"},
                   {"RELAY", "relay"},
                   {"POWER W", "power_w", true},
                   {"TODAY", "today_kwh", true},
                   {"LAST SEEN", "last_seen"}};
      for (const auto& r : rows) {
        std::string online = r.online ? (*r.online ? "online" : "offline") : "?";
        std::string relay = r.relay ? (*r.relay ? "on" : "off") : "-";
        if (r.countdown_ends_ms && format_ != "csv")
          relay += std::string(" (") + (r.relay ? (*r.relay ? "off" : "on") : "flips") + " in " +
                   time_left(*r.countdown_ends_ms - now) + ")";
        std::string power = r.no_mains ? "no mains" : r.power_mw ? fixed(*r.power_mw, 1000, 1) : "-";
        std::string seen = "never";
        if (r.last_ms)
          seen = format_ == "csv" ? ctx.iso_time(*r.last_ms)
                                  : ctx.local_time(*r.last_ms) + " (" + ago(now, *r.last_ms) + ")";
        t.rows.push_back(
            {r.cid, r.name, online, relay, power, energy_cell(r.today_mwh, format_ == "csv"), seen});
      }
      if (format_ == "csv")
        t.print_csv(out);
      else
        t.print(out);
      if (!live && format_ == "table")
        out << "\n(from the database: " << (offline_ ? "--offline" : live_error)
            << "; ONLINE unknown, RELAY and POWER as last stored)\n";
    }
    // Not in the table: on stderr, so CSV and JSON on stdout stay clean.
    if (storage.is_object() && !storage.value("ok", true))
      ctx.term().err << "warning: the daemon cannot write the database: "
                     << storage.value("failure", std::string("?")) << "; "
                     << storage.value("records_waiting", 0) << " records wait in memory, not acked yet\n";
    if (clock.is_object() && !clock.value("trusted", true))
      ctx.term().err << "warning: the daemon does not trust the system clock ("
                     << clock.value("state", std::string("?"))
                     << "): " << clock.value("reason", std::string("?")) << "\n";
    return exit_code::kOk;
  }

 private:
  std::string format_ = "table";
  bool offline_ = false;
};

}  // namespace

std::unique_ptr<Command> make_devices() {
  return std::make_unique<Devices>();
}

}  // namespace pb::cli
