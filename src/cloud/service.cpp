#include "plugbridge/cloud/service.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <pbfw/proto.hpp>
#include <random>
#include <set>
#include <unordered_map>

#include "plugbridge/cloud/profile.hpp"
#include "plugbridge/common/log.hpp"
#include "plugbridge/gateway/observer.hpp"
#include "plugbridge/gateway/outbox.hpp"
#include "plugbridge/tuya/tuya.hpp"
#include "plugbridge/uplink/uplink.hpp"

namespace pb::cloud {

namespace proto = pbfw::proto;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kTick = std::chrono::seconds(1);

// The socket's value of one property in the gateway's units (see property_value); none when it is
// not known or not measured.
std::optional<int64_t> raw_value(const gateway::SocketView& v, int dp) {
  switch (dp) {
    case 1:
      if (v.relay_on) return *v.relay_on ? 1 : 0;
      return std::nullopt;
    case 3:
      if (v.last && proto::measured(v.last->flags, proto::kPowerValid)) return v.last->power_mw;
      return std::nullopt;
    case 5:
      if (!v.last) return std::nullopt;
      if (proto::no_mains(v.last->flags)) return 0;
      if (proto::measured(v.last->flags, proto::kVoltageValid)) return v.last->voltage_mv;
      return std::nullopt;
    case 7:
      if (v.last && proto::measured(v.last->flags, proto::kCurrentValid)) return v.last->current_ua;
      return std::nullopt;
    case 50:
      // Only an accounted total: a 0 before the first one would look like a meter reset afterwards.
      if (v.energy_known) return v.energy_total_mwh;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::string socket_label(const config::SocketEntry& s) {
  return s.name.empty() ? s.cid : s.name + " (" + s.cid + ")";
}

}  // namespace

struct DeviceService::Impl final : gateway::Observer, gateway::ReportSink {
  struct Device {
    config::SocketEntry entry;
    size_t index = 0;  // in the roster, for config keys
    std::unique_ptr<uplink::Client> client;
    bool wanted = false;   // its socket has a LAN session
    bool queued = false;   // waits for its turn to connect
    bool started = false;  // its client runs (connecting or connected)
    bool connected = false;
    bool refused = false;   // the last login was refused
    bool full_due = false;  // everything is reported at the next chance
    bool measure_due = false;
    Clock::time_point last_measure{};
    std::optional<int64_t> renew_at_s;
    std::map<int, std::string> sent;  // DP -> the value last handed to the outbox (JSON text)
    bool report_refusal_logged = false;
  };

  Impl(boost::asio::io_context& ctx, const config::DeviceUplink& c, gateway::Gateway& g, store::Store& st)
      : io(ctx),
        cfg(c),
        profile(make_profile(c)),
        gw(g),
        store(st),
        rng(std::random_device{}()),
        pace_timer(ctx),
        tick_timer(ctx) {
    log_name = "uplink " + cfg.name;
    build_devices(gw.config());
    gateway::OutboxOptions oo;
    oo.uplink = cfg.name;
    oo.rate_per_s = cfg.outbox_rate_per_s;
    outbox = std::make_unique<gateway::Outbox>(io, store, static_cast<gateway::ReportSink&>(*this), oo,
                                               [this](const std::string& cid) {
                                                 auto it = devices.find(cid);
                                                 return it != devices.end() && it->second.connected;
                                               });
    std::set<std::string> cids;
    for (const auto& [cid, d] : devices) cids.insert(cid);
    outbox->load(cids);
    gw.attach_outbox(*outbox);
    gw.add_observer(*this);
  }

  ~Impl() {
    gw.remove_observer(*this);
    gw.detach_outbox(*outbox);
    alive.reset();
    outbox.reset();  // stores what is in flight; before the clients go
  }

  // --- roster ------------------------------------------------------------------------------------

  void build_devices(const config::Config& roster) {
    for (size_t i = 0; i < roster.sockets.size(); ++i) {
      const config::SocketEntry& s = roster.sockets[i];
      if (!profile->has_device(s)) continue;
      Device& d = devices[s.cid];
      d.entry = s;
      d.index = i;
      d.client = make_client(d);
    }
  }

  std::unique_ptr<uplink::Client> make_client(Device& d) {
    const std::string cid = d.entry.cid;
    const Login first = profile->login(d.entry, gw.clock_status().now_ms, rng());
    uplink::Options o;
    o.host = first.host;
    o.port = cfg.port;
    o.tls = cfg.tls;
    o.ca_file = cfg.ca_file;
    o.verify_hostname = cfg.verify_hostname;
    o.gateway_id = first.client_id;
    o.topics = profile->subscriptions(d.entry);
    o.credentials = [this, cid] {
      auto it = devices.find(cid);
      if (it == devices.end()) return uplink::Options::Credentials{};
      const Login l = profile->login(it->second.entry, gw.clock_status().now_ms, rng());
      it->second.renew_at_s = profile->renew_at(l);
      return uplink::Options::Credentials{l.username, l.password};
    };
    o.keepalive = std::chrono::seconds(cfg.keepalive_s);
    o.retry_min = std::chrono::seconds(1);
    o.retry_max = std::chrono::seconds(std::max(1, cfg.reconnect_max_s));
    o.clean_session = true;  // nothing to resume: the outbox resends what was not acknowledged
    o.log_name = log_name + " " + cid;
    o.config_key = "uplinks." + cfg.name;
    o.auth_hint = "check the device credentials of socket " + socket_label(d.entry) + " (sockets[" +
                  std::to_string(d.index) + "]." + profile->secret_key_name() + ")";
    o.log_connects = false;
    uplink::Handlers h;
    h.on_connected = [this, cid] { on_connected(cid); };
    h.on_disconnected = [this, cid](const std::string& reason) { on_disconnected(cid, reason); };
    h.on_message = [this, cid](const std::string& topic, const std::string& payload) {
      on_message(cid, topic, payload);
    };
    return std::make_unique<uplink::Client>(io, std::move(o), std::move(h));
  }

  void roster_changed() override {
    const config::Config& roster = gw.config();
    std::set<std::string> keep;
    for (size_t i = 0; i < roster.sockets.size(); ++i) {
      const config::SocketEntry& s = roster.sockets[i];
      if (!profile->has_device(s)) continue;
      keep.insert(s.cid);
      auto it = devices.find(s.cid);
      if (it != devices.end() && it->second.entry.aliyun == s.aliyun &&
          it->second.entry.tencent == s.tencent && it->second.entry.name == s.name) {
        it->second.index = i;
        it->second.entry = s;
        continue;
      }
      if (it != devices.end()) retire(it->first);  // new credentials: a new connection
      Device& d = devices[s.cid];
      d.entry = s;
      d.index = i;
      d.client = make_client(d);
      if (auto v = gw.socket_view(s.cid); v && v->online) want(s.cid);
    }
    std::vector<std::string> gone;
    for (const auto& [cid, d] : devices)
      if (keep.count(cid) == 0) gone.push_back(cid);
    for (const std::string& cid : gone) retire(cid);
  }

  // A device leaves (or is replaced): a clean disconnect, then its client goes.
  void retire(const std::string& cid) {
    auto it = devices.find(cid);
    if (it == devices.end()) return;
    std::shared_ptr<uplink::Client> c(std::move(it->second.client));
    devices.erase(it);
    if (!c) return;
    // Destroyed in a later loop turn, not inside its own completion.
    c->stop([c, ctx = &io]() mutable { boost::asio::post(*ctx, [c = std::move(c)] {}); });
  }

  // --- connections -------------------------------------------------------------------------------

  void want(const std::string& cid) {
    Device& d = devices.at(cid);
    d.wanted = true;
    if (d.started || d.queued || stopping) return;
    d.queued = true;
    connect_queue.push_back(cid);
    pace();
  }

  void unwant(const std::string& cid) {
    Device& d = devices.at(cid);
    d.wanted = false;
    if (!d.started) return;
    d.started = false;
    d.client->stop([] {});
  }

  // Starts the next waiting connection now if the pace allows, else arms the timer for it.
  void pace() {
    if (pace_armed || stopping) return;
    const auto gap = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / std::max(0.001, cfg.connect_rate_per_s)));
    while (!connect_queue.empty()) {
      const auto now = Clock::now();
      if (now < next_connect) {
        pace_armed = true;
        pace_timer.expires_at(next_connect);
        pace_timer.async_wait([this, a = std::weak_ptr<bool>(alive)](const boost::system::error_code& ec) {
          if (ec || a.expired()) return;
          pace_armed = false;
          pace();
        });
        return;
      }
      const std::string cid = connect_queue.front();
      connect_queue.pop_front();
      auto it = devices.find(cid);
      if (it == devices.end()) continue;
      Device& d = it->second;
      d.queued = false;
      if (!d.wanted || d.started) continue;
      d.started = true;
      next_connect = std::max(next_connect, now) + gap;
      d.client->start();
    }
  }

  void on_connected(const std::string& cid) {
    auto it = devices.find(cid);
    if (it == devices.end()) return;
    Device& d = it->second;
    d.connected = true;
    if (d.refused) {
      d.refused = false;
      PB_LOG(Info, log_name) << socket_label(d.entry) << ": logged in";
    }
    log_progress();
    report(cid, d, true, true);
    outbox->kick();
  }

  void on_disconnected(const std::string& cid, const std::string& reason) {
    auto it = devices.find(cid);
    if (it == devices.end()) return;
    Device& d = it->second;
    d.connected = false;
    // The client logged the reason; a refused login is counted for the health.
    d.refused =
        reason.find("CONNACK 4") != std::string::npos || reason.find("CONNACK 5") != std::string::npos;
  }

  // One line when every wanted device is connected (after start, after an outage); none per device.
  void log_progress() {
    size_t wanted = 0, up = 0;
    for (const auto& [cid, d] : devices) {
      wanted += d.wanted;
      up += d.wanted && d.connected;
    }
    if (up == wanted && wanted > 0 && !all_up_logged) {
      all_up_logged = true;
      PB_LOG(Info, log_name) << "all " << up << " devices connected";
    } else if (up < wanted) {
      all_up_logged = false;
    }
  }

  // --- reports -----------------------------------------------------------------------------------

  void socket_changed(const std::string& cid, unsigned changes) override {
    auto it = devices.find(cid);
    if (it == devices.end() || stopping) return;
    Device& d = it->second;
    if (changes & kOnline) {
      auto v = gw.socket_view(cid);
      if (v && v->online)
        want(cid);
      else
        unwant(cid);
    }
    if (changes & kReading) d.measure_due = true;
    const bool measure = d.measure_due && interval_passed(d);
    if ((changes & kRelay) || measure) report(cid, d, measure, false);
  }

  // Reports the switch, and the measurements with `measurements`; with `full` (or a full report
  // due) also values that did not change, and the measurements in any case.
  void report(const std::string& cid, Device& d, bool measurements, bool full) {
    const gateway::ClockStatus clock = gw.clock_status();
    if (!clock.trusted) {  // every report carries a time
      d.full_due = true;
      return;
    }
    const std::optional<gateway::SocketView> v = gw.socket_view(cid);
    if (!v) return;
    full = full || d.full_due;
    measurements = measurements || full;
    for (const Property& p : kProperties)
      if (p.dp == 1 || measurements) report_value(cid, d, *v, p.dp, full, clock.now_ms);
    if (measurements) {
      d.measure_due = false;
      d.last_measure = Clock::now();
    }
    d.full_due = false;
  }

  void report_value(const std::string& cid, Device& d, const gateway::SocketView& v, int dp, bool full,
                    int64_t now_ms) {
    if (profile->identifier(dp).empty()) return;
    const std::optional<int64_t> raw = raw_value(v, dp);
    if (!raw) return;
    std::string text = property_value(dp, *raw).dump();
    auto& last = d.sent[dp];
    if (!full && last == text) return;
    last = text;
    outbox->report(cid, dp, text, now_ms);
  }

  // The outbox sends one DP of one device.
  void send(const std::string& cid, int dp, const nlohmann::json& value, int64_t t_ms,
            const std::string& request_id, std::function<void(bool)> done) override {
    auto it = devices.find(cid);
    const std::string& id = profile->identifier(dp);
    if (it == devices.end() || !it->second.connected || id.empty()) {
      boost::asio::post(io, [done = std::move(done)] { done(false); });
      return;
    }
    nlohmann::json params = nlohmann::json::object();
    params[id] = value;
    it->second.client->publish(profile->report_topic(it->second.entry),
                               profile->report_payload(params, t_ms, request_id), std::move(done));
  }

  bool interval_passed(const Device& d) const {
    return Clock::now() - d.last_measure >= std::chrono::seconds(cfg.state_interval_s);
  }

  void tick() {
    const gateway::ClockStatus clock = gw.clock_status();
    const int64_t now_s = clock.now_ms / 1000;
    std::vector<std::string> renew;
    for (auto& [cid, d] : devices) {
      if (!d.connected) continue;
      const bool measure = d.measure_due && interval_passed(d);
      if (clock.trusted && (d.full_due || measure)) report(cid, d, measure, false);
      if (d.renew_at_s && now_s >= *d.renew_at_s) renew.push_back(cid);
    }
    for (const std::string& cid : renew) renew_login(cid);
    arm_tick();
  }

  // A new connection with a fresh password before the old one expires.
  void renew_login(const std::string& cid) {
    Device& d = devices.at(cid);
    d.renew_at_s.reset();
    ++renewals;
    PB_LOG(Debug, log_name) << socket_label(d.entry) << ": renewing the login before its password expires";
    d.client->stop([this, cid, a = std::weak_ptr<bool>(alive)] {
      if (a.expired() || stopping) return;
      auto it = devices.find(cid);
      if (it != devices.end() && it->second.wanted && it->second.started) it->second.client->start();
    });
  }

  void arm_tick() {
    if (stopping) return;
    tick_timer.expires_after(kTick);
    tick_timer.async_wait([this, a = std::weak_ptr<bool>(alive)](const boost::system::error_code& ec) {
      if (ec || a.expired()) return;
      tick();
    });
  }

  // --- commands ----------------------------------------------------------------------------------

  void deliver_waiting() override {
    for (auto& [cid, d] : devices)
      if (d.connected) d.client->deliver_waiting();
  }

  void on_message(const std::string& cid, const std::string& topic, const std::string& payload) {
    auto it = devices.find(cid);
    if (it == devices.end()) return;
    Device& d = it->second;
    std::optional<Down> down = profile->parse(topic, payload);
    if (!down) {
      PB_LOG(Warning, log_name) << socket_label(d.entry) << ": ignoring a message on " << topic
                                << " that is not the platform's JSON";
      return;
    }
    switch (down->kind) {
      case Down::Kind::Set:
        on_set(cid, topic, *down);
        return;
      case Down::Kind::ReportReply:
        if (!down->ok) {
          ++reports_refused;
          if (!d.report_refusal_logged) {
            d.report_refusal_logged = true;
            PB_LOG(Warning, log_name)
                << socket_label(d.entry) << ": the platform refused a report with code " << down->code
                << " (check the product's thing model for the identifiers in "
                << "uplinks." << cfg.name << ".properties); further refusals are counted";
          }
        }
        return;
      case Down::Kind::Other:
        return;
    }
  }

  void on_set(const std::string& cid, const std::string& topic, const Down& down) {
    ++commands;
    Device& d = devices.at(cid);
    std::optional<bool> relay;
    std::string why;
    for (const auto& [key, value] : down.params.items()) {
      const std::optional<int> dp = profile->dp_of(key);
      if (!dp) {
        why = "unknown property " + key;
        break;
      }
      if (*dp != 1) {
        why = key + " is read-only";
        break;
      }
      if (value.is_boolean())
        relay = value.get<bool>();
      else if (value.is_number_integer() && (value.get<int64_t>() == 0 || value.get<int64_t>() == 1))
        relay = value.get<int64_t>() == 1;
      else {
        why = key + " must be 0 or 1";
        break;
      }
    }
    if (why.empty() && !relay) why = "no property to set";
    if (!why.empty()) {
      answer(cid, topic, down, false, why);
      return;
    }
    PB_LOG(Info, log_name) << socket_label(d.entry) << ": switch " << (*relay ? "on" : "off")
                           << " from the platform";
    gw.local_command(
        cid, "relay", *relay ? 1 : 0,
        [this, cid, topic, down, a = std::weak_ptr<bool>(alive)](gateway::LocalResult r) {
          if (a.expired()) return;
          const bool ok = r.status == gateway::LocalResult::Status::Confirmed;
          answer(cid, topic, down, ok,
                 ok ? std::string()
                    : std::string(gateway::to_string(r.status)) + (r.why.empty() ? "" : ": " + r.why));
          // The state as it is now, also after a failure, so the platform's view is right.
          auto it = devices.find(cid);
          if (it != devices.end()) report(cid, it->second, false, !ok);
        });
  }

  void answer(const std::string& cid, const std::string& topic, const Down& down, bool ok,
              const std::string& why) {
    auto it = devices.find(cid);
    if (it == devices.end()) return;
    if (!ok) {
      ++commands_refused;
      PB_LOG(Warning, log_name) << socket_label(it->second.entry) << ": property set refused: " << why;
    }
    auto [reply_topic, payload] = profile->set_reply(it->second.entry, topic, down, ok, why);
    if (it->second.connected) it->second.client->publish(reply_topic, std::move(payload));
  }

  // --- lifecycle ---------------------------------------------------------------------------------

  void start() {
    for (auto& [cid, d] : devices)
      if (auto v = gw.socket_view(cid); v && v->online) want(cid);
    arm_tick();
    PB_LOG(Info, log_name) << to_string(cfg.platform) << " uplink: " << devices.size()
                           << " sockets have devices there; each connects while its socket is online";
  }

  void stop(std::function<void()> done) {
    stopping = true;
    pace_timer.cancel();
    tick_timer.cancel();
    connect_queue.clear();
    auto remaining = std::make_shared<size_t>(1);
    auto finish = std::make_shared<std::function<void()>>(std::move(done));
    auto one_done = [remaining, finish] {
      if (--*remaining == 0 && *finish) std::exchange(*finish, nullptr)();
    };
    for (auto& [cid, d] : devices) {
      if (!d.client) continue;
      ++*remaining;
      d.client->stop(one_done);
    }
    boost::asio::post(io, one_done);
  }

  DeviceHealth health() const {
    DeviceHealth h;
    h.devices = devices.size();
    for (const auto& [cid, d] : devices) {
      h.wanted += d.wanted;
      h.connected += d.connected;
      h.refused += d.refused;
    }
    h.commands = commands;
    h.commands_refused = commands_refused;
    h.reports_refused = reports_refused;
    h.renewals = renewals;
    return h;
  }

  gateway::UplinkHealth uplink_health() const {
    const DeviceHealth h = health();
    gateway::UplinkHealth u;
    u.name = cfg.name;
    u.type = to_string(cfg.platform);
    u.connected = h.connected == h.wanted;
    u.outbox_depth = outbox->queued() + outbox->in_flight();
    for (const auto& [cid, d] : devices) {
      u.published += d.client ? d.client->published() : 0;
      u.failed += d.client ? d.client->failed() : 0;
    }
    if (h.connected < h.wanted) {
      u.last_error = std::to_string(h.wanted - h.connected) + " of " + std::to_string(h.wanted) +
                     " devices not connected";
      for (const auto& [cid, d] : devices)
        if (d.wanted && !d.connected && d.client && !d.client->last_error().empty()) {
          u.last_error += "; " + socket_label(d.entry) + ": " + d.client->last_error();
          break;
        }
    }
    return u;
  }

  boost::asio::io_context& io;
  config::DeviceUplink cfg;
  std::unique_ptr<Profile> profile;
  gateway::Gateway& gw;
  store::Store& store;
  std::string log_name;
  std::mt19937_64 rng;
  std::map<std::string, Device> devices;  // by cid
  std::deque<std::string> connect_queue;
  Clock::time_point next_connect{};
  boost::asio::steady_timer pace_timer;
  bool pace_armed = false;
  boost::asio::steady_timer tick_timer;
  bool stopping = false;
  bool all_up_logged = false;
  uint64_t commands = 0, commands_refused = 0, reports_refused = 0, renewals = 0;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::unique_ptr<gateway::Outbox> outbox;  // last: destroyed first, before the clients
};

DeviceService::DeviceService(boost::asio::io_context& io, const config::DeviceUplink& cfg,
                             gateway::Gateway& gw, store::Store& store)
    : impl_(std::make_unique<Impl>(io, cfg, gw, store)) {}

DeviceService::~DeviceService() = default;

void DeviceService::start() {
  impl_->start();
}

void DeviceService::stop(std::function<void()> done) {
  impl_->stop(std::move(done));
}

const std::string& DeviceService::name() const {
  return impl_->cfg.name;
}

DeviceHealth DeviceService::health() const {
  return impl_->health();
}

gateway::UplinkHealth DeviceService::uplink_health() const {
  return impl_->uplink_health();
}

}  // namespace pb::cloud
