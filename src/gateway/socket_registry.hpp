// The roster's sockets and their session state: which link is current, what the socket last said
// (reading, relay, faults, settings), what it should have (desired DP 6/17/48), its command queue
// and its cloud sync state. Changed only on the daemon's loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pbfw/proto.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "plugbridge/config/config.hpp"
#include "plugbridge/gateway/dp_map.hpp"
#include "plugbridge/gateway/gateway.hpp"
#include "plugbridge/gateway/lan_port.hpp"
#include "plugbridge/gateway/report_policy.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::gateway {

inline constexpr uint32_t kDefaultCurrentLimitMa = 5000;  // the socket's rating

// One command in a socket's queue.
struct PendingCommand {
  enum class From { Cloud, Local, Gateway };  // Gateway: re-applying a setting after a reconnect, no answer
  From from = From::Cloud;
  std::string request_id;          // cloud request_id or "local-N"
  int dp = 0;                      // Cloud: the DP
  nlohmann::json value;            // Cloud: the DP value as received
  std::string kind;                // Local: "relay", "countdown" or a calibration
  int64_t local_value = 0;         // Local: 1/0/-1, seconds or the calibration value
  pbfw::proto::Command command{};  // as sent (Gateway: given), to record the setting once confirmed
  uint32_t cmd_id = 0;             // 0 = not sent yet
  std::chrono::steady_clock::time_point arrived{};  // when the gateway took it (round-trip latency)
};

struct SocketState {
  config::SocketEntry entry;         // its roster entry; a reload replaces it
  std::shared_ptr<SocketLink> link;  // the current session; null = offline
  bool online = false;
  uint32_t boot = 0;
  std::optional<store::ReadingRow> last;  // newest committed reading
  std::optional<bool> relay_on;
  uint32_t current_limit_ma = kDefaultCurrentLimitMa;
  // DP 17: the socket's (kCapSwitchLock), else gateway state. Unknown (reported only once known,
  // so a restarted daemon never reports a default over the socket's truth) counts as enabled.
  std::optional<bool> switch_enabled;
  bool switching_allowed() const { return switch_enabled.value_or(true); }
  DpSettings settings;                   // DP 11/12/18/48 as last confirmed
  uint32_t faults = 0;                   // DP 19 bitmap, cleared when the relay is switched on
  std::string fault_detail;              // DP 21 text of the last protection event
  std::optional<uint32_t> switch_count;  // DP 42, from v1 readings
  // DP 17 as the cloud last set it (answered 0 since the daemon started); re-applied to the socket
  // after a reconnect, forgotten when the socket reports a factory reset.
  std::optional<bool> desired_switch_enabled;
  // DP 6 / DP 48 the socket should have: the roster's limits, or what the cloud set since the daemon
  // started; applied at every session start (the socket keeps them, this repairs a replaced or reset one).
  std::optional<uint32_t> desired_current_limit_ma;
  std::optional<uint32_t> desired_power_limit_w;
  int64_t switch_confirmed_ms = 0;  // readings sampled before this carry an older kSwitchDisabled
  // When the socket's countdown will flip the relay (from v1 readings; none = not running).
  std::optional<int64_t> countdown_ends_ms;
  std::string fw_version;    // from its last Hello since the daemon started
  int64_t last_seen_ms = 0;  // unix ms of its last message since the daemon started

  // The command queue (command_queue.hpp): front is in flight once its cmd_id is set.
  std::deque<PendingCommand> commands;
  std::unique_ptr<boost::asio::steady_timer> command_timer;
  bool pumping = false;

  // Cloud sync (cloud_sync.hpp).
  bool synced = false;
  int sync_attempts = 0;
  std::unique_ptr<boost::asio::steady_timer> sync_timer;
  ReportPolicy report;  // what was reported when; decides the next reports
  // Its reports other than the relay's and the faults' wait for room on the uplink (CloudSync).
  bool report_deferred = false;
  bool deferred_full = false;  // and a full report was asked for meanwhile
  bool status_dirty = false;

  uint32_t capabilities() const { return link ? link->hello().capabilities : 0; }
};

class SocketRegistry {
 public:
  SocketRegistry(boost::asio::io_context& io, const config::Config& cfg);
  SocketRegistry(const SocketRegistry&) = delete;
  SocketRegistry& operator=(const SocketRegistry&) = delete;

  SocketState* find(const std::string& cid);
  const SocketState* find(const std::string& cid) const;
  // The socket whose current session `link` is; null for an unknown or replaced link.
  SocketState* current(const SocketLink& link);
  const std::vector<SocketState*>& roster() const { return roster_; }  // in roster order

  struct Attached {
    SocketState* socket = nullptr;         // null: the cid is not in the roster
    std::shared_ptr<SocketLink> replaced;  // the previous session, to be closed
  };
  // A socket said Hello: `link` becomes its session.
  Attached attach(const std::shared_ptr<SocketLink>& link);
  // A session ended: its socket, if it was the current one (now offline), else null.
  SocketState* detach(const SocketLink& link);

  std::vector<LiveSocket> live_status() const;
  // Roster sockets with a current session.
  size_t linked() const { return linked_; }

  // Reload. A new roster entry: a socket with no session yet, at the end of the roster.
  SocketState& add(const config::SocketEntry& entry, const config::Report& report);
  // An entry's new settings (same cid): name, location, product id, limits, secret.
  void update(SocketState& st, const config::SocketEntry& entry);
  // Out of the roster: no longer found, its state kept alive (timers and handlers may still refer
  // to it) but inert. Close its session first.
  void retire(const std::string& cid);
  // The roster in the configuration's order (every cid must be in the registry).
  void reorder(const std::vector<config::SocketEntry>& entries);

 private:
  boost::asio::io_context& io_;
  std::unordered_map<std::string, std::unique_ptr<SocketState>> sockets_;
  std::vector<SocketState*> roster_;
  std::vector<std::unique_ptr<SocketState>> retired_;
  size_t linked_ = 0;
};

// A reading as the row to commit; updates the state the socket reports in its readings (switch
// count, countdown, DP 17). `now_ms`: unix ms of its arrival.
store::ReadingRow apply_reading(SocketState& st, const pbfw::proto::Reading& r, int64_t now_ms);

// An event as the row to commit (kind and cause in their text forms).
store::EventRow event_row(const SocketState& st, const pbfw::proto::Event& e, int64_t now_ms);

// What an event changed in the socket's state.
struct EventEffect {
  bool report = false;          // DPs changed: report them
  bool reapply_limits = false;  // the socket was reset: give it its limits again
};
EventEffect apply_event(SocketState& st, const pbfw::proto::Event& e);

// A committed reading: the newest one, in the socket's order (boot, then seq; not the gateway's clock),
// becomes the socket's `last` (true when it did).
bool apply_committed(SocketState& st, const store::ReadingRow& row);

}  // namespace pb::gateway
