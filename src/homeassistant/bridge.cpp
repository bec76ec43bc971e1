#include "plugbridge/homeassistant/bridge.hpp"

#include <boost/asio/post.hpp>

#include "plugbridge/common/log.hpp"

namespace pb::homeassistant {

using json = nlohmann::json;

namespace {
constexpr std::chrono::seconds kWarnEvery{60};
}

Bridge::Bridge(boost::asio::io_context& io, const config::MqttUplink& cfg, std::string gateway_id,
               std::string version, SocketSource& sockets, MqttPort& mqtt, std::function<int64_t()> unix_ms)
    : io_(io),
      cfg_(cfg),
      gateway_id_(std::move(gateway_id)),
      version_(std::move(version)),
      sockets_(sockets),
      mqtt_(mqtt),
      unix_ms_(std::move(unix_ms)),
      topics_{cfg.base_topic, cfg.discovery_prefix},
      due_timer_(io) {
  rebuild_topics(true);
}

Bridge::~Bridge() {
  *alive_ = false;
}

std::vector<std::string> Bridge::subscriptions() const {
  std::vector<std::string> s{topics_.base + "/+/set", topics_.devices()};
  if (cfg_.discovery) s.push_back(topics_.ha_status());
  return s;
}

void Bridge::warn(const std::string& key, const std::string& text) {
  const auto now = Clock::now();
  auto [it, fresh] = warned_.try_emplace(key, now);
  if (!fresh && now - it->second < kWarnEvery) return;
  it->second = now;
  PB_LOG(Warning, "mqtt") << cfg_.name << ": " << text;
}

// --- the roster and its topics --------------------------------------------------------------------

void Bridge::rebuild_topics(bool initial) {
  std::vector<gateway::SocketView> views;
  for (const std::string& cid : sockets_.roster())
    if (auto v = sockets_.socket_view(cid)) views.push_back(std::move(*v));
  const std::map<std::string, std::string> levels = socket_topics(views);
  const unsigned all = kAvailability | kState | (cfg_.discovery ? kDiscovery : 0u);
  // Gone from the roster: their retained topics are emptied.
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (levels.count(it->first)) {
      ++it;
      continue;
    }
    clear_socket(it->first, it->second.topic, cfg_.discovery);
    it = entries_.erase(it);
  }
  by_topic_.clear();
  for (const auto& v : views) {
    const std::string& level = levels.at(v.cid);
    by_topic_[level] = v.cid;
    auto [it, added] = entries_.try_emplace(v.cid);
    Entry& e = it->second;
    unsigned need = 0;
    if (added) {
      need = all;
    } else {
      if (e.topic != level) {
        clear_socket(v.cid, e.topic, false);  // its discovery is sent again with the new topics
        need = all;
      }
      if (e.name != v.name || e.location != v.location) need |= all;
    }
    e.topic = level;
    e.name = v.name;
    e.location = v.location;
    if (initial)
      e.need = 0;  // everything goes out at the connect
    else if (need)
      mark(v.cid, need);
  }
  if (!initial) publish_devices();
}

void Bridge::roster_changed() {
  rebuild_topics(false);
}

void Bridge::clear_socket(const std::string& cid, const std::string& topic, bool discovery) {
  if (discovery)
    for (std::string& t : socket_discovery_topics(topics_, cid)) clears_.push_back(std::move(t));
  clears_.push_back(topics_.state(topic));
  clears_.push_back(topics_.availability(topic));
  pump();
}

void Bridge::publish_devices() {
  json list = json::array();
  for (const std::string& cid : sockets_.roster())
    if (auto it = entries_.find(cid); it != entries_.end())
      list.push_back({{"cid", cid}, {"topic", it->second.topic}});
  devices_ = list.dump();
  devices_pending_ = true;
  pump();
}

// The list we kept at the last run: sockets that left the roster since, or changed topic, lose
// their retained topics. Our own publication of the list comes back here too (nothing to do).
void Bridge::on_devices(const std::string& payload) {
  const json old = json::parse(payload, nullptr, false);
  if (!old.is_array()) return;
  bool differs = old.dump() != devices_;
  for (const json& d : old) {
    if (!d.is_object() || !d.contains("cid") || !d.contains("topic") || !d["cid"].is_string() ||
        !d["topic"].is_string())
      continue;
    const std::string cid = d["cid"], topic = d["topic"];
    auto it = entries_.find(cid);
    if (it == entries_.end()) {
      PB_LOG(Info, "mqtt") << cfg_.name << ": " << cid << " left the roster: removing its topics"
                           << (cfg_.discovery ? " and its Home Assistant device" : "");
      clear_socket(cid, topic, cfg_.discovery);
    } else if (it->second.topic != topic) {
      clear_socket(cid, topic, false);
    }
  }
  if (differs && !devices_pending_) {
    devices_pending_ = true;
    pump();
  }
}

// --- changes -------------------------------------------------------------------------------------

void Bridge::socket_changed(const std::string& cid, unsigned changes) {
  auto it = entries_.find(cid);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  unsigned need = 0;
  if (changes & (kOnline)) need |= kAvailability | kState;
  if (changes & kRelay) need |= kState;
  if ((changes & kSettings) && cfg_.discovery) {
    if (auto v = sockets_.socket_view(cid); v && v->fw_version != e.fw_version) need |= kDiscovery;
  }
  if (need) {
    e.due.reset();  // goes now
    mark(cid, need);
  } else if (changes & kReading) {
    schedule_state(cid, e);
  }
}

void Bridge::mark(const std::string& cid, unsigned need) {
  enqueue(cid, need);
  pump();
}

void Bridge::enqueue(const std::string& cid, unsigned need) {
  Entry& e = entries_.at(cid);
  e.need |= need;
  if (!e.queued) {
    e.queued = true;
    work_.push_back(cid);
  }
}

void Bridge::mark_all(unsigned need) {
  for (const std::string& cid : sockets_.roster())
    if (entries_.count(cid)) enqueue(cid, need);
  pump();
}

void Bridge::schedule_state(const std::string& cid, Entry& e) {
  if ((e.need & kState) || e.due) return;  // already going out
  const auto now = Clock::now();
  const auto due = e.last_state + std::chrono::seconds(cfg_.state_interval_s);
  if (due <= now) {
    mark(cid, kState);
    return;
  }
  e.due = due;
  due_.emplace(due, cid);
  arm_due_timer();
}

void Bridge::arm_due_timer() {
  if (due_.empty()) return;
  const auto first = due_.begin()->first;
  if (due_armed_ && *due_armed_ <= first) return;
  due_armed_ = first;
  due_timer_.expires_at(first);
  due_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    due_armed_.reset();
    on_due();
  });
}

void Bridge::on_due() {
  const auto now = Clock::now();
  while (!due_.empty() && due_.begin()->first <= now) {
    const auto [at, cid] = *due_.begin();
    due_.erase(due_.begin());
    auto it = entries_.find(cid);
    if (it == entries_.end() || !it->second.due || *it->second.due != at) continue;  // superseded
    it->second.due.reset();
    mark(cid, kState);
  }
  arm_due_timer();
}

// --- the connection ------------------------------------------------------------------------------

void Bridge::on_connected() {
  connected_ = true;
  ++link_;
  outstanding_ = 0;
  bridge_pending_ = true;
  devices_pending_ = true;
  if (devices_.empty()) {
    json list = json::array();
    for (const std::string& cid : sockets_.roster())
      if (auto it = entries_.find(cid); it != entries_.end())
        list.push_back({{"cid", cid}, {"topic", it->second.topic}});
    devices_ = list.dump();
  }
  // Everything again: the broker may have lost its retained messages, Home Assistant its entities.
  PB_LOG(Info, "mqtt") << cfg_.name << ": publishing the state of " << entries_.size() << " sockets under "
                       << topics_.base << "/" << (cfg_.discovery ? " with Home Assistant discovery" : "");
  mark_all(kAvailability | kState | (cfg_.discovery ? kDiscovery : 0u));
}

void Bridge::on_disconnected() {
  connected_ = false;
  ++link_;  // what was in flight no longer counts against the window
  outstanding_ = 0;
}

void Bridge::on_message(const std::string& topic, const std::string& payload) {
  if (stopping_) return;
  if (cfg_.discovery && topic == topics_.ha_status()) {
    if (payload == "online") {
      PB_LOG(Info, "mqtt") << cfg_.name << ": Home Assistant started: sending discovery again";
      bridge_pending_ = true;
      mark_all(kDiscovery | kAvailability | kState);
    }
    return;
  }
  if (topic == topics_.devices()) return on_devices(payload);
  const std::string head = topics_.base + "/", tail = "/set";
  if (topic.size() > head.size() + tail.size() && topic.compare(0, head.size(), head) == 0 &&
      topic.compare(topic.size() - tail.size(), tail.size(), tail) == 0)
    return on_set(topic.substr(head.size(), topic.size() - head.size() - tail.size()), payload);
  PB_LOG(Debug, "mqtt") << cfg_.name << ": ignoring a message on " << topic;
}

void Bridge::on_set(const std::string& level, const std::string& payload) {
  auto it = by_topic_.find(level);
  if (it == by_topic_.end()) {
    ++commands_refused_;
    warn("unknown " + level, topics_.set(level) + ": no socket has the topic " + topics_.state(level));
    return;
  }
  const ParsedCommand c = parse_set(payload);
  if (!c.error.empty()) {
    ++commands_refused_;
    warn("bad " + level, topics_.set(level) + ": " + c.error);
    mark(it->second, kState);  // the state as it is, for a client that switched optimistically
    return;
  }
  ++commands_;
  const std::string cid = it->second;
  sockets_.command(cid, c.kind, c.value, [this, alive = alive_, cid, level](gateway::LocalResult r) {
    if (!*alive) return;
    if (r.status != gateway::LocalResult::Status::Confirmed) {
      ++commands_refused_;
      warn("failed " + cid, topics_.set(level) + ": " + gateway::to_string(r.status) +
                                (r.why.empty() ? std::string() : ": " + r.why));
    }
    // The resulting state, whatever happened.
    if (entries_.count(cid)) {
      entries_.at(cid).due.reset();
      mark(cid, kState);
    }
  });
}

void Bridge::stop(std::function<void()> done) {
  stopping_ = true;
  due_timer_.cancel();
  if (!connected_ || !mqtt_.connected()) {
    boost::asio::post(io_, std::move(done));
    return;
  }
  mqtt_.publish(topics_.bridge_state(), "offline", true, [done = std::move(done)](bool) { done(); });
}

// --- publishing ----------------------------------------------------------------------------------

void Bridge::send(const std::string& topic, std::string payload, bool retain,
                  std::function<void(bool)> on_done) {
  ++outstanding_;
  mqtt_.publish(topic, std::move(payload), retain,
                [this, alive = alive_, link = link_, on_done = std::move(on_done)](bool ok) {
                  if (!*alive) return;
                  if (link == link_) {
                    if (outstanding_ > 0) --outstanding_;
                    if (ok)
                      ++published_;
                    else
                      ++failed_;
                    if (on_done) on_done(ok);
                  }
                  pump();
                });
}

void Bridge::pump() {
  if (pumping_ || !connected_ || stopping_ || !mqtt_.connected()) return;
  pumping_ = true;
  if (bridge_pending_) {
    bridge_pending_ = false;
    send(topics_.bridge_state(), "online", true);
    if (cfg_.discovery) {
      DiscoveryMessage d = bridge_discovery(topics_, gateway_id_, version_);
      send(d.topic, d.payload.dump(), true);
    }
  }
  while (outstanding_ < kWindow && connected_) {
    if (!clears_.empty()) {
      send(clears_.front(), std::string(), true);
      clears_.pop_front();
      continue;
    }
    if (work_.empty()) break;
    const std::string cid = std::move(work_.front());
    work_.pop_front();
    auto it = entries_.find(cid);
    if (it == entries_.end()) continue;
    it->second.queued = false;
    publish_entry(cid, it->second);
  }
  // The list of sockets and topics, once what it lists is out.
  if (devices_pending_ && work_.empty() && clears_.empty() && outstanding_ < kWindow) {
    devices_pending_ = false;
    send(topics_.devices(), devices_, true);
  }
  pumping_ = false;
}

void Bridge::publish_entry(const std::string& cid, Entry& e) {
  const unsigned need = std::exchange(e.need, 0u);
  const auto v = sockets_.socket_view(cid);
  if (!v || need == 0) return;
  // A failed publish puts its part back (while the link lasts; a new link sends everything).
  auto again = [this, cid](unsigned part) {
    return [this, cid, part](bool ok) {
      if (!ok && connected_ && entries_.count(cid)) mark(cid, part);
    };
  };
  if (need & kDiscovery) {
    e.fw_version = v->fw_version;
    for (DiscoveryMessage& d : socket_discovery(topics_, gateway_id_, version_, *v, e.topic))
      send(d.topic, d.payload.dump(), true, again(kDiscovery));
  }
  if (need & kAvailability)
    send(topics_.availability(e.topic), v->online ? "online" : "offline", true, again(kAvailability));
  if (need & kState) {
    e.last_state = Clock::now();
    send(topics_.state(e.topic), state_payload(*v, unix_ms_()).dump(), true, again(kState));
  }
}

BridgeHealth Bridge::health() const {
  BridgeHealth h;
  h.connected = connected_ && mqtt_.connected();
  h.waiting = work_.size() + clears_.size();
  h.published = published_;
  h.failed = failed_;
  h.commands = commands_;
  h.commands_refused = commands_refused_;
  return h;
}

}  // namespace pb::homeassistant
