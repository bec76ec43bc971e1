#include "record_committer.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <tuple>
#include <unordered_map>

#include "plugbridge/common/log.hpp"
#include "plugbridge/gateway/outbox.hpp"
#include "store_worker.hpp"

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
      ack_timer_(io),
      events_timer_(io),
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
  ack_timer_.cancel();
  events_timer_.cancel();
}

void RecordCommitter::set_time_settled(bool settled) {
  if (settled == settled_) return;
  settled_ = settled;
  if (settled_ && waiting() > 0) {
    const bool held = !held_.empty();
    sum_held();
    schedule();
    if (held) schedule_acks();  // the held readings' ack timer went by unanswered
  }
}

void RecordCommitter::restamp(int64_t delta_ms) {
  for (auto& r : held_) r.ts_ms += delta_ms;
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

RecordCommitter::SessionAcks* RecordCommitter::session(const std::shared_ptr<SocketLink>& link) {
  if (!link) return nullptr;
  SessionAcks& s = sessions_[link.get()];
  if (s.link.lock() != link) s = SessionAcks{link, 0, 0, {}, false};  // new, or a new link at a freed address
  return &s;
}

bool RecordCommitter::add_reading(store::ReadingRow&& row, const std::shared_ptr<SocketLink>& link) {
  if (dead_ || refuse(link)) return false;
  const uint32_t seq = row.seq;
  if (settled_) {
    accountant_.add(pending_, row);
  } else {
    held_.push_back(std::move(row));
  }
  if (SessionAcks* s = session(link)) {
    s->received = std::max(s->received, seq);
    s->readings = true;
  }
  schedule();
  schedule_acks();
  return true;
}

void RecordCommitter::add_event(store::EventRow&& row, const std::shared_ptr<SocketLink>& link) {
  if (dead_ || refuse(link)) return;
  const uint32_t seq = row.seq.value_or(0);
  events_.push_back(std::move(row));
  if (SessionAcks* s = session(link)) {
    s->received = std::max(s->received, seq);
    s->events.push_back(seq);
  }
  schedule();
}

void RecordCommitter::schedule_acks() {
  if (acks_scheduled_) return;
  acks_scheduled_ = true;
  ack_timer_.expires_after(kAckDelay);
  ack_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    acks_scheduled_ = false;
    send_acks(false);
  });
}

void RecordCommitter::send_acks(bool committed) {
  // While commits fail or times are provisional, only what is committed is acked.
  if (dead_ || (!committed && (!failure_.empty() || !settled_))) return;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    SessionAcks& s = it->second;
    if (committed) s.events.clear();  // every event waiting was in the commit
    auto link = s.link.lock();
    if (!link || !link->open()) {
      it = sessions_.erase(it);
      continue;
    }
    const uint32_t may = s.events.empty() ? s.received : s.events.front() - 1;
    if (may > s.acked) {
      proto::Message ack{};
      ack.type = proto::MsgType::Ack;
      ack.ack.up_to_seq = may;
      link->send(ack);
      s.acked = may;
    }
    ++it;
  }
}

void RecordCommitter::roll_up() {
  if (!unix_ms_ || !settled_) return;
  const int64_t up_to =
      energy::floor_to(unix_ms_(), energy::roll_up_period_ms(accountant_.options().sample_ms));
  if (worker_) {
    // Seconds of one transaction at 10 000 sockets: on the worker's connection, not the loop's.
    if (rolling_up_) return;
    try {
      if (store_.rolled_up_ms() >= up_to) return;  // one row read: the usual case
    } catch (const std::exception& ex) {
      PB_LOG(Warning, "gateway") << "reading the roll-up mark failed (retried at the next commit): "
                                 << ex.what();
      return;
    }
    rolling_up_ = true;
    worker_->run([up_to](store::Store& s) { s.roll_up(up_to); },
                 [this](const std::exception_ptr& error) {
                   rolling_up_ = false;
                   ++roll_ups_;
                   if (!error) return;
                   try {
                     std::rethrow_exception(error);
                   } catch (const std::exception& ex) {
                     PB_LOG(Warning, "gateway") << "rolling the samples up into the buckets failed (retried "
                                                   "at the next commit): "
                                                << ex.what();
                   }
                 });
    return;
  }
  try {
    if (const size_t n = store_.roll_up(up_to); n > 0)  // nothing when the store is there already
      PB_LOG(Debug, "gateway") << "rolled " << n << " quarter-hours of samples up into the buckets";
  } catch (const std::exception& ex) {
    // The samples stay, readers add them; the next commit tries again.
    PB_LOG(Warning, "gateway")
        << "rolling the samples up into the buckets failed (retried at the next commit): " << ex.what();
  }
}

void RecordCommitter::sum_held() {
  if (held_.empty()) return;
  // In each socket's order, whatever order they were held in.
  std::stable_sort(held_.begin(), held_.end(), [](const store::ReadingRow& a, const store::ReadingRow& b) {
    return std::tie(a.cid, a.boot, a.seq) < std::tie(b.cid, b.boot, b.seq);
  });
  for (store::ReadingRow& r : held_) {
    accountant_.add(pending_, r);
    held_summed_.push_back(std::move(r));
  }
  held_.clear();
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
  if (held_.size() + events_.size() >= kMaxBatch || pending_.samples() >= kMaxBatch) {
    flush();
    return;
  }
  // Events go to disk at once, on their own: the readings wait for their interval.
  if (!events_.empty() && !events_scheduled_) {
    events_scheduled_ = true;
    events_timer_.expires_after(kFlushDelay);
    events_timer_.async_wait([this](const boost::system::error_code& ec) {
      events_scheduled_ = false;
      if (ec) return;
      commit(false);
    });
  }
  if (pending_.readings() > 0 && !scheduled_) {
    scheduled_ = true;
    timer_.expires_after(commit_interval_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      flush();
    });
  }
}

void RecordCommitter::flush() {
  commit(true);
}

void RecordCommitter::commit(bool with_readings) {
  // While commits fail, a retry takes everything (and ends the failure when it succeeds).
  if (!failure_.empty()) with_readings = true;
  if (with_readings) {
    scheduled_ = false;
    timer_.cancel();
  }
  if (dead_ || !settled_) return;
  if (worker_ && worker_->busy()) {
    // The worker holds the write lock: a commit now would wait for it on the loop thread.
    deferred_readings_ = deferred_readings_ || with_readings;
    if (!deferred_) {
      deferred_ = true;
      worker_->when_idle([this] {
        deferred_ = false;
        const bool readings = deferred_readings_;
        deferred_readings_ = false;
        commit(readings);
      });
    }
    return;
  }
  if (with_readings) sum_held();
  if (events_.empty() && (!with_readings || pending_.empty())) return;
  const size_t records = with_readings ? waiting() : events_.size();
  energy::Prepared energy;
  try {
    if (with_readings) energy = pending_.prepared();
    std::vector<store::EventRow> events = events_;
    events.insert(events.end(), energy.events.begin(), energy.events.end());
    // Waiting outbox rows ride along in the same transaction (no fsync of their own).
    Outbox::Batch outbox_rows = outbox_ ? outbox_->begin_write() : Outbox::Batch{};
    std::vector<Outbox::Batch> extra_rows;
    for (Outbox* o : extra_outboxes_) extra_rows.push_back(o->begin_write());
    const std::vector<store::OutboxChange>* changes = &outbox_rows.changes();
    std::vector<store::OutboxChange> all;
    if (std::any_of(extra_rows.begin(), extra_rows.end(),
                    [](const Outbox::Batch& b) { return !b.changes().empty(); })) {
      all = *changes;
      for (const Outbox::Batch& b : extra_rows) all.insert(all.end(), b.changes().begin(), b.changes().end());
      changes = &all;
    }
    const auto started = std::chrono::steady_clock::now();
    auto res = store_.commit(events, energy.update, *changes);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    outbox_rows.committed();
    for (Outbox::Batch& b : extra_rows) b.committed();
    stats_.commits++;
    stats_.last_commit_ms = unix_ms_ ? unix_ms_() : 0;
    stats_.last_commit_seconds = took;
    stats_.commit_seconds.observe(took);
    if (with_readings) stats_.readings_committed += pending_.readings();
    stats_.samples_written += res.samples_written;
    stats_.events_committed += res.events_inserted;
    if (res.events_duplicate)
      PB_LOG(Debug, "gateway") << "ignored " << res.events_duplicate << " duplicate events";
  } catch (const store::StoreError& ex) {
    failed(ex, ex.code(), with_readings);
    return;
  } catch (const std::exception& ex) {
    failed(ex, 0, with_readings);
    return;
  }
  // Committed into the file at the path? One deleted or replaced meanwhile takes the writes with it.
  if (auto problem = store_.file_problem()) {
    fatal(*problem);
    return;
  }
  events_.clear();
  if (!with_readings) {  // the readings (and the links they are acked to) wait for their commit
    send_acks(true);
    return;
  }
  accountant_.committed(energy);
  live_totals_.add(energy.update);
  ReadingsCommitted done;
  done.readings = pending_.readings();
  done.held = std::move(held_summed_);
  pending_ = {};
  held_summed_.clear();
  for (auto& [ptr, s] : sessions_) s.readings = false;
  if (!failure_.empty()) recovered(records);
  send_acks(true);
  if (on_committed_) on_committed_(done);
  roll_up();
}

void RecordCommitter::close_waiting(const std::string& why, bool with_readings) {
  for (auto& [ptr, s] : sessions_)
    if (!s.events.empty() || (with_readings && s.readings))
      if (auto l = s.link.lock()) l->close(why);
}

void RecordCommitter::failed(const std::exception& ex, int code, bool with_readings) {
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
    // Only what was in the refused transaction goes.
    PB_LOG(Error, "gateway") << "could not store " << (with_readings ? pending_.readings() : 0)
                             << " readings and " << events_.size() << " events: " << ex.what()
                             << "; dropped, not acked";
    close_waiting("database write failed", with_readings);
    for (auto& [ptr, s] : sessions_) {
      s.events.clear();
      if (with_readings) s.readings = false;
    }
    events_.clear();
    if (with_readings) {
      pending_ = {};
      held_summed_.clear();
    }
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
  close_waiting("database lost", true);
  held_.clear();
  pending_ = {};
  held_summed_.clear();
  events_.clear();
  sessions_.clear();
  if (on_fatal_) on_fatal_(why);
}

void RecordCommitter::check_file() {
  if (auto problem = store_.file_problem()) fatal(*problem);
}

}  // namespace pb::gateway
