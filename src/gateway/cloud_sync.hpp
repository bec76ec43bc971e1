// The gateway's side of the Tuya uplink: devices/sync of every roster socket after each connect
// (retried with backoff), devices/status (debounced changes, the heartbeat, all offline at
// shutdown), and DP reports decided by each socket's ReportPolicy and sent through the Outbox.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clocks.hpp"
#include "plugbridge/config/config.hpp"
#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/energy/totals.hpp"
#include "plugbridge/gateway/gateway.hpp"
#include "plugbridge/gateway/outbox.hpp"
#include "plugbridge/gateway/uplink_port.hpp"
#include "plugbridge/store/store.hpp"
#include "socket_registry.hpp"

namespace pb::gateway {

// The energy state reports read (owned by the Gateway, written by the RecordCommitter).
struct EnergyView {
  energy::Calendar& calendar;
  energy::Accountant& accountant;
  energy::LiveTotals& live_totals;
};

class CloudSync {
 public:
  static constexpr size_t kStatusChunk = 200;                       // sockets per devices/status
  static constexpr std::chrono::seconds kSyncTimeout{10};           // no sync response → retry
  static constexpr std::chrono::milliseconds kStatusDebounce{200};  // coalesce online/offline changes
  // Uplink backlog (UplinkPort::backlog) from which a socket's reports, except the relay and
  // faults, wait for room; they go again, freshly decided, once it is below kBacklogLow.
  static constexpr size_t kBacklogHigh = 512;
  static constexpr size_t kBacklogLow = 256;
  static constexpr std::chrono::milliseconds kDeferredTick{10};

  // Without an uplink (null) nothing is reported and there is no outbox.
  CloudSync(boost::asio::io_context& io, const config::Config& cfg, store::Store& store,
            SocketRegistry& sockets, UplinkPort* uplink, EnergyView energy, Stats& stats,
            const Clocks& clocks);
  CloudSync(const CloudSync&) = delete;
  CloudSync& operator=(const CloudSync&) = delete;

  Outbox* outbox() { return outbox_.get(); }

  void start();  // heartbeat and periodic report timers
  void stop();   // no more syncs, status or reports; timers cancelled

  void on_connected();
  // Whether the gateway's time is trustworthy. While it is not, nothing goes to the edge (every
  // message carries a time): no syncs, so no status, and no reports. When it becomes so, a
  // connected uplink syncs (and then reports in full).
  void set_clock_trusted(bool trusted);
  void on_disconnected(const std::string& reason);
  void on_sync_response(const std::string& payload);
  void on_report_response(const std::string& payload);

  // A socket came or went: its status goes out shortly (debounced, batched with other changes).
  void set_online(SocketState& st, bool online);
  // What changed in the socket's DPs (`full`: all of them), as its ReportPolicy decides.
  void report(SocketState& st, bool full);
  // The periodic report pass (every second): full reports falling due, held-back changes.
  void report_tick(std::chrono::milliseconds now);
  // devices/status of every synced socket.
  void heartbeat();

  // Reload: a socket new in the roster, or whose devices/sync details (name, location, product id)
  // changed, is synced now when the uplink is up (else at the next connect).
  void resync(SocketState& st);
  // A socket leaving the roster: "offline" at the edge if it was synced; no more syncs for it.
  void retiring(SocketState& st);
  // heartbeat_s changed: the next heartbeat in the new period.
  void restart_heartbeat();
  // devices/status "offline" for the whole roster; done once the broker acked it (or gave up).
  void publish_all_offline(std::function<void()> done);

 private:
  void sync(SocketState& st);
  void schedule_sync_retry(SocketState& st);
  void schedule_status(SocketState& st);
  void send_status(const std::vector<SocketState*>& sockets);
  void start_heartbeat_timer();
  void start_report_timer();
  void defer(SocketState& st, bool full);
  void arm_deferred();
  void send_deferred();
  void forget_deferred();

  boost::asio::io_context& io_;
  const config::Config& cfg_;
  store::Store& store_;
  SocketRegistry& sockets_;
  UplinkPort* uplink_;
  EnergyView energy_;
  Stats& stats_;
  const Clocks& clocks_;
  std::map<std::string, SocketState*> pending_syncs_;  // request_id → socket
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer report_timer_;
  boost::asio::steady_timer status_timer_;
  // Sockets whose reports wait for room on the uplink, in the order they began to wait.
  std::deque<std::string> deferred_;
  boost::asio::steady_timer deferred_timer_;
  bool deferred_armed_ = false;
  bool status_scheduled_ = false;
  bool up_ = false;  // between on_connected and on_disconnected
  bool clock_trusted_ = true;
  bool stopping_ = false;
  // Every properties/report goes through it (outbox.hpp); null without an uplink. Last member: its
  // destructor stores what is still in flight.
  std::unique_ptr<Outbox> outbox_;
};

}  // namespace pb::gateway
