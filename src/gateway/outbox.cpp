#include "plugbridge/gateway/outbox.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cmath>
#include <nlohmann/json.hpp>

#include "plugbridge/common/log.hpp"

namespace pb::gateway {

namespace {

constexpr auto kWriteRetry = std::chrono::seconds(5);  // after a failed database write

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}
}  // namespace

bool is_event_dp(int dp) {
  switch (dp) {
    case 1:   // switch
    case 17:  // switch_enabled
    case 19:  // fault
    case 20:  // alarm_level
    case 21:  // device_alarm
    case 57:  // switch_state
      return true;
    default:
      return false;
  }
}

// properties/report of one DP to the Tuya edge.
class Outbox::TuyaSink final : public ReportSink {
 public:
  explicit TuyaSink(UplinkPort& uplink) : uplink_(uplink) {}
  void send(const std::string& cid, int dp, const nlohmann::json& value, int64_t t_ms,
            const std::string& request_id, std::function<void(bool)> done) override {
    uplink_.publish(std::string(tuya::suffix::kReport),
                    tuya::make_report(cid, dp, value, t_ms / 1000, request_id).dump(), std::move(done));
  }

 private:
  UplinkPort& uplink_;
};

Outbox::Outbox(boost::asio::io_context& io, store::Store& store, UplinkPort& uplink, OutboxOptions options,
               Ready ready)
    : Outbox(io, store, std::make_unique<TuyaSink>(uplink), nullptr, std::move(options), std::move(ready)) {}

Outbox::Outbox(boost::asio::io_context& io, store::Store& store, ReportSink& sink, OutboxOptions options,
               Ready ready)
    : Outbox(io, store, nullptr, &sink, std::move(options), std::move(ready)) {}

Outbox::Outbox(boost::asio::io_context& io, store::Store& store, std::unique_ptr<TuyaSink> tuya,
               ReportSink* sink, OutboxOptions options, Ready ready)
    : io_(io),
      store_(store),
      tuya_sink_(std::move(tuya)),
      sink_(sink ? *sink : *tuya_sink_),
      opt_(options),
      ready_(std::move(ready)),
      log_(opt_.uplink.empty() ? "outbox" : "outbox " + opt_.uplink),
      drain_timer_(io),
      resume_timer_(io),
      write_timer_(io),
      log_timer_(io) {
  if (opt_.rate_per_s <= 0) opt_.rate_per_s = 1;
  if (opt_.tick.count() <= 0) opt_.tick = std::chrono::milliseconds(1);
}

Outbox::~Outbox() {
  closing_ = true;
  alive_.reset();
  // Not acknowledged: it goes again after the restart (possibly a duplicate; never lost).
  auto flying = std::move(in_flight_);
  in_flight_.clear();
  for (auto& [ord, f] : flying) requeue(std::move(f.msg));
  try {
    write_now();
  } catch (const std::exception& ex) {
    PB_LOG(Error, log_) << "could not store the outbox at exit: " << ex.what();
  }
}

const std::string& Outbox::Latest::text() const {
  static const std::string kNone;
  return value ? *value : kNone;
}

void Outbox::Latest::set_text(const std::string& v) {
  if (v.empty())
    value.reset();
  else if (value)
    *value = v;
  else
    value = std::make_unique<std::string>(v);
}

Outbox::Latest& Outbox::latest(const std::string& cid, int dp) {
  std::vector<Latest>& dps = latest_[cid];
  for (Latest& l : dps)
    if (l.dp == dp) return l;
  if (dps.size() == dps.capacity()) dps.reserve(dps.size() + 4);  // a few at a time: no doubling slack
  Latest& l = dps.emplace_back();
  l.dp = dp;
  return l;
}

Outbox::Latest* Outbox::find_latest(const std::string& cid, int dp) {
  const auto it = latest_.find(cid);
  if (it == latest_.end()) return nullptr;
  for (Latest& l : it->second)
    if (l.dp == dp) return &l;
  return nullptr;
}

void Outbox::load(const std::set<std::string>& roster) {
  size_t stale = 0, loaded = 0;
  std::set<std::string> cids;
  for (store::OutboxRow& r : store_.outbox_rows(opt_.uplink)) {
    in_db_.insert(r.ord);
    if (roster.count(r.cid) == 0) {
      db_remove(r.ord);
      ++stale;
      continue;
    }
    Latest& l = latest(r.cid, r.dp);
    if (r.ord > l.ord) {
      l.ord = r.ord;
      l.t_ms = r.t_ms;
      l.set_text(is_event_dp(r.dp) ? r.value : std::string());
    }
    cids.insert(r.cid);
    ++loaded;
    enqueue(Msg{std::move(r.cid), r.dp, r.event, r.ord, r.t_ms, std::move(r.value)});
  }
  if (loaded > 0)
    PB_LOG(Info, log_) << loaded << " reports of " << cids.size()
                       << " sockets wait from before the restart; they go once the sockets are synced";
  if (stale > 0) {
    stats_.dropped += stale;
    PB_LOG(Warning, log_) << "deleted " << stale << " waiting reports of sockets no longer in the roster";
  }
  write_now();
}

bool Outbox::backlog(const std::string& cid) const {
  return queues_.count(cid) != 0;
}

size_t Outbox::queued() const {
  size_t n = 0;
  for (const auto& [cid, q] : queues_) n += q.events.size() + q.states.size();
  return n;
}

size_t Outbox::queued(const std::string& cid) const {
  auto it = queues_.find(cid);
  return it == queues_.end() ? 0 : it->second.events.size() + it->second.states.size();
}

bool Outbox::paused() const {
  return Clock::now() < paused_until_;
}

void Outbox::report(const std::string& cid, int dp, const std::string& value_json, int64_t t_ms) {
  Latest& l = latest(cid, dp);
  // A full report repeats an event DP's value: that repeat is a state, not a new event.
  const bool event_dp = is_event_dp(dp);
  const bool event = event_dp && (l.ord == 0 || l.text() != value_json);
  Msg m{cid, dp, event, store_.next_outbox_ord(), t_ms, value_json};
  l.ord = m.ord;
  l.t_ms = t_ms;
  if (event_dp) l.set_text(value_json);
  if (ready_(cid) && !backlog(cid) && !paused()) {
    if (m.event) db_insert(m);  // written ahead unless the PUBACK is faster than the next commit
    ++stats_.published_live;
    publish(std::move(m), false);
    return;
  }
  ++stats_.queued;
  enqueue(std::move(m));
}

void Outbox::enqueue(Msg m) {
  const std::string cid = m.cid;
  Queue& q = queues_[cid];
  if (m.event) {
    // A waiting state of the same DP is older than this event: the event replaces it.
    if (auto s = q.states.find(m.dp); s != q.states.end() && s->second.ord < m.ord) {
      db_remove(s->second.ord);
      q.states.erase(s);
    }
    db_insert(m);
    q.events.emplace(m.ord, std::move(m));
    if (q.events.size() > opt_.max_events_per_socket) {
      if (drop_warned_.insert(cid).second)
        PB_LOG(Warning, log_) << cid << ": more than " << opt_.max_events_per_socket
                              << " events wait for the uplink; dropping the oldest (they stay in the local "
                                 "history: plugbridge events)";
      auto oldest = q.events.begin();
      db_remove(oldest->first);
      q.events.erase(oldest);
      ++stats_.dropped;
    }
  } else {
    auto s = q.states.find(m.dp);
    if (s != q.states.end()) {
      if (s->second.ord > m.ord) {  // a newer value already waits
        db_remove(m.ord);
        drop_if_empty(cid);
        return;
      }
      db_remove(s->second.ord);
      db_insert(m);
      s->second = std::move(m);
    } else {
      db_insert(m);
      q.states.emplace(m.dp, std::move(m));
    }
  }
  start_drain();
}

void Outbox::requeue(Msg m) {
  Latest* l = find_latest(m.cid, m.dp);
  const bool newer_exists = l != nullptr && l->ord > m.ord;
  if (!m.event) {
    if (newer_exists) {
      db_remove(m.ord);  // a newer value of this DP is out, waiting or in flight itself
      return;
    }
    enqueue(std::move(m));
    return;
  }
  const std::string cid = m.cid;
  const int dp = m.dp;
  const int64_t ord = m.ord;
  enqueue(std::move(m));
  if (!newer_exists) return;
  // Newer values of this DP went out before this event goes again: repeat the newest after it, so
  // the platform ends on the current value.
  auto q = queues_.find(cid);
  if (q != queues_.end()) {
    for (auto e = q->second.events.upper_bound(ord); e != q->second.events.end(); ++e)
      if (e->second.dp == dp) return;
    if (auto s = q->second.states.find(dp); s != q->second.states.end() && s->second.ord > ord) return;
  }
  Msg newest{cid, dp, false, store_.next_outbox_ord(), l->t_ms, l->text()};
  l->ord = newest.ord;
  enqueue(std::move(newest));
}

void Outbox::drop_if_empty(const std::string& cid) {
  auto it = queues_.find(cid);
  if (it == queues_.end() || !it->second.empty()) return;
  queues_.erase(it);
  drop_warned_.erase(cid);
  if (queues_.empty() && episode_sent_ > 0) {
    PB_LOG(Info, log_) << "outbox empty: sent " << episode_sent_ << " waiting reports in "
                       << static_cast<int64_t>(seconds(Clock::now() - episode_start_) * 1000) << " ms";
    episode_sent_ = 0;
  }
}

void Outbox::publish(Msg m, bool from_queue) {
  auto value = nlohmann::json::parse(m.value, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {  // the gateway made it; a damaged database row at worst
    PB_LOG(Error, log_) << m.cid << ": dropping DP " << m.dp << " report with unreadable value " << m.value;
    db_remove(m.ord);
    ++stats_.dropped;
    return;
  }
  std::string rid = tuya::new_request_id();
  if (from_queue) queues_[m.cid].draining++;
  const int64_t ord = m.ord;
  const std::string cid = m.cid;
  const int dp = m.dp;
  const int64_t t_ms = m.t_ms;
  in_flight_[ord] = InFlight{std::move(m), from_queue, rid};
  sink_.send(cid, dp, value, t_ms, rid, [this, ord, alive = std::weak_ptr<bool>(alive_)](bool ok) {
    if (alive.expired()) return;
    on_published(ord, ok);
  });
}

void Outbox::on_published(int64_t ord, bool ok) {
  auto node = in_flight_.extract(ord);
  if (node.empty()) return;
  InFlight f = std::move(node.mapped());
  const std::string cid = f.msg.cid;
  if (f.from_queue) {
    auto q = queues_.find(cid);
    if (q != queues_.end() && q->second.draining > 0) q->second.draining--;
  }
  if (ok && f.retry) {  // refused before its PUBACK came
    ++stats_.acked;
    requeue(std::move(f.msg));
  } else if (ok) {
    ++stats_.acked;
    db_remove(ord);
    if (!f.answered) {
      const auto until = Clock::now() + opt_.response_window;
      awaiting_order_.emplace_back(until, f.request_id);
      awaiting_[f.request_id] = Awaiting{std::move(f.msg), until};
      forget_expired_awaiting();
    }
  } else if (f.answered && !f.retry) {  // the platform answered it for good: not sent again
    ++stats_.failed;
    db_remove(ord);
  } else {
    ++stats_.failed;
    requeue(std::move(f.msg));
    if (lost_unlogged_++ == 0 && !closing_)  // one line for the lot of a dropped link
      boost::asio::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.expired()) return;
        PB_LOG(Info, log_) << lost_unlogged_
                           << " reports were not acknowledged by the broker (link lost): back in the outbox";
        lost_unlogged_ = 0;
      });
  }
  if (f.from_queue) drop_if_empty(cid);
}

void Outbox::forget_expired_awaiting() {
  const auto now = Clock::now();
  while (!awaiting_order_.empty() &&
         (awaiting_order_.front().first <= now || awaiting_.size() > opt_.max_awaiting_response)) {
    auto [until, rid] = std::move(awaiting_order_.front());
    awaiting_order_.pop_front();
    auto it = awaiting_.find(rid);
    if (it != awaiting_.end() && it->second.until == until) awaiting_.erase(it);
  }
}

// At most one tick's worth of whole messages at once; the fraction carries over (else a rate below
// one per tick would lose it at every tick and drain slower than configured).
double Outbox::token_cap() const {
  return std::max(1.0, std::floor(opt_.rate_per_s * seconds(opt_.tick))) + 0.999;
}

void Outbox::kick() {
  start_drain();
}

void Outbox::start_drain() {
  if (drain_running_ || closing_ || queues_.empty()) return;
  drain_running_ = true;
  const auto now = Clock::now();
  tokens_ = std::min(token_cap(), std::max(1.0, tokens_ + opt_.rate_per_s * seconds(now - last_tick_)));
  last_tick_ = now;
  boost::asio::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) drain_tick();
  });
}

// A token bucket: rate x elapsed time, capped at one tick's worth, so any second sees at most
// rate + one tick's worth of messages.
void Outbox::drain_tick() {
  const auto now = Clock::now();
  tokens_ = std::min(token_cap(), tokens_ + opt_.rate_per_s * seconds(now - last_tick_));
  last_tick_ = now;
  while (tokens_ >= 1.0) {
    if (!send_next()) {
      drain_running_ = false;  // nothing can go now; kick() starts again
      return;
    }
    tokens_ -= 1.0;
  }
  if (closing_) {
    drain_running_ = false;
    return;
  }
  drain_timer_.expires_after(opt_.tick);
  drain_timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    drain_tick();
  });
}

bool Outbox::send_next() {
  if (queues_.empty() || paused() || closing_) return false;
  auto it = queues_.upper_bound(rr_cursor_);
  for (size_t n = 0; n < queues_.size(); ++n, ++it) {
    if (it == queues_.end()) it = queues_.begin();
    Queue& q = it->second;
    if (q.events.empty() && q.states.empty()) continue;  // only in flight
    if (!ready_(it->first)) continue;
    Msg m;
    if (!q.events.empty()) {  // events first, in order
      auto e = q.events.begin();
      m = std::move(e->second);
      q.events.erase(e);
    } else {  // then the states, oldest first
      auto s = std::min_element(q.states.begin(), q.states.end(),
                                [](const auto& a, const auto& b) { return a.second.ord < b.second.ord; });
      m = std::move(s->second);
      q.states.erase(s);
    }
    rr_cursor_ = it->first;
    if (episode_sent_++ == 0) {
      episode_start_ = Clock::now();
      PB_LOG(Info, log_) << "sending the waiting reports (" << queued() + 1
                         << " of synced and unsynced sockets"
                         << " now) at up to " << opt_.rate_per_s << " per second";
    }
    ++stats_.published_queued;
    publish(std::move(m), true);  // may complete (and touch queues_) only later, on the loop
    return true;
  }
  return false;
}

Outbox::InFlight* Outbox::in_flight_with(const std::string& request_id) {
  for (auto& [ord, f] : in_flight_)
    if (f.request_id == request_id) return &f;
  return nullptr;
}

Outbox::Verdict Outbox::on_response(const tuya::Response& r) {
  forget_expired_awaiting();
  if (r.code == tuya::code::kSuccess) {
    awaiting_.erase(r.request_id);
    backoff_ = std::chrono::milliseconds(0);
    return Verdict::Ok;
  }
  std::optional<Msg> msg;
  InFlight* early = nullptr;  // answered before the PUBACK: retried once that comes
  if (auto it = awaiting_.find(r.request_id); it != awaiting_.end()) {
    msg = std::move(it->second.msg);
    awaiting_.erase(it);
  } else {
    early = in_flight_with(r.request_id);
    if (early) early->answered = true;
  }
  const auto retry = [&] {
    if (msg) {
      ++stats_.retried;
      requeue(std::move(*msg));
    } else if (early) {
      ++stats_.retried;
      early->retry = true;
    }
  };
  ++stats_.refused;
  if (r.code == tuya::code::kNoDevice) {
    retry();
    log_refusal(r, "resyncing the socket; the report goes again after it");
    return Verdict::Resync;
  }
  if (r.code == tuya::code::kSystem || r.code == tuya::code::kUpstream) {
    retry();
    pause();
    log_refusal(r, "kept in the outbox; waiting reports are retried in " +
                       std::to_string((backoff_.count() + 999) / 1000) + " s");
    return Verdict::Retry;
  }
  log_refusal(r, "not retried (the platform refused the report itself)");
  return Verdict::Rejected;
}

void Outbox::pause() {
  const auto now = Clock::now();
  if (paused_until_ > now) return;  // one pause per burst of refusals
  backoff_ = backoff_.count() == 0 ? opt_.backoff_min : std::min(backoff_ * 2, opt_.backoff_max);
  paused_until_ = now + backoff_;
  if (closing_) return;
  resume_timer_.expires_at(paused_until_);
  resume_timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    kick();
  });
}

void Outbox::log_refusal(const tuya::Response& r, const std::string& action) {
  if (burst_open_) {
    ++suppressed_[r.code];
    return;
  }
  burst_open_ = true;
  PB_LOG(Warning, log_) << "properties/report for " << (r.cid.empty() ? "?" : r.cid) << " refused with code "
                        << r.code << " (" << tuya::code_meaning(r.code) << "): " << action
                        << "; more refusals are summarised every "
                        << std::chrono::duration_cast<std::chrono::seconds>(opt_.log_burst).count() << " s";
  if (!closing_) arm_log_timer();
}

void Outbox::arm_log_timer() {
  log_timer_.expires_after(opt_.log_burst);
  log_timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
    if (!ec && !alive.expired()) summarise_refusals();
  });
}

// A period without refusals closes the burst; one with refusals ends in one summary line.
void Outbox::summarise_refusals() {
  if (suppressed_.empty()) {
    burst_open_ = false;
    return;
  }
  uint64_t total = 0;
  std::string codes;
  for (const auto& [code, n] : suppressed_) {
    total += n;
    codes += (codes.empty() ? "" : ", ") + std::to_string(n) + " x " + std::to_string(code) + " (" +
             tuya::code_meaning(code) + ")";
  }
  suppressed_.clear();
  PB_LOG(Warning, log_) << total << " more properties/report refusals in the last "
                        << std::chrono::duration_cast<std::chrono::seconds>(opt_.log_burst).count()
                        << " s: " << codes;
  if (!closing_) arm_log_timer();
}

// --- database mirror ---------------------------------------------------------------------------

void Outbox::db_insert(const Msg& m) {
  if (in_db_.count(m.ord) != 0 || pending_insert_.count(m.ord) != 0) return;
  pending_insert_[m.ord] = ops_.size();
  ops_.push_back(
      Op{false, store::OutboxRow{m.ord, m.cid, m.dp, m.event, m.t_ms, m.value, opt_.uplink}, false});
  arm_write_timer();
}

void Outbox::db_remove(int64_t ord) {
  if (auto p = pending_insert_.find(ord); p != pending_insert_.end()) {
    ops_[p->second].dead = true;  // never written: nothing to delete
    pending_insert_.erase(p);
    return;
  }
  if (in_db_.erase(ord) == 0) return;
  store::OutboxRow row;
  row.ord = ord;
  ops_.push_back(Op{true, std::move(row), false});
  arm_write_timer();
}

void Outbox::arm_write_timer() {
  if (write_armed_ || closing_) return;
  write_armed_ = true;
  write_timer_.expires_after(opt_.write_delay);
  // Handlers may run after the Outbox is gone (aborted by its timers' destruction): check first.
  write_timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
    if (alive.expired()) return;
    write_armed_ = false;
    if (ec) return;
    if (may_write_ && !may_write_()) {
      arm_write_timer();
      return;
    }
    write_now();
  });
}

std::vector<store::OutboxChange> Outbox::take_ops() {
  std::vector<store::OutboxChange> out;
  out.reserve(ops_.size());
  for (Op& op : ops_)
    if (!op.dead) out.push_back(store::OutboxChange{op.remove, std::move(op.row)});
  ops_.clear();
  pending_insert_.clear();
  return out;
}

void Outbox::ops_committed(const std::vector<store::OutboxChange>& changes) {
  for (const auto& c : changes)
    if (!c.remove) in_db_.insert(c.row.ord);
}

void Outbox::ops_failed(std::vector<store::OutboxChange> changes) {
  // Back in front of anything queued since, in their order.
  std::vector<Op> ops;
  ops.reserve(changes.size() + ops_.size());
  for (auto& c : changes) ops.push_back(Op{c.remove, std::move(c.row), false});
  for (auto& op : ops_) ops.push_back(std::move(op));
  ops_ = std::move(ops);
  pending_insert_.clear();
  for (size_t i = 0; i < ops_.size(); ++i)
    if (!ops_[i].remove && !ops_[i].dead) pending_insert_[ops_[i].row.ord] = i;
}

void Outbox::write_now() {
  auto changes = take_ops();
  if (changes.empty()) return;
  try {
    store_.apply_outbox(changes);
  } catch (const std::exception& ex) {
    PB_LOG(Error, log_) << "could not store " << changes.size()
                        << " outbox changes (retrying): " << ex.what();
    ops_failed(std::move(changes));
    if (!write_armed_ && !closing_) {
      write_armed_ = true;
      write_timer_.expires_after(kWriteRetry);
      write_timer_.async_wait(
          [this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
            if (alive.expired()) return;
            write_armed_ = false;
            if (!ec) write_now();
          });
    }
    return;
  }
  ops_committed(changes);
}

Outbox::Batch Outbox::begin_write() {
  return Batch(this);
}

Outbox::Batch::Batch(Outbox* o) : outbox_(o), changes_(o->take_ops()) {}

Outbox::Batch::Batch(Batch&& other) noexcept : outbox_(other.outbox_), changes_(std::move(other.changes_)) {
  other.outbox_ = nullptr;
}

Outbox::Batch::~Batch() {
  if (outbox_ && !changes_.empty()) outbox_->ops_failed(std::move(changes_));
}

void Outbox::Batch::committed() {
  if (outbox_) outbox_->ops_committed(changes_);
  outbox_ = nullptr;
}

}  // namespace pb::gateway
