// The gateway core: owns every socket's state on the daemon's single io_context.
// LAN sessions feed readings/events in; they are committed to SQLite in batches and
// acked only after the commit; the Tuya uplink gets syncs, reports, status and
// command responses out of the same state.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "plugbridge/config/config.hpp"
#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/energy/totals.hpp"
#include "plugbridge/gateway/uplink_port.hpp"
#include "plugbridge/lan/server.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::gateway {

class Outbox;

struct Stats {
  uint64_t readings_committed = 0;
  uint64_t readings_duplicate = 0;
  uint64_t events_committed = 0;
  uint64_t commits = 0;
  uint64_t reports_sent = 0;
  uint64_t commands_answered = 0;
};

// Live view of one roster socket (for the local control socket).
struct LiveSocket {
  std::string cid;
  std::string name;
  bool online = false;
  std::optional<bool> relay_on;
  std::optional<store::ReadingRow> last;  // newest committed reading since the daemon started
  // The socket runs the countdown; its readings carry the remaining seconds (rounded up).
  std::optional<int64_t> countdown_ends_ms;  // unix ms of the flip; none = no countdown running
};

// Outcome of a local command; `relay_on` is the state the socket confirmed (when it answered).
struct LocalResult {
  enum class Status {
    Confirmed,
    UnknownCid,
    Offline,
    Timeout,
    Unsupported,
    Rejected,
    BadRequest,
    ShuttingDown
  };
  Status status = Status::Confirmed;
  std::optional<bool> relay_on;
  std::string why;
};
const char* to_string(LocalResult::Status s);

class Gateway {
 public:
  using Clock = std::chrono::steady_clock;

  Gateway(boost::asio::io_context& io, const config::Config& cfg, store::Store& store, UplinkPort* uplink);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  void start();                               // LAN listener and timers
  void shutdown(std::function<void()> done);  // flush writes, report offline, then done()
  uint16_t lan_port() const;
  const Stats& stats() const { return stats_; }

  // Uplink events, called on the loop.
  void on_uplink_connected();
  void on_uplink_disconnected(const std::string& reason);
  void on_uplink_message(const std::string& suffix, const std::string& payload);

  // Local control (works with the uplink down), called on the loop.
  std::vector<LiveSocket> live_status() const;
  // kind "relay": value 1 = on, 0 = off, -1 = toggle; kind "countdown": value = seconds. Goes the
  // cloud commands' way (the socket's command queue, timeout, "command" event); done runs on the loop
  // once, never inside this call.
  void local_command(const std::string& cid, const std::string& kind, int64_t value,
                     std::function<void(LocalResult)> done);

 private:
  struct PendingCommand;
  struct SocketState;
  struct PendingRecord {
    std::weak_ptr<lan::Session> session;
    SocketState* socket;
    uint32_t seq;
  };

  // LAN
  void on_hello(const std::shared_ptr<lan::Session>& s);
  void apply_limits(SocketState& st);
  void on_lan_message(const std::shared_ptr<lan::Session>& s, const pbfw::proto::Message& m);
  void on_lan_closed(const std::shared_ptr<lan::Session>& s, const std::string& reason);
  SocketState* socket_for(const std::shared_ptr<lan::Session>& s);
  void queue_reading(SocketState& st, const std::shared_ptr<lan::Session>& s, const pbfw::proto::Reading& r);
  void queue_event(SocketState& st, const std::shared_ptr<lan::Session>& s, const pbfw::proto::Event& e);
  void queue_gateway_event(const std::string& cid, const std::string& kind, int64_t value,
                           std::string detail);
  void schedule_flush();
  void flush();
  void set_online(SocketState& st, bool online);
  void schedule_status(SocketState& st);

  // Tuya
  void sync_socket(SocketState& st);
  void schedule_sync_retry(SocketState& st);
  void handle_sync_response(const std::string& payload);
  void handle_report_response(const std::string& payload);
  void handle_command(const std::string& payload);
  // Per-socket command queue (cloud, local and the gateway's own): one command in flight, answered
  // in arrival order; each is validated when it reaches the front, against the state then.
  void enqueue_command(SocketState& st, PendingCommand pc);
  void pump_commands(SocketState& st);
  bool dispatch_command(SocketState& st, PendingCommand& pc);  // true = sent, awaiting the socket
  void send_command(SocketState& st, PendingCommand& pc, pbfw::proto::Command out);
  // Answers the front command and moves on to the next one.
  void finish_command(SocketState& st, int code, const std::string& why,
                      std::optional<LocalResult::Status> local_status = std::nullopt);
  void fail_all_commands(SocketState& st, const std::string& why);
  void answer(const SocketState& st, const PendingCommand& pc, int code, const std::string& why,
              std::optional<LocalResult::Status> local_status = std::nullopt);
  void answer_command(const std::string& cid, const std::string& request_id, int code, const std::string& why,
                      std::optional<LocalResult::Status> local_status = std::nullopt);
  void on_command_result(SocketState& st, const pbfw::proto::CommandResult& r);
  void report_changes(SocketState& st, bool full);
  void report_dp(SocketState& st, int dp, const std::string& value_json);
  void send_status(const std::vector<SocketState*>& sockets);
  void heartbeat();
  void start_heartbeat_timer();
  void start_periodic_report_timer();

  int64_t now_unix_ms() const;
  std::chrono::milliseconds report_clock() const;  // steady time for ReportPolicy

  boost::asio::io_context& io_;
  const config::Config& cfg_;
  store::Store& store_;
  UplinkPort* uplink_;
  std::unique_ptr<lan::Server> server_;
  std::unordered_map<std::string, std::unique_ptr<SocketState>> sockets_;
  std::vector<SocketState*> roster_order_;

  std::vector<store::ReadingRow> batch_readings_;
  std::vector<store::EventRow> batch_events_;
  std::vector<PendingRecord> batch_acks_;
  bool flush_scheduled_ = false;
  boost::asio::steady_timer flush_timer_;

  std::map<std::string, SocketState*> pending_syncs_;  // request_id → socket
  uint32_t next_cmd_id_ = 1;  // unique over all sockets, so a late result never matches another command
  std::map<std::string, std::function<void(LocalResult)>> local_waiters_;  // request_id → CLI answer
  uint64_t next_local_id_ = 1;

  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer report_timer_;
  boost::asio::steady_timer status_timer_;
  bool status_scheduled_ = false;
  bool uplink_up_ = false;  // between on_uplink_connected and on_uplink_disconnected
  bool stopping_ = false;
  Stats stats_;

  // Energy accounting: increments and 15-minute buckets are committed with the readings; the
  // retention timer prunes old raw readings in small batches.
  void start_retention_timer(std::chrono::seconds delay);
  void prune_step(size_t index);
  std::vector<std::string> prune_cids_;  // the sockets of the current retention pass
  energy::Calendar calendar_;
  energy::Accountant accountant_;
  energy::LiveTotals live_totals_;
  boost::asio::steady_timer retention_timer_;

  // Every properties/report goes through it (outbox.hpp); null without an uplink. Last member: its
  // destructor stores what is still in flight.
  std::unique_ptr<Outbox> outbox_;
};

}  // namespace pb::gateway
