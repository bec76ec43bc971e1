#include "context.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <string_view>

namespace pb::cli {

namespace fs = std::filesystem;
using namespace std::chrono;

int64_t Context::now_ms() const {
  if (term_.now_ms) return *term_.now_ms;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {
// `control_socket: PATH` at the start of a line of `file` (quotes and a trailing comment removed).
std::optional<std::string> control_socket_line(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  constexpr std::string_view key = "control_socket:";
  for (size_t n = 0; n < 100000 && std::getline(in, line); ++n) {
    if (line.rfind(key, 0) != 0) continue;
    std::string v = line.substr(key.size());
    if (auto hash = v.find(" #"); hash != std::string::npos) v.erase(hash);
    const auto b = v.find_first_not_of(" \t"), e = v.find_last_not_of(" \t\r");
    if (b == std::string::npos) return std::nullopt;
    v = v.substr(b, e - b + 1);
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
      v = v.substr(1, v.size() - 2);
    if (v.empty()) return std::nullopt;
    return v;
  }
  return std::nullopt;
}
}  // namespace

const config::Config* Context::config() {
  if (!config_tried_) {
    config_tried_ = true;
    try {
      config_ = config::load_file(opts_.config_path);
    } catch (const std::exception& ex) {
      config_error_ = ex.what();
    }
  }
  return config_ ? &*config_ : nullptr;
}

const config::Config& Context::require_config() {
  if (const auto* c = config()) return *c;
  throw CliError(exit_code::kNoData, "cannot read the configuration: " + config_error_ +
                                         "\n  fix: pass --config FILE (the daemon's plugbridge.yaml)");
}

std::string Context::db_path() {
  if (!opts_.db_path.empty()) return opts_.db_path;
  if (const auto* c = config()) return c->database;
  throw CliError(exit_code::kNoData, "cannot read the configuration: " + config_error_ +
                                         "\n  fix: pass --config FILE, or --db FILE for the database alone");
}

std::string Context::socket_path() {
  if (!opts_.socket_path.empty()) return opts_.socket_path;
  if (const auto* c = config()) {
    if (c->control_socket.empty())
      throw CliError(exit_code::kNoDaemon, "the control socket is disabled in " + c->source_file +
                                               " (control_socket: \"\")\n  fix: set control_socket there and "
                                               "restart plugbridged, or pass --socket PATH");
    return c->control_socket;
  }
  // A file the daemon would refuse (being edited, about to be reloaded): its top-level
  // control_socket line still says where the running daemon listens.
  if (auto path = control_socket_line(opts_.config_path)) return *path;
  return config::Config{}.control_socket;
}

store::Reader& Context::store() {
  if (store_) return *store_;
  const std::string path = db_path();
  std::error_code ec;
  if (path != ":memory:" && !fs::exists(path, ec))
    throw CliError(exit_code::kNoData,
                   "no database at " + path +
                       " yet\n  fix: start plugbridged once (it creates the database), or "
                       "pass --db FILE");
  try {
    store_ = std::make_unique<store::Reader>(path);
  } catch (const std::exception& ex) {
    throw CliError(exit_code::kNoData,
                   std::string("cannot open the database: ") + ex.what() +
                       "\n  fix: check that you may read it (members of the plugbridge group may), and that "
                       "plugbridged has started once with this version (it upgrades the schema)");
  }
  return *store_;
}

std::vector<Context::SocketInfo> Context::sockets() {
  std::vector<SocketInfo> out;
  std::set<std::string> seen;
  if (const auto* c = config()) {
    for (const auto& s : c->sockets) {
      out.push_back({s.cid, s.name});
      seen.insert(s.cid);
    }
  }
  std::vector<std::string> extra;
  for (const auto& st : store().energy_states())
    if (seen.insert(st.cid).second) extra.push_back(st.cid);
  std::sort(extra.begin(), extra.end());
  for (auto& cid : extra) out.push_back({cid, ""});
  return out;
}

void Context::require_known_cid(const std::string& cid) {
  std::string known;
  for (const auto& s : sockets()) {
    if (s.cid == cid) return;
    known += (known.empty() ? "" : ", ") + s.cid;
  }
  throw CliError(exit_code::kUsage, "unknown cid '" + cid + "'\n  fix: use one of: " +
                                        (known.empty() ? std::string("(no sockets known yet)") : known) +
                                        " (see `plugbridge devices`)");
}

const date::time_zone& Context::zone() {
  if (zone_) return *zone_;
  std::string name = opts_.tz;
  if (name.empty())
    if (const auto* c = config()) name = c->timezone;
  try {
    zone_ = name.empty() ? date::current_zone() : date::locate_zone(name);
  } catch (const std::exception& ex) {
    throw CliError(exit_code::kUsage, "unknown time zone '" + name + "' (" + ex.what() +
                                          ")\n  fix: use an IANA name such as Europe/Berlin");
  }
  return *zone_;
}

const energy::Calendar& Context::calendar() {
  if (!calendar_) calendar_ = std::make_unique<energy::Calendar>(std::string(zone().name()));
  return *calendar_;
}

int64_t Context::utc_offset_ms(int64_t ms) {
  auto info = zone().get_info(sys_seconds{seconds{ms >= 0 ? ms / 1000 : (ms - 999) / 1000}});
  return duration_cast<milliseconds>(info.offset).count();
}

std::string Context::local_time(int64_t ms, const char* fmt) {
  auto tp = sys_time<milliseconds>{milliseconds{ms}};
  auto zt = date::make_zoned(&zone(), floor<seconds>(tp));
  return date::format(fmt, zt);
}

std::string Context::iso_time(int64_t ms) {
  std::string s = local_time(ms, "%Y-%m-%dT%H:%M:%S%z");  // ...+0100
  if (s.size() >= 5) s.insert(s.size() - 2, ":");
  return s;
}

int64_t Context::parse_time(const std::string& text, const std::string& option) {
  auto bad = [&]() -> CliError {
    return CliError(exit_code::kUsage,
                    "bad date for " + option + ": '" + text +
                        "'\n  fix: use YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]', today, yesterday, "
                        "now, -7d, -12h, -30m or @UNIX_MS (local times in " +
                        std::string(zone().name()) + ")");
  };
  const int64_t now = now_ms();
  if (text == "now") return now;
  auto today = calendar().local_date(now);
  if (text == "today") return calendar().day_start_ms(today);
  if (text == "yesterday") return calendar().day_start_ms(date::sys_days(today) - date::days{1});
  std::smatch m;
  static const std::regex rel(R"(^-(\d{1,6})([dhm])$)");
  if (std::regex_match(text, m, rel)) {
    int64_t n = std::stoll(m[1]);
    int64_t unit = m[2] == "d" ? 86400000 : m[2] == "h" ? 3600000 : 60000;
    return now - n * unit;
  }
  static const std::regex unix_ms(R"(^@(-?\d{1,16})$)");
  if (std::regex_match(text, m, unix_ms)) return std::stoll(m[1]);
  static const std::regex dt(R"(^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$)");
  if (!std::regex_match(text, m, dt)) throw bad();
  date::year_month_day ymd{date::year{std::stoi(m[1])}, date::month{static_cast<unsigned>(std::stoi(m[2]))},
                           date::day{static_cast<unsigned>(std::stoi(m[3]))}};
  if (!ymd.ok()) throw bad();
  if (!m[4].matched) return calendar().day_start_ms(ymd);
  int h = std::stoi(m[4]), mi = std::stoi(m[5]), s = m[6].matched ? std::stoi(m[6]) : 0;
  if (h > 23 || mi > 59 || s > 59) throw bad();
  auto local = date::local_days(ymd) + hours{h} + minutes{mi} + seconds{s};
  // A wall time in a DST gap or fold: the earlier instant (what `date` does for folds).
  auto info = zone().get_info(local);
  sys_seconds sys;
  if (info.result == date::local_info::unique || info.result == date::local_info::ambiguous)
    sys = sys_seconds{local.time_since_epoch() - info.first.offset};
  else
    sys = info.first.end;  // nonexistent: the transition
  return duration_cast<milliseconds>(sys.time_since_epoch()).count();
}

std::string energy_cell(int64_t mwh, bool csv) {
  if (csv) return fixed(mwh, 1000000, 6);
  if (mwh > -1000000 && mwh < 1000000) return fixed(mwh, 1000, 1) + " Wh";
  return fixed(mwh, 1000000, 3) + " kWh";
}

std::string fixed(int64_t value, int64_t divisor, int decimals) {
  bool neg = value < 0;
  uint64_t v = neg ? static_cast<uint64_t>(-(value + 1)) + 1 : static_cast<uint64_t>(value);
  int64_t scale = 1;
  for (int i = 0; i < decimals; ++i) scale *= 10;
  // Round half away from zero to `decimals` places.
  const uint64_t d = static_cast<uint64_t>(divisor);
  uint64_t whole = v / d;
  uint64_t frac = ((v % d) * static_cast<uint64_t>(scale) * 2 + d) / (2 * d);
  if (frac == static_cast<uint64_t>(scale)) {
    ++whole;
    frac = 0;
  }
  std::string out = (neg && (whole || frac) ? "-" : "") + std::to_string(whole);
  if (decimals > 0) {
    std::string f = std::to_string(frac);
    out += "." + std::string(decimals - f.size(), '0') + f;
  }
  return out;
}

size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string pad_right(const std::string& s, size_t width) {
  size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string pad_left(const std::string& s, size_t width) {
  size_t w = display_width(s);
  return w >= width ? s : std::string(width - w, ' ') + s;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace pb::cli
