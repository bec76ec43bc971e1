#include "plugsim/scenario.hpp"

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "plugbridge/common/log.hpp"
#include "plugsim/simulator.hpp"
#include "plugsim/virtual_socket.hpp"

namespace plugsim {

namespace {

constexpr std::chrono::milliseconds kProfileStep{50};  // one meter frame
constexpr const char* kProfileUsage =
    "want 'constant W', 'steps W:S,W:S,...', 'ramp W0 W1 S' or 'sine MEAN AMP PERIOD_S'";

double number(std::istringstream& in, const char* what) {
  double v = 0;
  if (!(in >> v) || !std::isfinite(v))
    throw std::invalid_argument(std::string("bad ") + what + ": " + kProfileUsage);
  return v;
}

}  // namespace

LoadProfile parse_load_profile(std::string_view spec) {
  std::istringstream in{std::string(spec)};
  std::string kind;
  in >> kind;
  LoadProfile p;
  if (kind == "constant") {
    const double w = number(in, "watts");
    p = [w](double) { return w; };
  } else if (kind == "steps") {
    std::string list;
    in >> list;
    std::vector<std::pair<double, double>> steps;  // watts, seconds
    double total = 0;
    std::istringstream items(list);
    std::string item;
    while (std::getline(items, item, ',')) {
      const auto colon = item.find(':');
      if (colon == std::string::npos)
        throw std::invalid_argument("bad step '" + item + "': " + kProfileUsage);
      const double w = std::stod(item.substr(0, colon)), s = std::stod(item.substr(colon + 1));
      if (!(s > 0) || w < 0) throw std::invalid_argument("bad step '" + item + "'");
      steps.emplace_back(w, s);
      total += s;
    }
    if (steps.empty()) throw std::invalid_argument(std::string("no steps: ") + kProfileUsage);
    p = [steps, total](double t) {
      double at = std::fmod(t, total);
      for (const auto& [w, s] : steps) {
        if (at < s) return w;
        at -= s;
      }
      return steps.back().first;
    };
  } else if (kind == "ramp") {
    const double w0 = number(in, "start watts"), w1 = number(in, "end watts"), s = number(in, "seconds");
    if (!(s > 0)) throw std::invalid_argument("ramp seconds must be > 0");
    p = [w0, w1, s](double t) { return t >= s ? w1 : w0 + (w1 - w0) * t / s; };
  } else if (kind == "sine") {
    const double mean = number(in, "mean"), amp = number(in, "amplitude"), period = number(in, "period");
    if (!(period > 0)) throw std::invalid_argument("sine period must be > 0");
    p = [mean, amp, period](double t) { return std::max(0.0, mean + amp * std::sin(2 * M_PI * t / period)); };
  } else {
    throw std::invalid_argument("unknown profile '" + kind + "': " + kProfileUsage);
  }
  std::string extra;
  if (in >> extra) throw std::invalid_argument("unexpected '" + extra + "' after the profile");
  return p;
}

Scenario::Scenario(boost::asio::io_context& io, Simulator& sim, EventSink& events)
    : io_(io), sim_(sim), events_(events), alive_(std::make_shared<bool>(true)), profile_timer_(io) {}

Scenario::~Scenario() {
  stop();
}

void Scenario::stop() {
  *alive_ = false;
  for (auto& weak : timers_) {
    if (auto t = weak.lock()) t->cancel();
  }
  timers_.clear();
  profiles_.clear();
  profile_timer_.cancel();
}

void Scenario::after(std::chrono::milliseconds delay, std::function<void()> action) {
  std::erase_if(timers_, [](const auto& t) { return t.expired(); });
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
  timer->async_wait([timer, alive = alive_, action = std::move(action)](const boost::system::error_code& ec) {
    if (!ec && *alive) action();
  });
  timers_.push_back(timer);
}

void Scenario::set_profile(VirtualSocket& s, LoadProfile profile) {
  if (!profile) {
    profiles_.erase(&s);
    return;
  }
  s.set_watts(profile(0));
  profiles_[&s] = Profiled{std::move(profile), std::chrono::steady_clock::now()};
  arm_profile_timer();
}

void Scenario::arm_profile_timer() {
  if (profile_timer_armed_ || profiles_.empty()) return;
  profile_timer_armed_ = true;
  profile_timer_.expires_after(kProfileStep);
  profile_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    profile_timer_armed_ = false;
    const auto now = std::chrono::steady_clock::now();
    for (auto& [socket, p] : profiles_) {
      socket->set_watts(p.profile(std::chrono::duration<double>(now - p.start).count()));
    }
    arm_profile_timer();
  });
}

void Scenario::press(VirtualSocket& s, std::chrono::milliseconds held) {
  s.core().button(true);
  events_.emit(nlohmann::json{{"ev", "button"}, {"cid", s.cid()}, {"held_ms", held.count()}}.dump());
  after(held, [&s] { s.core().button(false); });
}

void Scenario::power_cut(VirtualSocket& s, std::chrono::milliseconds off) {
  if (!s.powered()) return;
  s.power_off();
  events_.emit(nlohmann::json{{"ev", "power"}, {"cid", s.cid()}, {"on", false}}.dump());
  after(off, [this, &s] {
    events_.emit(nlohmann::json{{"ev", "power"}, {"cid", s.cid()}, {"on", true}}.dump());
    s.power_on();
  });
}

void Scenario::link_outage(VirtualSocket& s, std::chrono::milliseconds down, const char* why) {
  if (!s.powered()) return;
  events_.emit(
      nlohmann::json{{"ev", "link_down"}, {"cid", s.cid()}, {"why", why}, {"ms", down.count()}}.dump());
  s.transport().stop();  // dropped, and no reconnect until the outage ends
  after(down, [&s] {
    if (s.powered()) s.transport().start(std::chrono::milliseconds(0));
  });
}

bool Scenario::control(std::string_view line, bool& ok) {
  std::istringstream in{std::string(line)};
  std::string cmd;
  in >> cmd;
  ok = true;
  if (cmd != "profile" && cmd != "press" && cmd != "hold" && cmd != "power-cut" && cmd != "wifi-loss" &&
      cmd != "gateway-loss" && cmd != "mute-commands" && cmd != "unmute-commands") {
    return false;
  }
  auto fail = [&](const std::string& why) {
    PB_LOG(Warning, "plugsim") << "control: " << why << ": " << line;
    ok = false;
    return true;
  };
  auto duration = [&](double scale, std::chrono::milliseconds& out) {
    double v = 0;
    if (!(in >> v) || !(v >= 0) || v * scale > 1e9) return false;
    out = std::chrono::milliseconds(static_cast<int64_t>(v * scale));
    return true;
  };
  std::chrono::milliseconds d{0};
  if (cmd == "gateway-loss") {
    if (!duration(1000, d)) return fail("usage: gateway-loss SECONDS");
    for (size_t i = 0; i < sim_.size(); ++i) link_outage(sim_.socket(i), d, "gateway");
    return true;
  }
  std::string cid;
  in >> cid;
  VirtualSocket* s = sim_.find(cid);
  if (s == nullptr) return fail("unknown socket '" + cid + "'");
  if (cmd == "mute-commands" || cmd == "unmute-commands") {
    s->set_commands_muted(cmd == "mute-commands");
    return true;
  }
  if (cmd == "profile") {
    std::string rest;
    std::getline(in, rest);
    if (rest.find_first_not_of(' ') != std::string::npos &&
        rest.substr(rest.find_first_not_of(' ')) == "off") {
      set_profile(*s, nullptr);
      return true;
    }
    try {
      set_profile(*s, parse_load_profile(rest));
    } catch (const std::exception& e) {
      return fail(e.what());
    }
    return true;
  }
  if (cmd == "press" || cmd == "hold") {
    if (!duration(cmd == "press" ? 1 : 1000, d)) return fail("usage: press CID MS | hold CID SECONDS");
    press(*s, d);
    return true;
  }
  if (!duration(1000, d)) return fail("usage: " + cmd + " CID SECONDS");
  if (cmd == "power-cut") {
    power_cut(*s, d);
  } else if (s->powered() && s->wifi_loss(d)) {
    // The esp-at link's emulated modem reports WIFI DISCONNECT and refuses to join for that long.
    events_.emit(
        nlohmann::json{{"ev", "link_down"}, {"cid", s->cid()}, {"why", "wifi"}, {"ms", d.count()}}.dump());
  } else {
    link_outage(*s, d, "wifi");  // direct link: no Wi-Fi to lose, so the connection goes instead
  }
  return true;
}

}  // namespace plugsim
