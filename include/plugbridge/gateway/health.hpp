// A snapshot of the daemon's health (Gateway::health): what the control socket's `status` and the
// Prometheus metrics show. Plain data, copied out on the loop; taking it costs no work per socket.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pb::gateway {

// Durations in fixed buckets (seconds), cumulative since start. The counts are per bucket (not
// cumulative): counts[i] holds the observations <= kBounds[i] and > kBounds[i - 1]; the last one
// those above every bound.
struct LatencyHistogram {
  static constexpr std::array<double, 14> kBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,  0.5,    1,     2.5,  5,     10,   30};
  std::array<uint64_t, kBounds.size() + 1> counts{};
  uint64_t count = 0;
  double sum_s = 0;

  void observe(double seconds) {
    size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    ++counts[i];
    ++count;
    sum_s += seconds;
  }
};

// One uplink: the Tuya edge broker (filled by the gateway) or another one registered with
// Gateway::add_uplink_health.
struct UplinkHealth {
  std::string name;  // "tuya"
  std::string type;  // "tuya"
  bool connected = false;
  size_t outbox_depth = 0;  // messages waiting to go out (stored or in flight)
  uint64_t published = 0;   // acknowledged by the broker since start
  uint64_t failed = 0;      // not sent, or the link dropped before the broker acknowledged them
  std::string last_error;   // why the link last went down or failed to come up; "" if never
};

struct Health {
  // LAN
  size_t sessions_up = 0;  // roster sockets with a session
  size_t roster_size = 0;
  // Connections that failed before their Hello, by reason (lan::HandshakeFailures' names).
  std::vector<std::pair<std::string, uint64_t>> handshakes_failed;

  // Storage
  uint64_t readings_received = 0;  // since start, including those not committed yet
  uint64_t readings_committed = 0;
  uint64_t events_committed = 0;
  uint64_t commits = 0;
  uint64_t commits_failed = 0;
  size_t records_waiting = 0;      // in memory, waiting for their commit
  int64_t last_commit_ms = 0;      // unix ms of the last successful commit; 0: none since start
  double last_commit_seconds = 0;  // how long it took
  LatencyHistogram commit_seconds;
  std::string storage_failure;      // why commits fail now; "" while they succeed
  int64_t database_bytes = -1;      // the database file and its WAL; -1: unknown
  int64_t disk_written_bytes = -1;  // /proc/self/io write_bytes of the process; -1: unknown

  // Commands (cloud and local), by the Tuya result code they were answered with.
  std::map<int, uint64_t> commands_by_code;
  size_t outbox_depth = 0;  // reports waiting for the Tuya uplink (stored or in flight)
  // From a command's arrival to its socket's confirmation (commands the socket confirmed).
  LatencyHistogram command_seconds;

  // The clock (ClockStatus's fields).
  std::string clock_state;
  bool clock_trusted = true;
  std::string clock_reason;

  // The uplinks in registration order: the Tuya uplink first (when enabled).
  std::vector<UplinkHealth> uplinks;
};

}  // namespace pb::gateway
