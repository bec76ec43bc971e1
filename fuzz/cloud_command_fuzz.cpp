// A payload on the cloud's `commands` topic, handled as CommandQueue::cloud does: parse_command, then
// the DP validation (plan_dp_command) for every socket context. The other payloads the cloud sends
// (devices/sync and properties/report responses) go through parse_response. Checks, besides memory
// safety and that nothing throws:
//  - a parse either yields a command (error code 0) or an error code the spec allows, with a reason;
//  - a command's DP id is 1..255 and it carries both identifiers;
//  - a rejection has a code and a reason; what goes to the socket is a command the socket accepts
//    (its value within the firmware's limits) and encodes as a LAN frame.
#include <pbfw/limits.hpp>
#include <pbfw/proto.hpp>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "plugbridge/gateway/dp_map.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace proto = pbfw::proto;
namespace tuya = pb::tuya;
using pb::gateway::DpCommandContext;
using pb::gateway::DpCommandPlan;

namespace {

bool in(int64_t v, int64_t lo, int64_t hi) {
  return v >= lo && v <= hi;
}

// The socket's own acceptance of a command value (firmware core, socket_core.cpp).
bool socket_accepts(const proto::Command& c) {
  switch (c.kind) {
    case proto::CommandKind::SetRelay:
    case proto::CommandKind::SetSwitchEnabled:
      return in(c.value, 0, 1);
    case proto::CommandKind::SetCurrentLimit:
      return in(c.value, proto::kMinCurrentLimitMa, proto::kMaxCurrentLimitMa);
    case proto::CommandKind::SetOverCurrentDuration:
      return in(c.value, 0, proto::kMaxOverCurrentDurationMs);
    case proto::CommandKind::SetPowerLimit:
      return in(c.value, 0, proto::kMaxPowerLimitW);
    case proto::CommandKind::SetVoltageMax:
    case proto::CommandKind::SetVoltageMin:
      return in(c.value, 0, proto::kMaxVoltageLimitV);
    default:
      return false;  // the cloud's DPs map to none of the others
  }
}

// What CommandQueue::answer publishes and records for an answer (dump() throws on invalid UTF-8).
void answer(const std::string& cid, const std::string& request_id, int code, const std::string& why) {
  PB_FUZZ_CHECK(!tuya::make_command_response(cid, request_id, code, 0).dump().empty());
  const nlohmann::json record{{"request_id", request_id}, {"code", code}, {"why", why}};
  PB_FUZZ_CHECK(!record.dump().empty());
}

void check_plan(const tuya::Command& cmd, const DpCommandPlan& plan, const DpCommandContext& ctx) {
  switch (plan.action) {
    case DpCommandPlan::Action::Reject:
      PB_FUZZ_CHECK(plan.code != tuya::code::kSuccess && !plan.why.empty());
      PB_FUZZ_CHECK(!tuya::code_message(plan.code).empty());
      answer(cmd.cid, cmd.request_id, plan.code, plan.why);
      return;
    case DpCommandPlan::Action::Socket: {
      PB_FUZZ_CHECK(ctx.online);
      PB_FUZZ_CHECK(socket_accepts(plan.command));
      PB_FUZZ_CHECK(plan.command.kind != proto::CommandKind::SetRelay || ctx.switch_enabled);
      proto::Message m{};
      m.type = proto::MsgType::Command;
      m.command = plan.command;
      m.command.cmd_id = 1;
      uint8_t frame[proto::kMaxFrame];
      PB_FUZZ_CHECK(proto::encode(m, frame, sizeof frame) > 0);
      return;
    }
    case DpCommandPlan::Action::StatusQuery:
      PB_FUZZ_CHECK(ctx.online);
      return;
    case DpCommandPlan::Action::SwitchEnabled:
      PB_FUZZ_CHECK(ctx.online && !ctx.switch_lock_in_socket);
      return;
  }
  PB_FUZZ_CHECK(false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);

  const tuya::CommandParse parsed = tuya::parse_command(payload);
  if (parsed.command) {
    const tuya::Command& cmd = *parsed.command;
    PB_FUZZ_CHECK(parsed.error_code == 0 && parsed.error.empty());
    PB_FUZZ_CHECK(cmd.dp_id >= 1 && cmd.dp_id <= 255);
    PB_FUZZ_CHECK(cmd.request_id == parsed.request_id && cmd.cid == parsed.cid);
    PB_FUZZ_CHECK(!cmd.value.is_null() && !cmd.value.is_discarded());
    for (int bits = 0; bits < 8; ++bits) {
      const DpCommandContext ctx{.online = (bits & 1) != 0,
                                 .switch_enabled = (bits & 2) != 0,
                                 .switch_lock_in_socket = (bits & 4) != 0};
      check_plan(cmd, pb::gateway::plan_dp_command(cmd.dp_id, cmd.value, ctx), ctx);
    }
    answer(cmd.cid, cmd.request_id, tuya::code::kSuccess, "done");
  } else {
    PB_FUZZ_CHECK(parsed.error_code == tuya::code::kParamsEmpty || parsed.error_code == tuya::code::kRange ||
                  parsed.error_code == tuya::code::kNull || parsed.error_code == tuya::code::kType);
    PB_FUZZ_CHECK(!parsed.error.empty());
    if (!parsed.request_id.empty()) answer(parsed.cid, parsed.request_id, parsed.error_code, parsed.error);
  }

  std::string error;
  const auto response = tuya::parse_response(payload, &error);
  PB_FUZZ_CHECK(response.has_value() == error.empty());
  return 0;
}
