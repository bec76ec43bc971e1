// `plugbridge events [CID]`: relay changes, protection trips, commands and their results,
// rejected energy jumps — newest last.
#include <iterator>
#include <nlohmann/json.hpp>

#include "commands.hpp"

namespace pb::cli {
namespace {

using json = nlohmann::json;

// One readable sentence per event kind; unknown kinds show value and detail as stored.
std::string describe(const store::EventRow& e) {
  json d = json::parse(e.detail, nullptr, false);
  auto field = [&](const char* k) -> std::string {
    if (!d.is_object() || !d.contains(k)) return "";
    return d[k].is_string() ? d[k].get<std::string>() : d[k].dump();
  };
  if (e.kind == "relay") {
    std::string cause = field("cause");
    return std::string(e.value ? "switched on" : "switched off") + (cause.empty() ? "" : " (" + cause + ")");
  }
  if (e.kind == "over_current") return "over-current protection tripped at " + fixed(e.value, 1000, 3) + " A";
  if (e.kind == "over_power") return "over-power protection tripped at " + std::to_string(e.value) + " W";
  if (e.kind == "meter_lost") {
    // The socket's reason for a run of rejected meter frames (docs/lan-protocol.md, Event); 0: silence.
    static const char* const kReasons[] = {"",
                                           "uncalibrated",
                                           "corrupt frames",
                                           "voltage out of the plausible band",
                                           "current above the rating",
                                           "active power above V x I"};
    if (e.value > 0 && e.value < static_cast<int64_t>(std::size(kReasons)))
      return std::string("meter faulty: ") + kReasons[e.value] + " (readings unavailable)";
    if (e.value != 0) return "meter faulty: reason " + std::to_string(e.value) + " (readings unavailable)";
    return "meter stopped answering (readings unavailable)";
  }
  if (e.kind == "meter_restored") return "meter answering again";
  if (e.kind == "command") {
    std::string from = field("from") == "local" ? "local" : "cloud";
    std::string why = field("why");
    return from + " command " + (e.value == 0 ? "done" : "failed (code " + std::to_string(e.value) + ")") +
           (why.empty() ? "" : ": " + why);
  }
  if (e.kind == "rejected_jump")
    return "implausible energy jump rejected" + (e.detail.empty() ? "" : ": " + e.detail);
  return "value " + std::to_string(e.value) + (e.detail.empty() ? "" : " " + e.detail);
}

class Events : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub =
        app.add_subcommand("events", "relay changes, protection trips, commands and results, rejected jumps");
    sub->add_option("cid", cid_, "only this socket (default: all)");
    sub->add_option("--from", from_, "start (default: -7d)")->capture_default_str();
    sub->add_option("--to", to_, "end, exclusive (default: now)");
    sub->add_option("--kind", kind_,
                    "only this kind: relay, over_current, over_power, command, rejected_jump, ...");
    sub->add_option("--limit", limit_, "at most this many, the newest (0 = all)")->capture_default_str();
    add_format_option(sub, format_);
    return sub;
  }

  int run(Context& ctx) override {
    auto& store = ctx.store();
    if (!cid_.empty()) ctx.require_known_cid(cid_);
    int64_t from = ctx.parse_time(from_, "--from");
    int64_t to = to_.empty() ? ctx.now_ms() + 1 : ctx.parse_time(to_, "--to");
    auto all = store.events(cid_, from, to);
    std::vector<const store::EventRow*> rows;
    for (const auto& e : all)
      if (kind_.empty() || e.kind == kind_) rows.push_back(&e);
    if (limit_ > 0 && rows.size() > limit_)
      rows.erase(rows.begin(), rows.end() - static_cast<ptrdiff_t>(limit_));

    auto& out = ctx.term().out;
    if (format_ == "json") {
      json arr = json::array();
      for (const auto* e : rows) {
        json j{{"time", ctx.iso_time(e->ts_ms)},
               {"ts_ms", e->ts_ms},
               {"cid", e->cid},
               {"kind", e->kind},
               {"value", e->value},
               {"text", describe(*e)}};
        json d = json::parse(e->detail, nullptr, false);
        j["detail"] = d.is_discarded() ? json(e->detail) : d;
        arr.push_back(std::move(j));
      }
      out << arr.dump(2) << '\n';
      return exit_code::kOk;
    }
    Table t;
    t.columns = {{"TIME", "time"}, {"CID", "cid"}, {"KIND", "kind"}, {"WHAT", "what"}};
    for (const auto* e : rows)
      t.rows.push_back({format_ == "csv" ? ctx.iso_time(e->ts_ms) : ctx.local_time(e->ts_ms), e->cid, e->kind,
                        describe(*e)});
    if (format_ == "csv") {
      t.print_csv(out);
    } else if (rows.empty()) {
      out << "no events between " << ctx.local_time(from) << " and " << ctx.local_time(to) << "\n";
    } else {
      t.print(out);
    }
    return exit_code::kOk;
  }

 private:
  std::string cid_, from_ = "-7d", to_, kind_;
  size_t limit_ = 50;
  std::string format_ = "table";
};

}  // namespace

std::unique_ptr<Command> make_events() {
  return std::make_unique<Events>();
}

}  // namespace pb::cli
