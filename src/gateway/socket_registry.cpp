#include "socket_registry.hpp"

#include <nlohmann/json.hpp>
#include <pbfw/proto_names.hpp>

#include "plugbridge/common/log.hpp"
#include "plugbridge/gateway/rows.hpp"

namespace pb::gateway {

namespace proto = pbfw::proto;

SocketRegistry::SocketRegistry(boost::asio::io_context& io, const config::Config& cfg) : io_(io) {
  roster_.reserve(cfg.sockets.size());
  for (const auto& entry : cfg.sockets) add(entry, cfg.report);
}

SocketState& SocketRegistry::add(const config::SocketEntry& entry, const config::Report& report) {
  auto st = std::make_unique<SocketState>();
  st->entry = entry;
  st->report = ReportPolicy(report_rules(report));
  if (entry.limits.current_max_ma) st->current_limit_ma = *entry.limits.current_max_ma;
  st->desired_current_limit_ma = entry.limits.current_max_ma;
  st->desired_power_limit_w = entry.limits.power_max_w;
  st->sync_timer = std::make_unique<boost::asio::steady_timer>(io_);
  st->command_timer = std::make_unique<boost::asio::steady_timer>(io_);
  SocketState& ref = *st;
  roster_.push_back(st.get());
  sockets_[entry.cid] = std::move(st);
  return ref;
}

void SocketRegistry::update(SocketState& st, const config::SocketEntry& entry) {
  if (entry.limits.current_max_ma != st.entry.limits.current_max_ma)
    st.desired_current_limit_ma = entry.limits.current_max_ma;
  if (entry.limits.power_max_w != st.entry.limits.power_max_w)
    st.desired_power_limit_w = entry.limits.power_max_w;
  st.entry = entry;
}

void SocketRegistry::retire(const std::string& cid) {
  auto it = sockets_.find(cid);
  if (it == sockets_.end()) return;
  SocketState* st = it->second.get();
  st->sync_timer->cancel();
  st->command_timer->cancel();
  if (st->link) --linked_;
  st->link.reset();
  st->online = false;
  std::erase(roster_, st);
  retired_.push_back(std::move(it->second));
  sockets_.erase(it);
}

void SocketRegistry::reorder(const std::vector<config::SocketEntry>& entries) {
  std::vector<SocketState*> order;
  order.reserve(entries.size());
  for (const auto& e : entries)
    if (SocketState* st = find(e.cid)) order.push_back(st);
  roster_ = std::move(order);
}

SocketState* SocketRegistry::find(const std::string& cid) {
  auto it = sockets_.find(cid);
  return it == sockets_.end() ? nullptr : it->second.get();
}

const SocketState* SocketRegistry::find(const std::string& cid) const {
  auto it = sockets_.find(cid);
  return it == sockets_.end() ? nullptr : it->second.get();
}

SocketState* SocketRegistry::current(const SocketLink& link) {
  SocketState* st = find(link.cid());
  return st && st->link.get() == &link ? st : nullptr;
}

SocketRegistry::Attached SocketRegistry::attach(const std::shared_ptr<SocketLink>& link) {
  Attached a;
  a.socket = find(link->cid());
  if (!a.socket) return a;
  if (a.socket->link != link) a.replaced = std::move(a.socket->link);
  if (!a.replaced && a.socket->link != link) ++linked_;
  a.socket->link = link;
  a.socket->boot = link->hello().boot_counter;
  return a;
}

SocketState* SocketRegistry::detach(const SocketLink& link) {
  SocketState* st = current(link);
  if (st && st->link) {
    st->link.reset();
    --linked_;
  }
  return st;
}

std::vector<LiveSocket> SocketRegistry::live_status() const {
  std::vector<LiveSocket> out;
  out.reserve(roster_.size());
  for (const SocketState* st : roster_) {
    LiveSocket l;
    l.cid = st->entry.cid;
    l.name = st->entry.name;
    l.online = st->online;
    l.relay_on = st->relay_on;
    l.last = st->last;
    l.countdown_ends_ms = st->countdown_ends_ms;
    out.push_back(std::move(l));
  }
  return out;
}

store::ReadingRow reading_row(const std::string& cid, uint32_t boot, const proto::Reading& r,
                              int64_t now_ms) {
  store::ReadingRow row;
  row.cid = cid;
  row.boot = boot;
  row.seq = r.seq;
  row.ts_ms = now_ms - r.age_ms;
  row.flags = r.flags;
  row.voltage_mv = r.voltage_mv;
  row.current_ua = r.current_ua;
  row.power_mw = r.power_mw;
  row.apparent_mva = r.apparent_mva;
  row.power_factor_e4 = r.power_factor_e4;
  row.energy_mwh = r.energy_mwh;
  row.energy_epoch = r.energy_epoch;
  return row;
}

store::EventRow event_row(const std::string& cid, uint32_t boot, const proto::Event& e, int64_t now_ms) {
  store::EventRow row;
  row.cid = cid;
  row.ts_ms = now_ms - e.age_ms;
  row.kind = pbfw::proto::event_kind(e.type);
  row.boot = boot;
  row.seq = e.seq;
  row.value = e.value;
  row.detail = nlohmann::json{{"cause", pbfw::proto::cause_name(e.cause)}}.dump();
  return row;
}

store::ReadingRow apply_reading(SocketState& st, const proto::Reading& r, int64_t now_ms) {
  store::ReadingRow row = reading_row(st.entry.cid, st.boot, r, now_ms);
  const uint32_t caps = st.capabilities();
  // Legacy (pre-v1) readings carry no switch count; v1 firmware announces countdown support.
  if (caps & proto::kCapCountdown) {
    st.switch_count = r.switch_count;
    st.countdown_ends_ms =
        r.countdown_s ? std::optional(row.ts_ms + int64_t{r.countdown_s} * 1000) : std::nullopt;
  }
  // DP 17 is the socket's own truth (kCapSwitchLock). Readings arrive in the socket's order, but one
  // sampled before a confirmed SetSwitchEnabled still carries the old flag.
  if ((caps & proto::kCapSwitchLock) && row.ts_ms >= st.switch_confirmed_ms) {
    st.switch_enabled = (r.flags & proto::kSwitchDisabled) == 0;
  }
  return row;
}

store::EventRow event_row(const SocketState& st, const proto::Event& e, int64_t now_ms) {
  return event_row(st.entry.cid, st.boot, e, now_ms);
}

EventEffect apply_event(SocketState& st, const proto::Event& e) {
  EventEffect fx;
  if (e.type == proto::EventType::RelayChanged) {
    st.relay_on = e.value != 0;
    if (e.value != 0) st.faults = 0;  // switching on again clears the fault (DP 19)
    fx.report = true;
  } else if (e.type == proto::EventType::FactoryReset) {
    st.desired_switch_enabled.reset();  // the user reset the socket to its defaults on purpose
    // Limits are the roster's business, not the user's: the socket gets them back (cloud values go).
    st.desired_current_limit_ma = st.entry.limits.current_max_ma;
    st.desired_power_limit_w = st.entry.limits.power_max_w;
    st.current_limit_ma = kDefaultCurrentLimitMa;
    st.settings.power_limit_w.reset();
    fx.reapply_limits = st.link != nullptr;
  } else if (uint32_t bits = fault_bits_for(e.type)) {
    st.faults |= bits;
    st.fault_detail = protection_detail(e.type, e.value);
    PB_LOG(Warning, "gateway") << st.entry.cid << ": " << st.fault_detail;
    fx.report = true;
  }
  return fx;
}

bool apply_committed(SocketState& st, const store::ReadingRow& row) {
  // Newer is the socket's own order, not the gateway's clock (which NTP may step back): a later seq
  // of the same boot, or a later boot. Only when the boot counter went back (the socket was reset)
  // does time decide.
  if (st.last) {
    const store::ReadingRow& last = *st.last;
    const bool newer = row.boot == last.boot  ? row.seq > last.seq
                       : row.boot > last.boot ? true
                                              : row.ts_ms > last.ts_ms;
    if (!newer) return false;
  }
  st.last = row;
  st.relay_on = (row.flags & proto::kRelayOn) != 0;
  return true;
}

}  // namespace pb::gateway
