// The sockets' command queues: cloud commands (Tuya DPs), local ones (the control socket: relay,
// countdown, calibration) and the gateway's own (settings re-applied after a reconnect) go through
// one queue per socket, one command in flight, answered in arrival order. The one place that
// validates a command and its ranges: what does not depend on the socket's state when it arrives
// (check_local, the DP table's ranges), the rest when it reaches the front of its queue.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <pbfw/proto.hpp>
#include <string>

#include "plugbridge/gateway/gateway.hpp"
#include "socket_registry.hpp"

namespace pb::gateway {

// What the queue needs from the rest of the gateway.
class CommandPort {
 public:
  // The socket's DPs may have changed: report what changed (`full`: everything).
  virtual void report(SocketState& st, bool full) = 0;
  // A "command" event of a roster socket, committed with the next batch.
  virtual void record(const std::string& cid, int code, std::string detail) = 0;
  // commands/response to the cloud (when the uplink is up).
  virtual void respond(const std::string& cid, const std::string& request_id, int code) = 0;
  virtual int64_t now_unix_ms() const = 0;

 protected:
  ~CommandPort() = default;
};

class CommandQueue {
 public:
  static constexpr size_t kMaxQueued = 16;  // per socket, the one in flight included

  CommandQueue(boost::asio::io_context& io, SocketRegistry& sockets, CommandPort& port,
               std::chrono::seconds timeout, Stats& stats);
  CommandQueue(const CommandQueue&) = delete;
  CommandQueue& operator=(const CommandQueue&) = delete;

  // A local command's kind and value, before it is queued: BadRequest with the reason, or nullopt.
  static std::optional<std::string> check_local(const std::string& kind, int64_t value);

  // A commands message from the cloud.
  void cloud(const std::string& payload);
  // kind "relay": value 1 = on, 0 = off, -1 = toggle; "countdown": seconds; a calibration. done
  // runs on the loop once, never inside this call.
  void local(const std::string& cid, const std::string& kind, int64_t value,
             std::function<void(LocalResult)> done);
  // A new session: the cloud's DP 17 (when the socket keeps it) and the limits it should have.
  void on_session(SocketState& st);
  // DP 6 / DP 48 as the socket should have them.
  void apply_limits(SocketState& st);
  void on_result(SocketState& st, const pbfw::proto::CommandResult& r);
  // The command in flight was not confirmed within the timeout (the timer calls it; tests too).
  void on_timeout(SocketState& st, uint32_t cmd_id);
  // Socket gone: everything in flight and waiting is answered, in order.
  void fail_all(SocketState& st, const std::string& why);
  // Daemon stopping: every queue and every local waiter is answered.
  void shutdown();
  // Reload: commands sent from now on wait this long for the socket.
  void set_timeout(std::chrono::seconds timeout) { timeout_ = timeout; }

 private:
  void enqueue(SocketState& st, PendingCommand pc);
  void pump(SocketState& st);
  bool dispatch(SocketState& st, PendingCommand& pc);  // true = sent, awaiting the socket
  bool dispatch_local(SocketState& st, PendingCommand& pc);
  void send(SocketState& st, PendingCommand& pc, pbfw::proto::Command out);
  void finish(SocketState& st, int code, const std::string& why,
              std::optional<LocalResult::Status> local_status = std::nullopt);
  void answer(const SocketState& st, const PendingCommand& pc, int code, const std::string& why,
              std::optional<LocalResult::Status> local_status = std::nullopt);
  void answer(const std::string& cid, const std::string& request_id, int code, const std::string& why,
              std::optional<LocalResult::Status> local_status = std::nullopt);

  boost::asio::io_context& io_;
  SocketRegistry& sockets_;
  CommandPort& port_;
  std::chrono::seconds timeout_;
  Stats& stats_;
  bool stopping_ = false;
  uint32_t next_cmd_id_ = 1;  // unique over all sockets, so a late result never matches another command
  std::map<std::string, std::function<void(LocalResult)>> local_waiters_;  // request_id → CLI answer
  uint64_t next_local_id_ = 1;
};

}  // namespace pb::gateway
