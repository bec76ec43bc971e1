#include "plugbridge/gateway/gateway.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fstream>

#include "clocks.hpp"
#include "cloud_sync.hpp"
#include "command_queue.hpp"
#include "plugbridge/common/log.hpp"
#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/energy/totals.hpp"
#include "plugbridge/gateway/lan_port.hpp"
#include "plugbridge/tuya/tuya.hpp"
#include "record_committer.hpp"
#include "retention.hpp"
#include "socket_registry.hpp"
#include "store_worker.hpp"

namespace pb::gateway {

namespace proto = pbfw::proto;

namespace {

// energy.max_power_w, and the sockets' own sockets[].energy.max_power_w.
energy::AccountantOptions accountant_options(const config::Config& cfg) {
  energy::AccountantOptions o;
  o.sample_ms = int64_t{cfg.history.raw_resolution_s} * 1000;
  o.max_power_w = cfg.energy.max_power_w;
  for (const auto& s : cfg.sockets)
    if (s.energy_max_power_w) o.socket_max_power_w[s.cid] = *s.energy_max_power_w;
  return o;
}

TimeTrust make_time_trust(const config::Config& cfg, const store::Store& db, const Clocks& clocks) {
  TimeTrust::Options o;
  o.floor_ms = build_floor_ms();
  o.max_wait = std::chrono::seconds(cfg.clock.max_wait_s);
  return TimeTrust(o, db.newest_time_ms(), clocks.sample());
}

// The file's size and its WAL's; -1 when the file cannot be seen.
int64_t database_bytes(const std::string& path) {
  struct stat st {};
  if (path.empty() || path == ":memory:" || ::stat(path.c_str(), &st) != 0) return -1;
  int64_t bytes = st.st_size;
  if (::stat((path + "-wal").c_str(), &st) == 0) bytes += st.st_size;
  return bytes;
}

// What this process caused to be written to the storage layer (/proc/self/io write_bytes); -1
// when the kernel does not say (no task I/O accounting).
int64_t process_written_bytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  int64_t value = 0;
  while (in >> key >> value)
    if (key == "write_bytes:") return value;
  return -1;
}

}  // namespace

// The Tuya uplink as the parts see it: counts what the broker acknowledged and what failed.
class Gateway::CountingUplink final : public UplinkPort {
 public:
  explicit CountingUplink(UplinkPort& inner) : inner_(inner) {}
  bool connected() const override { return inner_.connected(); }
  void publish(const std::string& suffix, std::string payload, std::function<void(bool)> done) override {
    inner_.publish(suffix, std::move(payload), [this, done = std::move(done)](bool ok) {
      ++(ok ? published : failed);
      if (done) done(ok);
    });
  }
  void deliver_waiting() override { inner_.deliver_waiting(); }
  size_t backlog() const override { return inner_.backlog(); }

  uint64_t published = 0, failed = 0;

 private:
  UplinkPort& inner_;
};

// The parts, and what the command queue needs from the others.
struct Gateway::Parts final : CommandPort {
  Parts(boost::asio::io_context& ctx, const config::Config& config, store::Store& db, UplinkPort* up,
        std::unique_ptr<LanPort> lan_port, Stats& stats)
      : io(ctx),
        cfg(config),
        store(db),
        uplink(up),
        time(make_time_trust(config, db, clocks)),
        clock_timer(ctx),
        calendar(config.timezone),
        accountant(accountant_options(config)),
        live_totals(calendar),
        lan(std::move(lan_port)),
        sockets(ctx, config),
        committer(ctx, db, accountant, live_totals, stats,
                  [this](const RecordCommitter::ReadingsCommitted& c) { committed(c); }),
        commands(ctx, sockets, *this, std::chrono::seconds(config.uplink.command_timeout_s), stats),
        retention(ctx, db, config.history.raw_days, [this] { return clocks.unix_ms(); }) {
    clocks.unix_ms = [this] { return time.now_ms(clocks.steady().count()); };
    retention.set_may_prune([this] { return time.trusted(); });
    retention.set_max_bytes(int64_t{config.history.max_db_mb} << 20);
    retention.set_roll_up_period(energy::roll_up_period_ms(accountant.options().sample_ms));
    retention.set_roll_up_days([this](store::Store& s) { return energy::roll_up_days(s, calendar, 1); });
    committer.set_commit_interval(std::chrono::milliseconds(config.history.commit_interval_ms));
    committer.set_clock([this] { return clocks.unix_ms(); });
    committer.set_on_hold_full([this] {
      clock_changed(time.give_up_waiting(
          clocks.sample(),
          std::to_string(committer.waiting()) + " records held waiting for a trustworthy clock"));
    });
    accountant.load(db);
    PB_LOG(Info, "gateway") << "energy days in time zone " << calendar.zone_name() << ", raw samples of "
                            << config.history.raw_resolution_s << " s kept " << config.history.raw_days
                            << " days"
                            << (config.history.max_db_mb > 0
                                    ? " within a database of " + std::to_string(config.history.max_db_mb) +
                                          " MiB"
                                    : std::string());
    cloud = std::make_unique<CloudSync>(ctx, config, db, sockets, up,
                                        EnergyView{calendar, accountant, live_totals}, stats, clocks);
    committer.set_outbox(cloud->outbox());
    // The roll-ups (seconds of one transaction at thousands of sockets) run on a connection of
    // their own on another thread; the loop's writers wait while one runs.
    if (StoreWorker::possible(db.path())) {
      worker = std::make_unique<StoreWorker>(ctx, db.path());
      committer.set_worker(worker.get());
      retention.set_worker(worker.get());
      if (Outbox* o = cloud->outbox()) o->set_may_write([this] { return !worker->busy(); });
    }
    if (!time.settled())
      PB_LOG(Warning, "gateway") << time.reason() << ": holding readings (unacked) for up to "
                                 << config.clock.max_wait_s << " s until the clock is trustworthy";
    committer.set_time_settled(time.settled());
    cloud->set_clock_trusted(time.trusted());
  }

  // The clocks once a second: the gateway's time follows the system clock while it is trustworthy.
  void watch_clock() {
    clock_timer.expires_after(std::chrono::seconds(1));
    clock_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      clock_changed(time.observe(clocks.sample()));
      watch_clock();
    });
  }

  void clock_changed(const TimeTrust::Change& c) {
    if (!c.message.empty()) {
      if (c.to == TimeTrust::State::Trusted)
        PB_LOG(Info, "gateway") << c.message;
      else
        PB_LOG(Warning, "gateway") << c.message;
    }
    if (c.restamp_ms != 0) committer.restamp(c.restamp_ms);
    committer.set_time_settled(time.settled());
    cloud->set_clock_trusted(time.trusted());
  }

  // The other uplinks: what changed of a socket.
  void notify(const SocketState& st, unsigned changes) {
    for (size_t i = 0; i < observers.size(); ++i) observers[i]->socket_changed(st.entry.cid, changes);
  }

  // CommandPort
  void report(SocketState& st, bool full) override {
    cloud->report(st, full);
    notify(st, Observer::kRelay);
  }
  void record(const std::string& cid, int code, std::string detail) override {
    store::EventRow row;
    row.cid = cid;
    row.ts_ms = clocks.unix_ms();
    row.kind = "command";
    row.value = code;
    row.detail = std::move(detail);
    committer.add_gateway_event(std::move(row));
  }
  void respond(const std::string& cid, const std::string& request_id, int code) override {
    if (!uplink || !uplink->connected()) return;
    uplink->publish("commands/response",
                    tuya::make_command_response(cid, request_id, code, clocks.unix_ms() / 1000).dump(), {});
  }
  int64_t now_unix_ms() const override { return clocks.unix_ms(); }

  // A reading as it arrives: the live state and its reports follow the sockets at full rate, once
  // its time is final (records held for a trustworthy clock follow at their commit).
  void arrived(const store::ReadingRow& row) {
    if (!time.settled()) return;
    SocketState* st = sockets.find(row.cid);
    if (!st) return;
    const unsigned changes = apply_live(*st, row);
    if (changes == 0) return;
    cloud->report(*st, false);
    notify(*st, changes);
  }

  // A reading into the socket's live state: what changed for the observers (0: an older reading).
  static unsigned apply_live(SocketState& st, const store::ReadingRow& row) {
    const std::optional<bool> relay = st.relay_on;
    const std::optional<int64_t> countdown = st.countdown_ends_ms;
    if (!apply_committed(st, row)) return 0;
    const bool relay_changed =
        st.relay_on != relay || st.countdown_ends_ms.has_value() != countdown.has_value();
    return Observer::kReading | (relay_changed ? Observer::kRelay : 0u);
  }

  // After a commit of readings: the held ones reach the live state (the others did on arrival),
  // then those sockets report.
  void committed(const RecordCommitter::ReadingsCommitted& c) {
    std::vector<std::pair<SocketState*, unsigned>> touched;
    for (const auto& row : c.held)
      if (SocketState* st = sockets.find(row.cid))
        if (const unsigned changes = apply_live(*st, row)) touched.emplace_back(st, changes);
    std::sort(touched.begin(), touched.end());
    for (size_t i = 0; i < touched.size();) {  // one report per socket, with all its changes
      SocketState* st = touched[i].first;
      unsigned changes = 0;
      for (; i < touched.size() && touched[i].first == st; ++i) changes |= touched[i].second;
      cloud->report(*st, false);
      notify(*st, changes);
    }
  }

  boost::asio::io_context& io;
  const config::Config& cfg;
  store::Store& store;
  UplinkPort* uplink;
  Clocks clocks;
  TimeTrust time;
  boost::asio::steady_timer clock_timer;
  energy::Calendar calendar;
  energy::Accountant accountant;
  energy::LiveTotals live_totals;
  std::unique_ptr<LanPort> lan;  // before the sockets: their links outlive it
  SocketRegistry sockets;
  RecordCommitter committer;
  CommandQueue commands;
  Retention retention;
  // Its outbox's destructor stores what is still in flight.
  std::unique_ptr<CloudSync> cloud;
  // Last, so gone first: no job's done handler runs into the parts above once they go.
  std::unique_ptr<StoreWorker> worker;
  std::vector<Observer*> observers;
};

Gateway::Gateway(boost::asio::io_context& io, const config::Config& cfg, store::Store& store,
                 UplinkPort* uplink)
    : Gateway(io, cfg, store, uplink, make_lan_port(io, cfg)) {}

Gateway::Gateway(boost::asio::io_context& io, const config::Config& cfg, store::Store& store,
                 UplinkPort* uplink, std::unique_ptr<LanPort> lan)
    : counting_uplink_(uplink ? std::make_unique<CountingUplink>(*uplink) : nullptr),
      cfg_(cfg),
      parts_(std::make_unique<Parts>(io, cfg_, store, counting_uplink_.get(), std::move(lan), stats_)) {}

Gateway::~Gateway() = default;

void Gateway::start() {
  Parts& p = *parts_;
  LanHandlers handlers;
  handlers.on_hello = [this](const std::shared_ptr<SocketLink>& link) { on_hello(link); };
  handlers.on_message = [this](const std::shared_ptr<SocketLink>& link, const proto::Message& m) {
    on_lan_message(link, m);
  };
  handlers.on_closed = [this](const std::shared_ptr<SocketLink>& link, const std::string& reason) {
    on_lan_closed(link, reason);
  };
  auto lookup = [&p](std::string_view identity) -> std::optional<std::vector<uint8_t>> {
    const SocketState* st = p.sockets.find(std::string(identity));
    if (!st) return std::nullopt;
    return st->entry.secret;
  };
  p.lan->start(lookup, std::move(handlers));
  PB_LOG(Info, "gateway") << "listening for sockets on " << p.cfg.lan.listen_address << ":" << p.lan->port()
                          << " (" << p.sockets.roster().size() << " in the roster)";
  p.cloud->start();
  p.committer.start();
  p.watch_clock();
  // The first retention pass right away: a lowered retention.raw_days applies at the restart.
  p.retention.start(std::chrono::seconds(0));
}

void Gateway::on_fatal(std::function<void(const std::string&)> handler) {
  parts_->committer.set_on_fatal(std::move(handler));
}

std::string Gateway::storage_failure() const {
  return parts_->committer.failure();
}

size_t Gateway::records_waiting() const {
  return parts_->committer.waiting();
}

ClockStatus Gateway::clock_status() const {
  const Parts& p = *parts_;
  return ClockStatus{to_string(p.time.state()), p.time.trusted(), p.time.reason(), p.clocks.unix_ms()};
}

Health Gateway::health() const {
  const Parts& p = *parts_;
  Health h;
  h.sessions_up = p.sockets.linked();
  h.roster_size = p.sockets.roster().size();
  h.handshakes_failed = p.lan->handshake_failures();
  h.readings_received = stats_.readings_received;
  h.readings_committed = stats_.readings_committed;
  h.events_committed = stats_.events_committed;
  h.commits = stats_.commits;
  h.commits_failed = stats_.commits_failed;
  h.records_waiting = p.committer.waiting();
  h.last_commit_ms = stats_.last_commit_ms;
  h.last_commit_seconds = stats_.last_commit_seconds;
  h.commit_seconds = stats_.commit_seconds;
  h.storage_failure = p.committer.failure();
  h.database_bytes = database_bytes(p.store.path());
  h.disk_written_bytes = process_written_bytes();
  h.commands_by_code = stats_.commands_by_code;
  h.command_seconds = stats_.command_seconds;
  const Outbox* outbox = p.cloud->outbox();
  h.outbox_depth = outbox ? outbox->queued() + outbox->in_flight() : 0;
  h.clock_state = to_string(p.time.state());
  h.clock_trusted = p.time.trusted();
  h.clock_reason = p.time.reason();
  if (counting_uplink_) {
    UplinkHealth u;
    u.name = p.cfg.uplink.name;
    u.type = "tuya";
    u.connected = counting_uplink_->connected();
    u.outbox_depth = h.outbox_depth;
    u.published = counting_uplink_->published;
    u.failed = counting_uplink_->failed;
    u.last_error = uplink_error_;
    h.uplinks.push_back(std::move(u));
  }
  for (const auto& source : uplink_health_) h.uplinks.push_back(source());
  return h;
}

void Gateway::add_uplink_health(std::function<UplinkHealth()> source) {
  uplink_health_.push_back(std::move(source));
}

void Gateway::for_each_reading(
    const std::function<void(const std::string& cid, const store::ReadingRow* last)>& f) const {
  for (const SocketState* st : parts_->sockets.roster()) f(st->entry.cid, st->last ? &*st->last : nullptr);
}

uint16_t Gateway::lan_port() const {
  return parts_->lan->port();
}

void Gateway::on_hello(const std::shared_ptr<SocketLink>& link) {
  Parts& p = *parts_;
  auto [st, replaced] = p.sockets.attach(link);
  if (!st) {  // the PSK lookup makes this unreachable; stay safe anyway
    link->close("not in the roster");
    return;
  }
  if (replaced) replaced->close("replaced by a new connection from " + link->remote());
  if (stopping_) {
    p.sockets.detach(*link);
    link->close("gateway is shutting down");
    return;
  }
  const auto& hello = link->hello();
  proto::Message ack{};
  ack.type = proto::MsgType::HelloAck;
  ack.hello_ack.unix_ms = static_cast<uint64_t>(p.clocks.unix_ms());
  uint32_t committed = p.store.last_seq(st->entry.cid, st->boot);
  ack.hello_ack.last_committed_seq = committed;
  ack.hello_ack.keepalive_s = static_cast<uint16_t>(p.cfg.lan.keepalive_s);
  link->send(ack);
  PB_LOG(Info, "gateway") << st->entry.cid << " connected from " << link->remote() << " (fw "
                          << hello.fw_version << ", boot " << hello.boot_counter << ", committed up to seq "
                          << committed << ")";
  st->fw_version = hello.fw_version;
  st->last_seen_ms = p.clocks.unix_ms();
  p.cloud->set_online(*st, true);
  p.notify(*st, Observer::kOnline | Observer::kSettings);
  if ((hello.capabilities & proto::kCapSwitchLock) == 0 && !st->switch_enabled)
    st->switch_enabled = true;  // gateway state
  p.commands.on_session(*st);
}

void Gateway::on_lan_closed(const std::shared_ptr<SocketLink>& link, const std::string& reason) {
  Parts& p = *parts_;
  SocketState* st = p.sockets.detach(*link);
  if (!st) return;  // an older, replaced session
  PB_LOG(Info, "gateway") << st->entry.cid << " disconnected: " << reason;
  p.cloud->set_online(*st, false);
  p.notify(*st, Observer::kOnline);
  // Commands in flight or waiting for this socket can no longer be confirmed.
  p.commands.fail_all(*st, "socket disconnected before confirming");
}

void Gateway::on_lan_message(const std::shared_ptr<SocketLink>& link, const proto::Message& m) {
  Parts& p = *parts_;
  // Commands first: whatever the broker delivered meanwhile is handled before this message (one
  // atomic read when nothing waits), so a command waits for one reading, not for all those queued.
  if (p.uplink) p.uplink->deliver_waiting();
  for (Observer* o : p.observers) o->deliver_waiting();
  SocketState* st = p.sockets.current(*link);
  if (!st) return;
  st->last_seen_ms = p.clocks.unix_ms();
  switch (m.type) {
    case proto::MsgType::Reading: {
      ++stats_.readings_received;
      store::ReadingRow row = apply_reading(*st, m.reading, p.clocks.unix_ms());
      const store::ReadingRow live = row;
      if (p.committer.add_reading(std::move(row), link)) p.arrived(live);  // not one the committer refused
      break;
    }
    case proto::MsgType::Event: {
      p.committer.add_event(event_row(*st, m.event, p.clocks.unix_ms()), link);
      const EventEffect fx = apply_event(*st, m.event);
      if (fx.reapply_limits) p.commands.apply_limits(*st);
      if (fx.report) {
        p.cloud->report(*st, false);
        p.notify(*st, Observer::kRelay);
      }
      break;
    }
    case proto::MsgType::CommandResult:
      p.commands.on_result(*st, m.command_result);
      break;
    case proto::MsgType::Keepalive:
      break;  // answered by the LAN side
    default:
      link->close(std::string("unexpected ") + proto::to_string(m.type) + " from a socket");
      break;
  }
}

void Gateway::on_uplink_connected() {
  parts_->cloud->on_connected();
}

void Gateway::on_uplink_disconnected(const std::string& reason) {
  uplink_error_ = reason;
  parts_->cloud->on_disconnected(reason);
}

void Gateway::on_uplink_message(const std::string& suffix, const std::string& payload) {
  if (stopping_) return;
  if (suffix == "commands")
    parts_->commands.cloud(payload);
  else if (suffix == "devices/sync/response")
    parts_->cloud->on_sync_response(payload);
  else if (suffix == "properties/report/response")
    parts_->cloud->on_report_response(payload);
  else
    PB_LOG(Debug, "gateway") << "ignoring message on " << suffix;
}

std::vector<LiveSocket> Gateway::live_status() const {
  return parts_->sockets.live_status();
}

void Gateway::local_command(const std::string& cid, const std::string& kind, int64_t value,
                            std::function<void(LocalResult)> done) {
  parts_->commands.local(cid, kind, value, std::move(done));
}

void Gateway::add_observer(Observer& o) {
  parts_->observers.push_back(&o);
}

void Gateway::attach_outbox(Outbox& o) {
  Parts& p = *parts_;
  p.committer.attach_outbox(o);
  if (p.worker) o.set_may_write([w = p.worker.get()] { return !w->busy(); });
}

void Gateway::detach_outbox(Outbox& o) {
  parts_->committer.detach_outbox(o);
  o.set_may_write({});
}

void Gateway::remove_observer(Observer& o) {
  auto& v = parts_->observers;
  v.erase(std::remove(v.begin(), v.end(), &o), v.end());
}

std::vector<std::string> Gateway::roster() const {
  std::vector<std::string> out;
  out.reserve(parts_->sockets.roster().size());
  for (const SocketState* st : parts_->sockets.roster()) out.push_back(st->entry.cid);
  return out;
}

std::optional<SocketView> Gateway::socket_view(const std::string& cid) const {
  const Parts& p = *parts_;
  const SocketState* st = p.sockets.find(cid);
  if (!st) return std::nullopt;
  SocketView v;
  v.cid = st->entry.cid;
  v.name = st->entry.name;
  v.location = st->entry.location;
  v.product_id = st->entry.product_id;
  v.fw_version = st->fw_version;
  v.online = st->online;
  v.relay_on = st->relay_on;
  v.last = st->last;
  v.energy_known = p.accountant.state(cid).has_value();
  v.energy_total_mwh = p.accountant.total_mwh(cid);
  v.countdown_ends_ms = st->countdown_ends_ms;
  v.last_seen_ms = st->last_seen_ms;
  return v;
}

ConfigDiff Gateway::reload(const config::Config& next) {
  Parts& p = *parts_;
  ConfigDiff d = diff_config(cfg_, next);
  // What needs a restart keeps its running value.
  config::Config applied = next;
  applied.gateway_id = cfg_.gateway_id;
  applied.uplink = cfg_.uplink;
  applied.uplink.command_timeout_s = next.uplink.command_timeout_s;
  applied.mqtt_uplinks = cfg_.mqtt_uplinks;
  applied.device_uplinks = cfg_.device_uplinks;
  applied.lan = cfg_.lan;
  applied.database = cfg_.database;
  applied.control_socket = cfg_.control_socket;
  applied.timezone = cfg_.timezone;
  applied.clock = cfg_.clock;
  cfg_ = std::move(applied);

  for (const std::string& cid : d.removed) {
    SocketState* st = p.sockets.find(cid);
    if (!st) continue;
    p.commands.fail_all(*st, "socket removed from the roster");
    p.cloud->retiring(*st);
    std::shared_ptr<SocketLink> link = st->link;
    p.sockets.retire(cid);
    if (link) link->close("removed from the roster");
    PB_LOG(Info, "gateway") << cid << " removed from the roster" << (link ? ": session closed" : "");
  }
  for (const std::string& cid : d.added) {
    p.cloud->resync(p.sockets.add(*cfg_.find_socket(cid), cfg_.report));
    PB_LOG(Info, "gateway") << cid << " added to the roster";
  }
  for (const std::string& cid : d.rekeyed) {
    SocketState& st = *p.sockets.find(cid);
    p.sockets.update(st, *cfg_.find_socket(cid));
    PB_LOG(Info, "gateway") << cid << ": key changed in the roster"
                            << (st.link ? "; closing its session (it must connect with the new key)" : "");
    if (st.link) st.link->close("key changed in the roster");
  }
  for (const std::string& cid : d.changed) {
    SocketState& st = *p.sockets.find(cid);
    const config::SocketEntry old = st.entry;
    const config::SocketEntry& e = *cfg_.find_socket(cid);
    p.sockets.update(st, e);
    if (old.name != e.name || old.location != e.location || old.product_id != e.product_id)
      p.cloud->resync(st);
    if (old.limits != e.limits && st.link) p.commands.apply_limits(st);
    PB_LOG(Info, "gateway") << cid << ": settings changed in the roster";
  }
  p.sockets.reorder(cfg_.sockets);
  if (!d.added.empty() || !d.removed.empty()) ++roster_generation_;

  p.accountant.set_options(accountant_options(cfg_));
  p.retention.set_raw_days(cfg_.history.raw_days);
  p.retention.set_max_bytes(int64_t{cfg_.history.max_db_mb} << 20);
  p.retention.set_roll_up_period(energy::roll_up_period_ms(p.accountant.options().sample_ms));
  p.committer.set_commit_interval(std::chrono::milliseconds(cfg_.history.commit_interval_ms));
  p.commands.set_timeout(std::chrono::seconds(cfg_.uplink.command_timeout_s));
  if (d.changed_setting("report"))
    for (SocketState* st : p.sockets.roster()) st->report = ReportPolicy(report_rules(cfg_.report));
  if (d.changed_setting("heartbeat_s")) p.cloud->restart_heartbeat();
  if (!d.added.empty() || !d.removed.empty() || !d.changed.empty() || !d.rekeyed.empty())
    for (Observer* o : p.observers) o->roster_changed();
  PB_LOG(Info, "gateway") << "configuration reloaded: " << summary(d);
  return d;
}

void Gateway::shutdown(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  Parts& p = *parts_;
  p.cloud->stop();
  p.retention.stop();
  p.clock_timer.cancel();
  if (!p.time.settled() && p.committer.waiting() > 0)
    PB_LOG(Warning, "gateway") << "stopping before the clock was trustworthy: " << p.committer.waiting()
                               << " records not stored (their sockets keep them)";
  // Every command in flight or waiting is answered (2001 to the cloud, shutting_down locally); their
  // "command" events go into the last flush.
  p.commands.shutdown();
  p.lan->stop();
  p.committer.stop();
  // A roll-up running now is interrupted (rolled back: the next start does it again), so the last
  // commit does not wait for its write lock.
  if (p.worker) p.worker->stop();
  p.committer.flush();
  // Tell the cloud every socket is offline, and finish once the broker acked it (or gave up).
  p.cloud->publish_all_offline(std::move(done));
}

}  // namespace pb::gateway
