// Readings and events on their way to SQLite: batched (up to kMaxBatch records, or what arrived
// within the flush delay), committed in one transaction with their energy accounting and the
// waiting outbox rows, and only then acked to each socket (the highest committed seq per session).
// A failed commit acks nothing and closes the sessions, so the sockets send the records again.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/totals.hpp"
#include "plugbridge/gateway/gateway.hpp"
#include "plugbridge/gateway/lan_port.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::gateway {

class Outbox;

class RecordCommitter {
 public:
  static constexpr size_t kMaxBatch = 512;                     // records per SQLite transaction
  static constexpr std::chrono::milliseconds kFlushDelay{20};  // how long a record may wait for companions

  // Runs after each commit with its readings (the acks are out already).
  using Committed = std::function<void(const std::vector<store::ReadingRow>&)>;

  RecordCommitter(boost::asio::io_context& io, store::Store& store, energy::Accountant& accountant,
                  energy::LiveTotals& live_totals, Stats& stats, Committed on_committed);
  RecordCommitter(const RecordCommitter&) = delete;
  RecordCommitter& operator=(const RecordCommitter&) = delete;

  // Outbox rows ride along in each transaction (null: none).
  void set_outbox(Outbox* outbox) { outbox_ = outbox; }

  // A socket's record, acked to `link` once committed.
  void add_reading(store::ReadingRow&& row, const std::shared_ptr<SocketLink>& link);
  void add_event(store::EventRow&& row, const std::shared_ptr<SocketLink>& link);
  // The gateway's own event (command answers): committed with the next batch, acked to nobody.
  void add_gateway_event(store::EventRow&& row);

  // Commits what waits now.
  void flush();
  size_t waiting() const { return readings_.size() + events_.size(); }

 private:
  struct PendingAck {
    std::weak_ptr<SocketLink> link;
    uint32_t seq;
  };
  void schedule();

  store::Store& store_;
  energy::Accountant& accountant_;
  energy::LiveTotals& live_totals_;
  Stats& stats_;
  Committed on_committed_;
  Outbox* outbox_ = nullptr;
  std::vector<store::ReadingRow> readings_;
  std::vector<store::EventRow> events_;
  std::vector<PendingAck> acks_;
  bool scheduled_ = false;
  boost::asio::steady_timer timer_;
};

}  // namespace pb::gateway
