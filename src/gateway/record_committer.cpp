#include "record_committer.hpp"

#include <sqlite3.h>

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
      timer_(io),
      file_timer_(io) {}

void RecordCommitter::start() {
  file_timer_.expires_after(kFileCheckEvery);
  file_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || dead_) return;
    check_file();
    if (!dead_) start();
  });
}

void RecordCommitter::stop() {
  file_timer_.cancel();
}

void RecordCommitter::set_time_settled(bool settled) {
  if (settled == settled_) return;
  settled_ = settled;
  if (settled_ && waiting() > 0) schedule();
}

void RecordCommitter::restamp(int64_t delta_ms) {
  for (auto& r : readings_) r.ts_ms += delta_ms;
  for (auto& e : events_) e.ts_ms += delta_ms;
}

bool RecordCommitter::refuse(const std::shared_ptr<SocketLink>& link) {
  if (!settled_ && waiting() >= max_waiting_ && on_hold_full_) on_hold_full_();
  if ((failure_.empty() && settled_) || waiting() < max_waiting_) return false;
  // The socket keeps what is not acked and sends it again on its next session.
  ++refused_;
  stats_.records_refused++;
  if (link)
    link->close(std::string(settled_ ? "database not writable" : "no trustworthy clock yet") + ": " +
                std::to_string(waiting()) + " records wait already");
  return true;
}

void RecordCommitter::add_reading(store::ReadingRow&& row, const std::shared_ptr<SocketLink>& link) {
  if (dead_ || refuse(link)) return;
  const uint32_t seq = row.seq;
  readings_.push_back(std::move(row));
  acks_.push_back({link, seq});
  schedule();
}

void RecordCommitter::add_event(store::EventRow&& row, const std::shared_ptr<SocketLink>& link) {
  if (dead_ || refuse(link)) return;
  const uint32_t seq = row.seq.value_or(0);
  events_.push_back(std::move(row));
  acks_.push_back({link, seq});
  schedule();
}

void RecordCommitter::add_gateway_event(store::EventRow&& row) {
  // Kept even beyond kMaxWaiting: nobody would send it again.
  if (dead_) return;
  events_.push_back(std::move(row));
  schedule();
}

void RecordCommitter::schedule() {
  // While commits fail the retry timer is the only one that commits; while times are provisional
  // nothing is.
  if (!failure_.empty() || !settled_) return;
  if (readings_.size() + events_.size() >= kMaxBatch) {
    flush();
    return;
  }
  const auto delay = events_.empty() ? commit_interval_ : kFlushDelay;
  const auto at = std::chrono::steady_clock::now() + delay;
  if (scheduled_ && timer_.expiry() <= at) return;
  scheduled_ = true;
  timer_.expires_at(at);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    flush();
  });
}

void RecordCommitter::flush() {
  scheduled_ = false;
  timer_.cancel();
  if (dead_ || !settled_ || (readings_.empty() && events_.empty())) return;
  const size_t records = waiting();
  energy::Prepared energy;
  try {
    energy = accountant_.prepare(readings_);
    std::vector<store::EventRow> events = events_;
    events.insert(events.end(), energy.events.begin(), energy.events.end());
    // Waiting outbox rows ride along in the same transaction (no fsync of their own).
    Outbox::Batch outbox_rows = outbox_ ? outbox_->begin_write() : Outbox::Batch{};
    auto res = store_.commit(readings_, events, energy.update, outbox_rows.changes());
    outbox_rows.committed();
    stats_.commits++;
    stats_.readings_committed += res.readings_inserted;
    stats_.readings_duplicate += res.readings_duplicate;
    stats_.events_committed += res.events_inserted;
    if (res.readings_duplicate || res.events_duplicate)
      PB_LOG(Debug, "gateway") << "ignored " << res.readings_duplicate << " duplicate readings, "
                               << res.events_duplicate << " duplicate events";
  } catch (const store::StoreError& ex) {
    failed(ex, ex.code());
    return;
  } catch (const std::exception& ex) {
    failed(ex, 0);
    return;
  }
  // Committed into the file at the path? One deleted or replaced meanwhile takes the writes with it.
  if (auto problem = store_.file_problem()) {
    fatal(*problem);
    return;
  }
  accountant_.committed(energy);
  live_totals_.add(energy.update);
  auto readings = std::move(readings_);
  auto acks = std::move(acks_);
  readings_.clear();
  events_.clear();
  acks_.clear();
  if (!failure_.empty()) recovered(records);

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

void RecordCommitter::failed(const std::exception& ex, int code) {
  const int primary = code & 0xff;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    fatal(std::string("the database is damaged: ") + ex.what());
    return;
  }
  if (auto problem = store_.file_problem()) {
    fatal(*problem);
    return;
  }
  stats_.commits_failed++;
  if (code == 0) {
    // Not the disk's doing (a record the store refuses): trying again would fail forever.
    PB_LOG(Error, "gateway") << "could not store " << readings_.size() << " readings and " << events_.size()
                             << " events: " << ex.what() << "; dropped, not acked";
    for (auto& a : acks_)
      if (auto l = a.link.lock()) l->close("database write failed");
    readings_.clear();
    events_.clear();
    acks_.clear();
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  const bool first = failure_.empty();
  if (first) {
    failure_ = ex.what();
    failing_since_ = now;
    last_log_ = now;
    failed_attempts_ = 0;
    refused_ = 0;
    retry_delay_ = std::chrono::milliseconds(250);
  }
  ++failed_attempts_;
  if (first) {
    PB_LOG(Error, "gateway") << "cannot write the database: " << ex.what() << "; holding " << waiting()
                             << " records in memory (none of them acked) and retrying";
  } else if (now - last_log_ >= kLogEvery) {
    last_log_ = now;
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - failing_since_).count();
    PB_LOG(Error, "gateway") << "database still not writable after " << secs << " s (" << failed_attempts_
                             << " attempts): " << ex.what() << "; " << waiting() << " records held (at most "
                             << max_waiting_ << "), " << refused_ << " refused";
  }
  // A full disk: the WAL may hold space that a checkpoint gives back.
  if (primary == SQLITE_FULL) store_.checkpoint();
  timer_.expires_after(retry_delay_);
  retry_delay_ = std::min(retry_delay_ * 2, kMaxRetryDelay);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    flush();
  });
}

void RecordCommitter::recovered(size_t records) {
  const auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - failing_since_)
          .count();
  PB_LOG(Warning, "gateway") << "database writable again after " << secs << " s: committed the " << records
                             << " records held in memory (" << failed_attempts_ << " failed attempts, "
                             << refused_ << " records refused and left with their sockets)";
  failure_.clear();
}

void RecordCommitter::fatal(const std::string& why) {
  if (dead_) return;
  dead_ = true;
  timer_.cancel();
  file_timer_.cancel();
  PB_LOG(Error, "gateway") << why << ": not acking anything more (" << waiting()
                           << " records unacked stay with their sockets)";
  for (auto& a : acks_)
    if (auto l = a.link.lock()) l->close("database lost");
  readings_.clear();
  events_.clear();
  acks_.clear();
  if (on_fatal_) on_fatal_(why);
}

void RecordCommitter::check_file() {
  if (auto problem = store_.file_problem()) fatal(*problem);
}

}  // namespace pb::gateway
