// The uplink outbox: every properties/report goes through it. A report of a socket that can be
// published now (uplink connected, socket synced, nothing of it queued) goes straight out; any other
// waits in the durable outbox (table outbox, docs/schema.md) and is sent later at a bounded rate.
// Nothing is dropped while the broker is away:
//  - events (relay 1/57, faults 19/20/21, switch_enabled 17) are kept one by one, in order, each
//    with its own t; a state DP keeps only its latest value per socket (coalesced);
//  - a publish that fails (not sent, or the link dropped before its PUBACK) goes back to the outbox
//    in its original place; a row is deleted only after the broker's PUBACK;
//  - a report the platform answers with 500/400 goes back too and is retried after a backoff; 2003
//    makes the gateway resync the socket, then it is sent again.
// Per socket, nothing overtakes: while a socket has queued rows (or rows in flight from the queue),
// its new reports queue behind them. Database writes are batched: the gateway's reading commit
// carries them (Batch), else a short timer writes them in one transaction.
// Single-threaded: everything runs on the daemon's io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "plugbridge/gateway/uplink_port.hpp"
#include "plugbridge/store/store.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::gateway {

// DPs whose every change is an event kept in order (relay, faults, switch_enabled); the rest are
// states of which only the latest value matters.
bool is_event_dp(int dp);

// Where an outbox's reports go: the Tuya edge (properties/report, the default) or a device-direct
// platform (its own topics and payloads per socket).
class ReportSink {
 public:
  // One report of one DP, QoS 1; done(ok) on the loop: true once the broker acknowledged it, false
  // when it was not sent or the link dropped first. `request_id` identifies it in the platform's
  // answer (Outbox::on_response).
  virtual void send(const std::string& cid, int dp, const nlohmann::json& value, int64_t t_ms,
                    const std::string& request_id, std::function<void(bool)> done) = 0;

 protected:
  ~ReportSink() = default;
};

struct OutboxOptions {
  std::string uplink;                                 // its rows in the outbox table ("" = the Tuya edge)
  double rate_per_s = 200;                            // drain rate (uplink.outbox_rate_per_s)
  std::chrono::milliseconds tick{20};                 // drain timer; a tick may send rate x tick (at least 1)
  std::chrono::milliseconds write_delay{200};         // pending rows wait at most this for a reading commit
  std::chrono::milliseconds response_window{30'000};  // how long a report is kept for a 500/400 retry
  size_t max_awaiting_response = 20'000;              // and at most this many of them
  std::chrono::milliseconds backoff_min{5'000}, backoff_max{300'000};  // after 500/400 refusals
  size_t max_events_per_socket = 2'000;         // older events of a socket are dropped beyond this (logged)
  std::chrono::milliseconds log_burst{10'000};  // refusals: one line, then a summary per this period
};

struct OutboxStats {
  uint64_t published_live = 0;    // straight out
  uint64_t published_queued = 0;  // from the outbox
  uint64_t acked = 0;             // PUBACKs
  uint64_t failed = 0;            // publishes that were not acknowledged (went back to the outbox)
  uint64_t queued = 0;            // reports that had to wait in the outbox
  uint64_t refused = 0;           // non-zero properties/report/response codes
  uint64_t retried = 0;           // reports put back after a 500/400/2003 answer
  uint64_t dropped = 0;           // events dropped beyond max_events_per_socket, or for unknown cids
};

class Outbox {
 public:
  using Clock = std::chrono::steady_clock;
  // Whether the socket may publish now (uplink connected and the socket synced).
  using Ready = std::function<bool(const std::string& cid)>;

  // Reports to the Tuya edge (properties/report through `uplink`).
  Outbox(boost::asio::io_context& io, store::Store& store, UplinkPort& uplink, OutboxOptions options,
         Ready ready);
  // Reports to another sink.
  Outbox(boost::asio::io_context& io, store::Store& store, ReportSink& sink, OutboxOptions options,
         Ready ready);
  // Puts what is still in flight back into the outbox and writes pending rows (best effort).
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Loads the stored outbox (after a restart). Rows of cids not in `roster` are deleted.
  void load(const std::set<std::string>& roster);

  // One DP report (value as JSON text, t_ms = when the value was current). It goes at once when
  // the socket is ready, has nothing waiting and no backoff runs; otherwise it waits its turn.
  void report(const std::string& cid, int dp, const std::string& value_json, int64_t t_ms);
  // Readiness may have changed (a socket synced, the uplink connected): start draining.
  void kick();

  // What the gateway should do about a properties/report/response.
  enum class Verdict {
    Ok,        // code 0
    Resync,    // 2003: the platform does not know the socket; the report waits for the resync
    Retry,     // 500/400: kept, retried after a backoff
    Rejected,  // any other code: the report itself is wrong; not retried
  };
  // The platform's answer may come before the broker's PUBACK of the report: a retried report
  // then goes back to the outbox when the PUBACK comes.
  Verdict on_response(const tuya::Response& r);

  // Pending outbox rows for the gateway's next transaction: pass changes() to Store::commit and
  // call committed() after it succeeded; a Batch destroyed without committed() puts them back.
  class Batch {
   public:
    Batch() = default;
    explicit Batch(Outbox* o);
    ~Batch();
    Batch(Batch&& other) noexcept;
    Batch& operator=(Batch&&) = delete;
    Batch(const Batch&) = delete;
    const std::vector<store::OutboxChange>& changes() const { return changes_; }
    void committed();

   private:
    Outbox* outbox_ = nullptr;
    std::vector<store::OutboxChange> changes_;
  };
  Batch begin_write();
  // Pending rows in their own transaction now (the write timer does this).
  void write_now();
  // Whether the write timer may write now (unset: always); while it may not, it tries again a
  // write delay later. The gateway says no while its store worker holds the write lock.
  void set_may_write(std::function<bool()> may_write) { may_write_ = std::move(may_write); }

  size_t queued() const;                        // rows waiting, all sockets
  size_t queued(const std::string& cid) const;  // rows waiting for this socket
  size_t in_flight() const { return in_flight_.size(); }
  bool paused() const;
  const OutboxStats& stats() const { return stats_; }

 private:
  struct Msg {
    std::string cid;
    int dp = 0;
    bool event = false;
    int64_t ord = 0;
    int64_t t_ms = 0;
    std::string value;
  };
  struct Queue {
    std::map<int64_t, Msg> events;  // by ord
    std::map<int, Msg> states;      // by DP; one each
    size_t draining = 0;            // messages from this queue in flight
    bool empty() const { return events.empty() && states.empty() && draining == 0; }
  };
  struct InFlight {
    Msg msg;
    bool from_queue = false;
    std::string request_id;
    // The platform's answer can overtake the broker's PUBACK: it is kept here until the PUBACK.
    bool answered = false;
    bool retry = false;  // refused with a code that is retried
  };
  struct Awaiting {
    Msg msg;
    Clock::time_point until;
  };
  struct Op {
    bool remove = false;
    store::OutboxRow row;
    bool dead = false;  // an insert cancelled before it was written
  };

  bool backlog(const std::string& cid) const;
  void enqueue(Msg m);
  void requeue(Msg m);  // a message that was sent and must go again
  void publish(Msg m, bool from_queue);
  void on_published(int64_t ord, bool ok);
  void start_drain();
  double token_cap() const;
  void drain_tick();
  bool send_next();  // one message from the next ready socket, round robin; false if none
  void pause();
  void log_refusal(const tuya::Response& r, const std::string& action);
  void arm_log_timer();
  void summarise_refusals();
  void forget_expired_awaiting();
  InFlight* in_flight_with(const std::string& request_id);
  void drop_if_empty(const std::string& cid);

  // Database mirror: inserts not yet written can be cancelled by their delete.
  void db_insert(const Msg& m);
  void db_remove(int64_t ord);
  void arm_write_timer();
  std::vector<store::OutboxChange> take_ops();
  void ops_committed(const std::vector<store::OutboxChange>& changes);
  void ops_failed(std::vector<store::OutboxChange> changes);

  class TuyaSink;
  Outbox(boost::asio::io_context& io, store::Store& store, std::unique_ptr<TuyaSink> tuya, ReportSink* sink,
         OutboxOptions options, Ready ready);

  boost::asio::io_context& io_;
  store::Store& store_;
  std::unique_ptr<TuyaSink> tuya_sink_;  // with the UplinkPort constructor
  ReportSink& sink_;
  OutboxOptions opt_;
  Ready ready_;
  std::string log_;  // its log channel: "outbox", "outbox <uplink>"
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // guards publish completions
  bool closing_ = false;                                        // destructor running: no timers any more

  std::map<std::string, Queue> queues_;  // sockets with a backlog
  std::string rr_cursor_;                // last socket served by the drain
  std::unordered_map<int64_t, InFlight> in_flight_;
  std::unordered_map<std::string, Awaiting> awaiting_;  // request_id -> report, until its response
  std::deque<std::pair<Clock::time_point, std::string>> awaiting_order_;
  // The newest report of each DP of a socket: its order, and for event DPs its value (a repeat of
  // the same value is a state). A few hundred bytes per socket, however many reports it makes.
  // The newest value of one DP of a socket: 32 bytes (thousands of sockets times some twenty DPs).
  struct Latest {
    int64_t ord = 0;
    int64_t t_ms = 0;
    std::unique_ptr<std::string> value;  // event DPs only
    int dp = 0;
    const std::string& text() const;
    void set_text(const std::string& v);
  };
  Latest& latest(const std::string& cid, int dp);
  Latest* find_latest(const std::string& cid, int dp);
  std::unordered_map<std::string, std::vector<Latest>> latest_;

  boost::asio::steady_timer drain_timer_;
  bool drain_running_ = false;
  double tokens_ = 0;
  Clock::time_point last_tick_{};
  Clock::time_point paused_until_{};
  std::chrono::milliseconds backoff_{0};
  boost::asio::steady_timer resume_timer_;
  // One drain episode, for the log: from the first queued send to an empty outbox.
  uint64_t episode_sent_ = 0;
  Clock::time_point episode_start_{};

  std::vector<Op> ops_;
  std::unordered_map<int64_t, size_t> pending_insert_;  // ord -> index in ops_
  std::unordered_set<int64_t> in_db_;                   // ords a committed transaction stored
  boost::asio::steady_timer write_timer_;
  bool write_armed_ = false;
  std::function<bool()> may_write_;

  // Refusal logging: the first of a burst in full, the rest counted and summarised.
  std::map<int, uint64_t> suppressed_;  // code -> count
  bool burst_open_ = false;
  boost::asio::steady_timer log_timer_;
  std::set<std::string> drop_warned_;
  uint64_t lost_unlogged_ = 0;  // failed publishes not yet logged

  OutboxStats stats_;
};

}  // namespace pb::gateway
