#include "cloud_sync.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <set>
#include <utility>

#include "plugbridge/common/log.hpp"
#include "plugbridge/gateway/report_policy.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::gateway {

namespace proto = pbfw::proto;
using namespace std::chrono_literals;

CloudSync::CloudSync(boost::asio::io_context& io, const config::Config& cfg, store::Store& store,
                     SocketRegistry& sockets, UplinkPort* uplink, EnergyView energy, Stats& stats,
                     const Clocks& clocks)
    : io_(io),
      cfg_(cfg),
      store_(store),
      sockets_(sockets),
      uplink_(uplink),
      energy_(energy),
      stats_(stats),
      clocks_(clocks),
      heartbeat_timer_(io),
      report_timer_(io),
      status_timer_(io),
      deferred_timer_(io) {
  if (!uplink_) return;
  OutboxOptions oo;
  oo.rate_per_s = cfg_.uplink.outbox_rate_per_s;
  outbox_ = std::make_unique<Outbox>(io_, store_, *uplink_, oo, [this](const std::string& cid) {
    if (stopping_ || !uplink_->connected()) return false;
    const SocketState* st = sockets_.find(cid);
    return st && st->synced;
  });
  std::set<std::string> roster;
  for (const SocketState* st : sockets_.roster()) roster.insert(st->entry.cid);
  outbox_->load(roster);
}

void CloudSync::start() {
  start_heartbeat_timer();
  start_report_timer();
}

void CloudSync::stop() {
  stopping_ = true;
  heartbeat_timer_.cancel();
  report_timer_.cancel();
  status_timer_.cancel();
  deferred_timer_.cancel();
  for (SocketState* st : sockets_.roster()) st->sync_timer->cancel();
}

void CloudSync::set_clock_trusted(bool trusted) {
  if (trusted == clock_trusted_) return;
  clock_trusted_ = trusted;
  if (trusted && uplink_ && uplink_->connected() && !up_ && !stopping_) on_connected();
}

void CloudSync::on_connected() {
  if (!clock_trusted_) {
    // Every message to the edge carries a time; a provisional one would be wrong by hours or years.
    PB_LOG(Warning, "gateway") << "uplink connected; syncing once the clock is trustworthy";
    return;
  }
  const auto& roster = sockets_.roster();
  PB_LOG(Info, "gateway") << "uplink connected: syncing " << roster.size() << " sockets"
                          << (outbox_ && outbox_->queued() > 0
                                  ? ", then sending the " + std::to_string(outbox_->queued()) +
                                        " reports waiting in the outbox"
                                  : std::string());
  up_ = true;
  pending_syncs_.clear();
  for (SocketState* st : roster) {
    st->synced = false;
    st->sync_attempts = 0;
    st->report.forget();
    sync(*st);
  }
  // devices/status of each socket follows its sync (the platform knows no socket before it).
}

void CloudSync::on_disconnected(const std::string& reason) {
  // Logged when the link goes; each failed reconnect attempt is the uplink's to log.
  if (up_)
    PB_LOG(Warning, "gateway") << "uplink down: " << reason
                               << (outbox_ ? "; reports wait in the outbox until it is back" : "");
  up_ = false;
  pending_syncs_.clear();
  forget_deferred();  // the syncs after the reconnect report every socket in full
  for (SocketState* st : sockets_.roster()) {
    st->synced = false;
    st->sync_timer->cancel();
  }
}

void CloudSync::sync(SocketState& st) {
  if (!uplink_ || !uplink_->connected() || stopping_) return;
  tuya::SyncParams p;
  p.cid = st.entry.cid;
  p.product_id = st.entry.product_id;
  p.name = st.entry.name;
  p.location = st.entry.location;
  if (st.link) {
    auto remote = st.link->remote();
    p.ip = remote.substr(0, remote.rfind(':'));
  }
  std::string rid = tuya::new_request_id();
  pending_syncs_[rid] = &st;
  st.sync_attempts++;
  uplink_->publish("devices/sync", tuya::make_sync(p, clocks_.unix_ms() / 1000, rid).dump(), {});
  // A lost response counts as a failure.
  st.sync_timer->expires_after(kSyncTimeout);
  st.sync_timer->async_wait([this, &st, rid](const boost::system::error_code& ec) {
    if (ec || st.synced) return;
    if (pending_syncs_.erase(rid) == 0) return;
    PB_LOG(Warning, "gateway") << st.entry.cid << ": no devices/sync response within "
                               << std::chrono::duration_cast<std::chrono::seconds>(kSyncTimeout).count()
                               << " s, retrying";
    schedule_sync_retry(st);
  });
}

void CloudSync::schedule_sync_retry(SocketState& st) {
  int exp = std::min(st.sync_attempts, 6);
  auto delay = std::chrono::seconds(1 << exp);  // 2, 4 ... 64 s
  st.sync_timer->expires_after(delay);
  st.sync_timer->async_wait([this, &st](const boost::system::error_code& ec) {
    if (ec || st.synced) return;
    sync(st);
  });
}

void CloudSync::on_sync_response(const std::string& payload) {
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
    PB_LOG(Error, "gateway") << st.entry.cid << ": devices/sync refused with code " << r->code << " ("
                             << tuya::code_meaning(r->code) << "); retrying";
    schedule_sync_retry(st);
    return;
  }
  st.sync_timer->cancel();
  st.synced = true;
  st.sync_attempts = 0;
  PB_LOG(Debug, "gateway") << st.entry.cid << " synced";
  schedule_status(st);
  report(st, true);
  if (outbox_) outbox_->kick();  // what waited for this socket goes now, at the outbox rate
}

void CloudSync::on_report_response(const std::string& payload) {
  std::string err;
  auto r = tuya::parse_response(payload, &err);
  if (!r) {
    PB_LOG(Warning, "gateway") << "unreadable properties/report response (" << err << ")";
    return;
  }
  // The outbox logs refusals (once per burst) and keeps what is to be retried.
  const Outbox::Verdict v = outbox_ ? outbox_->on_response(*r) : Outbox::Verdict::Ok;
  if (v == Outbox::Verdict::Resync) {
    SocketState* st = sockets_.find(r->cid);
    if (st && st->synced) {
      st->synced = false;
      sync(*st);
    }
  }
}

void CloudSync::set_online(SocketState& st, bool online) {
  if (st.online == online) return;
  st.online = online;
  if (stopping_) return;
  schedule_status(st);
}

void CloudSync::schedule_status(SocketState& st) {
  st.status_dirty = true;
  if (status_scheduled_) return;
  status_scheduled_ = true;
  status_timer_.expires_after(kStatusDebounce);
  status_timer_.async_wait([this](const boost::system::error_code& ec) {
    status_scheduled_ = false;
    if (ec) return;
    std::vector<SocketState*> dirty;
    for (SocketState* s : sockets_.roster())
      if (s->status_dirty) {
        s->status_dirty = false;
        dirty.push_back(s);
      }
    send_status(dirty);
  });
}

// devices/status in chunks of kStatusChunk sockets, synced ones only (the platform answers "device
// not exist" for a socket before its devices/sync).
void CloudSync::send_status(const std::vector<SocketState*>& all) {
  if (!uplink_ || !uplink_->connected() || all.empty()) return;
  std::vector<SocketState*> synced;
  for (SocketState* st : all)
    if (st->synced) synced.push_back(st);
  for (size_t i = 0; i < synced.size(); i += kStatusChunk) {
    std::vector<std::pair<std::string, bool>> part;
    for (size_t j = i; j < std::min(synced.size(), i + kStatusChunk); ++j)
      part.emplace_back(synced[j]->entry.cid, synced[j]->online && !stopping_);
    uplink_->publish("devices/status",
                     tuya::make_status(part, clocks_.unix_ms() / 1000, tuya::new_request_id()).dump(), {});
  }
}

void CloudSync::heartbeat() {
  send_status(sockets_.roster());
}

void CloudSync::resync(SocketState& st) {
  st.synced = false;
  st.sync_attempts = 0;
  st.sync_timer->cancel();
  st.report.forget();
  if (up_) sync(st);
}

void CloudSync::retiring(SocketState& st) {
  st.sync_timer->cancel();
  std::erase_if(pending_syncs_, [&](const auto& kv) { return kv.second == &st; });
  st.status_dirty = false;
  if (st.synced && !stopping_) {
    st.online = false;
    send_status({&st});
  }
  st.synced = false;
}

void CloudSync::restart_heartbeat() {
  if (stopping_) return;
  heartbeat_timer_.cancel();
  start_heartbeat_timer();
}

void CloudSync::start_heartbeat_timer() {
  heartbeat_timer_.expires_after(std::chrono::seconds(cfg_.heartbeat_s));
  heartbeat_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    heartbeat();
    start_heartbeat_timer();
  });
}

void CloudSync::start_report_timer() {
  report_timer_.expires_after(1s);
  report_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    report_tick(clocks_.steady());
    start_report_timer();
  });
}

// Checked every second: each socket's full report falls due report.period_s after its last one,
// and changes held back by report.min_interval_s go out once it ends even without a new reading.
void CloudSync::report_tick(std::chrono::milliseconds now) {
  const auto& roster = sockets_.roster();
  // Sockets synced together would all fall due in the same second of every period; twice the
  // even share per second spreads them over one period, and they stay spread.
  size_t full_budget = 2 * roster.size() / static_cast<size_t>(cfg_.report.period_s) + 1;
  for (SocketState* st : roster) {
    if (!st->synced || !st->online) continue;
    if (full_budget > 0 && st->report.full_due(now)) {
      --full_budget;
      report(*st, true);
    } else if (st->report.held_due(now)) {
      report(*st, false);
    }
  }
}

void CloudSync::report(SocketState& st, bool full) {
  // Also while the uplink is down or the socket not synced: the reports wait in the outbox. Not
  // while the clock is not trustworthy (their t); the sync that follows trust reports in full.
  if (!outbox_ || stopping_ || !clock_trusted_) return;
  // A long uplink backlog: the relay and the faults go now, the rest when there is room again
  // (decided then, from the values of then).
  const bool hold = st.report_deferred || (uplink_ && uplink_->backlog() >= kBacklogHigh);
  if (hold) {
    defer(st, full);
    full = false;
  }
  // What to send is ReportPolicy's decision (report_policy.hpp: bands, minimum interval, full).
  ReportInputs in;
  in.relay_on = st.relay_on;
  in.switch_enabled = st.switch_enabled;
  in.faults = st.faults;
  in.fault_detail = st.fault_detail;
  in.current_limit_ma = st.current_limit_ma;
  in.settings = st.settings;
  in.switch_count = st.switch_count;
  if (st.last) {
    // Only what the meter measured: a quantity whose valid flag is clear, or all three while the
    // meter sees no mains, is left out (report_values), never reported as 0.
    const auto& r = *st.last;
    in.meter =
        meter_inputs(r.flags, r.voltage_mv, r.current_ua, r.power_mw, r.apparent_mva, r.power_factor_e4);
    in.no_mains = proto::no_mains(r.flags);
  }
  // Energy from the accounted history (never the raw, wrapping counter); not needed while held.
  const std::string& cid = st.entry.cid;
  const int64_t now_ms = clocks_.unix_ms();
  if (!hold && (st.last || energy_.accountant.state(cid))) {
    const energy::LiveTotals::Totals& t = energy_.live_totals.get(store_, cid, now_ms);
    in.energy = ReportInputs::Energy{.total_mwh = energy_.accountant.total_mwh(cid),
                                     .day_mwh = t.day_mwh,
                                     .month_mwh = t.month_mwh,
                                     .day_from_ms = t.day.from_ms,
                                     .month_from_ms = t.month.from_ms};
  }
  std::vector<DpValue> values = report_values(in);
  if (hold) std::erase_if(values, [](const DpValue& v) { return v.rule != ReportRule::Switch; });
  const auto local_time = [this](int64_t ms) { return energy_.calendar.local_time_string(ms); };
  for (const DpValue* v : st.report.decide(values, clocks_.steady(), full)) {
    // Out now, or into the durable outbox when it cannot go now (outbox.hpp).
    outbox_->report(cid, v->dp, report_payload(*v, in, local_time), clocks_.unix_ms());
    stats_.reports_sent++;
  }
}

void CloudSync::defer(SocketState& st, bool full) {
  st.deferred_full = st.deferred_full || full;
  if (!st.report_deferred) {
    st.report_deferred = true;
    deferred_.push_back(st.entry.cid);
  }
  arm_deferred();
}

void CloudSync::arm_deferred() {
  if (deferred_armed_ || deferred_.empty() || stopping_) return;
  deferred_armed_ = true;
  deferred_timer_.expires_after(kDeferredTick);
  deferred_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // stop() or destruction
    deferred_armed_ = false;
    send_deferred();
  });
}

// The waiting sockets' reports, oldest first, while the backlog stays below kBacklogHigh; polled
// every kDeferredTick while any wait (Paho's acknowledgements come on its own thread).
void CloudSync::send_deferred() {
  if (stopping_ || !uplink_) return;
  if (uplink_->backlog() < kBacklogLow) {
    while (!deferred_.empty() && uplink_->backlog() < kBacklogHigh) {
      SocketState* st = sockets_.find(deferred_.front());
      deferred_.pop_front();
      if (st == nullptr || !st->report_deferred) continue;  // left the roster meanwhile
      st->report_deferred = false;
      report(*st, std::exchange(st->deferred_full, false));
    }
  }
  arm_deferred();
}

void CloudSync::forget_deferred() {
  for (const std::string& cid : deferred_)
    if (SocketState* st = sockets_.find(cid)) st->report_deferred = st->deferred_full = false;
  deferred_.clear();
}

void CloudSync::publish_all_offline(std::function<void()> done) {
  if (!uplink_ || !uplink_->connected()) {
    boost::asio::post(io_, std::move(done));
    return;
  }
  const auto& roster = sockets_.roster();
  auto remaining = std::make_shared<size_t>((roster.size() + kStatusChunk - 1) / kStatusChunk);
  auto finish = std::make_shared<std::function<void()>>(std::move(done));
  if (*remaining == 0) {
    boost::asio::post(io_, *finish);
    return;
  }
  for (size_t i = 0; i < roster.size(); i += kStatusChunk) {
    std::vector<std::pair<std::string, bool>> part;
    for (size_t j = i; j < std::min(roster.size(), i + kStatusChunk); ++j)
      part.emplace_back(roster[j]->entry.cid, false);
    uplink_->publish("devices/status",
                     tuya::make_status(part, clocks_.unix_ms() / 1000, tuya::new_request_id()).dump(),
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
