#include "retention.hpp"

#include <boost/asio/post.hpp>

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
  if (may_prune_ && !may_prune_()) {
    // "Older than N days" by a wrong clock would delete what must be kept.
    PB_LOG(Info, "gateway") << "retention: not pruning by a clock that is not trustworthy; next pass in "
                            << std::chrono::duration_cast<std::chrono::minutes>(kInterval).count() << " min";
    start(kInterval);
    return;
  }
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
  step(0);
}

void Retention::step(size_t index) {
  if (stopping_) return;
  if (index >= cids_.size()) {
    passes_++;
    start(kInterval);
    return;
  }
  if (may_prune_ && !may_prune_()) {
    start(kInterval);
    return;
  }
  const int64_t cutoff = now_unix_ms_() - int64_t{raw_days_} * 86'400'000;
  size_t deleted = 0;
  try {
    deleted = store_.prune_readings(cids_[index], cutoff, kPruneBatch);
  } catch (const std::exception& ex) {
    PB_LOG(Warning, "gateway") << "pruning old readings failed (retried in an hour): " << ex.what();
    start(kInterval);
    return;
  }
  if (deleted > 0) PB_LOG(Debug, "gateway") << "pruned " << deleted << " readings of " << cids_[index];
  const size_t next = deleted == kPruneBatch ? index : index + 1;
  boost::asio::post(io_, [this, next] { step(next); });
}

}  // namespace pb::gateway
