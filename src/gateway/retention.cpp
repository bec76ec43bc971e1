#include "retention.hpp"

#include <boost/asio/post.hpp>
#include <optional>

#include "plugbridge/common/log.hpp"

namespace pb::gateway {

Retention::Retention(boost::asio::io_context& io, store::Store& store, int raw_days,
                     std::vector<std::string> roster, std::function<int64_t()> now_unix_ms)
    : io_(io),
      store_(store),
      raw_days_(raw_days),
      roster_(std::move(roster)),
      now_unix_ms_(std::move(now_unix_ms)),
      timer_(io) {}

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
  // The roster, and sockets since removed from it (known by their energy state), whose readings
  // would otherwise be kept forever.
  cids_ = roster_;
  const std::set<std::string> known(roster_.begin(), roster_.end());
  try {
    for (const store::EnergyStateRow& s : store_.energy_states())
      if (known.count(s.cid) == 0) cids_.push_back(s.cid);
  } catch (const std::exception& ex) {
    PB_LOG(Warning, "gateway") << "retention: cannot list the sockets of the database: " << ex.what();
  }
  thinned_in_pass_ = 0;
  step(0);
}

void Retention::step(size_t index) {
  if (stopping_) return;
  // "Older than N days" by a wrong clock would delete what must be kept; the size budget counts
  // pages and goes by the stored times, so it applies either way.
  const bool clock_ok = !may_prune_ || may_prune_();
  if (!clock_ok && index == 0)
    PB_LOG(Info, "gateway") << "retention: not pruning by age while the clock is not trustworthy";
  if (index >= cids_.size() || !clock_ok) {
    check_size();
    return;
  }
  const int64_t cutoff = now_unix_ms_() - int64_t{raw_days_} * 86'400'000;
  const auto deleted = prune_batch(index, cutoff);
  if (!deleted) return;
  if (*deleted > 0) PB_LOG(Debug, "gateway") << "pruned " << *deleted << " readings of " << cids_[index];
  const size_t next = *deleted == kPruneBatch ? index : index + 1;
  boost::asio::post(io_, [this, next] { step(next); });
}

std::optional<size_t> Retention::prune_batch(size_t index, int64_t before_ms) {
  try {
    return store_.prune_readings(cids_[index], before_ms, kPruneBatch);
  } catch (const std::exception& ex) {
    PB_LOG(Warning, "gateway") << "pruning raw readings failed (retried in an hour): " << ex.what();
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
                                << "): pruned the " << thinned_in_pass_ << " oldest raw readings; now "
                                << mb(used) << " in use";
      warned_full_ = false;
      finish_pass();
      return;
    }
    std::optional<int64_t> oldest;
    for (const std::string& cid : cids_)
      if (auto t = store_.oldest_reading_ms(cid); t && (!oldest || *t < *oldest)) oldest = t;
    if (!oldest) {
      if (!warned_full_)
        PB_LOG(Warning, "gateway") << "the database uses " << mb(used) << ", over its budget of "
                                   << mb(max_bytes_)
                                   << " (history.max_db_mb), with no raw readings left to prune: the energy "
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
  thin(0);
}

void Retention::thin(size_t index) {
  if (stopping_) return;
  if (index >= cids_.size()) {
    boost::asio::post(io_, [this] { check_size(); });
    return;
  }
  const auto deleted = prune_batch(index, thin_before_ms_);
  if (!deleted) return;
  thinned_in_pass_ += *deleted;
  thinned_ += *deleted;
  const size_t next = *deleted == kPruneBatch ? index : index + 1;
  boost::asio::post(io_, [this, next] { thin(next); });
}

void Retention::finish_pass() {
  passes_++;
  start(kInterval);
}

}  // namespace pb::gateway
