// Each pass (right at start, then every hour) rolls the samples up into the buckets, then whole local
// days of buckets into days (a day per turn; on the store worker when there is one, so the loop never
// waits for these long transactions). Raw samples older than history.raw_days go; one short delete
// per loop turn, so commits and sessions never wait long behind the pruning. Then the size
// budget (history.max_db_mb): while the pages in use exceed it, the oldest hour of raw samples goes,
// whatever its age. Buckets, energy state and events are never thinned, nor samples not rolled up
// into the buckets yet.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>

#include "plugbridge/store/store.hpp"

namespace pb::gateway {

class StoreWorker;

class Retention {
 public:
  static constexpr size_t kPruneBatch = 2000;  // samples per delete
  static constexpr std::chrono::hours kInterval{1};
  static constexpr int64_t kThinStepMs = 3'600'000;  // raw samples thinned per round over the budget

  // `now_unix_ms`: the gateway's time.
  Retention(boost::asio::io_context& io, store::Store& store, int raw_days,
            std::function<int64_t()> now_unix_ms);
  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  void start(std::chrono::seconds delay);  // the first pass after `delay`, then every kInterval
  void stop();
  uint64_t passes() const { return passes_; }  // completed passes
  // Reload: from the next pass on.
  void set_raw_days(int raw_days) { raw_days_ = raw_days; }
  // The size budget in bytes (0: none).
  void set_max_bytes(int64_t max_bytes) { max_bytes_ = max_bytes; }
  // The samples are rolled up to UTC multiples of this (energy::roll_up_period_ms) at each pass.
  void set_roll_up_period(int64_t ms) { roll_up_period_ms_ = ms; }
  // After the roll-up of the samples at each pass: rolls up a local day (energy::roll_up_days) in
  // the store it is given, returning how many it did; called again, a day per turn (of the loop, or
  // of the worker's queue), until it does none.
  void set_roll_up_days(std::function<size_t(store::Store&)> roll_up_day) {
    roll_up_day_ = std::move(roll_up_day);
  }
  // The roll-ups run there, off the loop, and the deletes wait while it runs a job (null: all on
  // the loop).
  void set_worker(StoreWorker* worker) { worker_ = worker; }
  // Raw samples pruned for the size budget since start.
  uint64_t thinned() const { return thinned_; }
  // Whether the clock may be used for pruning by age now (false: only the size budget applies).
  void set_may_prune(std::function<bool()> may_prune) { may_prune_ = std::move(may_prune); }

 private:
  void begin_pass();
  void roll_up_days();
  // A roll-up job (worker or loop) ended: its error, or nothing.
  void rolled_up(const std::exception_ptr& error, const char* what);
  void step();
  void check_size();
  void thin();
  void finish_pass();
  // One short delete of samples older than before_ms: how many went, or nullopt after a failure
  // (logged; the pass is over).
  std::optional<size_t> prune_batch(int64_t before_ms);

  boost::asio::io_context& io_;
  store::Store& store_;
  int raw_days_;
  std::function<int64_t()> now_unix_ms_;
  std::function<bool()> may_prune_;
  std::function<size_t(store::Store&)> roll_up_day_;
  StoreWorker* worker_ = nullptr;
  boost::asio::steady_timer timer_;
  bool stopping_ = false;
  uint64_t passes_ = 0;
  int64_t max_bytes_ = 0;
  int64_t roll_up_period_ms_ = 3'600'000;
  int64_t thin_before_ms_ = 0;    // this round's cutoff
  uint64_t thinned_in_pass_ = 0;  // samples pruned for the budget in this pass
  uint64_t thinned_ = 0;
  bool warned_full_ = false;  // over the budget with no raw samples left (said once)
};

}  // namespace pb::gateway
