#include "record_committer.hpp"

#include <algorithm>
#include <unordered_map>

#include "plugbridge/common/log.hpp"
#include "plugbridge/gateway/outbox.hpp"

namespace pb::gateway {

namespace proto = pbfw::proto;

RecordCommitter::RecordCommitter(boost::asio::io_context& io, store::Store& store,
                                 energy::Accountant& accountant, energy::LiveTotals& live_totals,
                                 Stats& stats, Committed on_committed)
    : store_(store),
      accountant_(accountant),
      live_totals_(live_totals),
      stats_(stats),
      on_committed_(std::move(on_committed)),
      timer_(io) {}

void RecordCommitter::add_reading(store::ReadingRow&& row, const std::shared_ptr<SocketLink>& link) {
  const uint32_t seq = row.seq;
  readings_.push_back(std::move(row));
  acks_.push_back({link, seq});
  schedule();
}

void RecordCommitter::add_event(store::EventRow&& row, const std::shared_ptr<SocketLink>& link) {
  const uint32_t seq = row.seq.value_or(0);
  events_.push_back(std::move(row));
  acks_.push_back({link, seq});
  schedule();
}

void RecordCommitter::add_gateway_event(store::EventRow&& row) {
  events_.push_back(std::move(row));
  schedule();
}

void RecordCommitter::schedule() {
  if (readings_.size() + events_.size() >= kMaxBatch) {
    flush();
    return;
  }
  if (scheduled_) return;
  scheduled_ = true;
  timer_.expires_after(kFlushDelay);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    flush();
  });
}

void RecordCommitter::flush() {
  scheduled_ = false;
  timer_.cancel();
  if (readings_.empty() && events_.empty()) return;
  auto readings = std::move(readings_);
  auto events = std::move(events_);
  auto acks = std::move(acks_);
  readings_.clear();
  events_.clear();
  acks_.clear();
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
      if (auto s = a.link.lock()) s->close("database write failed");
    return;
  }

  // Ack the highest committed seq per session (records of a session arrive in seq order).
  std::unordered_map<SocketLink*, std::pair<std::shared_ptr<SocketLink>, uint32_t>> highest;
  for (auto& a : acks) {
    auto s = a.link.lock();
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
  if (on_committed_) on_committed_(readings);
}

}  // namespace pb::gateway
