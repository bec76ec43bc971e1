#include "year_scenario.hpp"

#include <date/date.h>
#include <date/tz.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <pbfw/proto.hpp>
#include <pbfw/proto_names.hpp>
#include <pbfw/socket_core.hpp>
#include <random>
#include <sstream>
#include <stdexcept>

#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/energy/totals.hpp"
#include "plugbridge/gateway/rows.hpp"
#include "plugbridge/store/store.hpp"
#include "plugsim/file_flash.hpp"
#include "plugsim/hlw8032_sim.hpp"

namespace pb::year {

namespace {

namespace proto = pbfw::proto;

// The acceleration: a meter frame every 30 s of simulated time (the chip sends one every 50 ms; the
// simulator's PF pulses carry the exact energy of the period either way, and at 1 100 W a period
// stays far below one 16-bit turn of the pulse counter), a reading a minute (the firmware's default
// is a second), the energy persisted every 5 min (the MCU's recommended interval,
// docs/persistence.md), the gateway's samples a minute wide (its default) and committed every 10 min.
constexpr int64_t kStepMs = 30'000;
constexpr uint32_t kReadingMs = 60'000;
constexpr uint32_t kPersistMs = 300'000;
constexpr int64_t kCommitMs = 600'000;
constexpr int64_t kSampleMs = 60'000;
constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kDayMs = 24 * kHourMs;
constexpr size_t kRecords = 16;  // the MCU image's resend buffer (PBFW_RECORDS)
constexpr double kRatedW = 1100.0;
constexpr uint32_t kKvE6 = 1'880'000, kKiE6 = 1'000'000;

double mwh_of(double watts, int64_t ms) {
  return watts * static_cast<double>(ms) / 3600.0;
}

class SimHal final : public pbfw::Hal {
 public:
  explicit SimHal(const int64_t& clock) : clock_(clock) {}
  uint64_t now_ms() override { return static_cast<uint64_t>(clock_ - boot_at + 1000); }
  void set_relay(bool on) override { relay = on; }
  void set_led(uint8_t, uint8_t, uint8_t) override {}
  int64_t boot_at = 0;
  bool relay = false;

 private:
  const int64_t& clock_;
};

enum class Profile { Constant, Daily, Heater, NearRated, Fridge };
const char* profile_name(Profile p) {
  switch (p) {
    case Profile::Constant:
      return "constant 400 W";
    case Profile::Daily:
      return "daily cycle";
    case Profile::Heater:
      return "heater on/off";
    case Profile::NearRated:
      return "near rated, wraps";
    case Profile::Fridge:
      return "fridge, resets";
  }
  return "?";
}

struct Window {
  int64_t from, to;  // where a known loss of the design may land
};

// One socket: the firmware core, its flash file, the simulated meter, the link, and the truth.
class SimSocket final : public pbfw::LanTransport {
 public:
  SimSocket(const int64_t& clock, std::string cid, Profile profile, uint64_t seed,
            std::filesystem::path flash)
      : cid_(std::move(cid)), profile_(profile), rng_(seed), hal_(clock), flash_path_(std::move(flash)) {
    cfg_.cid = cid_.c_str();
    cfg_.fw_version = "year-0.1";
    cfg_.reading_interval_ms = kReadingMs;
    cfg_.persist_interval_ms = kPersistMs;
    cfg_.meter_timeout_ms = 3 * kStepMs;
    cfg_.current_limit_ma = 8000;
    cfg_.led_shows_connecting = false;
  }

  // What the flash held before the run (the counter, for the wrap).
  void seed_flash(uint64_t energy_mwh, uint16_t epoch) {
    plugsim::FlashFileStorage storage(flash_path_);
    pbfw::PersistentState s{};
    s.boot_counter = 41;
    s.energy_mwh = energy_mwh;
    s.energy_epoch = epoch;
    s.relay_on = 1;
    storage.save(s);
  }

  // Power-on or reset of the MCU: everything in RAM (unsent records, the energy since the last
  // persist) is gone; the flash log is mounted again.
  void boot(int64_t now) {
    core_.reset();
    storage_.reset();
    storage_ = std::make_unique<plugsim::FlashFileStorage>(flash_path_);
    hal_.boot_at = now;
    connected_ = closed_ = false;
    to_gateway.clear();
    held_back.reset();
    core_ =
        std::make_unique<pbfw::SocketCore>(hal_, *storage_, *this, cfg_, records_.data(), records_.size());
    core_->boot();
    last_epoch_ = core_->energy().epoch();
    // The chip's first frame comes 50 ms after boot on the board: the pulse counter's baseline.
    feed(meter_.next_frame(0));
  }
  void reboot(int64_t now) {
    const uint64_t before = counter_abs();
    coarsened_before_ += core_->lan().coarsened();
    boot(now);
    const uint64_t after = counter_abs();
    if (before > after) design_loss_mwh += static_cast<double>(before - after);
    ++figures.reboots;
    losses.push_back({now - kPersistMs - kStepMs, now + kReadingMs + 2 * kStepMs});
  }
  void factory_reset(int64_t now) {
    core_->factory_reset();
    reset_unacked = true;
    last_epoch_ = core_->energy().epoch();
    ++figures.resets;
    losses.push_back({now - kReadingMs - 2 * kStepMs, now + kStepMs});
  }

  // One meter period [t, t + kStepMs): the load draws `watts` while the relay is on.
  void step(int64_t t) {
    const double w = hal_.relay ? load_w(t) : 0.0;
    meter_.set_load({230.0, w, pf_});
    cum_.push_back(cum_.back() + mwh_of(w, kStepMs));
  }
  void frame() {
    feed(meter_.next_frame(static_cast<uint32_t>(kStepMs)));
    const uint16_t epoch = core_->energy().epoch();
    if (epoch == last_epoch_ + 1 && core_->energy().energy_mwh() < 100'000'000) ++figures.wraps;
    last_epoch_ = epoch;
  }
  void tick() { core_->tick(); }

  void set_link(bool up) {
    if (closed_) {  // the core closed the connection itself (protocol error or liveness)
      closed_ = false;
      if (connected_) {
        connected_ = false;
        to_gateway.clear();
        held_back.reset();
        core_->on_transport_disconnected();
      }
    }
    if (up && !connected_) {
      connected_ = true;
      core_->on_transport_connected();
    } else if (!up && connected_) {
      connected_ = false;
      to_gateway.clear();
      held_back.reset();
      core_->on_transport_disconnected();
    }
  }
  bool connected() const { return connected_; }
  void receive(const std::vector<uint8_t>& frame) {
    if (connected_) core_->on_transport_bytes(frame.data(), frame.size());
  }
  void button_click() { core_->button_click(); }
  bool relay_on() const { return hal_.relay; }

  // pbfw::LanTransport
  bool send(const uint8_t* data, size_t len) override {
    if (!connected_) return false;
    to_gateway.emplace_back(data, data + len);
    return true;
  }
  void close() override { closed_ = true; }

  // The true energy (mWh) the load drew from the run's start to t.
  double truth_at(int64_t t, int64_t start) const {
    const int64_t rel = std::max<int64_t>(t - start, 0);
    const size_t k = static_cast<size_t>(rel / kStepMs);
    if (k + 1 >= cum_.size()) return cum_.back();
    const double frac = static_cast<double>(rel - static_cast<int64_t>(k) * kStepMs) / kStepMs;
    return cum_[k] + (cum_[k + 1] - cum_[k]) * frac;
  }
  uint32_t coarsened() const { return coarsened_before_ + core_->lan().coarsened(); }

  const std::string& cid() const { return cid_; }
  Profile profile() const { return profile_; }
  std::mt19937_64& rng() { return rng_; }
  std::deque<std::vector<uint8_t>> to_gateway;
  std::optional<std::vector<uint8_t>> held_back;  // a reading delivered after the next record
  bool reset_unacked = false;                     // records since a factory reset wait for their ack
  bool reboot_waits = false;                      // a reboot put off until they are acked
  size_t unacked() const { return core_->lan().unacked(); }
  std::vector<Window> losses;
  double design_loss_mwh = 0;
  SocketFigures figures;
  std::function<int(int64_t)> local_hour;  // of a UTC time
  std::function<int(int64_t)> local_month;

 private:
  uint64_t counter_abs() const {
    return uint64_t{core_->energy().epoch()} * pbfw::EnergyCounter::kWrapMwh + core_->energy().energy_mwh();
  }
  void feed(const plugsim::Hlw8032Sim::Frame& f) {
    for (uint8_t b : f) core_->on_meter_byte(b, false);
  }

  double load_w(int64_t t) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    switch (profile_) {
      case Profile::Constant:
        pf_ = 0.9;
        return 400.0;
      case Profile::Daily: {
        pf_ = 0.95;
        if (t >= next_change_) {
          next_change_ = t + kHourMs;
          noise_ = 0.9 + 0.2 * u(rng_);
        }
        const int h = local_hour(t);
        const double base = (h >= 6 && h < 8) ? 700.0 : (h >= 18 && h < 23) ? 900.0 : 60.0;
        return base * noise_;
      }
      case Profile::Heater: {
        pf_ = 1.0;
        if (t >= next_change_) {
          const int m = local_month(t);
          const bool winter = m <= 4 || m >= 10;
          on_ = !on_;
          const double minutes = on_ ? (winter ? 5 + 35 * u(rng_) : 2 + 8 * u(rng_))
                                     : (winter ? 10 + 50 * u(rng_) : 60 + 540 * u(rng_));
          next_change_ = t + static_cast<int64_t>(minutes * 60'000.0) / kStepMs * kStepMs + kStepMs;
        }
        return on_ ? 1000.0 : 0.0;
      }
      case Profile::NearRated:
        pf_ = 0.98;
        if (t >= next_change_) {
          next_change_ = t + kHourMs;
          noise_ = 1000.0 + 50.0 * u(rng_);
        }
        return noise_;
      case Profile::Fridge: {
        pf_ = 0.8;
        if (t >= next_change_) {
          on_ = !on_;
          const double minutes = on_ ? 10 + 15 * u(rng_) : 20 + 20 * u(rng_);
          next_change_ = t + static_cast<int64_t>(minutes * 60'000.0) / kStepMs * kStepMs + kStepMs;
        }
        return on_ ? 90.0 : 0.0;
      }
    }
    return 0.0;
  }

  std::string cid_;
  Profile profile_;
  std::mt19937_64 rng_;
  SimHal hal_;
  std::filesystem::path flash_path_;
  std::unique_ptr<plugsim::FlashFileStorage> storage_;
  plugsim::Hlw8032Sim meter_{kKvE6, kKiE6};
  std::array<pbfw::Record, kRecords> records_{};
  pbfw::SocketConfig cfg_{};
  std::unique_ptr<pbfw::SocketCore> core_;
  bool connected_ = false, closed_ = false;
  std::vector<double> cum_{0.0};
  double pf_ = 1.0, noise_ = 1.0;
  bool on_ = false;
  int64_t next_change_ = 0;
  uint16_t last_epoch_ = 0;
  uint32_t coarsened_before_ = 0;
};

std::vector<uint8_t> encode(const proto::Message& m) {
  std::vector<uint8_t> out(proto::kMaxFrame);
  const size_t n = proto::encode(m, out.data(), out.size());
  if (n == 0) throw std::runtime_error("encode failed");
  out.resize(n);
  return out;
}

// The daemon's record path without its event loop: a socket's records are turned into rows as
// SocketRegistry does (time = arrival - age), readings summed into the accountant's Pending and acked
// at once (the daemon acks them within 250 ms, before their commit), events committed before the
// ack that covers them, readings committed every kCommitMs, then the samples rolled up as
// RecordCommitter does; days rolled up hourly as the retention pass does. Constructing one is the
// daemon's start: open the file, load the accountant's states, the retention pass.
class Gateway {
 public:
  Gateway(const std::filesystem::path& db, const energy::Calendar& cal, int64_t now)
      : store_(db.string(), store_options()), cal_(cal) {
    // synchronous=OFF: a SIGKILL loses nothing the OS was given (only a power cut would), so the
    // file after an abandoned Gateway is what the daemon finds after a kill.
    accountant_.load(store_);
    retention(now);
  }

  struct Session {
    uint32_t boot = 0, received = 0, acked = 0;
    bool up = false;
  };

  // One frame from a socket; answers go to `out`.
  void handle(SimSocket& s, const std::vector<uint8_t>& frame, int64_t now,
              std::vector<std::vector<uint8_t>>& out) {
    proto::Message m{};
    size_t consumed = 0;
    if (proto::decode(frame.data(), frame.size(), m, consumed) != proto::DecodeStatus::Ok)
      throw std::runtime_error("undecodable frame");
    Session& ss = sessions_[&s];
    // The daemon closes a connection whose first frame is not a Hello: here it is the harness's error.
    if (m.type != proto::MsgType::Hello && !ss.up)
      throw std::logic_error(s.cid() + ": a frame before its Hello");
    switch (m.type) {
      case proto::MsgType::Hello: {
        ss = Session{m.hello.boot_counter, 0, 0, true};
        proto::Message a{};
        a.type = proto::MsgType::HelloAck;
        a.hello_ack.unix_ms = static_cast<uint64_t>(now);
        a.hello_ack.last_committed_seq = store_.last_seq(s.cid(), ss.boot);
        a.hello_ack.keepalive_s = 30;
        ss.received = ss.acked = a.hello_ack.last_committed_seq;
        out.push_back(encode(a));
        break;
      }
      case proto::MsgType::Reading: {
        const proto::Reading& r = m.reading;
        const store::ReadingRow row = gateway::reading_row(s.cid(), ss.boot, r, now);
        accountant_.add(pending_, row);
        ss.received = std::max(ss.received, r.seq);
        break;
      }
      case proto::MsgType::Event: {
        store::EventRow e = gateway::event_row(s.cid(), ss.boot, m.event, now);
        events_.push_back(std::move(e));
        ss.received = std::max(ss.received, m.event.seq);
        break;
      }
      case proto::MsgType::Keepalive: {
        proto::Message k{};
        k.type = proto::MsgType::Keepalive;
        k.keepalive.uptime_ms = 0;
        out.push_back(encode(k));
        break;
      }
      default:
        break;
    }
  }

  // After a socket's frames: its events committed (the 20 ms flush), then the cumulative ack.
  void acks(SimSocket& s, std::vector<std::vector<uint8_t>>& out) {
    if (!events_.empty()) {
      store_.commit(events_, {});
      events_.clear();
    }
    Session& ss = sessions_[&s];
    if (ss.up && ss.received > ss.acked) {
      proto::Message a{};
      a.type = proto::MsgType::Ack;
      a.ack.up_to_seq = ss.received;
      ss.acked = ss.received;
      out.push_back(encode(a));
    }
  }
  void disconnected(SimSocket& s) { sessions_.erase(&s); }

  void commit(int64_t now) {
    const energy::Prepared p = pending_.prepared();
    std::vector<store::EventRow> events = events_;
    events.insert(events.end(), p.events.begin(), p.events.end());
    store_.commit(events, p.update);
    accountant_.committed(p);
    pending_ = {};
    events_.clear();
    const int64_t up_to = energy::floor_to(now, energy::roll_up_period_ms(kSampleMs));
    if (store_.rolled_up_ms() < up_to) store_.roll_up(up_to);
  }
  void retention(int64_t now) {
    store_.roll_up(energy::floor_to(now, energy::roll_up_period_ms(kSampleMs)));
    while (energy::roll_up_days(store_, cal_, 1) > 0) {
    }
  }
  store::Store& store() { return store_; }

 private:
  static store::StoreOptions store_options() {
    store::StoreOptions o;
    o.synchronous = "OFF";
    return o;
  }
  static energy::AccountantOptions accountant_options() {
    energy::AccountantOptions o;
    o.sample_ms = kSampleMs;
    return o;
  }
  store::Store store_;
  const energy::Calendar& cal_;
  energy::Accountant accountant_{accountant_options()};
  energy::Pending pending_;
  std::vector<store::EventRow> events_;
  std::map<SimSocket*, Session> sessions_;
};

struct Fault {
  enum Kind { Reboot, Reset, SwitchOn, WifiDown, WifiUp, Kill, GatewayUp } kind;
  int64_t at;
  size_t socket = 0;
};

proto::MsgType frame_type(const std::vector<uint8_t>& frame) {
  proto::Message m{};
  size_t consumed = 0;
  if (proto::decode(frame.data(), frame.size(), m, consumed) != proto::DecodeStatus::Ok)
    throw std::runtime_error("undecodable frame");
  return m.type;
}

int64_t parse_day(const energy::Calendar& cal, const std::string& text, date::year_month_day& out) {
  std::istringstream in(text);
  date::year_month_day d{};
  in >> date::parse("%F", d);
  if (in.fail() || !d.ok()) throw std::invalid_argument("not a date: " + text);
  out = d;
  return cal.day_start_ms(d);
}

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

}  // namespace

Options options_from_env(Options o) {
  if (const char* e = std::getenv("PB_YEAR_SEED")) o.seed = std::stoull(e);
  if (const char* e = std::getenv("PB_YEAR_START")) o.start = e;
  if (const char* e = std::getenv("PB_YEAR_DAYS")) o.days = std::stoi(e);
  if (const char* e = std::getenv("PB_YEAR_SOCKETS")) o.sockets = std::stoi(e);
  if (const char* e = std::getenv("PB_YEAR_DIR")) o.dir = e;
  if (const char* e = std::getenv("PB_YEAR_REBOOT_BEFORE_RESET_ACKED"))
    o.reboot_before_reset_acked = *e == '1';
  return o;
}

std::string Result::table() const {
  std::ostringstream out;
  out << "socket     profile             true kWh  stored kWh  error %   worst day Wh (of tol)  max day kWh  "
         "DST days (worst Wh)  wraps resets reboots outages dups reord coarsened rejected lost@reboot Wh\n";
  for (const SocketFigures& s : sockets) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "%-10s %-19s %9.3f %11.3f %8.5f %10.1f (%4.0f %%) %12.3f %4d (%9.1f)  %6d %6d %7d %7d %4d "
                  "%5d %9d %8d %14.1f\n",
                  s.cid.c_str(), s.profile.c_str(), s.true_kwh, s.stored_kwh, s.error_pct, s.worst_day_wh,
                  100.0 * s.worst_day_of_tol, s.max_day_kwh, s.dst_days, s.worst_dst_day_wh, s.wraps,
                  s.resets, s.reboots, s.outages, s.dups, s.reorders, s.coarsened, s.rejected_jumps,
                  s.design_loss_wh);
    out << line;
  }
  out << "gateway: " << kills << " SIGKILLs, " << gateway_outages << " of them followed by a long outage; "
      << fmt("%.1f s", seconds) << "\n";
  return out.str();
}

Result run(const Options& opt) {
  if (opt.days < 7 || opt.sockets < 1)
    throw std::invalid_argument("the scenario needs a week and a socket at least");
  const auto wall0 = std::chrono::steady_clock::now();
  Result res;
  const energy::Calendar cal(opt.zone);
  const date::time_zone* zone = date::locate_zone(opt.zone);
  date::year_month_day first_day{};
  const int64_t t0 = parse_day(cal, opt.start, first_day);
  const date::year_month_day end_day{date::sys_days(first_day) + date::days(opt.days)};
  const int64_t t1 = cal.day_start_ms(end_day);
  const int64_t start = t0 - kHourMs;     // warm-up: the sockets' first readings are the baselines
  const int64_t stop = t1 + 6 * kHourMs;  // every fault over: what waits is delivered and committed

  std::filesystem::path dir = opt.dir;
  bool remove_dir = false;
  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pb-year-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    remove_dir = true;
  }
  const std::filesystem::path db = dir / "plugbridge.db";

  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto uniform_time = [&](int64_t from, int64_t to) {
    return (from + static_cast<int64_t>(u01(rng) * static_cast<double>(to - from))) / kStepMs * kStepMs;
  };
  const double years = opt.days / 365.0;
  auto count = [&](double per_year, int at_least) {
    return std::max(at_least, static_cast<int>(std::lround(per_year * years)));
  };

  // Local hour and month per UTC hour of the run (the load profiles follow local time).
  std::vector<int8_t> hour_of, month_of;
  for (int64_t h = start / kHourMs; h <= stop / kHourMs + 1; ++h) {
    const auto local = zone->to_local(date::sys_seconds(std::chrono::seconds(h * 3600)));
    const auto ld = date::floor<date::days>(local);
    hour_of.push_back(static_cast<int8_t>(date::floor<std::chrono::hours>(local - ld).count()));
    month_of.push_back(static_cast<int8_t>(static_cast<unsigned>(date::year_month_day(ld).month())));
  }
  const int64_t first_hour = start / kHourMs;

  int64_t now = start;
  std::vector<std::unique_ptr<SimSocket>> sockets;
  std::vector<Fault> faults;
  for (int i = 0; i < opt.sockets; ++i) {
    const auto profile = static_cast<Profile>(i % 5);
    char cid[32];
    std::snprintf(cid, sizeof cid, "year-%02d", i + 1);
    auto s = std::make_unique<SimSocket>(now, cid, profile, rng(), dir / (std::string(cid) + ".flash"));
    s->local_hour = [&hour_of, first_hour](int64_t t) {
      return hour_of[static_cast<size_t>(t / kHourMs - first_hour)];
    };
    s->local_month = [&month_of, first_hour](int64_t t) {
      return month_of[static_cast<size_t>(t / kHourMs - first_hour)];
    };
    s->figures.cid = cid;
    s->figures.profile = profile_name(profile);
    if (profile == Profile::NearRated) {
      // Near the top of the counter's range: it wraps at about 40 % of the run.
      const double to_wrap_mwh = 1025.0 * 0.4 * opt.days * 24.0 * 1000.0;
      const auto wrap = static_cast<double>(pbfw::EnergyCounter::kWrapMwh);
      s->seed_flash(static_cast<uint64_t>(std::max(wrap - to_wrap_mwh, wrap / 2)), 3);
    } else {
      s->seed_flash(static_cast<uint64_t>(u01(rng) * 5e8), 0);
    }
    const size_t idx = sockets.size();
    for (int k = count(6, 1); k-- > 0;) faults.push_back({Fault::Reboot, uniform_time(t0, t1), idx});
    const int resets = profile == Profile::Fridge ? count(3, 1) : profile == Profile::Heater ? 1 : 0;
    for (int k = resets; k-- > 0;) {
      const int64_t at = uniform_time(t0, t1);
      faults.push_back({Fault::Reset, at, idx});
      faults.push_back({Fault::SwitchOn, at + static_cast<int64_t>(u01(rng) * 60) * 60'000 + kStepMs, idx});
    }
    // Wi-Fi (socket-to-gateway) outages: minutes to days (log-uniform), and one of 1 to 3 days.
    const int outages = count(10, 2);
    for (int k = 0; k < outages; ++k) {
      const double minutes =
          k == 0 ? 1440.0 * (1.0 + 2.0 * u01(rng)) : 2.0 * std::pow(3.0 * 1440.0 / 2.0, u01(rng));
      const int64_t at = uniform_time(t0, t1 - 3 * kDayMs);
      faults.push_back({Fault::WifiDown, at, idx});
      if (std::getenv("PB_YEAR_DEBUG"))
        std::fprintf(stderr, "%s outage %s + %.0f min\n", cid, cal.local_time_string(at).c_str(), minutes);
      faults.push_back({Fault::WifiUp, at + static_cast<int64_t>(minutes * 60'000.0), idx});
      ++s->figures.outages;
    }
    sockets.push_back(std::move(s));
  }
  // Gateway SIGKILLs, each followed by a restart after up to 20 min; one stays down 1 to 2 days.
  const int kills = count(12, 3);
  for (int k = 0; k < kills; ++k) {
    const int64_t at = uniform_time(t0, t1 - 3 * kDayMs) + 1'234;  // between two frames
    const double down_min = k == 0 ? 1440.0 * (1.0 + u01(rng)) : 20.0 * u01(rng);
    faults.push_back({Fault::Kill, at, 0});
    faults.push_back({Fault::GatewayUp, at + static_cast<int64_t>(down_min * 60'000.0), 0});
  }
  res.gateway_outages = 1;
  std::stable_sort(faults.begin(), faults.end(), [](const Fault& a, const Fault& b) { return a.at < b.at; });

  for (auto& s : sockets) s->boot(now);
  auto gateway = std::make_unique<Gateway>(db, cal, now);
  int64_t next_commit = now + kCommitMs, next_retention = now + kHourMs;
  std::vector<int> wifi_down(sockets.size(), 0);
  int gateway_down = 0;
  size_t next_fault = 0;
  const double p_dup = 0.003, p_reorder = 0.003;
  std::vector<std::vector<uint8_t>> replies;

  while (now < stop) {
    for (auto& s : sockets) s->step(now);
    now += kStepMs;
    for (auto& s : sockets) s->frame();

    while (next_fault < faults.size() && faults[next_fault].at <= now) {
      const Fault& f = faults[next_fault++];
      SimSocket& s = *sockets[f.socket];
      switch (f.kind) {
        case Fault::Reboot:
          // A reboot loses the records in RAM; after a factory reset the energy before it is in none
          // but those (the counter restarted), so a reboot before they were acked loses it: by
          // design, left out unless asked for (docs/schema.md, "The simulated year").
          if (s.reset_unacked && !opt.reboot_before_reset_acked) {
            s.reboot_waits = true;
            break;
          }
          if (gateway) gateway->disconnected(s);
          s.reboot(now);
          break;
        case Fault::Reset:
          if (std::getenv("PB_YEAR_DEBUG"))
            std::fprintf(stderr, "%s reset at %s\n", s.cid().c_str(), cal.local_time_string(now).c_str());
          s.factory_reset(now);
          break;
        case Fault::SwitchOn:
          if (!s.relay_on()) s.button_click();
          break;
        case Fault::WifiDown:
          ++wifi_down[f.socket];
          break;
        case Fault::WifiUp:
          --wifi_down[f.socket];
          break;
        case Fault::Kill:
          // SIGKILL: readings acked but not committed, events not committed, frames in flight: gone.
          gateway.reset();
          for (auto& sock : sockets) sock->set_link(false);  // its connections go with it
          ++gateway_down;
          ++res.kills;
          break;
        case Fault::GatewayUp:
          if (--gateway_down == 0) gateway = std::make_unique<Gateway>(db, cal, now);
          break;
      }
    }

    for (auto& s : sockets) s->tick();
    for (size_t i = 0; i < sockets.size(); ++i) {
      SimSocket& s = *sockets[i];
      const bool was = s.connected();
      s.set_link(gateway && wifi_down[i] == 0);
      if (was && !s.connected() && gateway) gateway->disconnected(s);
      // Exchange until both sides are quiet (acks release more records).
      for (int round = 0; round < 64 && s.connected() && !s.to_gateway.empty(); ++round) {
        std::deque<std::vector<uint8_t>> frames;
        frames.swap(s.to_gateway);
        // Injected on the delivery path: a record twice, or a reading held back and delivered after
        // the next record (it is older than what the gateway has by then).
        std::vector<std::vector<uint8_t>> delivered;
        for (auto& frame : frames) {
          const proto::MsgType type = frame_type(frame);
          const bool record = type == proto::MsgType::Reading || type == proto::MsgType::Event;
          const double x = record ? u01(rng) : 1.0;
          if (x < p_reorder && type == proto::MsgType::Reading && !s.held_back) {
            s.held_back = std::move(frame);
            ++s.figures.reorders;
            continue;
          }
          if (x < p_reorder + p_dup) {
            delivered.push_back(frame);
            ++s.figures.dups;
          }
          delivered.push_back(std::move(frame));
          if (record && s.held_back) {
            delivered.push_back(std::move(*s.held_back));
            s.held_back.reset();
          }
        }
        replies.clear();
        for (const auto& fr : delivered) gateway->handle(s, fr, now, replies);
        gateway->acks(s, replies);
        for (const auto& r : replies) s.receive(r);
        s.tick();
      }
    }

    for (auto& s : sockets) {
      if (s->reset_unacked && s->connected() && s->unacked() == 0) s->reset_unacked = false;
      if (s->reboot_waits && !s->reset_unacked) {
        s->reboot_waits = false;
        if (gateway) gateway->disconnected(*s);
        s->reboot(now);
      }
    }
    if (gateway && now >= next_commit) {
      gateway->commit(now);
      next_commit = now + kCommitMs;
    }
    if (gateway && now >= next_retention) {
      gateway->retention(now);
      next_retention = now + kHourMs;
    }
  }
  if (!gateway) gateway = std::make_unique<Gateway>(db, cal, now);
  gateway->commit(now);
  gateway->retention(now + kDayMs);  // the last day rolled up too (readers give the same answer)

  // The checks.
  store::Store& st = gateway->store();
  auto fail = [&](const std::string& what) { res.failures.push_back(what); };
  for (auto& sp : sockets) {
    SimSocket& s = *sp;
    SocketFigures& f = s.figures;
    auto truth = [&](int64_t a, int64_t b) { return s.truth_at(b, start) - s.truth_at(a, start); };
    // The committed readings, as the samples they left (a reading the accountant took, whatever it
    // counted): the energy at a boundary lands on one side or the other of it depending on which
    // reading closed the interval across it, so a day's tolerance is the true energy between the
    // committed readings around each of its bounds (one frame period more: a reading carries the
    // counter of the last frame), plus the windows where the design loses energy (a reboot loses
    // what was not persisted yet, a factory reset what was counted since the last reading).
    std::vector<int64_t> samples;
    for (const store::SampleRow& r : st.samples(s.cid(), 0, INT64_MAX / 2))
      if (r.samples > 0) samples.push_back(r.start_ms);  // not the shares of a gap's energy
    if (std::getenv("PB_YEAR_DEBUG")) {
      std::vector<std::pair<int64_t, int64_t>> gaps;
      for (size_t k = 1; k < samples.size(); ++k)
        gaps.push_back({samples[k] - samples[k - 1], samples[k - 1]});
      std::sort(gaps.rbegin(), gaps.rend());
      for (size_t k = 0; k < std::min<size_t>(gaps.size(), 4); ++k)
        std::fprintf(stderr, "%s gap of %.1f h from %s, true %.1f Wh\n", s.cid().c_str(),
                     gaps[k].first / 3.6e6, cal.local_time_string(gaps[k].second).c_str(),
                     truth(gaps[k].second, gaps[k].second + gaps[k].first) / 1000);
    }
    auto boundary_tol = [&](int64_t b) {
      auto it = std::lower_bound(samples.begin(), samples.end(), b);
      const int64_t next = it == samples.end() ? stop : *it + kSampleMs;
      const int64_t prev = it == samples.begin() ? start : *(it - 1) - kStepMs;
      return truth(prev, next);
    };
    auto tolerance = [&](int64_t a, int64_t b) {
      double tol = boundary_tol(a) + boundary_tol(b) + 2'000.0;  // + 2 Wh: pulses and rounding
      for (const Window& w : s.losses)
        if (w.to > a && w.from < b) tol += truth(w.from, w.to);
      return tol;
    };

    const double year_true = truth(t0, t1);
    const auto year_stored = static_cast<double>(energy::energy_between(st, s.cid(), t0, t1));
    f.true_kwh = year_true / 1e6;
    f.stored_kwh = year_stored / 1e6;
    f.error_pct = year_true > 0 ? 100.0 * (year_stored - year_true) / year_true : 0.0;
    if (std::abs(f.error_pct) > 0.1)
      fail(s.cid() + ": the run's total is off by " + fmt("%.4f %%", f.error_pct) + " (bound 0.1 %)");
    const int64_t all_time = energy::all_time_total(st, s.cid());
    const int64_t all_buckets = energy::energy_between(st, s.cid(), 0, INT64_MAX / 2);
    if (all_time != all_buckets)
      fail(s.cid() + ": all-time total " + std::to_string(all_time) + " mWh, its buckets " +
           std::to_string(all_buckets));

    int64_t days_sum = 0, months_sum = 0;
    for (date::sys_days d = first_day; d < date::sys_days(end_day); d += date::days(1)) {
      const date::year_month_day ymd(d);
      const energy::Range r = cal.day(ymd);
      const int64_t day_mwh = energy::day_total(st, cal, s.cid(), ymd);
      days_sum += day_mwh;
      const auto stored = static_cast<double>(day_mwh);
      const double tru = truth(r.from_ms, r.to_ms), tol = tolerance(r.from_ms, r.to_ms);
      const double err = std::abs(stored - tru);
      ++f.days_checked;
      f.worst_day_wh = std::max(f.worst_day_wh, err / 1000.0);
      f.worst_day_of_tol = std::max(f.worst_day_of_tol, err / tol);
      f.max_day_kwh = std::max(f.max_day_kwh, stored / 1e6);
      if (r.to_ms - r.from_ms != kDayMs) {
        ++f.dst_days;
        f.worst_dst_day_wh = std::max(f.worst_dst_day_wh, err / 1000.0);
      }
      std::ostringstream day;
      day << s.cid() << " " << ymd << " (" << (r.to_ms - r.from_ms) / kHourMs << " h)";
      if (stored < 0) fail(day.str() + ": negative day " + fmt("%.0f mWh", stored));
      if (stored > kRatedW * 24.0 * 1000.0)
        fail(day.str() + ": spike " + fmt("%.3f kWh (true %.3f kWh)", stored / 1e6, tru / 1e6));
      if (err > tol)
        fail(day.str() + ": stored " +
             fmt("%.1f Wh, true %.1f Wh, tolerance %.1f Wh", stored / 1000, tru / 1000, tol / 1000));
    }
    for (date::year_month m = first_day.year() / first_day.month();; m += date::months(1)) {
      const energy::Range r = cal.month(m);
      if (r.from_ms >= t1) break;
      if (r.from_ms < t0 || r.to_ms > t1) continue;  // only whole months of the run
      const int64_t month_mwh = energy::month_total(st, cal, s.cid(), m);
      months_sum += month_mwh;
      const auto stored = static_cast<double>(month_mwh);
      const double tru = truth(r.from_ms, r.to_ms), tol = tolerance(r.from_ms, r.to_ms);
      ++f.months_checked;
      if (std::abs(stored - tru) > tol) {
        std::ostringstream mo;
        mo << s.cid() << " " << m << ": stored "
           << fmt("%.1f Wh, true %.1f Wh, tolerance %.1f Wh", stored / 1000, tru / 1000, tol / 1000);
        fail(mo.str());
      }
    }
    // The read paths agree: the days, and the whole months, add up to the total over their range.
    if (days_sum != static_cast<int64_t>(year_stored))
      fail(s.cid() + ": the days add up to " + std::to_string(days_sum) + " mWh, the total over them is " +
           std::to_string(static_cast<int64_t>(year_stored)));
    if (f.months_checked > 0) {
      const energy::Range first = cal.month(first_day.year() / first_day.month());
      const int64_t from = first.from_ms < t0 ? first.to_ms : first.from_ms;
      int64_t to = from;
      for (date::year_month m = first_day.year() / first_day.month();; m += date::months(1)) {
        const energy::Range r = cal.month(m);
        if (r.to_ms > t1) break;
        if (r.from_ms >= from) to = r.to_ms;
      }
      const int64_t over = energy::energy_between(st, s.cid(), from, to);
      if (months_sum != over)
        fail(s.cid() + ": the months add up to " + std::to_string(months_sum) +
             " mWh, the total over them is " + std::to_string(over));
    }
    for (const store::EventRow& e : st.events(s.cid(), 0, INT64_MAX / 2))
      if (e.kind == "rejected_jump") ++f.rejected_jumps;
    f.coarsened = static_cast<int>(s.coarsened());
    f.design_loss_wh = s.design_loss_mwh / 1000.0;
    res.sockets.push_back(f);
  }
  gateway.reset();
  sockets.clear();
  if (remove_dir) std::filesystem::remove_all(dir);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return res;
}

}  // namespace pb::year
