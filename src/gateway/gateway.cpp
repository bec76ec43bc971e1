#include "plugbridge/gateway/gateway.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstdio>
#include <deque>
#include <nlohmann/json.hpp>

#include "plugbridge/common/log.hpp"
#include "plugbridge/gateway/dp_map.hpp"
#include "plugbridge/gateway/outbox.hpp"
#include "plugbridge/gateway/report_policy.hpp"
#include "plugbridge/tuya/dp.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::gateway {

namespace proto = pbfw::proto;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {
constexpr size_t kMaxBatch = 512;                  // records per SQLite transaction
constexpr auto kFlushDelay = 20ms;                 // how long a record may wait for companions
constexpr size_t kStatusChunk = 200;               // sockets per devices/status message
constexpr auto kSyncTimeout = 10s;                 // no sync response → retry
constexpr auto kStatusDebounce = 200ms;            // coalesce online/offline changes
constexpr uint32_t kDefaultCurrentLimitMa = 5000;  // the socket's rating
constexpr const char* kNoConfirmInTime = "socket did not confirm in time";
constexpr const char* kLocalPrefix = "local-";  // request ids of commands from the control socket
constexpr size_t kMaxQueuedCommands = 16;       // per socket, the one in flight included
constexpr const char* kSwitchingDisabled = "switching is disabled (switch_enabled is false)";

const char* cause_name(proto::Cause c) {
  switch (c) {
    case proto::Cause::Unknown:
      return "unknown";
    case proto::Cause::Button:
      return "button";
    case proto::Cause::Command:
      return "command";
    case proto::Cause::Protection:
      return "protection";
    case proto::Cause::Countdown:
      return "countdown";
    case proto::Cause::PowerOn:
      return "power_on";
  }
  return "unknown";
}

const char* event_kind(proto::EventType t) {
  switch (t) {
    case proto::EventType::RelayChanged:
      return "relay";
    case proto::EventType::OverCurrent:
      return "over_current";
    case proto::EventType::MeterLost:
      return "meter_lost";
    case proto::EventType::MeterRestored:
      return "meter_restored";
    case proto::EventType::OverPower:
      return "over_power";
    case proto::EventType::OverVoltage:
      return "over_voltage";
    case proto::EventType::UnderVoltage:
      return "under_voltage";
    case proto::EventType::FactoryReset:
      return "factory_reset";
  }
  return "unknown";
}

// energy.max_power_w, and the sockets' own sockets[].energy.max_power_w.
energy::AccountantOptions accountant_options(const config::Config& cfg) {
  energy::AccountantOptions o;
  o.max_power_w = cfg.energy.max_power_w;
  for (const auto& s : cfg.sockets)
    if (s.energy_max_power_w) o.socket_max_power_w[s.cid] = *s.energy_max_power_w;
  return o;
}
}  // namespace

namespace {

// Local calibration commands (plugbridge calibrate): control-protocol kind -> LAN command kind.
std::optional<proto::CommandKind> calibration_kind(const std::string& kind) {
  if (kind == "calibrate_voltage") return proto::CommandKind::CalibrateVoltage;
  if (kind == "calibrate_current") return proto::CommandKind::CalibrateCurrent;
  if (kind == "calibrate_power") return proto::CommandKind::CalibratePower;
  if (kind == "set_kv") return proto::CommandKind::SetKv;
  if (kind == "set_ki") return proto::CommandKind::SetKi;
  return std::nullopt;
}

std::optional<std::string> calibration_range_problem(const std::string& kind, int64_t v) {
  if (kind == "calibrate_voltage" && (v < 50'000 || v > 300'000))
    return "calibrate_voltage wants 50000..300000 mV";
  if (kind == "calibrate_current" && (v < 10 || v > 20'000)) return "calibrate_current wants 10..20000 mA";
  if (kind == "calibrate_power" && (v < 1'000 || v > 6'000'000))
    return "calibrate_power wants 1000..6000000 mW";
  if ((kind == "set_kv" || kind == "set_ki") && (v < 10'000 || v > 100'000'000))
    return kind + " wants 10000..100000000 (the constant x 10^6, 0.01..100)";
  return std::nullopt;
}

// Why a calibration cannot work now, from the socket's last reading; the socket checks again (fresh
// frame, register not overflowed, result in range) and answers Refused.
std::optional<std::string> calibration_problem(const std::optional<bool>& relay_on,
                                               const std::optional<store::ReadingRow>& last,
                                               const std::string& kind, int64_t v) {
  if (kind == "set_kv" || kind == "set_ki") return std::nullopt;
  if (kind != "calibrate_voltage" && relay_on && !*relay_on)  // mains voltage is measured either way
    return "the relay is off: switch the reference load on first (plugbridge relay CID on)";
  if (!last) return "no reading from the socket yet; try again in a few seconds";
  if ((last->flags & proto::kMeterOk) == 0) return "the socket's meter is unavailable";
  double measured = 0, given = static_cast<double>(v), floor = 0;
  const char* unit = "";
  if (kind == "calibrate_voltage") {
    measured = last->voltage_mv, floor = 50'000, unit = "V";
  } else if (kind == "calibrate_current") {
    measured = last->current_ua / 1000.0, floor = 10, unit = "A";
  } else {
    measured = last->power_mw, floor = 1'000, unit = "W";
  }
  auto show = [](double milli) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3f", milli / 1000.0);
    return std::string(b);
  };
  if (measured < floor)
    return "no load: the socket measures " + show(measured) + " " + unit +
           "; plug in a resistive load (kettle, heater, incandescent lamp) and switch the relay on";
  // Kv/Ki of a real board are within a few % of nominal: a factor 2 is a wrong unit or another load.
  if (given > 2 * measured || given < measured / 2)
    return "implausible: the socket measures " + show(measured) + " " + unit + ", you gave " + show(given) +
           " " + unit + " (more than a factor 2 apart: wrong unit, or not the load that is plugged in?)";
  return std::nullopt;
}

}  // namespace

// One command in a socket's queue.
struct Gateway::PendingCommand {
  enum class From { Cloud, Local, Gateway };  // Gateway: re-applying DP 17 after a reconnect, no answer
  From from = From::Cloud;
  std::string request_id;    // cloud request_id or "local-N"
  int dp = 0;                // Cloud: the DP
  json value;                // Cloud: the DP value as received
  std::string kind;          // Local: "relay" or "countdown"
  int64_t local_value = 0;   // Local: 1/0/-1 or seconds
  proto::Command command{};  // as sent (Gateway: given), to record the setting once confirmed
  uint32_t cmd_id = 0;       // 0 = not sent yet
};

struct Gateway::SocketState {
  const config::SocketEntry* entry = nullptr;
  std::shared_ptr<lan::Session> session;
  bool online = false;
  uint32_t boot = 0;
  std::optional<store::ReadingRow> last;
  std::optional<bool> relay_on;
  uint32_t current_limit_ma = kDefaultCurrentLimitMa;
  // DP 17: the socket's (kCapSwitchLock), else gateway state. Unknown (reported only once known,
  // so a restarted daemon never reports a default over the socket's truth) counts as enabled.
  std::optional<bool> switch_enabled;
  bool switching_allowed() const { return switch_enabled.value_or(true); }
  DpSettings settings;                   // DP 11/12/18/48 as last confirmed
  uint32_t faults = 0;                   // DP 19 bitmap, cleared when the relay is switched on
  std::string fault_detail;              // DP 21 text of the last protection event
  std::optional<uint32_t> switch_count;  // DP 42, from v1 readings
  // DP 17 as the cloud last set it (answered 0 since the daemon started); re-applied to the socket
  // after a reconnect, forgotten when the socket reports a factory reset.
  std::optional<bool> desired_switch_enabled;
  // DP 6 / DP 48 the socket should have: the roster's limits, or what the cloud set since the daemon
  // started; applied at every session start (the socket keeps them, this repairs a replaced or reset one).
  std::optional<uint32_t> desired_current_limit_ma;
  std::optional<uint32_t> desired_power_limit_w;
  int64_t switch_confirmed_ms = 0;      // readings sampled before this carry an older kSwitchDisabled
  std::deque<PendingCommand> commands;  // front is in flight once its cmd_id is set
  std::unique_ptr<boost::asio::steady_timer> command_timer;
  bool pumping = false;
  // When the socket's countdown will flip the relay (from v1 readings; none = not running).
  std::optional<int64_t> countdown_ends_ms;

  bool synced = false;
  int sync_attempts = 0;
  std::unique_ptr<boost::asio::steady_timer> sync_timer;

  ReportPolicy report;  // what was reported when; decides the next reports
  bool status_dirty = false;
};

Gateway::Gateway(boost::asio::io_context& io, const config::Config& cfg, store::Store& store,
                 UplinkPort* uplink)
    : io_(io),
      cfg_(cfg),
      store_(store),
      uplink_(uplink),
      flush_timer_(io),
      heartbeat_timer_(io),
      report_timer_(io),
      status_timer_(io),
      calendar_(cfg.timezone),
      accountant_(accountant_options(cfg)),
      live_totals_(calendar_),
      retention_timer_(io) {
  std::vector<std::string> cids;
  for (const auto& entry : cfg_.sockets) cids.push_back(entry.cid);
  accountant_.load(store_, cids);
  PB_LOG(Info, "gateway") << "energy days in time zone " << calendar_.zone_name() << ", raw readings kept "
                          << cfg_.retention.raw_days << " days";
  for (const auto& entry : cfg_.sockets) {
    auto st = std::make_unique<SocketState>();
    st->entry = &entry;
    st->report = ReportPolicy(report_rules(cfg_.report));
    if (entry.limits.current_max_ma) st->current_limit_ma = *entry.limits.current_max_ma;
    st->desired_current_limit_ma = entry.limits.current_max_ma;
    st->desired_power_limit_w = entry.limits.power_max_w;
    st->sync_timer = std::make_unique<boost::asio::steady_timer>(io_);
    st->command_timer = std::make_unique<boost::asio::steady_timer>(io_);
    roster_order_.push_back(st.get());
    sockets_.emplace(entry.cid, std::move(st));
  }
  if (uplink_) {
    OutboxOptions oo;
    oo.rate_per_s = cfg_.uplink.outbox_rate_per_s;
    outbox_ = std::make_unique<Outbox>(io_, store_, *uplink_, oo, [this](const std::string& cid) {
      if (stopping_ || !uplink_->connected()) return false;
      auto it = sockets_.find(cid);
      return it != sockets_.end() && it->second->synced;
    });
    outbox_->load(std::set<std::string>(cids.begin(), cids.end()));
  }
}

Gateway::~Gateway() = default;

int64_t Gateway::now_unix_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Gateway::start() {
  lan::ServerOptions opts;
  opts.address = cfg_.lan.listen_address;
  opts.port = cfg_.lan.port;
  opts.handshake_timeout = std::chrono::seconds(cfg_.lan.handshake_timeout_s);
  opts.idle_timeout = std::chrono::seconds(cfg_.lan.keepalive_s * 3);
  opts.max_sessions = std::max<size_t>(cfg_.sockets.size() * 2 + 16, 64);

  lan::ServerHandlers handlers;
  handlers.on_hello = [this](const std::shared_ptr<lan::Session>& s) { on_hello(s); };
  handlers.on_message = [this](const std::shared_ptr<lan::Session>& s, const proto::Message& m) {
    on_lan_message(s, m);
  };
  handlers.on_closed = [this](const std::shared_ptr<lan::Session>& s, const std::string& reason) {
    on_lan_closed(s, reason);
  };
  auto lookup = [this](std::string_view identity) -> std::optional<std::vector<uint8_t>> {
    auto it = sockets_.find(std::string(identity));
    if (it == sockets_.end()) return std::nullopt;
    return it->second->entry->secret;
  };
  server_ = std::make_unique<lan::Server>(io_, opts, lookup, handlers);
  server_->start();
  PB_LOG(Info, "gateway") << "listening for sockets on " << cfg_.lan.listen_address << ":" << server_->port()
                          << " (" << sockets_.size() << " in the roster)";
  start_heartbeat_timer();
  start_periodic_report_timer();
  // The first retention pass right away: a lowered retention.raw_days applies at the restart.
  start_retention_timer(std::chrono::seconds(0));
}

uint16_t Gateway::lan_port() const {
  return server_ ? server_->port() : 0;
}

// ---------------------------------------------------------------------------------------------
// LAN side

Gateway::SocketState* Gateway::socket_for(const std::shared_ptr<lan::Session>& s) {
  auto it = sockets_.find(s->cid());
  if (it == sockets_.end() || it->second->session != s) return nullptr;
  return it->second.get();
}

void Gateway::on_hello(const std::shared_ptr<lan::Session>& s) {
  auto it = sockets_.find(s->cid());
  if (it == sockets_.end()) {  // the PSK lookup makes this unreachable; stay safe anyway
    s->close("not in the roster");
    return;
  }
  SocketState& st = *it->second;
  if (st.session && st.session != s) {
    auto old = std::move(st.session);
    st.session.reset();
    old->close("replaced by a new connection from " + s->remote());
  }
  if (stopping_) {
    s->close("gateway is shutting down");
    return;
  }
  const auto& hello = s->hello();
  st.session = s;
  st.boot = hello.boot_counter;

  proto::Message ack{};
  ack.type = proto::MsgType::HelloAck;
  ack.hello_ack.unix_ms = static_cast<uint64_t>(now_unix_ms());
  uint32_t committed = store_.last_seq(st.entry->cid, st.boot);
  ack.hello_ack.last_committed_seq = committed;
  ack.hello_ack.keepalive_s = static_cast<uint16_t>(cfg_.lan.keepalive_s);
  s->send(ack);
  PB_LOG(Info, "gateway") << st.entry->cid << " connected from " << s->remote() << " (fw " << hello.fw_version
                          << ", boot " << hello.boot_counter << ", committed up to seq " << committed << ")";
  set_online(st, true);
  if ((hello.capabilities & proto::kCapSwitchLock) == 0 && !st.switch_enabled)
    st.switch_enabled = true;  // gateway state
  // The socket keeps DP 17 itself; one that lost it (replaced, or DP 17 set while it ran older
  // firmware) gets the cloud's last setting again. Idempotent when it already has it.
  if ((hello.capabilities & proto::kCapSwitchLock) && st.desired_switch_enabled) {
    PendingCommand pc;
    pc.from = PendingCommand::From::Gateway;
    pc.command.kind = proto::CommandKind::SetSwitchEnabled;
    pc.command.value = *st.desired_switch_enabled ? 1 : 0;
    enqueue_command(st, std::move(pc));
  }
  apply_limits(st);
}

// The roster's (or the cloud's later) DP 6 / DP 48 through the socket's queue; DP 6/48 are reported
// once the socket confirmed them.
void Gateway::apply_limits(SocketState& st) {
  auto push = [&](proto::CommandKind kind, uint32_t value) {
    PendingCommand pc;
    pc.from = PendingCommand::From::Gateway;
    pc.command.kind = kind;
    pc.command.value = static_cast<int32_t>(value);
    enqueue_command(st, std::move(pc));
  };
  if (st.desired_current_limit_ma) push(proto::CommandKind::SetCurrentLimit, *st.desired_current_limit_ma);
  if (st.desired_power_limit_w) push(proto::CommandKind::SetPowerLimit, *st.desired_power_limit_w);
}

void Gateway::on_lan_closed(const std::shared_ptr<lan::Session>& s, const std::string& reason) {
  auto it = sockets_.find(s->cid());
  if (it == sockets_.end()) return;
  SocketState& st = *it->second;
  if (st.session != s) return;  // an older, replaced session
  st.session.reset();
  PB_LOG(Info, "gateway") << st.entry->cid << " disconnected: " << reason;
  set_online(st, false);
  // Commands in flight or waiting for this socket can no longer be confirmed.
  fail_all_commands(st, "socket disconnected before confirming");
}

void Gateway::on_lan_message(const std::shared_ptr<lan::Session>& s, const proto::Message& m) {
  SocketState* st = socket_for(s);
  if (!st) return;
  switch (m.type) {
    case proto::MsgType::Reading:
      queue_reading(*st, s, m.reading);
      break;
    case proto::MsgType::Event:
      queue_event(*st, s, m.event);
      break;
    case proto::MsgType::CommandResult:
      on_command_result(*st, m.command_result);
      break;
    case proto::MsgType::Keepalive:
      break;  // answered by the server
    default:
      s->close(std::string("unexpected ") + proto::to_string(m.type) + " from a socket");
      break;
  }
}

void Gateway::queue_reading(SocketState& st, const std::shared_ptr<lan::Session>& s,
                            const proto::Reading& r) {
  store::ReadingRow row;
  row.cid = st.entry->cid;
  row.boot = st.boot;
  row.seq = r.seq;
  row.ts_ms = now_unix_ms() - r.age_ms;
  row.flags = r.flags;
  row.voltage_mv = r.voltage_mv;
  row.current_ua = r.current_ua;
  row.power_mw = r.power_mw;
  row.apparent_mva = r.apparent_mva;
  row.power_factor_e4 = r.power_factor_e4;
  row.energy_mwh = r.energy_mwh;
  row.energy_epoch = r.energy_epoch;
  // Legacy (pre-v1) readings carry no switch count; v1 firmware announces countdown support.
  if (s->hello().capabilities & proto::kCapCountdown) {
    st.switch_count = r.switch_count;
    st.countdown_ends_ms =
        r.countdown_s ? std::optional(row.ts_ms + int64_t{r.countdown_s} * 1000) : std::nullopt;
  }
  // DP 17 is the socket's own truth (kCapSwitchLock). Readings arrive in the socket's order, but one
  // sampled before a confirmed SetSwitchEnabled still carries the old flag.
  if ((s->hello().capabilities & proto::kCapSwitchLock) && row.ts_ms >= st.switch_confirmed_ms) {
    st.switch_enabled = (r.flags & proto::kSwitchDisabled) == 0;
  }
  batch_readings_.push_back(std::move(row));
  batch_acks_.push_back({s, &st, r.seq});
  schedule_flush();
}

void Gateway::queue_event(SocketState& st, const std::shared_ptr<lan::Session>& s, const proto::Event& e) {
  store::EventRow row;
  row.cid = st.entry->cid;
  row.ts_ms = now_unix_ms() - e.age_ms;
  row.kind = event_kind(e.type);
  row.boot = st.boot;
  row.seq = e.seq;
  row.value = e.value;
  row.detail = json{{"cause", cause_name(e.cause)}}.dump();
  batch_events_.push_back(std::move(row));
  batch_acks_.push_back({s, &st, e.seq});
  schedule_flush();

  if (e.type == proto::EventType::RelayChanged) {
    st.relay_on = e.value != 0;
    if (e.value != 0) st.faults = 0;  // switching on again clears the fault (DP 19)
    report_changes(st, false);
  } else if (e.type == proto::EventType::FactoryReset) {
    st.desired_switch_enabled.reset();  // the user reset the socket to its defaults on purpose
    // Limits are the roster's business, not the user's: the socket gets them back (cloud values go).
    st.desired_current_limit_ma = st.entry->limits.current_max_ma;
    st.desired_power_limit_w = st.entry->limits.power_max_w;
    st.current_limit_ma = kDefaultCurrentLimitMa;
    st.settings.power_limit_w.reset();
    if (st.session) apply_limits(st);
  } else if (uint32_t bits = fault_bits_for(e.type)) {
    st.faults |= bits;
    st.fault_detail = protection_detail(e.type, e.value);
    PB_LOG(Warning, "gateway") << st.entry->cid << ": " << st.fault_detail;
    report_changes(st, false);
  }
}

void Gateway::queue_gateway_event(const std::string& cid, const std::string& kind, int64_t value,
                                  std::string detail) {
  store::EventRow row;
  row.cid = cid;
  row.ts_ms = now_unix_ms();
  row.kind = kind;
  row.value = value;
  row.detail = std::move(detail);
  batch_events_.push_back(std::move(row));
  schedule_flush();
}

void Gateway::schedule_flush() {
  if (batch_readings_.size() + batch_events_.size() >= kMaxBatch) {
    flush();
    return;
  }
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  flush_timer_.expires_after(kFlushDelay);
  flush_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    flush();
  });
}

void Gateway::flush() {
  flush_scheduled_ = false;
  flush_timer_.cancel();
  if (batch_readings_.empty() && batch_events_.empty()) return;
  auto readings = std::move(batch_readings_);
  auto events = std::move(batch_events_);
  auto acks = std::move(batch_acks_);
  batch_readings_.clear();
  batch_events_.clear();
  batch_acks_.clear();
  try {
    energy::Prepared energy = accountant_.prepare(readings);
    events.insert(events.end(), energy.events.begin(), energy.events.end());
    // Waiting outbox rows ride along in the same transaction (no fsync of their own).
    Outbox::Batch outbox_rows = outbox_ ? outbox_->begin_write() : Outbox::Batch{};
    auto res = store_.commit(readings, events, energy.update, outbox_rows.changes());
    outbox_rows.committed();
    accountant_.committed(energy);
    live_totals_.add(energy.update);
    stats_.commits++;
    stats_.readings_committed += res.readings_inserted;
    stats_.readings_duplicate += res.readings_duplicate;
    stats_.events_committed += res.events_inserted;
    if (res.readings_duplicate || res.events_duplicate)
      PB_LOG(Debug, "gateway") << "ignored " << res.readings_duplicate << " duplicate readings, "
                               << res.events_duplicate << " duplicate events";
  } catch (const std::exception& ex) {
    // Nothing of this batch is acked: close the sessions so the sockets resend it.
    PB_LOG(Error, "gateway") << "could not store " << readings.size() << " readings and " << events.size()
                             << " events: " << ex.what();
    for (auto& a : acks)
      if (auto s = a.session.lock()) s->close("database write failed");
    return;
  }

  // Ack the highest committed seq per session (records of a session arrive in seq order).
  std::unordered_map<lan::Session*, std::pair<std::shared_ptr<lan::Session>, uint32_t>> highest;
  for (auto& a : acks) {
    auto s = a.session.lock();
    if (!s || !s->open()) continue;
    auto& h = highest[s.get()];
    if (!h.first || a.seq > h.second) h = {s, std::max(a.seq, h.second)};
  }
  for (auto& [ptr, h] : highest) {
    proto::Message ack{};
    ack.type = proto::MsgType::Ack;
    ack.ack.up_to_seq = h.second;
    h.first->send(ack);
  }

  // Newest state per socket, then reports.
  std::vector<SocketState*> touched;
  for (auto& row : readings) {
    auto it = sockets_.find(row.cid);
    if (it == sockets_.end()) continue;
    SocketState& st = *it->second;
    if (!st.last || st.last->ts_ms <= row.ts_ms) {
      st.last = row;
      st.relay_on = (row.flags & proto::kRelayOn) != 0;
      touched.push_back(&st);
    }
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (SocketState* st : touched) report_changes(*st, false);
}

void Gateway::set_online(SocketState& st, bool online) {
  if (st.online == online) return;
  st.online = online;
  if (stopping_) return;
  schedule_status(st);
}

// A socket's status goes out shortly after it changed (debounced, batched with other changes).
void Gateway::schedule_status(SocketState& st) {
  st.status_dirty = true;
  if (status_scheduled_) return;
  status_scheduled_ = true;
  status_timer_.expires_after(kStatusDebounce);
  status_timer_.async_wait([this](const boost::system::error_code& ec) {
    status_scheduled_ = false;
    if (ec) return;
    std::vector<SocketState*> dirty;
    for (SocketState* s : roster_order_)
      if (s->status_dirty) {
        s->status_dirty = false;
        dirty.push_back(s);
      }
    send_status(dirty);
  });
}

// ---------------------------------------------------------------------------------------------
// Tuya side

void Gateway::on_uplink_connected() {
  PB_LOG(Info, "gateway") << "uplink connected: syncing " << roster_order_.size() << " sockets"
                          << (outbox_ && outbox_->queued() > 0
                                  ? ", then sending the " + std::to_string(outbox_->queued()) +
                                        " reports waiting in the outbox"
                                  : std::string());
  uplink_up_ = true;
  pending_syncs_.clear();
  for (SocketState* st : roster_order_) {
    st->synced = false;
    st->sync_attempts = 0;
    st->report.forget();
    sync_socket(*st);
  }
  // devices/status of each socket follows its sync (the platform knows no socket before it).
}

void Gateway::on_uplink_disconnected(const std::string& reason) {
  // Logged when the link goes; each failed reconnect attempt is the uplink's to log.
  if (uplink_up_)
    PB_LOG(Warning, "gateway") << "uplink down: " << reason
                               << (outbox_ ? "; reports wait in the outbox until it is back" : "");
  uplink_up_ = false;
  pending_syncs_.clear();
  for (SocketState* st : roster_order_) {
    st->synced = false;
    st->sync_timer->cancel();
  }
}

void Gateway::sync_socket(SocketState& st) {
  if (!uplink_ || !uplink_->connected() || stopping_) return;
  tuya::SyncParams p;
  p.cid = st.entry->cid;
  p.product_id = st.entry->product_id;
  p.name = st.entry->name;
  p.location = st.entry->location;
  if (st.session) {
    auto remote = st.session->remote();
    p.ip = remote.substr(0, remote.rfind(':'));
  }
  std::string rid = tuya::new_request_id();
  pending_syncs_[rid] = &st;
  st.sync_attempts++;
  uplink_->publish("devices/sync", tuya::make_sync(p, now_unix_ms() / 1000, rid).dump(), {});
  // A lost response counts as a failure.
  st.sync_timer->expires_after(kSyncTimeout);
  st.sync_timer->async_wait([this, &st, rid](const boost::system::error_code& ec) {
    if (ec || st.synced) return;
    if (pending_syncs_.erase(rid) == 0) return;
    PB_LOG(Warning, "gateway") << st.entry->cid << ": no devices/sync response within "
                               << std::chrono::duration_cast<std::chrono::seconds>(kSyncTimeout).count()
                               << " s, retrying";
    schedule_sync_retry(st);
  });
}

void Gateway::schedule_sync_retry(SocketState& st) {
  int exp = std::min(st.sync_attempts, 6);
  auto delay = std::chrono::seconds(1 << exp);  // 2, 4 ... 64 s
  st.sync_timer->expires_after(delay);
  st.sync_timer->async_wait([this, &st](const boost::system::error_code& ec) {
    if (ec || st.synced) return;
    sync_socket(st);
  });
}

void Gateway::handle_sync_response(const std::string& payload) {
  std::string err;
  auto r = tuya::parse_response(payload, &err);
  if (!r) {
    PB_LOG(Warning, "gateway") << "unreadable devices/sync response (" << err << "): " << payload;
    return;
  }
  auto it = pending_syncs_.find(r->request_id);
  if (it == pending_syncs_.end()) {
    PB_LOG(Debug, "gateway") << "devices/sync response for an unknown request " << r->request_id;
    return;
  }
  SocketState& st = *it->second;
  pending_syncs_.erase(it);
  if (r->code != tuya::code::kSuccess) {
    PB_LOG(Error, "gateway") << st.entry->cid << ": devices/sync refused with code " << r->code << " ("
                             << tuya::code_meaning(r->code) << "); retrying";
    schedule_sync_retry(st);
    return;
  }
  st.sync_timer->cancel();
  st.synced = true;
  st.sync_attempts = 0;
  PB_LOG(Debug, "gateway") << st.entry->cid << " synced";
  schedule_status(st);
  report_changes(st, true);
  if (outbox_) outbox_->kick();  // what waited for this socket goes now, at the outbox rate
}

void Gateway::handle_report_response(const std::string& payload) {
  std::string err;
  auto r = tuya::parse_response(payload, &err);
  if (!r) {
    PB_LOG(Warning, "gateway") << "unreadable properties/report response (" << err << ")";
    return;
  }
  // The outbox logs refusals (once per burst) and keeps what is to be retried.
  const Outbox::Verdict v = outbox_ ? outbox_->on_response(*r) : Outbox::Verdict::Ok;
  if (v == Outbox::Verdict::Resync) {
    auto it = sockets_.find(r->cid);
    if (it != sockets_.end() && it->second->synced) {
      it->second->synced = false;
      sync_socket(*it->second);
    }
  }
}

// Out now, or into the durable outbox when it cannot go now (outbox.hpp).
void Gateway::report_dp(SocketState& st, int dp, const std::string& value_json) {
  outbox_->report(st.entry->cid, dp, value_json, now_unix_ms());
  stats_.reports_sent++;
}

void Gateway::report_changes(SocketState& st, bool full) {
  // Also while the uplink is down or the socket not synced: the reports wait in the outbox.
  if (!outbox_ || stopping_) return;
  // What to send is ReportPolicy's decision (report_policy.hpp: bands, minimum interval, full).
  ReportInputs in;
  in.relay_on = st.relay_on;
  in.switch_enabled = st.switch_enabled;
  in.faults = st.faults;
  in.fault_detail = st.fault_detail;
  in.current_limit_ma = st.current_limit_ma;
  in.settings = st.settings;
  in.switch_count = st.switch_count;
  if (st.last && (st.last->flags & proto::kMeterOk)) {
    const auto& r = *st.last;
    in.meter = ReportInputs::Meter{.voltage_mv = r.voltage_mv,
                                   .current_ua = r.current_ua,
                                   .power_mw = r.power_mw,
                                   .apparent_mva = r.apparent_mva,
                                   .power_factor_e4 = r.power_factor_e4};
  }
  // Energy from the accounted history (never the raw, wrapping counter).
  const std::string& cid = st.entry->cid;
  if (st.last || accountant_.state(cid)) {
    const energy::LiveTotals::Totals& t = live_totals_.get(store_, cid, now_unix_ms());
    in.energy = ReportInputs::Energy{.total_mwh = accountant_.total_mwh(cid),
                                     .day_mwh = t.day_mwh,
                                     .month_mwh = t.month_mwh,
                                     .day_from_ms = t.day.from_ms,
                                     .month_from_ms = t.month.from_ms};
  }
  const std::vector<DpValue> values = report_values(in);
  const auto local_time = [this](int64_t ms) { return calendar_.local_time_string(ms); };
  for (const DpValue* v : st.report.decide(values, report_clock(), full))
    report_dp(st, v->dp, report_payload(*v, in, local_time));
}

void Gateway::start_retention_timer(std::chrono::seconds delay) {
  retention_timer_.expires_after(delay);
  retention_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    // The roster, and sockets since removed from it (known by their energy state), whose
    // readings would otherwise be kept forever.
    prune_cids_.clear();
    for (const SocketState* st : roster_order_) prune_cids_.push_back(st->entry->cid);
    try {
      for (const store::EnergyStateRow& s : store_.energy_states())
        if (sockets_.count(s.cid) == 0) prune_cids_.push_back(s.cid);
    } catch (const std::exception& ex) {
      PB_LOG(Warning, "gateway") << "retention: cannot list the sockets of the database: " << ex.what();
    }
    prune_step(0);
  });
}

// One short delete per loop turn, so commits and sessions never wait long behind the pruning.
void Gateway::prune_step(size_t index) {
  constexpr size_t kPruneBatch = 2000;
  if (stopping_) return;
  if (index >= prune_cids_.size()) {
    start_retention_timer(std::chrono::hours(1));
    return;
  }
  const int64_t cutoff = now_unix_ms() - int64_t{cfg_.retention.raw_days} * 86'400'000;
  size_t deleted = 0;
  try {
    deleted = store_.prune_readings(prune_cids_[index], cutoff, kPruneBatch);
  } catch (const std::exception& ex) {
    PB_LOG(Warning, "gateway") << "pruning old readings failed (retried in an hour): " << ex.what();
    start_retention_timer(std::chrono::hours(1));
    return;
  }
  if (deleted > 0) {
    PB_LOG(Debug, "gateway") << "pruned " << deleted << " readings of " << prune_cids_[index];
  }
  const size_t next = deleted == kPruneBatch ? index : index + 1;
  boost::asio::post(io_, [this, next] { prune_step(next); });
}

// devices/status in chunks of kStatusChunk sockets, synced ones only (the platform answers "device
// not exist" for a socket before its devices/sync).
void Gateway::send_status(const std::vector<SocketState*>& all) {
  if (!uplink_ || !uplink_->connected() || all.empty()) return;
  std::vector<SocketState*> sockets;
  for (SocketState* st : all)
    if (st->synced) sockets.push_back(st);
  for (size_t i = 0; i < sockets.size(); i += kStatusChunk) {
    std::vector<std::pair<std::string, bool>> part;
    for (size_t j = i; j < std::min(sockets.size(), i + kStatusChunk); ++j)
      part.emplace_back(sockets[j]->entry->cid, sockets[j]->online && !stopping_);
    uplink_->publish("devices/status",
                     tuya::make_status(part, now_unix_ms() / 1000, tuya::new_request_id()).dump(), {});
  }
}

void Gateway::heartbeat() {
  send_status(roster_order_);
}

void Gateway::start_heartbeat_timer() {
  heartbeat_timer_.expires_after(std::chrono::seconds(cfg_.heartbeat_s));
  heartbeat_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    heartbeat();
    start_heartbeat_timer();
  });
}

void Gateway::start_periodic_report_timer() {
  // Checked every second: each socket's full report falls due report.period_s after its last one,
  // and changes held back by report.min_interval_s go out once it ends even without a new reading.
  report_timer_.expires_after(1s);
  report_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    const auto now = report_clock();
    // Sockets synced together would all fall due in the same second of every period; twice the
    // even share per second spreads them over one period, and they stay spread.
    size_t full_budget = 2 * roster_order_.size() / static_cast<size_t>(cfg_.report.period_s) + 1;
    for (SocketState* st : roster_order_) {
      if (!st->synced || !st->online) continue;
      if (full_budget > 0 && st->report.full_due(now)) {
        --full_budget;
        report_changes(*st, true);
      } else if (st->report.held_due(now)) {
        report_changes(*st, false);
      }
    }
    start_periodic_report_timer();
  });
}

std::chrono::milliseconds Gateway::report_clock() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch());
}

// ---------------------------------------------------------------------------------------------
// Commands: one queue per socket, one command in flight, answers in arrival order

void Gateway::answer_command(const std::string& cid, const std::string& request_id, int code,
                             const std::string& why, std::optional<LocalResult::Status> local_status) {
  if (code == tuya::code::kSuccess)
    PB_LOG(Info, "gateway") << "command " << request_id << " for " << cid << " done";
  else
    PB_LOG(Warning, "gateway") << "command " << request_id << " for " << (cid.empty() ? "?" : cid)
                               << " answered " << code << " (" << tuya::code_message(code) << "): " << why;
  stats_.commands_answered++;
  if (auto w = local_waiters_.find(request_id); w != local_waiters_.end()) {
    auto done = std::move(w->second);
    local_waiters_.erase(w);
    queue_gateway_event(
        cid, "command", code,
        json{{"request_id", request_id}, {"code", code}, {"why", why}, {"from", "local"}}.dump());
    LocalResult r;
    r.why = why;
    if (local_status)
      r.status = *local_status;
    else if (code == tuya::code::kSuccess)
      r.status = LocalResult::Status::Confirmed;
    else if (code == tuya::code::kUnsupported)
      r.status = LocalResult::Status::Unsupported;
    else if (code == tuya::code::kOffline)
      r.status = why == kNoConfirmInTime ? LocalResult::Status::Timeout : LocalResult::Status::Offline;
    else
      r.status = LocalResult::Status::Rejected;
    if (auto it = sockets_.find(cid); it != sockets_.end() && code == tuya::code::kSuccess)
      r.relay_on = it->second->relay_on;
    // Posted: a command may be answered inside local_command() (queue empty, rejected at once).
    boost::asio::post(io_, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
    return;
  }
  if (sockets_.count(cid))
    queue_gateway_event(cid, "command", code,
                        json{{"request_id", request_id}, {"code", code}, {"why", why}}.dump());
  if (!uplink_ || !uplink_->connected()) return;
  uplink_->publish("commands/response",
                   tuya::make_command_response(cid, request_id, code, now_unix_ms() / 1000).dump(), {});
}

void Gateway::answer(const SocketState& st, const PendingCommand& pc, int code, const std::string& why,
                     std::optional<LocalResult::Status> local_status) {
  if (pc.from == PendingCommand::From::Gateway) {  // nobody waits for it
    if (code == tuya::code::kSuccess)
      PB_LOG(Info, "gateway") << st.entry->cid << ": setting applied (command kind "
                              << static_cast<int>(pc.command.kind) << ", value " << pc.command.value << ")";
    else
      PB_LOG(Warning, "gateway") << st.entry->cid << ": applying a setting (command kind "
                                 << static_cast<int>(pc.command.kind) << ") failed: " << why;
    return;
  }
  answer_command(st.entry->cid, pc.request_id, code, why, local_status);
}

void Gateway::handle_command(const std::string& payload) {
  auto parsed = tuya::parse_command(payload);
  if (!parsed.command) {
    // Nothing to queue: without a readable DP and value it cannot wait for its turn.
    if (parsed.request_id.empty()) {
      PB_LOG(Warning, "gateway") << "ignoring a command without a readable request_id (" << parsed.error
                                 << "): " << payload.substr(0, 200);
      return;
    }
    answer_command(parsed.cid, parsed.request_id, parsed.error_code, parsed.error);
    return;
  }
  const auto& cmd = *parsed.command;
  auto it = sockets_.find(cmd.cid);
  if (it == sockets_.end()) {
    answer_command(cmd.cid, cmd.request_id, tuya::code::kNoDevice, "cid is not in the roster");
    return;
  }
  PendingCommand pc;
  pc.from = PendingCommand::From::Cloud;
  pc.request_id = cmd.request_id;
  pc.dp = cmd.dp_id;
  pc.value = cmd.value;
  enqueue_command(*it->second, std::move(pc));
}

void Gateway::enqueue_command(SocketState& st, PendingCommand pc) {
  if (st.commands.size() >= kMaxQueuedCommands) {
    // 500: the gateway cannot take more for this socket; the value and the device are not at fault.
    answer(st, pc, tuya::code::kSystem,
           "command queue full (" + std::to_string(kMaxQueuedCommands) + " commands waiting for the socket)",
           LocalResult::Status::Rejected);
    return;
  }
  st.commands.push_back(std::move(pc));
  pump_commands(st);
}

void Gateway::pump_commands(SocketState& st) {
  if (st.pumping) return;  // answering may queue more (re-entry); the loop below takes them
  st.pumping = true;
  while (!st.commands.empty() && st.commands.front().cmd_id == 0) {
    PendingCommand& pc = st.commands.front();
    if (dispatch_command(st, pc)) break;  // in flight: the result or the timeout continues
    st.commands.pop_front();              // answered without the socket
  }
  st.pumping = false;
}

// Validated now, not when queued: an earlier command in the queue may have changed the state
// (DP 17 before DP 1), and the socket may have gone meanwhile.
bool Gateway::dispatch_command(SocketState& st, PendingCommand& pc) {
  const bool online = st.session != nullptr;
  const uint32_t caps = online ? st.session->hello().capabilities : 0;
  switch (pc.from) {
    case PendingCommand::From::Gateway:
      if (!online) return false;
      send_command(st, pc, pc.command);
      return true;

    case PendingCommand::From::Cloud: {
      // Validated against the DP table and the firmware's limits (dp_map.cpp, docs/dp-mapping.md).
      DpCommandPlan plan =
          plan_dp_command(pc.dp, pc.value,
                          DpCommandContext{.online = online,
                                           .switch_enabled = st.switching_allowed(),
                                           .switch_lock_in_socket = (caps & proto::kCapSwitchLock) != 0});
      switch (plan.action) {
        case DpCommandPlan::Action::Reject:
          answer(st, pc, plan.code, plan.why);
          return false;
        case DpCommandPlan::Action::StatusQuery:
          report_changes(st, true);
          answer(st, pc, tuya::code::kSuccess, "full report sent");
          return false;
        case DpCommandPlan::Action::SwitchEnabled:  // firmware without kCapSwitchLock: gateway state
          st.switch_enabled = plan.enable;
          st.desired_switch_enabled = plan.enable;
          PB_LOG(Info, "gateway") << st.entry->cid << ": switching " << (plan.enable ? "enabled" : "disabled")
                                  << " (gateway-side: the socket firmware has no switch lock)";
          report_changes(st, false);
          answer(st, pc, tuya::code::kSuccess, plan.enable ? "switching enabled" : "switching disabled");
          return false;
        case DpCommandPlan::Action::Socket:
          send_command(st, pc, plan.command);
          return true;
      }
      return false;
    }

    case PendingCommand::From::Local: {
      if (!online) {
        answer(st, pc, tuya::code::kOffline, "socket is offline", LocalResult::Status::Offline);
        return false;
      }
      proto::Command out{};
      if (pc.kind == "relay") {
        if (!st.switching_allowed()) {
          answer(st, pc, tuya::code::kUnsupported, kSwitchingDisabled, LocalResult::Status::Rejected);
          return false;
        }
        int64_t value = pc.local_value;
        if (value == -1) {
          if (!st.relay_on) {
            answer(st, pc, tuya::code::kUnsupported, "relay state not known yet; say on or off",
                   LocalResult::Status::Rejected);
            return false;
          }
          value = *st.relay_on ? 0 : 1;
        }
        out.kind = proto::CommandKind::SetRelay;
        out.value = static_cast<int32_t>(value);
      } else if (const auto k = calibration_kind(pc.kind)) {
        if (auto why = calibration_problem(st.relay_on, st.last, pc.kind, pc.local_value)) {
          answer(st, pc, tuya::code::kUnsupported, *why, LocalResult::Status::Rejected);
          return false;
        }
        out.kind = *k;
        out.value = static_cast<int32_t>(pc.local_value);
      } else {  // countdown
        if ((caps & proto::kCapCountdown) == 0) {
          answer(st, pc, tuya::code::kUnsupported, "the socket firmware does not support countdown",
                 LocalResult::Status::Unsupported);
          return false;
        }
        if (pc.local_value > 0 && !st.switching_allowed()) {
          answer(st, pc, tuya::code::kUnsupported, kSwitchingDisabled, LocalResult::Status::Rejected);
          return false;
        }
        out.kind = proto::CommandKind::SetCountdown;
        out.value = static_cast<int32_t>(pc.local_value);
      }
      send_command(st, pc, out);
      return true;
    }
  }
  return false;
}

void Gateway::send_command(SocketState& st, PendingCommand& pc, proto::Command out) {
  pc.cmd_id = next_cmd_id_++;
  if (next_cmd_id_ == 0) next_cmd_id_ = 1;
  out.cmd_id = pc.cmd_id;
  pc.command = out;
  const uint32_t id = pc.cmd_id;
  // A socket that never confirms still gets its command answered, and the next one goes on. The
  // time counts from sending: a command waiting behind others is not the socket's fault.
  st.command_timer->expires_after(std::chrono::seconds(cfg_.uplink.command_timeout_s));
  st.command_timer->async_wait([this, &st, id](const boost::system::error_code& ec) {
    if (ec || st.commands.empty() || st.commands.front().cmd_id != id) return;
    finish_command(st, tuya::code::kOffline, kNoConfirmInTime, LocalResult::Status::Timeout);
  });
  if (!st.commands.empty() && &st.commands.front() != &pc)
    PB_LOG(Error, "gateway") << st.entry->cid << ": sending a command that is not at the front";
  PB_LOG(Debug, "gateway") << st.entry->cid << ": command " << id << " (kind " << static_cast<int>(out.kind)
                           << ", value " << out.value << ") sent, " << st.commands.size() - 1 << " waiting";
  proto::Message m{};
  m.type = proto::MsgType::Command;
  m.command = out;
  st.session->send(m);
}

void Gateway::finish_command(SocketState& st, int code, const std::string& why,
                             std::optional<LocalResult::Status> local_status) {
  if (st.commands.empty()) return;
  st.command_timer->cancel();
  PendingCommand pc = std::move(st.commands.front());
  st.commands.pop_front();
  answer(st, pc, code, why, local_status);
  pump_commands(st);
}

// Socket gone or daemon stopping: everything in flight and waiting is answered, in order.
void Gateway::fail_all_commands(SocketState& st, const std::string& why) {
  st.command_timer->cancel();
  auto commands = std::move(st.commands);
  st.commands.clear();
  for (const PendingCommand& pc : commands)
    answer(st, pc, tuya::code::kOffline,
           pc.cmd_id != 0 || stopping_ ? why : "socket went offline before its turn",
           stopping_ ? std::optional(LocalResult::Status::ShuttingDown) : std::nullopt);
}

void Gateway::on_command_result(SocketState& st, const proto::CommandResult& r) {
  if (st.commands.empty() || st.commands.front().cmd_id != r.cmd_id) {
    // Late (answered already after the timeout, or from before a reconnect) or unknown: cmd_ids are
    // never reused, so it cannot be taken for the command in flight. Readings carry the state.
    PB_LOG(Info, "gateway") << st.entry->cid << ": ignoring the result of command " << r.cmd_id
                            << " (no longer in flight)";
    return;
  }
  st.relay_on = r.relay_on != 0;
  const PendingCommand& pc = st.commands.front();
  int code = tuya::code::kSuccess;
  std::string why = "confirmed by the socket";
  std::optional<LocalResult::Status> local_status;
  switch (r.status) {
    case proto::CommandStatus::Ok:
      break;
    case proto::CommandStatus::Unsupported:
      code = tuya::code::kUnsupported;
      why = "socket does not support it";
      break;
    case proto::CommandStatus::InvalidValue:
      code = tuya::code::kRange;
      why = "socket rejected the value";
      break;
    case proto::CommandStatus::Refused:
      if (pc.command.kind == proto::CommandKind::SetRelay ||
          pc.command.kind == proto::CommandKind::SetCountdown) {
        // The socket's switch lock (DP 17), which we did not know yet.
        code = tuya::code::kUnsupported;
        why = std::string(kSwitchingDisabled) + " on the socket";
        local_status = LocalResult::Status::Rejected;
        st.switch_enabled = false;
      } else if (pc.command.kind == proto::CommandKind::CalibrateVoltage ||
                 pc.command.kind == proto::CommandKind::CalibrateCurrent ||
                 pc.command.kind == proto::CommandKind::CalibratePower) {
        code = tuya::code::kSystem;
        why =
            "the socket refused: no fresh meter frame with a load (relay off, nothing plugged in?), or the "
            "result is outside the constants' range 0.01..100 (a wrong value or unit?)";
      } else {
        code = tuya::code::kSystem;
        why = "socket refused the command";
      }
      break;
  }
  if (code == tuya::code::kSuccess) {
    if (pc.command.kind == proto::CommandKind::SetCurrentLimit) {
      st.current_limit_ma = static_cast<uint32_t>(pc.command.value);
      st.desired_current_limit_ma = st.current_limit_ma;  // a cloud DP 6 holds until the daemon restarts
    }
    if (pc.command.kind == proto::CommandKind::SetPowerLimit)
      st.desired_power_limit_w = static_cast<uint32_t>(pc.command.value);
    apply_confirmed(st.settings, pc.command);
    if (pc.command.kind == proto::CommandKind::SetSwitchEnabled) {
      st.switch_enabled = pc.command.value != 0;
      st.desired_switch_enabled = st.switch_enabled;
      st.switch_confirmed_ms = now_unix_ms();
    }
  }
  // Report the confirmed state before answering, so the cloud never sees a stale switch.
  report_changes(st, false);
  finish_command(st, code, why, local_status);
}

const char* to_string(LocalResult::Status s) {
  switch (s) {
    case LocalResult::Status::Confirmed:
      return "confirmed";
    case LocalResult::Status::UnknownCid:
      return "unknown_cid";
    case LocalResult::Status::Offline:
      return "offline";
    case LocalResult::Status::Timeout:
      return "timeout";
    case LocalResult::Status::Unsupported:
      return "unsupported";
    case LocalResult::Status::Rejected:
      return "rejected";
    case LocalResult::Status::BadRequest:
      return "bad_request";
    case LocalResult::Status::ShuttingDown:
      return "shutting_down";
  }
  return "unknown";
}

std::vector<LiveSocket> Gateway::live_status() const {
  std::vector<LiveSocket> out;
  out.reserve(roster_order_.size());
  for (const SocketState* st : roster_order_) {
    LiveSocket l;
    l.cid = st->entry->cid;
    l.name = st->entry->name;
    l.online = st->online;
    l.relay_on = st->relay_on;
    l.last = st->last;
    l.countdown_ends_ms = st->countdown_ends_ms;
    out.push_back(std::move(l));
  }
  return out;
}

void Gateway::local_command(const std::string& cid, const std::string& kind, int64_t value,
                            std::function<void(LocalResult)> done) {
  // Answers always run later on the loop, never inside this call.
  auto reply = [this, &done](LocalResult::Status status, std::string why) {
    boost::asio::post(io_, [done = std::move(done), status, why = std::move(why)] {
      done(LocalResult{status, std::nullopt, why});
    });
  };
  if (stopping_) return reply(LocalResult::Status::ShuttingDown, "the daemon is shutting down");
  auto it = sockets_.find(cid);
  if (it == sockets_.end())
    return reply(LocalResult::Status::UnknownCid, "cid '" + cid + "' is not in the roster");
  // What does not depend on the socket's state is checked now; the rest when its turn comes.
  if (kind == "relay") {
    if (value != 0 && value != 1 && value != -1)
      return reply(LocalResult::Status::BadRequest, "relay wants on, off or toggle");
  } else if (kind == "countdown") {
    if (value < 0 || value > 86400)
      return reply(LocalResult::Status::BadRequest, "countdown wants 0..86400 s");
  } else if (calibration_kind(kind)) {
    if (auto why = calibration_range_problem(kind, value))
      return reply(LocalResult::Status::BadRequest, *why);
  } else {
    return reply(LocalResult::Status::BadRequest, "unknown command kind '" + kind + "'");
  }

  PendingCommand pc;
  pc.from = PendingCommand::From::Local;
  pc.request_id = kLocalPrefix + std::to_string(next_local_id_++);
  pc.kind = kind;
  pc.local_value = value;
  // dp 0: not a Tuya DP (the cloud's countdown mapping comes with the full DP table).
  pc.dp = kind == "relay" ? 1 : 0;
  local_waiters_.emplace(pc.request_id, std::move(done));
  PB_LOG(Info, "gateway") << "local command " << pc.request_id << ": " << cid << " " << kind << " " << value;
  enqueue_command(*it->second, std::move(pc));
}

void Gateway::on_uplink_message(const std::string& suffix, const std::string& payload) {
  if (stopping_) return;
  if (suffix == "commands")
    handle_command(payload);
  else if (suffix == "devices/sync/response")
    handle_sync_response(payload);
  else if (suffix == "properties/report/response")
    handle_report_response(payload);
  else
    PB_LOG(Debug, "gateway") << "ignoring message on " << suffix;
}

// ---------------------------------------------------------------------------------------------

void Gateway::shutdown(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  heartbeat_timer_.cancel();
  report_timer_.cancel();
  status_timer_.cancel();
  retention_timer_.cancel();
  for (SocketState* st : roster_order_) st->sync_timer->cancel();
  // Every command in flight or waiting is answered (2001 to the cloud, shutting_down locally); their
  // "command" events go into the last flush.
  for (SocketState* st : roster_order_) fail_all_commands(*st, "the gateway is shutting down");
  if (server_) server_->stop();
  flush();
  auto waiters = std::move(local_waiters_);
  local_waiters_.clear();
  for (auto& [rid, w] : waiters)
    w(LocalResult{LocalResult::Status::ShuttingDown, std::nullopt, "the daemon is shutting down"});

  if (!uplink_ || !uplink_->connected()) {
    boost::asio::post(io_, std::move(done));
    return;
  }
  // Tell the cloud every socket is offline, and finish once the broker acked it (or gave up).
  auto remaining = std::make_shared<size_t>((roster_order_.size() + kStatusChunk - 1) / kStatusChunk);
  auto finish = std::make_shared<std::function<void()>>(std::move(done));
  if (*remaining == 0) {
    boost::asio::post(io_, *finish);
    return;
  }
  for (size_t i = 0; i < roster_order_.size(); i += kStatusChunk) {
    std::vector<std::pair<std::string, bool>> part;
    for (size_t j = i; j < std::min(roster_order_.size(), i + kStatusChunk); ++j)
      part.emplace_back(roster_order_[j]->entry->cid, false);
    uplink_->publish("devices/status",
                     tuya::make_status(part, now_unix_ms() / 1000, tuya::new_request_id()).dump(),
                     [remaining, finish](bool) {
                       if (--*remaining == 0 && *finish) {
                         auto f = std::move(*finish);
                         *finish = nullptr;
                         f();
                       }
                     });
  }
}

}  // namespace pb::gateway
