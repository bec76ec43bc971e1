#include "command_queue.hpp"

#include <boost/asio/post.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <pbfw/limits.hpp>

#include "plugbridge/common/log.hpp"
#include "plugbridge/gateway/dp_map.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::gateway {

namespace proto = pbfw::proto;
using json = nlohmann::json;

namespace {

constexpr const char* kNoConfirmInTime = "socket did not confirm in time";
constexpr const char* kLocalPrefix = "local-";  // request ids of commands from the control socket
constexpr const char* kSwitchingDisabled = "switching is disabled (switch_enabled is false)";

// Local calibration commands (plugbridge calibrate): control-protocol kind -> LAN command kind.
std::optional<proto::CommandKind> calibration_kind(const std::string& kind) {
  if (kind == "calibrate_voltage") return proto::CommandKind::CalibrateVoltage;
  if (kind == "calibrate_current") return proto::CommandKind::CalibrateCurrent;
  if (kind == "calibrate_power") return proto::CommandKind::CalibratePower;
  if (kind == "set_kv") return proto::CommandKind::SetKv;
  if (kind == "set_ki") return proto::CommandKind::SetKi;
  return std::nullopt;
}

std::optional<std::string> calibration_range_problem(const std::string& kind, int64_t v) {
  if (kind == "calibrate_voltage" && (v < 50'000 || v > 300'000))
    return "calibrate_voltage wants 50000..300000 mV";
  if (kind == "calibrate_current" && (v < 10 || v > 20'000)) return "calibrate_current wants 10..20000 mA";
  if (kind == "calibrate_power" && (v < 1'000 || v > 6'000'000))
    return "calibrate_power wants 1000..6000000 mW";
  if ((kind == "set_kv" || kind == "set_ki") &&
      !pbfw::proto::valid_calibration_e6(static_cast<uint64_t>(v < 0 ? 0 : v)))
    return kind + " wants 10000..100000000 (the constant x 10^6, 0.01..100)";
  return std::nullopt;
}

// Why a calibration cannot work now, from the socket's last reading; the socket checks again (fresh
// frame, register not overflowed, result in range) and answers Refused.
std::optional<std::string> calibration_problem(const std::optional<bool>& relay_on,
                                               const std::optional<store::ReadingRow>& last,
                                               const std::string& kind, int64_t v) {
  if (kind == "set_kv" || kind == "set_ki") return std::nullopt;
  if (kind != "calibrate_voltage" && relay_on && !*relay_on)  // mains voltage is measured either way
    return "the relay is off: switch the reference load on first (plugbridge relay CID on)";
  if (!last) return "no reading from the socket yet; try again in a few seconds";
  if ((last->flags & proto::kMeterOk) == 0) return "the socket's meter is unavailable";
  if ((last->flags & proto::kNoMains) != 0) return "the socket's meter sees no mains voltage";
  double measured = 0, given = static_cast<double>(v), floor = 0;
  const char* unit = "";
  const char* quantity = "";
  uint8_t valid = 0;
  if (kind == "calibrate_voltage") {
    measured = last->voltage_mv, floor = 50'000, unit = "V", quantity = "voltage",
    valid = proto::kVoltageValid;
  } else if (kind == "calibrate_current") {
    measured = last->current_ua / 1000.0, floor = 10, unit = "A", quantity = "current",
    valid = proto::kCurrentValid;
  } else {
    measured = last->power_mw, floor = 1'000, unit = "W", quantity = "power", valid = proto::kPowerValid;
  }
  if ((last->flags & valid) == 0)
    return std::string("the socket's meter has not measured the ") + quantity +
           "; try again in a few seconds";
  auto show = [](double milli) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3f", milli / 1000.0);
    return std::string(b);
  };
  if (measured < floor)
    return "no load: the socket measures " + show(measured) + " " + unit +
           "; plug in a resistive load (kettle, heater, incandescent lamp) and switch the relay on";
  // Kv/Ki of a real board are within a few % of nominal: a factor 2 is a wrong unit or another load.
  if (given > 2 * measured || given < measured / 2)
    return "implausible: the socket measures " + show(measured) + " " + unit + ", you gave " + show(given) +
           " " + unit + " (more than a factor 2 apart: wrong unit, or not the load that is plugged in?)";
  return std::nullopt;
}

}  // namespace

const char* to_string(LocalResult::Status s) {
  switch (s) {
    case LocalResult::Status::Confirmed:
      return "confirmed";
    case LocalResult::Status::UnknownCid:
      return "unknown_cid";
    case LocalResult::Status::Offline:
      return "offline";
    case LocalResult::Status::Timeout:
      return "timeout";
    case LocalResult::Status::Unsupported:
      return "unsupported";
    case LocalResult::Status::Rejected:
      return "rejected";
    case LocalResult::Status::BadRequest:
      return "bad_request";
    case LocalResult::Status::ShuttingDown:
      return "shutting_down";
  }
  return "unknown";
}

CommandQueue::CommandQueue(boost::asio::io_context& io, SocketRegistry& sockets, CommandPort& port,
                           std::chrono::seconds timeout, Stats& stats)
    : io_(io), sockets_(sockets), port_(port), timeout_(timeout), stats_(stats) {}

std::optional<std::string> CommandQueue::check_local(const std::string& kind, int64_t value) {
  if (kind == "relay") {
    if (value != 0 && value != 1 && value != -1) return "relay wants on, off or toggle";
  } else if (kind == "countdown") {
    if (value < 0 || value > int64_t{pbfw::proto::kMaxCountdownS})
      return "countdown wants 0.." + std::to_string(int64_t{pbfw::proto::kMaxCountdownS}) + " s";
  } else if (calibration_kind(kind)) {
    return calibration_range_problem(kind, value);
  } else {
    return "unknown command kind '" + kind + "'";
  }
  return std::nullopt;
}

void CommandQueue::cloud(const std::string& payload) {
  auto parsed = tuya::parse_command(payload);
  if (!parsed.command) {
    // Nothing to queue: without a readable DP and value it cannot wait for its turn.
    if (parsed.request_id.empty()) {
      PB_LOG(Warning, "gateway") << "ignoring a command without a readable request_id (" << parsed.error
                                 << "): " << payload.substr(0, 200);
      return;
    }
    answer(parsed.cid, parsed.request_id, parsed.error_code, parsed.error);
    return;
  }
  const auto& cmd = *parsed.command;
  SocketState* st = sockets_.find(cmd.cid);
  if (!st) {
    answer(cmd.cid, cmd.request_id, tuya::code::kNoDevice, "cid is not in the roster");
    return;
  }
  PB_LOG(Debug, "gateway") << "command " << cmd.request_id << " for " << cmd.cid << " from the cloud (DP "
                           << static_cast<int>(cmd.dp_id) << ")";
  PendingCommand pc;
  pc.from = PendingCommand::From::Cloud;
  pc.request_id = cmd.request_id;
  pc.dp = cmd.dp_id;
  pc.value = cmd.value;
  enqueue(*st, std::move(pc));
}

void CommandQueue::local(const std::string& cid, const std::string& kind, int64_t value,
                         std::function<void(LocalResult)> done) {
  // Answers always run later on the loop, never inside this call.
  auto reply = [this, &done](LocalResult::Status status, std::string why) {
    boost::asio::post(io_, [done = std::move(done), status, why = std::move(why)] {
      done(LocalResult{status, std::nullopt, why});
    });
  };
  if (stopping_) return reply(LocalResult::Status::ShuttingDown, "the daemon is shutting down");
  SocketState* st = sockets_.find(cid);
  if (!st) return reply(LocalResult::Status::UnknownCid, "cid '" + cid + "' is not in the roster");
  // What does not depend on the socket's state is checked now; the rest when its turn comes.
  if (auto why = check_local(kind, value)) return reply(LocalResult::Status::BadRequest, std::move(*why));

  PendingCommand pc;
  pc.from = PendingCommand::From::Local;
  pc.request_id = kLocalPrefix + std::to_string(next_local_id_++);
  pc.kind = kind;
  pc.local_value = value;
  // dp 0: not a Tuya DP (the cloud's countdown mapping comes with the full DP table).
  pc.dp = kind == "relay" ? 1 : 0;
  local_waiters_.emplace(pc.request_id, std::move(done));
  PB_LOG(Info, "gateway") << "local command " << pc.request_id << ": " << cid << " " << kind << " " << value;
  enqueue(*st, std::move(pc));
}

void CommandQueue::on_session(SocketState& st) {
  // The socket keeps DP 17 itself; one that lost it (replaced, or DP 17 set while it ran older
  // firmware) gets the cloud's last setting again. Idempotent when it already has it.
  if ((st.capabilities() & proto::kCapSwitchLock) && st.desired_switch_enabled) {
    PendingCommand pc;
    pc.from = PendingCommand::From::Gateway;
    pc.command.kind = proto::CommandKind::SetSwitchEnabled;
    pc.command.value = *st.desired_switch_enabled ? 1 : 0;
    enqueue(st, std::move(pc));
  }
  apply_limits(st);
}

// The roster's (or the cloud's later) DP 6 / DP 48 through the socket's queue; DP 6/48 are reported
// once the socket confirmed them.
void CommandQueue::apply_limits(SocketState& st) {
  auto push = [&](proto::CommandKind kind, uint32_t value) {
    PendingCommand pc;
    pc.from = PendingCommand::From::Gateway;
    pc.command.kind = kind;
    pc.command.value = static_cast<int32_t>(value);
    enqueue(st, std::move(pc));
  };
  if (st.desired_current_limit_ma) push(proto::CommandKind::SetCurrentLimit, *st.desired_current_limit_ma);
  if (st.desired_power_limit_w) push(proto::CommandKind::SetPowerLimit, *st.desired_power_limit_w);
}

void CommandQueue::enqueue(SocketState& st, PendingCommand pc) {
  pc.arrived = std::chrono::steady_clock::now();
  if (st.commands.size() >= kMaxQueued) {
    // 500: the gateway cannot take more for this socket; the value and the device are not at fault.
    answer(st, pc, tuya::code::kSystem,
           "command queue full (" + std::to_string(kMaxQueued) + " commands waiting for the socket)",
           LocalResult::Status::Rejected);
    return;
  }
  st.commands.push_back(std::move(pc));
  pump(st);
}

void CommandQueue::pump(SocketState& st) {
  if (st.pumping) return;  // answering may queue more (re-entry); the loop below takes them
  st.pumping = true;
  while (!st.commands.empty() && st.commands.front().cmd_id == 0) {
    PendingCommand& pc = st.commands.front();
    if (dispatch(st, pc)) break;  // in flight: the result or the timeout continues
    st.commands.pop_front();      // answered without the socket
  }
  st.pumping = false;
}

// Validated now, not when queued: an earlier command in the queue may have changed the state
// (DP 17 before DP 1), and the socket may have gone meanwhile.
bool CommandQueue::dispatch(SocketState& st, PendingCommand& pc) {
  const bool online = st.link != nullptr;
  switch (pc.from) {
    case PendingCommand::From::Gateway:
      if (!online) return false;
      send(st, pc, pc.command);
      return true;

    case PendingCommand::From::Cloud: {
      // Validated against the DP table and the firmware's limits (dp_map.cpp, docs/dp-mapping.md).
      DpCommandPlan plan = plan_dp_command(
          pc.dp, pc.value,
          DpCommandContext{.online = online,
                           .switch_enabled = st.switching_allowed(),
                           .switch_lock_in_socket = (st.capabilities() & proto::kCapSwitchLock) != 0});
      switch (plan.action) {
        case DpCommandPlan::Action::Reject:
          answer(st, pc, plan.code, plan.why);
          return false;
        case DpCommandPlan::Action::StatusQuery:
          port_.report(st, true);
          answer(st, pc, tuya::code::kSuccess, "full report sent");
          return false;
        case DpCommandPlan::Action::SwitchEnabled:  // firmware without kCapSwitchLock: gateway state
          st.switch_enabled = plan.enable;
          st.desired_switch_enabled = plan.enable;
          PB_LOG(Info, "gateway") << st.entry.cid << ": switching " << (plan.enable ? "enabled" : "disabled")
                                  << " (gateway-side: the socket firmware has no switch lock)";
          port_.report(st, false);
          answer(st, pc, tuya::code::kSuccess, plan.enable ? "switching enabled" : "switching disabled");
          return false;
        case DpCommandPlan::Action::Socket:
          send(st, pc, plan.command);
          return true;
      }
      return false;
    }

    case PendingCommand::From::Local:
      return dispatch_local(st, pc);
  }
  return false;
}

bool CommandQueue::dispatch_local(SocketState& st, PendingCommand& pc) {
  if (!st.link) {
    answer(st, pc, tuya::code::kOffline, "socket is offline", LocalResult::Status::Offline);
    return false;
  }
  proto::Command out{};
  if (pc.kind == "relay") {
    if (!st.switching_allowed()) {
      answer(st, pc, tuya::code::kUnsupported, kSwitchingDisabled, LocalResult::Status::Rejected);
      return false;
    }
    int64_t value = pc.local_value;
    if (value == -1) {
      if (!st.relay_on) {
        answer(st, pc, tuya::code::kUnsupported, "relay state not known yet; say on or off",
               LocalResult::Status::Rejected);
        return false;
      }
      value = *st.relay_on ? 0 : 1;
    }
    out.kind = proto::CommandKind::SetRelay;
    out.value = static_cast<int32_t>(value);
  } else if (const auto k = calibration_kind(pc.kind)) {
    if (auto why = calibration_problem(st.relay_on, st.last, pc.kind, pc.local_value)) {
      answer(st, pc, tuya::code::kUnsupported, *why, LocalResult::Status::Rejected);
      return false;
    }
    out.kind = *k;
    out.value = static_cast<int32_t>(pc.local_value);
  } else {  // countdown
    if ((st.capabilities() & proto::kCapCountdown) == 0) {
      answer(st, pc, tuya::code::kUnsupported, "the socket firmware does not support countdown",
             LocalResult::Status::Unsupported);
      return false;
    }
    if (pc.local_value > 0 && !st.switching_allowed()) {
      answer(st, pc, tuya::code::kUnsupported, kSwitchingDisabled, LocalResult::Status::Rejected);
      return false;
    }
    out.kind = proto::CommandKind::SetCountdown;
    out.value = static_cast<int32_t>(pc.local_value);
  }
  send(st, pc, out);
  return true;
}

void CommandQueue::send(SocketState& st, PendingCommand& pc, proto::Command out) {
  pc.cmd_id = next_cmd_id_++;
  if (next_cmd_id_ == 0) next_cmd_id_ = 1;
  out.cmd_id = pc.cmd_id;
  pc.command = out;
  const uint32_t id = pc.cmd_id;
  // A socket that never confirms still gets its command answered, and the next one goes on. The
  // time counts from sending: a command waiting behind others is not the socket's fault.
  st.command_timer->expires_after(timeout_);
  st.command_timer->async_wait([this, &st, id](const boost::system::error_code& ec) {
    if (!ec) on_timeout(st, id);
  });
  if (!st.commands.empty() && &st.commands.front() != &pc)
    PB_LOG(Error, "gateway") << st.entry.cid << ": sending a command that is not at the front";
  PB_LOG(Debug, "gateway") << st.entry.cid << ": command " << id << " (kind " << static_cast<int>(out.kind)
                           << ", value " << out.value << ") sent, " << st.commands.size() - 1 << " waiting";
  proto::Message m{};
  m.type = proto::MsgType::Command;
  m.command = out;
  st.link->send(m);
}

void CommandQueue::on_timeout(SocketState& st, uint32_t cmd_id) {
  if (st.commands.empty() || st.commands.front().cmd_id != cmd_id) return;
  finish(st, tuya::code::kOffline, kNoConfirmInTime, LocalResult::Status::Timeout);
}

void CommandQueue::finish(SocketState& st, int code, const std::string& why,
                          std::optional<LocalResult::Status> local_status) {
  if (st.commands.empty()) return;
  st.command_timer->cancel();
  PendingCommand pc = std::move(st.commands.front());
  st.commands.pop_front();
  answer(st, pc, code, why, local_status);
  pump(st);
}

void CommandQueue::fail_all(SocketState& st, const std::string& why) {
  st.command_timer->cancel();
  auto commands = std::move(st.commands);
  st.commands.clear();
  for (const PendingCommand& pc : commands)
    answer(st, pc, tuya::code::kOffline,
           pc.cmd_id != 0 || stopping_ ? why : "socket went offline before its turn",
           stopping_ ? std::optional(LocalResult::Status::ShuttingDown) : std::nullopt);
}

void CommandQueue::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  // Every command in flight or waiting is answered (2001 to the cloud, shutting_down locally).
  for (SocketState* st : sockets_.roster()) fail_all(*st, "the gateway is shutting down");
  auto waiters = std::move(local_waiters_);
  local_waiters_.clear();
  for (auto& [rid, w] : waiters)
    w(LocalResult{LocalResult::Status::ShuttingDown, std::nullopt, "the daemon is shutting down"});
}

void CommandQueue::on_result(SocketState& st, const proto::CommandResult& r) {
  if (st.commands.empty() || st.commands.front().cmd_id != r.cmd_id) {
    // Late (answered already after the timeout, or from before a reconnect) or unknown: cmd_ids are
    // never reused, so it cannot be taken for the command in flight. Readings carry the state.
    PB_LOG(Info, "gateway") << st.entry.cid << ": ignoring the result of command " << r.cmd_id
                            << " (no longer in flight)";
    return;
  }
  PB_LOG(Debug, "gateway") << st.entry.cid << ": result of command " << r.cmd_id;
  st.relay_on = r.relay_on != 0;
  const PendingCommand& pc = st.commands.front();
  if (pc.from != PendingCommand::From::Gateway)
    stats_.command_seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - pc.arrived).count());
  int code = tuya::code::kSuccess;
  std::string why = "confirmed by the socket";
  std::optional<LocalResult::Status> local_status;
  switch (r.status) {
    case proto::CommandStatus::Ok:
      break;
    case proto::CommandStatus::Unsupported:
      code = tuya::code::kUnsupported;
      why = "socket does not support it";
      break;
    case proto::CommandStatus::InvalidValue:
      code = tuya::code::kRange;
      why = "socket rejected the value";
      break;
    case proto::CommandStatus::Refused:
      if (pc.command.kind == proto::CommandKind::SetRelay ||
          pc.command.kind == proto::CommandKind::SetCountdown) {
        // The socket's switch lock (DP 17), which we did not know yet.
        code = tuya::code::kUnsupported;
        why = std::string(kSwitchingDisabled) + " on the socket";
        local_status = LocalResult::Status::Rejected;
        st.switch_enabled = false;
      } else if (pc.command.kind == proto::CommandKind::CalibrateVoltage ||
                 pc.command.kind == proto::CommandKind::CalibrateCurrent ||
                 pc.command.kind == proto::CommandKind::CalibratePower) {
        code = tuya::code::kSystem;
        why =
            "the socket refused: no fresh meter frame with a load (relay off, nothing plugged in?), or the "
            "result is outside the constants' range 0.01..100 (a wrong value or unit?)";
      } else {
        code = tuya::code::kSystem;
        why = "socket refused the command";
      }
      break;
  }
  if (code == tuya::code::kSuccess) {
    if (pc.command.kind == proto::CommandKind::SetCurrentLimit) {
      st.current_limit_ma = static_cast<uint32_t>(pc.command.value);
      st.desired_current_limit_ma = st.current_limit_ma;  // a cloud DP 6 holds until the daemon restarts
    }
    if (pc.command.kind == proto::CommandKind::SetPowerLimit)
      st.desired_power_limit_w = static_cast<uint32_t>(pc.command.value);
    apply_confirmed(st.settings, pc.command);
    if (pc.command.kind == proto::CommandKind::SetSwitchEnabled) {
      st.switch_enabled = pc.command.value != 0;
      st.desired_switch_enabled = st.switch_enabled;
      st.switch_confirmed_ms = port_.now_unix_ms();
    }
  }
  // Report the confirmed state before answering, so the cloud never sees a stale switch.
  port_.report(st, false);
  finish(st, code, why, local_status);
}

void CommandQueue::answer(const SocketState& st, const PendingCommand& pc, int code, const std::string& why,
                          std::optional<LocalResult::Status> local_status) {
  if (pc.from == PendingCommand::From::Gateway) {  // nobody waits for it
    if (code == tuya::code::kSuccess)
      PB_LOG(Info, "gateway") << st.entry.cid << ": setting applied (command kind "
                              << static_cast<int>(pc.command.kind) << ", value " << pc.command.value << ")";
    else
      PB_LOG(Warning, "gateway") << st.entry.cid << ": applying a setting (command kind "
                                 << static_cast<int>(pc.command.kind) << ") failed: " << why;
    return;
  }
  answer(st.entry.cid, pc.request_id, code, why, local_status);
}

void CommandQueue::answer(const std::string& cid, const std::string& request_id, int code,
                          const std::string& why, std::optional<LocalResult::Status> local_status) {
  if (code == tuya::code::kSuccess)
    PB_LOG(Info, "gateway") << "command " << request_id << " for " << cid << " done";
  else
    PB_LOG(Warning, "gateway") << "command " << request_id << " for " << (cid.empty() ? "?" : cid)
                               << " answered " << code << " (" << tuya::code_message(code) << "): " << why;
  stats_.commands_answered++;
  ++stats_.commands_by_code[code];
  const SocketState* st = sockets_.find(cid);
  if (auto w = local_waiters_.find(request_id); w != local_waiters_.end()) {
    auto done = std::move(w->second);
    local_waiters_.erase(w);
    port_.record(cid, code,
                 json{{"request_id", request_id}, {"code", code}, {"why", why}, {"from", "local"}}.dump());
    LocalResult r;
    r.why = why;
    if (local_status)
      r.status = *local_status;
    else if (code == tuya::code::kSuccess)
      r.status = LocalResult::Status::Confirmed;
    else if (code == tuya::code::kUnsupported)
      r.status = LocalResult::Status::Unsupported;
    else if (code == tuya::code::kOffline)
      r.status = why == kNoConfirmInTime ? LocalResult::Status::Timeout : LocalResult::Status::Offline;
    else
      r.status = LocalResult::Status::Rejected;
    if (st && code == tuya::code::kSuccess) r.relay_on = st->relay_on;
    // Posted: a command may be answered inside local() (queue empty, rejected at once).
    boost::asio::post(io_, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
    return;
  }
  if (st) port_.record(cid, code, json{{"request_id", request_id}, {"code", code}, {"why", why}}.dump());
  port_.respond(cid, request_id, code);
}

}  // namespace pb::gateway
