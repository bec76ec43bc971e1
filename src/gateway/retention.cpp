#include "retention.hpp"

#include <boost/asio/post.hpp>
#include <memory>
#include <optional>

#include "plugbridge/common/log.hpp"
#include "store_worker.hpp"

namespace pb::gateway {

Retention::Retention(boost::asio::io_context& io, store::Store& store, int raw_days,
                     std::function<int64_t()> now_unix_ms)
    : io_(io), store_(store), raw_days_(raw_days), now_unix_ms_(std::move(now_unix_ms)), timer_(io) {}

void Retention::start(std::chrono::seconds delay) {
  timer_.expires_after(delay);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    begin_pass();
  });
}

void Retention::stop() {
  stopping_ = true;
  timer_.cancel();
}

void Retention::begin_pass() {
  thinned_in_pass_ = 0;
  // "Older than N days" by a wrong clock would delete what must be kept; the size budget counts
  // pages and goes by the stored times, so it applies either way.
  if (may_prune_ && !may_prune_()) {
    PB_LOG(Info, "gateway") << "retention: not pruning by age while the clock is not trustworthy";
    check_size();
    return;
  }
  // Samples are pruned only once rolled up into the buckets; the committer rolls up after its
  // commits, this covers a gateway that commits nothing (no socket online).
  const int64_t now = now_unix_ms_();
  const int64_t up_to = now - ((now % roll_up_period_ms_) + roll_up_period_ms_) % roll_up_period_ms_;
  if (worker_) {
    worker_->run([up_to](store::Store& s) { s.roll_up(up_to); },
                 [this](const std::exception_ptr& error) {
                   rolled_up(error, "rolling the samples up into the buckets failed");
                   roll_up_days();
                 });
    return;
  }
  try {
    store_.roll_up(up_to);
  } catch (const std::exception& ex) {
    PB_LOG(Warning, "gateway") << "rolling the samples up into the buckets failed: " << ex.what();
  }
  roll_up_days();
}

void Retention::rolled_up(const std::exception_ptr& error, const char* what) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& ex) {
    PB_LOG(Warning, "gateway") << what << ": " << ex.what();
  }
}

void Retention::roll_up_days() {
  if (stopping_) return;
  if (!roll_up_day_) {
    step();
    return;
  }
  // A day per job: what waits for the worker to be idle (the commits) goes between two days.
  if (worker_) {
    auto rolled = std::make_shared<size_t>(0);
    worker_->run([rolled, f = roll_up_day_](store::Store& s) { *rolled = f(s); },
                 [this, rolled](const std::exception_ptr& error) {
                   // Readers take those days from the hours meanwhile.
                   rolled_up(error, "rolling the buckets up into days failed (retried in an hour)");
                   if (error || *rolled == 0)
                     boost::asio::post(io_, [this] { step(); });
                   else
                     boost::asio::post(io_, [this] { roll_up_days(); });
                 });
    return;
  }
  size_t rolled = 0;
  try {
    rolled = roll_up_day_(store_);
  } catch (const std::exception& ex) {
    // Readers take those days from the hours meanwhile.
    PB_LOG(Warning, "gateway") << "rolling the buckets up into days failed (retried in an hour): "
                               << ex.what();
  }
  if (rolled > 0)
    boost::asio::post(io_, [this] { roll_up_days(); });
  else
    step();
}

void Retention::step() {
  if (stopping_) return;
  if (worker_ && worker_->busy()) {  // a delete now would wait for the worker's write lock
    worker_->when_idle([this] { step(); });
    return;
  }
  const int64_t cutoff = now_unix_ms_() - int64_t{raw_days_} * 86'400'000;
  const auto deleted = prune_batch(cutoff);
  if (!deleted) return;
  if (*deleted > 0) PB_LOG(Debug, "gateway") << "pruned " << *deleted << " raw samples";
  if (*deleted == kPruneBatch)
    boost::asio::post(io_, [this] { step(); });
  else
    check_size();
}

std::optional<size_t> Retention::prune_batch(int64_t before_ms) {
  try {
    return store_.prune_samples(before_ms, kPruneBatch);
  } catch (const std::exception& ex) {
    PB_LOG(Warning, "gateway") << "pruning raw samples failed (retried in an hour): " << ex.what();
    finish_pass();
    return std::nullopt;
  }
}

void Retention::check_size() {
  if (stopping_) return;
  if (max_bytes_ <= 0) {
    finish_pass();
    return;
  }
  const auto mb = [](int64_t bytes) { return std::to_string((bytes + (1 << 19)) >> 20) + " MiB"; };
  try {
    const int64_t used = store_.used_bytes();
    if (used <= max_bytes_) {
      if (thinned_in_pass_ > 0)
        PB_LOG(Info, "gateway") << "database over its size budget (history.max_db_mb " << mb(max_bytes_)
                                << "): pruned the " << thinned_in_pass_ << " oldest raw samples; now "
                                << mb(used) << " in use";
      warned_full_ = false;
      finish_pass();
      return;
    }
    const std::optional<int64_t> oldest = store_.oldest_sample_ms();
    if (!oldest || *oldest >= store_.rolled_up_ms()) {
      if (!warned_full_)
        PB_LOG(Warning, "gateway") << "the database uses " << mb(used) << ", over its budget of "
                                   << mb(max_bytes_)
                                   << " (history.max_db_mb), with no raw samples left to prune: the energy "
                                      "buckets and events are kept forever; raise the budget";
      warned_full_ = true;
      finish_pass();
      return;
    }
    thin_before_ms_ = *oldest + kThinStepMs;
  } catch (const std::exception& ex) {
    PB_LOG(Warning, "gateway") << "checking the database's size failed (retried in an hour): " << ex.what();
    finish_pass();
    return;
  }
  thin();
}

void Retention::thin() {
  if (stopping_) return;
  if (worker_ && worker_->busy()) {
    worker_->when_idle([this] { thin(); });
    return;
  }
  const auto deleted = prune_batch(thin_before_ms_);
  if (!deleted) return;
  thinned_in_pass_ += *deleted;
  thinned_ += *deleted;
  if (*deleted == kPruneBatch)
    boost::asio::post(io_, [this] { thin(); });
  else
    boost::asio::post(io_, [this] { check_size(); });
}

void Retention::finish_pass() {
  passes_++;
  start(kInterval);
}

}  // namespace pb::gateway
