// `plugbridge history CID|--all`: energy and power statistics per 15 min, hour, day, week or
// month (local calendar of the configured zone), from the hourly rollup and the 15-minute buckets;
// a table, CSV, JSON or a terminal bar chart.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "plugbridge/energy/accountant.hpp"

namespace pb::cli {
namespace {

using json = nlohmann::json;
constexpr int64_t kQuarter = energy::kBucketMs;

int64_t floor_div(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}
int64_t floor_mod(int64_t a, int64_t b) {
  return a - floor_div(a, b) * b;
}

struct Period {
  int64_t start = 0, end = 0;
  int64_t energy_mwh = 0, samples = 0, power_sum_mw = 0;
  int64_t power_min_mw = 0, power_max_mw = 0;
  std::optional<int64_t> voltage_min_mv, voltage_max_mv, current_max_ua;  // unset: not measured
  int sockets = 0;                                                        // sockets with buckets here (--all)
  int last_socket = -1;
};

// UTC offset lookups, cached over the zone's current rule interval.
class Offsets {
 public:
  explicit Offsets(const date::time_zone& z) : zone_(z) {}
  int64_t at(int64_t ms) {
    if (ms < begin_ || ms >= end_) {
      auto info = zone_.get_info(date::sys_seconds{std::chrono::seconds{floor_div(ms, 1000)}});
      auto clamp_ms = [](date::sys_seconds s) {
        auto c = s.time_since_epoch().count();
        constexpr int64_t kLimit = INT64_MAX / 2000;
        return std::clamp<int64_t>(c, -kLimit, kLimit) * 1000;
      };
      begin_ = clamp_ms(info.begin);
      end_ = clamp_ms(info.end);
      offset_ = std::chrono::duration_cast<std::chrono::milliseconds>(info.offset).count();
    }
    return offset_;
  }

 private:
  const date::time_zone& zone_;
  int64_t begin_ = 1, end_ = 0, offset_ = 0;
};

class History : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub = app.add_subcommand("history", "energy and power per 15 min, hour, day, week or month");
    sub->add_option("cid", cid_, "socket id");
    sub->add_flag("--all", all_, "all sockets together");
    sub->add_option("--from", from_, "start (default: depends on --by: today, 30 days, 12 weeks, 12 months)");
    sub->add_option("--to", to_, "end, exclusive (default: now)");
    sub->add_option("--by", by_, "15m, hour, day, week or month")
        ->capture_default_str()
        ->check(CLI::IsMember({"15m", "hour", "day", "week", "month"}));
    add_format_option(sub, format_);
    sub->add_flag("--chart", chart_, "draw a bar chart of the energy instead of the table");
    sub->footer(
        "Dates: YYYY-MM-DD, 'YYYY-MM-DD HH:MM', today, yesterday, now, -7d, -12h, @UNIX_MS; local to the "
        "configured "
        "time zone (--tz to override).");
    return sub;
  }

  int run(Context& ctx) override {
    if (all_ == !cid_.empty())
      throw CliError(exit_code::kUsage,
                     "history needs a socket id or --all (not both)\n  fix: plugbridge history "
                     "CID, or plugbridge history --all");
    if (chart_ && format_ != "table")
      throw CliError(exit_code::kUsage,
                     "--chart draws instead of the table; it cannot be combined with --format " + format_);
    auto& store = ctx.store();
    if (!cid_.empty()) ctx.require_known_cid(cid_);
    const int64_t now = ctx.now_ms();
    int64_t from = from_.empty() ? default_from(ctx, now) : ctx.parse_time(from_, "--from");
    int64_t to = to_.empty() ? now : ctx.parse_time(to_, "--to");
    if (to <= from)
      throw CliError(exit_code::kUsage, "--to (" + ctx.local_time(to) + ") is not after --from (" +
                                            ctx.local_time(from) + ")\n  fix: swap them or widen the range");
    // Whole buckets: the range is widened to quarter-hours.
    from = floor_div(from, kQuarter) * kQuarter;
    to = floor_div(to + kQuarter - 1, kQuarter) * kQuarter;
    if ((to - from) / kQuarter > 4 * 366 * 96)
      throw CliError(exit_code::kUsage, "range longer than 4 years\n  fix: narrow --from/--to");

    std::vector<Period> periods = make_periods(ctx, from, to);
    // --all shows energy and socket counts only, so it reads energy only (fewer columns decoded).
    // Every scan below reads one snapshot: a daemon commit meanwhile (which may add to several
    // sockets, and to the quarter-hours and their hourly rollup together) is in all or none.
    const store::Reader::Snapshot snapshot(store);
    // One primary-key range scan per socket: already in time order, no sort of the whole table.
    std::vector<std::string> cids;
    if (all_)
      for (const auto& s : ctx.sockets()) cids.push_back(s.cid);
    else
      cids.push_back(cid_);
    const std::vector<Scan> scans = plan_scans(store, periods, from, to);
    for (int socket = 0; socket < static_cast<int>(cids.size()); ++socket) {
      const std::string& cid = cids[static_cast<size_t>(socket)];
      size_t i = 0;
      for (const Scan& scan : scans)
        store.each_row(
            scan.table, cid, scan.from, scan.to,
            [&](const store::BucketRow& b) { add(periods, i, socket, b); }, all_);
      if (ctx.term().after_socket_read) ctx.term().after_socket_read(cid);
    }

    if (chart_) return draw_chart(ctx, periods);
    if (format_ == "json") return print_json(ctx, periods, from, to);
    return print_table(ctx, periods);
  }

 private:
  using Rollup = store::Reader::Rollup;
  struct Scan {
    Rollup table;
    int64_t from, to;
  };

  // The local days rolled up that each lie inside one period come from the days (a row a day: by
  // day, week or month in the zone they were rolled up in), the rest as plan_hours says. Each row
  // lies in exactly one period, so the sums, minima and maxima are the same as from the quarter-hours
  // alone. Returns the scans in time order.
  std::vector<Scan> plan_scans(const store::Reader& store, const std::vector<Period>& periods, int64_t from,
                               int64_t to) const {
    std::vector<Scan> out;
    int64_t cursor = from;  // planned up to here
    auto around = [&](int64_t until) {
      for (const Scan& s : plan_hours(periods, cursor, until)) out.push_back(s);
    };
    if (by_ == "day" || by_ == "week" || by_ == "month") {
      size_t p = 0;
      for (const store::DaySpan& d : store.rolled_days(from, to)) {
        while (p < periods.size() && periods[p].end <= d.from_ms) ++p;
        if (p == periods.size()) break;
        if (d.from_ms < periods[p].start || d.to_ms > periods[p].end) continue;  // another zone's day
        if (d.from_ms > cursor) around(d.from_ms);
        if (!out.empty() && out.back().table == Rollup::kDay && out.back().to == d.from_ms)
          out.back().to = d.to_ms;
        else
          out.push_back({Rollup::kDay, d.from_ms, d.to_ms});
        cursor = d.to_ms;
      }
    }
    if (cursor < to) around(to);
    return out;
  }

  // Of [from, to): whole UTC hours come from the hourly rollup, unless a period boundary falls
  // inside them (a :30/:45 zone, or a range that does not start on an hour): those hours are read as
  // quarter-hours.
  std::vector<Scan> plan_hours(const std::vector<Period>& periods, int64_t from, int64_t to) const {
    constexpr int64_t kHour = 3600000;
    if (by_ == "15m") return {{Rollup::kQuarter, from, to}};
    std::vector<int64_t> split;  // starts of the hours a boundary splits, ascending
    auto consider = [&](int64_t boundary) {
      if (floor_mod(boundary, kHour) == 0) return;
      const int64_t h = boundary - floor_mod(boundary, kHour);
      if (split.empty() || split.back() != h) split.push_back(h);
    };
    consider(from);
    for (const Period& p : periods)
      if (p.start > from && p.start < to) consider(p.start);
    consider(to);
    // Mostly split (e.g. --by hour in a :45 zone): one quarter-hour scan beats many small ones.
    if (static_cast<int64_t>(split.size()) * 4 * kHour > to - from) return {{Rollup::kQuarter, from, to}};
    std::vector<Scan> out;
    int64_t cursor = from;  // on an hour whenever an hour scan starts from it
    for (int64_t h : split) {
      const int64_t q_from = std::max(h, from), q_to = std::min(h + kHour, to);
      if (q_from > cursor) out.push_back({Rollup::kHour, cursor, q_from});
      if (!out.empty() && out.back().table == Rollup::kQuarter && out.back().to == q_from)
        out.back().to = q_to;
      else
        out.push_back({Rollup::kQuarter, q_from, q_to});
      cursor = q_to;
    }
    if (cursor < to) out.push_back({Rollup::kHour, cursor, to});
    return out;
  }

  static void add(std::vector<Period>& periods, size_t& i, int socket, const store::BucketRow& b) {
    while (i < periods.size() && b.start_ms >= periods[i].end) ++i;
    if (i == periods.size()) return;
    Period& p = periods[i];
    p.energy_mwh += b.energy_mwh;
    if (p.last_socket != socket) {
      p.last_socket = socket;
      ++p.sockets;
    }
    store::merge_min(p.voltage_min_mv, b.voltage_min_mv);
    store::merge_max(p.voltage_max_mv, b.voltage_max_mv);
    store::merge_max(p.current_max_ua, b.current_max_ua);
    if (b.samples == 0) return;
    if (p.samples == 0) {
      p.power_min_mw = b.power_min_mw;
      p.power_max_mw = b.power_max_mw;
    } else {
      p.power_min_mw = std::min(p.power_min_mw, b.power_min_mw);
      p.power_max_mw = std::max(p.power_max_mw, b.power_max_mw);
    }
    p.samples += b.samples;
    p.power_sum_mw += b.power_sum_mw;
  }

  int64_t default_from(Context& ctx, int64_t now) {
    const auto& cal = ctx.calendar();
    date::sys_days today{cal.local_date(now)};
    if (by_ == "15m" || by_ == "hour") return cal.day_start_ms(today);
    if (by_ == "day") return cal.day_start_ms(today - date::days{29});
    if (by_ == "week") {
      auto monday = today - (date::weekday{today} - date::Monday);
      return cal.day_start_ms(monday - date::weeks{11});
    }
    date::year_month_day ymd{today};
    auto ym = ymd.year() / ymd.month() - date::months{11};
    return cal.month(ym).from_ms;
  }

  std::string label(Context& ctx, int64_t start) {
    if (by_ == "15m" || by_ == "hour") return ctx.local_time(start, "%Y-%m-%d %H:%M");
    if (by_ == "day") return ctx.local_time(start, "%Y-%m-%d %a");
    if (by_ == "week") return ctx.local_time(start, "%G-W%V");
    return ctx.local_time(start, "%Y-%m");
  }

  // Consecutive quarter-hours with the same local hour/day/week/month form one period. Every real
  // zone's offset is a multiple of 15 min, so local boundaries fall on quarter-hours.
  std::vector<Period> make_periods(Context& ctx, int64_t from, int64_t to) {
    Offsets off(ctx.zone());
    auto key = [&](int64_t t) -> int64_t {
      int64_t local = t + off.at(t);
      if (by_ == "15m") return t;
      if (by_ == "hour") return t - floor_mod(local, 3600000);
      int64_t days = floor_div(local, 86400000);
      if (by_ == "day") return days;
      if (by_ == "week") return days - floor_mod(days + 3, 7);  // 1970-01-01 was a Thursday
      date::year_month_day ymd{date::sys_days{date::days{days}}};
      return static_cast<int>(ymd.year()) * 12 + static_cast<unsigned>(ymd.month());
    };
    std::vector<Period> out;
    int64_t last_key = 0;
    for (int64_t q = from; q < to; q += kQuarter) {
      int64_t k = key(q);
      if (out.empty() || k != last_key) {
        out.push_back({});
        out.back().start = q;
        last_key = k;
      }
      out.back().end = q + kQuarter;
    }
    return out;
  }

  int print_table(Context& ctx, const std::vector<Period>& periods) {
    auto& out = ctx.term().out;
    bool csv = format_ == "csv";
    Table t;
    int64_t total = 0;
    if (all_) {
      t.columns = {{"PERIOD", "start"},
                   {"ENERGY", "energy_kwh", true},
                   {"AVG W", "avg_w", true},
                   {"SOCKETS", "sockets", true}};
      if (csv) t.columns.insert(t.columns.begin() + 1, {"END", "end"});
    } else {
      t.columns = {{"PERIOD", "start"},      {"ENERGY", "energy_kwh", true}, {"MEAN W", "mean_w", true},
                   {"MIN W", "min_w", true}, {"MAX W", "max_w", true},       {"MIN V", "min_v", true},
                   {"MAX V", "max_v", true}, {"MAX A", "max_a", true},       {"SAMPLES", "samples", true}};
      if (csv) t.columns.insert(t.columns.begin() + 1, {"END", "end"});
    }
    for (const auto& p : periods) {
      total += p.energy_mwh;
      std::vector<std::string> r;
      r.push_back(csv ? ctx.iso_time(p.start) : label(ctx, p.start));
      if (csv) r.push_back(ctx.iso_time(p.end));
      r.push_back(energy_cell(p.energy_mwh, csv));
      if (all_) {
        // Energy over the period's length (a 25 h day has 25 h).
        r.push_back(fixed(p.energy_mwh * 3600, p.end - p.start, 1));
        r.push_back(std::to_string(p.sockets));
      } else {
        // A quantity no reading of the period measured: "-" (empty in CSV), never 0.
        const std::string none = csv ? "" : "-";
        const auto cell = [&](const std::optional<int64_t>& v, int64_t divisor, int decimals) {
          return v ? fixed(*v, divisor, decimals) : none;
        };
        const bool any = p.samples > 0;
        r.push_back(any ? fixed(p.power_sum_mw / p.samples, 1000, 1) : none);
        r.push_back(any ? fixed(p.power_min_mw, 1000, 1) : none);
        r.push_back(any ? fixed(p.power_max_mw, 1000, 1) : none);
        r.push_back(cell(p.voltage_min_mv, 1000, 1));
        r.push_back(cell(p.voltage_max_mv, 1000, 1));
        r.push_back(cell(p.current_max_ua, 1000000, 3));
        r.push_back(std::to_string(p.samples));
      }
      t.rows.push_back(std::move(r));
    }
    if (csv) {
      t.print_csv(out);
      return exit_code::kOk;
    }
    t.rows.push_back({"TOTAL", energy_cell(total, false)});
    t.print(out);
    out << "\n(" << (all_ ? std::string("all sockets") : cid_) << ", by " << by_ << ", " << ctx.zone().name()
        << ")\n";
    return exit_code::kOk;
  }

  int print_json(Context& ctx, const std::vector<Period>& periods, int64_t from, int64_t to) {
    json arr = json::array();
    int64_t total = 0;
    for (const auto& p : periods) {
      total += p.energy_mwh;
      json j{{"start", ctx.iso_time(p.start)},
             {"end", ctx.iso_time(p.end)},
             {"start_ms", p.start},
             {"end_ms", p.end},
             {"energy_mwh", p.energy_mwh}};
      if (all_) {
        j["sockets"] = p.sockets;
      } else {
        j["samples"] = p.samples;
        bool any = p.samples > 0;
        j["mean_power_mw"] = any ? json(p.power_sum_mw / p.samples) : json();
        j["min_power_mw"] = any ? json(p.power_min_mw) : json();
        j["max_power_mw"] = any ? json(p.power_max_mw) : json();
        j["min_voltage_mv"] = p.voltage_min_mv ? json(*p.voltage_min_mv) : json();
        j["max_voltage_mv"] = p.voltage_max_mv ? json(*p.voltage_max_mv) : json();
        j["max_current_ua"] = p.current_max_ua ? json(*p.current_max_ua) : json();
      }
      arr.push_back(std::move(j));
    }
    json doc{{"cid", all_ ? json() : json(cid_)},
             {"by", by_},
             {"zone", std::string(ctx.zone().name())},
             {"from", ctx.iso_time(from)},
             {"to", ctx.iso_time(to)},
             {"total_energy_mwh", total},
             {"periods", std::move(arr)}};
    ctx.term().out << doc.dump(2) << '\n';
    return exit_code::kOk;
  }

  int draw_chart(Context& ctx, const std::vector<Period>& periods);

  std::string cid_;
  bool all_ = false;
  std::string from_, to_;
  std::string by_ = "day";
  std::string format_ = "table";
  bool chart_ = false;
};

// Words (split at spaces) on lines of at most `limit` columns; a longer word is cut with "…".
void print_wrapped(std::ostream& out, const std::string& text, size_t limit) {
  std::string line;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    std::string word = text.substr(pos, end - pos);
    pos = end + 1;
    if (display_width(word) > limit) {
      std::string cut;
      for (size_t i = 0; i < word.size() && display_width(cut) + 1 < limit; ++i) cut += word[i];
      word = cut + "…";
    }
    if (!line.empty() && display_width(line) + 1 + display_width(word) > limit) {
      out << line << '\n';
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  out << line << '\n';
}

// "Nice" axis maximum >= v: 1, 2 or 5 x 10^n.
int64_t nice_ceiling(int64_t v) {
  if (v <= 0) return 1;
  int64_t p = 1;
  while (p * 10 <= v) p *= 10;
  for (int64_t m : {1, 2, 5, 10})
    if (m * p >= v) return m * p;
  return 10 * p;
}

int History::draw_chart(Context& ctx, const std::vector<Period>& periods) {
  auto& out = ctx.term().out;
  int64_t max_mwh = 0;
  for (const auto& p : periods) max_mwh = std::max(max_mwh, p.energy_mwh);
  // Wh below 1 kWh, so the axis numbers stay short.
  const bool kwh = max_mwh >= 1000000;
  const int64_t unit = kwh ? 1000000 : 1000;  // mWh per axis unit
  const char* unit_name = kwh ? "kWh" : "Wh";
  // Axis maximum in thousandths of the unit, rounded to a nice value.
  int64_t axis_milli = nice_ceiling((max_mwh * 1000 + unit - 1) / unit);
  const int64_t axis_mwh = axis_milli * unit / 1000;

  std::vector<std::string> labels;
  size_t label_w = 0;
  for (const auto& p : periods) {
    labels.push_back(label(ctx, p.start));
    label_w = std::max(label_w, display_width(labels.back()));
  }
  const int decimals = axis_milli >= 10000 ? 0 : axis_milli >= 1000 ? 1 : 3;
  std::vector<std::string> values;
  size_t value_w = 0;
  for (const auto& p : periods) {
    values.push_back(fixed(p.energy_mwh, unit, decimals));
    value_w = std::max(value_w, values.back().size());
  }
  // Every line stays within width - 1 columns: "LABEL │BAR VALUE". Too narrow for the values and
  // 10 bar cells: bars only (at least one cell), the axis says what they are.
  const int width = ctx.term().out_is_tty ? ctx.term().width : 80;
  const int origin = static_cast<int>(label_w) + 2;  // column of the first bar cell
  const bool show_values = width - 1 - origin - 1 - static_cast<int>(value_w) >= 10;
  const int bar_w = std::max(1, width - 1 - origin - (show_values ? 1 + static_cast<int>(value_w) : 0));

  static const char* kEighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  const bool color = ctx.color();
  print_wrapped(out,
                (all_ ? std::string("all sockets") : cid_) + ": energy per " + by_ + " in " + unit_name +
                    " (" + std::string(ctx.zone().name()) + ")",
                static_cast<size_t>(std::max(width - 1, 1)));
  for (size_t i = 0; i < periods.size(); ++i) {
    // Bar length in eighths of a cell, rounded.
    int64_t eighths = axis_mwh > 0 ? (periods[i].energy_mwh * bar_w * 8 + axis_mwh / 2) / axis_mwh : 0;
    std::string bar;
    for (int64_t c = 0; c < eighths / 8; ++c) bar += "█";
    bar += kEighths[eighths % 8];
    size_t used = static_cast<size_t>(eighths / 8 + (eighths % 8 ? 1 : 0));
    out << pad_right(labels[i], label_w) << " │";
    if (color && !bar.empty())
      out << "\x1b[32m" << bar << "\x1b[0m";
    else
      out << bar;
    if (show_values)
      out << std::string(static_cast<size_t>(bar_w) - std::min(used, static_cast<size_t>(bar_w)), ' ') << ' '
          << pad_left(values[i], value_w);
    out << '\n';
  }
  // Axis: ticks at 0, half and full scale, each value right-aligned under its tick and followed by
  // the unit. When narrow, the full-scale value moves left to make room for the unit, then the
  // unit goes (the title names it too), and the half-scale value goes when crowded.
  std::string axis = std::string(label_w, ' ') + " └";
  for (int c = 0; c < bar_w; ++c) axis += (c == bar_w / 2 - 1 || c == bar_w - 1) ? "┬" : "─";
  out << axis << '\n';
  const std::string half = fixed(axis_milli / 2, 1000, decimals), full = fixed(axis_milli, 1000, decimals);
  const std::string suffix = std::string(" ") + unit_name;
  int full_end = std::min(origin + bar_w - 1, width - 2 - static_cast<int>(suffix.size()));
  if (full_end + 1 - static_cast<int>(full.size()) <= origin + 1)
    full_end = std::min(origin + bar_w - 1, width - 2);
  const int full_start = full_end + 1 - static_cast<int>(full.size());
  const int half_start = origin + bar_w / 2 - static_cast<int>(half.size());
  std::string ticks = std::string(static_cast<size_t>(origin), ' ') + "0";
  auto place = [&](const std::string& text, int start) {
    ticks += std::string(static_cast<size_t>(start) - display_width(ticks), ' ') + text;
  };
  if (half_start > origin + 1 && half_start + static_cast<int>(half.size()) < full_start)
    place(half, half_start);
  if (full_start > static_cast<int>(display_width(ticks))) place(full, full_start);
  if (static_cast<int>(display_width(ticks) + suffix.size()) <= width - 1) ticks += suffix;
  out << ticks << '\n';
  return exit_code::kOk;
}

}  // namespace

std::unique_ptr<Command> make_history() {
  return std::make_unique<History>();
}

}  // namespace pb::cli
