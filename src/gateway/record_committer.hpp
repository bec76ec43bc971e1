// Readings and events on their way to SQLite. Readings are summed into raw samples as they arrive
// (energy::Pending: memory per socket and sample, not per reading) and committed once per commit
// interval (or at kMaxBatch samples) in one transaction with their energy accounting; events are
// committed on their own within kFlushDelay. The waiting outbox rows ride
// along with either. An event is
// acked to its socket only once committed. A reading is acked within kAckDelay while commits
// succeed (the seqs before the socket's first uncommitted event): its energy is in the counter of
// every later reading, so a crash before its commit loses power samples, never energy.
// A commit that fails (disk full, I/O error, database locked) acks nothing: the records stay in
// memory (up to kMaxWaiting; beyond it new records are refused and their sessions closed, so the
// sockets keep them) and the commit is retried with a growing delay until it succeeds, with one log
// line when it starts failing, one every kLogEvery while it fails and one when it recovers. A
// database file deleted or replaced while the daemon runs, or found damaged, is fatal: nothing more
// is acked and on_fatal is called. While the gateway's time is provisional (TimeTrust waiting for a
// trustworthy clock) records are held the same way, unacked, and re-stamped once it is known.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/totals.hpp"
#include "plugbridge/gateway/gateway.hpp"
#include "plugbridge/gateway/lan_port.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::gateway {

class Outbox;
class StoreWorker;

class RecordCommitter {
 public:
  static constexpr size_t kMaxBatch = 16'384;  // samples (or held records) per transaction, at most
  // How long an event (or a gateway event) may wait for companions; readings alone wait for the
  // commit interval (history.commit_interval_ms): fewer, larger commits (each one fsync) write far
  // fewer bytes.
  static constexpr std::chrono::milliseconds kFlushDelay{20};
  // How long a reading waits for its ack at most while commits succeed (acks of several readings
  // go out together).
  static constexpr std::chrono::milliseconds kAckDelay{250};
  // While commits fail: records waiting unacked at most (readings are summed into their samples;
  // events, and readings held for the clock, take about 150 bytes each), the longest delay between
  // two attempts, and how often the failure is logged again.
  static constexpr size_t kMaxWaiting = 100'000;
  static constexpr std::chrono::milliseconds kMaxRetryDelay{5000};
  static constexpr std::chrono::seconds kLogEvery{10};
  // How often the database file is checked for having been deleted or replaced.
  static constexpr std::chrono::seconds kFileCheckEvery{2};

  // What a commit of readings held.
  struct ReadingsCommitted {
    size_t readings = 0;                  // readings in it
    std::vector<store::ReadingRow> held;  // those held for a trustworthy clock (not live on arrival)
  };
  // Runs after each commit of readings.
  using Committed = std::function<void(const ReadingsCommitted&)>;
  // The database cannot be written any more (deleted, replaced, damaged): the reason.
  using Fatal = std::function<void(const std::string&)>;

  RecordCommitter(boost::asio::io_context& io, store::Store& store, energy::Accountant& accountant,
                  energy::LiveTotals& live_totals, Stats& stats, Committed on_committed);
  RecordCommitter(const RecordCommitter&) = delete;
  RecordCommitter& operator=(const RecordCommitter&) = delete;

  // Outbox rows ride along in each transaction (null: none).
  void set_outbox(Outbox* outbox) { outbox_ = outbox; }
  // Other uplinks' outboxes, whose waiting rows ride along too (attach until they are destroyed).
  void attach_outbox(Outbox& o) { extra_outboxes_.push_back(&o); }
  void detach_outbox(Outbox& o) { std::erase(extra_outboxes_, &o); }
  // The roll-up of the samples runs there, off the loop (null: on the loop, right after the commit
  // that finds it due). While the worker runs a job nothing is committed: records wait in memory
  // (readings are acked as usual, events once their commit followed the job).
  void set_worker(StoreWorker* worker) { worker_ = worker; }
  // Samples rolled up by the worker (jobs ended, successful or not).
  uint64_t roll_ups() const { return roll_ups_; }
  void set_on_fatal(Fatal on_fatal) { on_fatal_ = std::move(on_fatal); }
  // How long readings wait for companions before their commit (default kFlushDelay; the daemon
  // sets history.commit_interval_ms).
  void set_commit_interval(std::chrono::milliseconds interval) { commit_interval_ = interval; }
  // Records held while commits fail, at most (default kMaxWaiting).
  void set_max_waiting(size_t n) { max_waiting_ = n; }
  // Whether record times are final. While they are not, nothing is committed: records are held
  // (unacked) until set_time_settled(true), or until max_waiting are held, when on_hold_full runs
  // (which is expected to settle the time).
  void set_time_settled(bool settled);
  void set_on_hold_full(std::function<void()> f) { on_hold_full_ = std::move(f); }
  // Adds delta to the time of every record held (they were stamped with a provisional time).
  void restamp(int64_t delta_ms);
  // Starts the periodic check of the database file (deleted or replaced).
  void start();
  void stop();

  // A socket's record: an event is acked to `link` once committed, a reading within kAckDelay.
  // False if it was refused (the session is closed; the socket keeps the record).
  bool add_reading(store::ReadingRow&& row, const std::shared_ptr<SocketLink>& link);
  void add_event(store::EventRow&& row, const std::shared_ptr<SocketLink>& link);
  // The gateway's own event (command answers): committed with the next batch, acked to nobody.
  void add_gateway_event(store::EventRow&& row);

  // Commits what waits now (while commits fail: tries once more).
  void flush();
  // The gateway's time, for the hourly roll-up of the samples into buckets (unset: no roll-up).
  void set_clock(std::function<int64_t()> unix_ms) { unix_ms_ = std::move(unix_ms); }
  size_t waiting() const { return held_.size() + pending_.readings() + events_.size(); }
  // Commits are failing; the first failure's reason (empty while commits succeed).
  const std::string& failure() const { return failure_; }

 private:
  // What a session may be acked: up to the highest seq received, but before the first event not
  // committed yet.
  struct SessionAcks {
    std::weak_ptr<SocketLink> link;
    uint32_t received = 0;         // highest seq received
    uint32_t acked = 0;            // highest seq acked
    std::vector<uint32_t> events;  // seqs of its events not committed yet, in order
    bool readings = false;         // it has readings not committed yet
  };
  SessionAcks* session(const std::shared_ptr<SocketLink>& link);
  void schedule();
  // One transaction: the events waiting, with the readings too or not.
  void commit(bool with_readings);
  void schedule_acks();
  // Sends each session the ack it may have now (committed: its events so far are durable).
  void send_acks(bool committed);
  void roll_up();
  // Sums the held readings into the pending samples (the time is settled).
  void sum_held();
  // A record arrives while commits fail and kMaxWaiting records wait already: refused.
  bool refuse(const std::shared_ptr<SocketLink>& link);
  void failed(const std::exception& ex, int code, bool with_readings);
  // Closes the links of the sessions with records waiting (events; and readings too if with_readings).
  void close_waiting(const std::string& why, bool with_readings);
  void recovered(size_t records);
  void fatal(const std::string& why);
  void check_file();

  store::Store& store_;
  energy::Accountant& accountant_;
  energy::LiveTotals& live_totals_;
  Stats& stats_;
  Committed on_committed_;
  Fatal on_fatal_;
  Outbox* outbox_ = nullptr;
  std::vector<Outbox*> extra_outboxes_;
  StoreWorker* worker_ = nullptr;
  bool rolling_up_ = false;  // a roll-up was handed to the worker
  bool deferred_ = false;    // a commit waits for the worker to be idle
  bool deferred_readings_ = false;
  uint64_t roll_ups_ = 0;
  // Readings summed since the last commit.
  energy::Pending pending_;
  // Readings held while times are provisional (summed once the time settles), and those of them
  // summed since the last commit (the live state takes them at the commit).
  std::vector<store::ReadingRow> held_;
  std::vector<store::ReadingRow> held_summed_;
  std::vector<store::EventRow> events_;
  std::unordered_map<SocketLink*, SessionAcks> sessions_;
  boost::asio::steady_timer ack_timer_;
  bool acks_scheduled_ = false;
  boost::asio::steady_timer events_timer_;  // events alone, kFlushDelay after the first
  bool events_scheduled_ = false;
  std::function<int64_t()> unix_ms_;
  bool scheduled_ = false;
  std::chrono::milliseconds commit_interval_ = kFlushDelay;
  boost::asio::steady_timer timer_;
  // While commits fail.
  std::string failure_;
  std::chrono::steady_clock::time_point failing_since_, last_log_;
  std::chrono::milliseconds retry_delay_{0};
  uint64_t failed_attempts_ = 0, refused_ = 0;
  size_t max_waiting_ = kMaxWaiting;
  bool settled_ = true;  // record times are final (else records are held)
  std::function<void()> on_hold_full_;
  bool dead_ = false;  // fatal: nothing is committed or acked any more
  boost::asio::steady_timer file_timer_;
};

}  // namespace pb::gateway
