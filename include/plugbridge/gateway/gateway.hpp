// The gateway core: owns every socket's state on the daemon's single io_context.
// LAN sessions feed readings/events in; they are committed to SQLite in batches and
// acked only after the commit; the Tuya uplink gets syncs, reports, status and
// command responses out of the same state.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <pbfw/proto.hpp>
#include <string>
#include <vector>

#include "plugbridge/config/config.hpp"
#include "plugbridge/gateway/config_diff.hpp"
#include "plugbridge/gateway/health.hpp"
#include "plugbridge/gateway/observer.hpp"
#include "plugbridge/gateway/uplink_port.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::gateway {

struct Stats {
  uint64_t readings_received = 0;   // readings that arrived from the sockets
  uint64_t readings_committed = 0;  // readings in successful commits (as samples, with their energy)
  uint64_t samples_written = 0;     // sample rows written (each commit rewrites the open intervals)
  uint64_t events_committed = 0;
  uint64_t commits = 0;
  uint64_t commits_failed = 0;   // attempts that failed (disk full, I/O error); retried
  uint64_t records_refused = 0;  // refused while kMaxWaiting records waited for a failing commit
  uint64_t reports_sent = 0;
  uint64_t commands_answered = 0;
  // Commands answered (cloud and local) by Tuya result code, and from arrival to the socket's
  // confirmation.
  std::map<int, uint64_t> commands_by_code;
  LatencyHistogram command_seconds;
  // Successful commits: when the last one ended (unix ms), how long it and all of them took.
  int64_t last_commit_ms = 0;
  double last_commit_seconds = 0;
  LatencyHistogram commit_seconds;
};

// Live view of one roster socket (for the local control socket).
struct LiveSocket {
  std::string cid;
  std::string name;
  bool online = false;
  std::optional<bool> relay_on;
  std::optional<store::ReadingRow> last;  // newest reading since the daemon started
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

// The gateway's view of the system clock (time_trust.hpp).
struct ClockStatus {
  std::string state;    // waiting, trusted, following, estimated
  bool trusted = true;  // times are right (reports and pruning go on)
  std::string reason;   // why the system clock is not believed (empty when it is)
  int64_t now_ms = 0;   // the gateway's time
};

class LanPort;
class Outbox;
class SocketLink;

// Wires the gateway's parts together on the one event loop (the parts live in src/gateway): the
// socket registry, the command queues, the record committer, the cloud sync and the retention.
class Gateway {
 public:
  using Clock = std::chrono::steady_clock;

  // With the daemon's LAN listener (lan::Server, cfg.lan).
  Gateway(boost::asio::io_context& io, const config::Config& cfg, store::Store& store, UplinkPort* uplink);
  // With another LAN side (tests).
  Gateway(boost::asio::io_context& io, const config::Config& cfg, store::Store& store, UplinkPort* uplink,
          std::unique_ptr<LanPort> lan);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  void start();                               // LAN listener and timers
  void shutdown(std::function<void()> done);  // flush writes, report offline, then done()
  uint16_t lan_port() const;
  const Stats& stats() const { return stats_; }
  // The database cannot be written any more (deleted or replaced while running, damaged): called
  // once, on the loop, with the reason. Nothing is acked after it; the daemon should exit non-zero.
  void on_fatal(std::function<void(const std::string&)> handler);
  // Why commits fail at the moment (disk full, I/O error), empty while they succeed; and how many
  // records wait in memory for the next commit.
  std::string storage_failure() const;
  size_t records_waiting() const;
  ClockStatus clock_status() const;
  // The daemon's health (health.hpp), on the loop; no work per socket. Uplinks: the Tuya uplink
  // (when enabled), then each source added here, in that order.
  Health health() const;
  void add_uplink_health(std::function<UplinkHealth()> source);
  // The roster's newest committed readings (null: none since start), in roster order; for the
  // per-socket metrics. O(sockets). The generation changes whenever sockets join or leave.
  void for_each_reading(
      const std::function<void(const std::string& cid, const store::ReadingRow* last)>& f) const;
  uint64_t roster_generation() const { return roster_generation_; }
  const config::Config& config() const { return cfg_; }

  // A new configuration (already parsed and validated), applied on the loop without touching the
  // sockets it does not concern: sockets added (accepted at once, synced to the cloud), removed or
  // re-keyed (their sessions closed), changed (synced again, limits re-applied); report rules,
  // heartbeat, command timeout, retention and energy limits. What only a restart can change
  // (ConfigDiff::needs_restart) keeps its running value. Returns what changed.
  ConfigDiff reload(const config::Config& next);

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

  // Uplinks beside the Tuya edge (observer.hpp), called on the loop. An observer must outlive the
  // gateway or be removed first.
  void add_observer(Observer& o);
  void remove_observer(Observer& o);
  // Another uplink's durable outbox: its waiting rows ride in the gateway's commits, and it writes
  // on its own only while the store's worker does not hold the write lock. Detach before it goes.
  void attach_outbox(Outbox& o);
  void detach_outbox(Outbox& o);
  std::vector<std::string> roster() const;                              // cids, in roster order
  std::optional<SocketView> socket_view(const std::string& cid) const;  // none: not in the roster

 private:
  struct Parts;
  void on_hello(const std::shared_ptr<SocketLink>& link);
  void on_lan_message(const std::shared_ptr<SocketLink>& link, const pbfw::proto::Message& m);
  void on_lan_closed(const std::shared_ptr<SocketLink>& link, const std::string& reason);

  class CountingUplink;

  Stats stats_;
  bool stopping_ = false;
  uint64_t roster_generation_ = 0;
  std::string uplink_error_;  // why the Tuya uplink last went down
  std::vector<std::function<UplinkHealth()>> uplink_health_;
  std::unique_ptr<CountingUplink> counting_uplink_;  // counts the Tuya uplink's publishes
  config::Config cfg_;                               // the configuration in force; the parts refer to it
  std::unique_ptr<Parts> parts_;
};

}  // namespace pb::gateway
