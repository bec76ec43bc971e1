// pb-bench-reports: uplink messages per socket-hour under the daemon's report rules, for a
// recorded-style day of household loads, beside the reference firmware's baseline of all 8
// properties every second (8 x 3600 = 28 800 messages per socket-hour). bench/README.md.
//
// Every socket is simulated at 1 reading/s (the daemon's reading interval) and goes through the
// daemon's own code: gateway::report_values() and gateway::ReportPolicy with simulated time, in
// the order the gateway calls them (a relay event at once, then the reading, then the 1-s report
// timer with its full report or held changes). Each uplink message is one DP.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "plugbridge/config/config.hpp"
#include "plugbridge/gateway/report_policy.hpp"

namespace {

using pb::gateway::DpValue;
using pb::gateway::ReportInputs;
using pb::gateway::ReportPolicy;
using pb::gateway::ReportRules;

constexpr double kPi = 3.14159265358979;
constexpr int64_t kDay = 86'400;
constexpr double kBaselinePerHour = 8 * 3600;  // reference firmware: 8 properties every second

// Deterministic on every platform (std:: distributions are not): splitmix64 + Box-Muller.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  double gauss() {
    const double u = std::max(uniform(), 1e-300), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2 * kPi * v);
  }

 private:
  uint64_t s_;
};

// Mains voltage: 230 V wandering within ±2 % (daily shape, slower random walk, evening dip) plus
// per-reading noise.
class Mains {
 public:
  explicit Mains(uint64_t seed) : rng_(seed) {}
  double step(int64_t t) {
    walk_ += -walk_ / 900.0 + 0.05 * rng_.gauss();  // Ornstein-Uhlenbeck, sigma ~1 V
    const double day = static_cast<double>(t % kDay) / kDay;
    const double evening = std::exp(-std::pow((day - 19.0 / 24) * 24 / 2.0, 2));  // 17:00-21:00
    double v = 230.0 + 1.8 * std::sin(2 * kPi * (day - 0.3)) + 1.2 * std::sin(2 * kPi * t / 5400.0) -
               2.0 * evening + walk_;
    return std::clamp(v, 230.0 * 0.98, 230.0 * 1.02);
  }

 private:
  Rng rng_;
  double walk_ = 0;
};

// The load of one appliance this second: active power P and reactive power Q (motors, PSUs).
struct Load {
  double p = 0;
  double q = 0;
  bool relay_on = true;
};
void add(Load& l, double watts, double pf) {
  l.p += watts;
  l.q += pf >= 1.0 ? 0.0 : watts * std::sqrt(1 - pf * pf) / pf;
}
double hours(double h) {
  return h * 3600;
}

// One appliance behind one socket; `t` is seconds since local midnight of the first day.
class Appliance {
 public:
  explicit Appliance(uint64_t seed) : rng_(seed) {}
  virtual ~Appliance() = default;
  virtual const char* name() const = 0;
  virtual Load step(int64_t t, double volts) = 0;

 protected:
  Rng rng_;
};

// Compressor cycling 12-18 min on / 25-40 min off, a start-up spike, settling from 120 to 85 W,
// PF ~0.78; the LED light when the door opens (about 10 times a day, 07:00-23:00).
class Fridge : public Appliance {
 public:
  using Appliance::Appliance;
  const char* name() const override { return "fridge"; }
  Load step(int64_t t, double) override {
    if (t >= next_) {
      on_ = !on_;
      since_ = t;
      next_ = t + static_cast<int64_t>(on_ ? rng_.uniform(720, 1080) : rng_.uniform(1500, 2400));
    }
    const double h = static_cast<double>(t % kDay) / 3600;
    if (door_left_ == 0 && h > 7 && h < 23 && rng_.uniform() < 10.0 / (16 * 3600))
      door_left_ = static_cast<int>(rng_.uniform(10, 60));
    Load l;
    if (on_) {
      const double age = static_cast<double>(t - since_);
      if (age < 1)
        add(l, rng_.uniform(400, 600), 0.55);  // inrush
      else if (age < 3)
        add(l, 200, 0.65);
      else
        add(l, 85 + 35 * std::exp(-age / 180) + 0.8 * rng_.gauss(), 0.78 + 0.005 * rng_.gauss());
    }
    if (door_left_ > 0) {
      --door_left_;
      add(l, 2.4, 0.5);
    }
    return l;
  }

 private:
  bool on_ = false;
  int64_t since_ = 0, next_ = 600;
  int door_left_ = 0;
};

// A 1 kW (socket rated 1.1 kW) travel kettle, about six boils a day of 2-4 minutes; a resistive
// element, so its power follows the mains voltage squared, warming a little during the boil.
class Kettle : public Appliance {
 public:
  explicit Kettle(uint64_t seed) : Appliance(seed) {
    for (double h : {6.9, 8.5, 12.5, 15.5, 19.0, 21.5}) {
      const auto start = static_cast<int64_t>(hours(h) + rng_.uniform(-1200, 1200));
      boils_.push_back({start, start + static_cast<int64_t>(rng_.uniform(120, 240))});
    }
  }
  const char* name() const override { return "kettle"; }
  Load step(int64_t t, double volts) override {
    Load l;
    const int64_t d = t % kDay;
    for (auto [from, to] : boils_)
      if (d >= from && d < to) {
        const double warm = 1.0 - 0.01 * static_cast<double>(d - from) / static_cast<double>(to - from);
        add(l, 1000.0 * (volts / 230) * (volts / 230) * warm + 0.4 * rng_.gauss(), 1.0);
      }
    return l;
  }

 private:
  std::vector<std::pair<int64_t, int64_t>> boils_;
};

// A TV: standby 0.5 W (the meter's error there is large), on at noon and in the evening with the
// picture's brightness wandering and jumping at scene cuts; a smart-plug schedule switches the
// relay off 01:00-06:30 (the relay events of the day).
class Tv : public Appliance {
 public:
  using Appliance::Appliance;
  const char* name() const override { return "tv"; }
  Load step(int64_t t, double) override {
    const double h = static_cast<double>(t % kDay) / 3600;
    Load l;
    l.relay_on = !(h >= 1.0 && h < 6.5);
    if (!l.relay_on) return l;
    const bool watching = (h >= 12.0 && h < 12.7) || (h >= 18.5 && h < 23.25);
    if (!watching) {
      l.p = 0.5, l.q = 2.0;  // standby: the meter's noise does the rest
      return l;
    }
    bright_ += -bright_ / 120.0 + 1.5 * rng_.gauss();
    if (--until_cut_ <= 0) {
      until_cut_ = static_cast<int>(rng_.uniform(5, 30));
      scene_ = rng_.uniform(-12, 12);
    }
    add(l, 78 + scene_ + bright_ + 1.0 * rng_.gauss(), 0.93);
    return l;
  }

 private:
  double bright_ = 0, scene_ = 0;
  int until_cut_ = 0;
};

// A washing machine, one 40 °C cotton programme a day from ~09:30: fill, heating (a 950 W element
// under the drum's tumbling), wash, drain, rinses, final spin; the end display for a while after.
class Washer : public Appliance {
 public:
  explicit Washer(uint64_t seed) : Appliance(seed) {
    start_ = static_cast<int64_t>(hours(9.5) + rng_.uniform(-1800, 1800));
  }
  const char* name() const override { return "washer"; }
  Load step(int64_t t, double volts) override {
    Load l;
    const int64_t d = t % kDay;
    if (d < start_ || d >= start_ + 7800) return l;         // switched off at its knob
    const double m = static_cast<double>(d - start_) / 60;  // minutes into the programme
    add(l, 3.5, 0.5);                                       // electronics
    auto tumble = [&] {                                     // 12 s turning, 4 s pause, alternating direction
      if ((d - start_) % 16 < 12)
        add(l, 130 + 40 * std::sin(static_cast<double>(d) * 0.7) + 5 * rng_.gauss(), 0.6);
    };
    auto fill = [&] { add(l, 6, 0.4); };
    auto drain = [&] { add(l, 35 + rng_.gauss(), 0.5); };
    auto spin = [&](double watts) { add(l, watts + 25 * rng_.gauss(), 0.7); };
    if (m < 4) {
      fill();
    } else if (m < 22) {
      add(l, 950.0 * (volts / 230) * (volts / 230), 1.0);
      tumble();
    } else if (m < 70) {
      tumble();
    } else if (m < 74) {
      drain();
    } else if (m < 78) {
      spin(200 + 50 * (m - 74));
    } else if (m < 100) {  // two rinses of 11 min: fill, tumble, drain, short spin
      const double r = std::fmod(m - 78, 11);
      if (r < 3)
        fill();
      else if (r < 8)
        tumble();
      else if (r < 9)
        drain();
      else
        spin(300);
    } else if (m < 112) {
      spin(std::min(500.0, 150 + 60 * (m - 100)));
    } else if (m < 115) {
      tumble();
    } else {
      l = Load{};
      l.p = 1.2, l.q = 1.5;  // "end" display until someone turns the knob
    }
    return l;
  }

 private:
  int64_t start_;
};

// A desktop PC: asleep at 1.5 W, on 08:00-12:00, 13:00-17:30 and 20:00-23:30, idling at ~55 W with
// several watts of noise every second and bursts of work (+60..150 W for 5 s to 2 min).
class Pc : public Appliance {
 public:
  using Appliance::Appliance;
  const char* name() const override { return "pc"; }
  Load step(int64_t t, double) override {
    const double h = static_cast<double>(t % kDay) / 3600;
    const bool on = (h >= 8 && h < 12) || (h >= 13 && h < 17.5) || (h >= 20 && h < 23.5);
    Load l;
    if (!on) {
      l.p = 1.5, l.q = 1.2;  // asleep
      return l;
    }
    if (burst_left_ == 0 && rng_.uniform() < 1.0 / 180) {
      burst_left_ = static_cast<int>(rng_.uniform(5, 120));
      burst_w_ = rng_.uniform(60, 150);
    }
    double w = 55 + 4 * rng_.gauss();
    if (burst_left_ > 0) {
      --burst_left_;
      w += burst_w_ + 10 * rng_.gauss();
    }
    add(l, w, 0.95);
    return l;
  }

 private:
  int burst_left_ = 0;
  double burst_w_ = 0;
};

// Relay on, nothing plugged in: the meter reads the mains voltage only.
class Idle : public Appliance {
 public:
  using Appliance::Appliance;
  const char* name() const override { return "idle"; }
  Load step(int64_t, double) override { return {}; }
};

// What the socket's meter reports for a load: no load reads exactly 0 (HLW8032 overflow bits),
// otherwise 0.3 % plus 0.1 W / VA of noise, a large share of a standby load.
ReportInputs::Meter measure(const Load& l, double volts, Rng& rng) {
  ReportInputs::Meter m;
  const double v = volts + 0.1 * rng.gauss();
  m.voltage_mv = static_cast<uint32_t>(std::lround(v * 1000));
  if (l.p <= 0 || !l.relay_on) return m;
  const double p = std::max(0.0, l.p * (1 + 0.003 * rng.gauss()) + 0.1 * rng.gauss());
  const double s = std::max(p, std::hypot(l.p, l.q) * (1 + 0.003 * rng.gauss()) + 0.1 * rng.gauss());
  m.power_mw = static_cast<uint32_t>(std::lround(p * 1000));
  m.apparent_mva = static_cast<uint32_t>(std::lround(s * 1000));
  m.current_ua = static_cast<uint32_t>(std::lround(s / v * 1e6));
  m.power_factor_e4 = static_cast<uint16_t>(s > 0 ? std::lround(std::min(1.0, p / s) * 10000) : 0);
  return m;
}

struct Counts {
  double on_change = 0, full = 0;
  std::map<int, double> by_dp;
  double total() const { return on_change + full; }
};

// One socket through a day: the appliance, its energy counters and its ReportPolicy.
Counts run_socket(Appliance& a, const ReportRules& rules, uint64_t seed, int64_t start_s, int64_t span_s) {
  Mains mains(seed ^ 0xA5A5);
  Rng meter_rng(seed ^ 0x5A5A);
  ReportPolicy policy(rules);
  ReportInputs in;
  in.relay_on = true;
  in.switch_count = 40;  // v1 firmware reports it (DP 42); settings DPs only after commands: none here
  constexpr int64_t kMidnightMs = 1'795'392'000'000;  // 2026-11-23 00:00, local = UTC here
  in.energy = ReportInputs::Energy{.total_mwh = 250'000'000 + static_cast<int64_t>(seed % 1000) * 100'000,
                                   .day_mwh = 0,
                                   .month_mwh = 20'000'000,
                                   .day_from_ms = kMidnightMs,
                                   .month_from_ms = kMidnightMs - 22 * kDay * 1000};
  double energy_frac_mwh = 0;
  Counts c;
  auto decide = [&](int64_t t, bool full) {
    if (t < start_s) return;  // the day before the window only fills the counters
    const std::vector<DpValue> values = pb::gateway::report_values(in);
    for (const DpValue* v : policy.decide(values, std::chrono::seconds(t), full)) {
      (full ? c.full : c.on_change) += 1;
      c.by_dp[v->dp] += 1;
    }
  };
  for (int64_t t = 0; t < start_s + span_s; ++t) {
    if (t > 0 && t % kDay == 0) {  // local midnight: the daily count restarts
      in.energy->day_mwh = 0;
      in.energy->day_from_ms = kMidnightMs + t * 1000;
    }
    const double volts = mains.step(t);
    const Load load = a.step(t, volts);
    if (in.relay_on != load.relay_on) {  // the socket's relay event comes before its next reading
      in.relay_on = load.relay_on;
      ++*in.switch_count;
      decide(t, false);
    }
    in.meter = measure(load, volts, meter_rng);
    energy_frac_mwh += in.meter->power_mw / 3600.0;  // mWh in this second (the PF pulse count)
    const auto whole = static_cast<int64_t>(energy_frac_mwh);
    energy_frac_mwh -= static_cast<double>(whole);
    in.energy->total_mwh += whole;
    in.energy->day_mwh += whole;
    in.energy->month_mwh += whole;
    if (t == start_s) {
      decide(t, true);  // synced: the first full report
      continue;
    }
    decide(t, false);  // the reading, committed
    if (policy.full_due(std::chrono::seconds(t)))
      decide(t, true);  // the 1-s report timer
    else if (policy.held_due(std::chrono::seconds(t)))
      decide(t, false);
  }
  return c;
}

std::vector<std::unique_ptr<Appliance>> household(uint64_t seed) {
  std::vector<std::unique_ptr<Appliance>> v;
  v.push_back(std::make_unique<Fridge>(seed + 1));
  v.push_back(std::make_unique<Kettle>(seed + 2));
  v.push_back(std::make_unique<Tv>(seed + 3));
  v.push_back(std::make_unique<Washer>(seed + 4));
  v.push_back(std::make_unique<Pc>(seed + 5));
  v.push_back(std::make_unique<Idle>(seed + 6));
  return v;
}

struct Result {
  std::vector<std::string> names;
  std::vector<Counts> per_profile;  // summed over copies
  Counts all;
  double socket_hours = 0;
};

Result run(const ReportRules& rules, int copies, uint64_t seed, int64_t start_s, int64_t span_s) {
  Result r;
  for (int k = 0; k < copies; ++k) {
    auto sockets = household(seed + 1000 * static_cast<uint64_t>(k));
    if (r.per_profile.empty()) r.per_profile.resize(sockets.size());
    for (size_t i = 0; i < sockets.size(); ++i) {
      if (r.names.size() < sockets.size()) r.names.push_back(sockets[i]->name());
      const Counts c = run_socket(*sockets[i], rules, seed + 7919 * (i + 1) + 104729 * k, start_s, span_s);
      auto merge = [](Counts& into, const Counts& from) {
        into.on_change += from.on_change;
        into.full += from.full;
        for (auto& [dp, n] : from.by_dp) into.by_dp[dp] += n;
      };
      merge(r.per_profile[i], c);
      merge(r.all, c);
    }
  }
  r.socket_hours = static_cast<double>(span_s) / 3600 * copies * static_cast<double>(r.names.size());
  return r;
}

std::string describe(const ReportRules& r) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "full report every %lld s, min interval %lld s, power %.3g W / %lld %%, voltage %.3g V, "
                "current %.3g mA / %lld %%, energy %.4g kWh, power factor %.4g",
                static_cast<long long>(r.period.count() / 1000),
                static_cast<long long>(r.min_interval.count() / 1000),
                static_cast<double>(r.power_band) / 1e4, static_cast<long long>(r.power_percent),
                static_cast<double>(r.voltage_band) / 1e4, static_cast<double>(r.current_band) / 1e4,
                static_cast<long long>(r.current_percent), static_cast<double>(r.energy_band) / 1e4,
                static_cast<double>(r.power_factor_band) / 1e4);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  double span_h = 24;
  int copies = 3;
  uint64_t seed = 1;
  std::string config_file;
  bool by_dp = false, variants = false;
  CLI::App app{"pb-bench-reports: Tuya uplink messages per socket-hour under the daemon's report rules"};
  app.add_option("--hours", span_h, "simulated hours from 06:00 (crosses midnight at 24)")
      ->capture_default_str();
  app.add_option("--copies", copies, "households (6 sockets each, different randomness)")
      ->capture_default_str();
  app.add_option("--seed", seed, "randomness")->capture_default_str();
  app.add_option("--config", config_file, "take the rules from this daemon config's report: section");
  app.add_flag("--by-dp", by_dp, "messages per socket-hour for each DP");
  app.add_flag("--variants", variants,
               "also other rules (minimum interval, period, bands off, the old bands)");
  CLI11_PARSE(app, argc, argv);
  if (span_h <= 0 || copies < 1) {
    std::cerr << "--hours and --copies must be positive\n";
    return 2;
  }

  pb::config::Report report;
  if (!config_file.empty()) {
    try {
      report = pb::config::load_file(config_file).report;
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
  }
  const ReportRules rules = pb::gateway::report_rules(report);
  const int64_t start_s = 6 * 3600, span_s = static_cast<int64_t>(span_h * 3600);

  const auto t0 = std::chrono::steady_clock::now();
  const Result r = run(rules, copies, seed, start_s, span_s);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::printf(
      "pb-bench-reports: %d household(s) x %zu sockets, %.4g h from 06:00 at 1 reading/s (seed %llu)\n",
      copies, r.names.size(), span_h, static_cast<unsigned long long>(seed));
  std::printf("rules: %s\n", describe(rules).c_str());
  std::printf("baseline (reference firmware, 8 properties every second): %.0f messages per socket-hour\n\n",
              kBaselinePerHour);
  std::printf("%-8s %12s %10s %10s %11s %9s\n", "socket", "msgs/sock-h", "on change", "full", "of baseline",
              "fewer by");
  const double hours_per_profile = static_cast<double>(span_s) / 3600 * copies;
  auto row = [&](const std::string& name, const Counts& c, double h) {
    const double per_h = c.total() / h;
    std::printf("%-8s %12.1f %10.1f %10.1f %10.2f%% %8.0fx\n", name.c_str(), per_h, c.on_change / h,
                c.full / h, 100 * per_h / kBaselinePerHour, per_h > 0 ? kBaselinePerHour / per_h : 0.0);
  };
  for (size_t i = 0; i < r.names.size(); ++i) row(r.names[i], r.per_profile[i], hours_per_profile);
  row("all", r.all, r.socket_hours);

  if (by_dp) {
    std::printf("\nmessages per socket-hour by DP:\n%-5s", "DP");
    for (const auto& n : r.names) std::printf(" %8s", n.c_str());
    std::printf(" %8s\n", "all");
    for (auto& [dp, n] : r.all.by_dp) {
      std::printf("%-5d", dp);
      for (const auto& c : r.per_profile) {
        auto it = c.by_dp.find(dp);
        std::printf(" %8.1f", it == c.by_dp.end() ? 0.0 : it->second / hours_per_profile);
      }
      std::printf(" %8.1f\n", n / r.socket_hours);
    }
  }
  if (variants) {
    struct Variant {
      std::string name;
      ReportRules rules;
    };
    std::vector<Variant> vs;
    for (int held_s : {0, 30, 60}) {
      ReportRules v = rules;
      v.min_interval = std::chrono::seconds(held_s);
      vs.push_back({"min_interval_s: " + std::to_string(held_s), v});
    }
    ReportRules slow = rules;
    slow.period = std::chrono::seconds(600);
    vs.push_back({"period_s: 600", slow});
    ReportRules full_only;
    full_only.period = rules.period;
    vs.push_back({"every band off (full reports only)", full_only});
    // The fixed bands before the report: section (1 W/5 %, 1 V, 10 mA/5 %, 0.01 kWh, PF 0.01, full
    // report every 60 s, no minimum interval).
    ReportRules old;
    old.period = std::chrono::seconds(60);
    old.min_interval = std::chrono::milliseconds(0);
    old.power_band = 10'000, old.power_percent = 5, old.voltage_band = 10'000;
    old.current_band = 100'000, old.current_percent = 5, old.energy_band = 100, old.power_factor_band = 100;
    vs.push_back({"the fixed rules before (see bench/README.md)", old});
    std::printf("\n%-50s %12s %11s\n", "the same with (all sockets)", "msgs/sock-h", "of baseline");
    for (const auto& v : vs) {
      const Result o = run(v.rules, copies, seed, start_s, span_s);
      const double per_h = o.all.total() / o.socket_hours;
      std::printf("%-50s %12.1f %10.2f%%\n", v.name.c_str(), per_h, 100 * per_h / kBaselinePerHour);
    }
  }
  std::printf("\nsimulated %.0f socket-hours in %.2f s\n", r.socket_hours, secs);

  // Nothing reported, or not fewer messages than the baseline: the policy is broken.
  const double per_h = r.all.total() / r.socket_hours;
  if (r.all.total() == 0 || per_h >= kBaselinePerHour) {
    std::fprintf(stderr, "pb-bench-reports: implausible result (%.1f messages per socket-hour)\n", per_h);
    return 1;
  }
  return 0;
}
