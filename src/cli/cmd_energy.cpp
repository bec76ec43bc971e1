// `plugbridge energy`: per socket and in total, today, yesterday, this month, last month, all
// time, from the 15-minute buckets in the configured time zone.
#include <map>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "plugbridge/energy/totals.hpp"

namespace pb::cli {
namespace {

using json = nlohmann::json;

class Energy : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub = app.add_subcommand(
        "energy", "kWh per socket and in total: today, yesterday, this month, last month, all time");
    sub->add_option("cid", cid_, "only this socket (default: all, with a total)");
    add_format_option(sub, format_);
    return sub;
  }

  int run(Context& ctx) override {
    auto& store = ctx.store();
    const auto& cal = ctx.calendar();
    const int64_t now = ctx.now_ms();
    std::vector<std::pair<Context::SocketInfo, energy::Summary>> rows;
    if (!cid_.empty()) ctx.require_known_cid(cid_);
    // One snapshot for every row and the total: a daemon commit meanwhile is in all or none.
    const store::Reader::Snapshot snapshot(store);
    // The all-time total is kept in energy_state (= the sum of the socket's buckets), so it costs
    // one row instead of a scan of every bucket; sockets without a state fall back to the scan.
    std::map<std::string, int64_t> totals;
    for (const auto& st : store.energy_states()) totals[st.cid] = st.total_mwh;
    const date::year_month_day today = cal.local_date(now);
    const date::year_month_day yesterday{date::sys_days(today) - date::days{1}};
    const date::year_month this_month = today.year() / today.month();
    for (const auto& s : ctx.sockets()) {
      if (!cid_.empty() && s.cid != cid_) continue;
      energy::Summary e;
      e.today_mwh = energy::day_total(store, cal, s.cid, today);
      e.yesterday_mwh = energy::day_total(store, cal, s.cid, yesterday);
      e.this_month_mwh = energy::month_total(store, cal, s.cid, this_month);
      e.last_month_mwh = energy::month_total(store, cal, s.cid, this_month - date::months{1});
      auto t = totals.find(s.cid);
      e.all_time_mwh = t != totals.end() ? t->second : energy::all_time_total(store, s.cid);
      rows.push_back({s, e});
      if (ctx.term().after_socket_read) ctx.term().after_socket_read(s.cid);
    }
    energy::Summary total;
    for (const auto& [s, e] : rows) {
      total.today_mwh += e.today_mwh;
      total.yesterday_mwh += e.yesterday_mwh;
      total.this_month_mwh += e.this_month_mwh;
      total.last_month_mwh += e.last_month_mwh;
      total.all_time_mwh += e.all_time_mwh;
    }

    auto& out = ctx.term().out;
    if (format_ == "json") {
      auto to_json = [](const energy::Summary& e) {
        return json{{"today_mwh", e.today_mwh},
                    {"yesterday_mwh", e.yesterday_mwh},
                    {"this_month_mwh", e.this_month_mwh},
                    {"last_month_mwh", e.last_month_mwh},
                    {"all_time_mwh", e.all_time_mwh}};
      };
      json arr = json::array();
      for (const auto& [s, e] : rows) {
        json j = to_json(e);
        j["cid"] = s.cid;
        j["name"] = s.name;
        arr.push_back(j);
      }
      json doc{{"zone", std::string(ctx.zone().name())}, {"at", ctx.iso_time(now)}, {"sockets", arr}};
      if (cid_.empty()) doc["total"] = to_json(total);
      out << doc.dump(2) << '\n';
      return exit_code::kOk;
    }
    Table t;
    t.columns = {{"CID", "cid"},
                 {"NAME", "name"},
                 {"TODAY", "today_kwh", true},
                 {"YESTERDAY", "yesterday_kwh", true},
                 {"THIS MONTH", "this_month_kwh", true},
                 {"LAST MONTH", "last_month_kwh", true},
                 {"ALL TIME", "all_time_kwh", true}};
    const bool csv = format_ == "csv";
    auto add = [&, csv](const std::string& cid, const std::string& name, const energy::Summary& e) {
      t.rows.push_back({cid, name, energy_cell(e.today_mwh, csv), energy_cell(e.yesterday_mwh, csv),
                        energy_cell(e.this_month_mwh, csv), energy_cell(e.last_month_mwh, csv),
                        energy_cell(e.all_time_mwh, csv)});
    };
    for (const auto& [s, e] : rows) add(s.cid, s.name, e);
    if (cid_.empty()) add("TOTAL", "", total);
    if (format_ == "csv") {
      t.print_csv(out);
    } else {
      t.print(out);
      out << "\n(days and months in " << ctx.zone().name() << ")\n";
    }
    return exit_code::kOk;
  }

 private:
  std::string cid_;
  std::string format_ = "table";
};

}  // namespace

std::unique_ptr<Command> make_energy() {
  return std::make_unique<Energy>();
}

}  // namespace pb::cli
