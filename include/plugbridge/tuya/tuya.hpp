// Tuya edge gateway message model (spec: /work/shared/spec/tuya-edge-smart-meter.md):
// credentials, topics, JSON builders for what we publish, parsers for what we receive.
// Pure logic: no I/O, no clock (callers pass t), only the request id uses a CSPRNG.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pb::tuya {

// lowercase_hex(md5(client_id + username)), the broker password rule.
std::string md5_password(std::string_view client_id, std::string_view username);

// Operator-facing words for an MQTT 3.1.1 CONNACK return code (0..5; others "unknown ...").
std::string connack_meaning(int code);

namespace code {
inline constexpr int kSuccess = 0, kUpstream = 400, kSystem = 500, kBadTime = 1001, kParamsEmpty = 1100,
                     kRange = 1101, kNull = 1102, kType = 1103, kOffline = 2001, kUnsupported = 2002,
                     kNoDevice = 2003;
}  // namespace code

// The spec's `msg` string for a global error code ("success", "params is empty", ...).
// 400 gives "tedge error" (the upstream detail is not known here). Unknown codes give
// "unknown error".
std::string code_message(int code);
// Human meaning for logs, e.g. "device not exist (unknown cid)".
std::string code_meaning(int code);

// "gateway_id/{gateway_id}/{suffix}", suffix e.g. "devices/sync".
std::string topic(std::string_view gateway_id, std::string_view suffix);

// Topic suffixes of the spec.
namespace suffix {
inline constexpr std::string_view kSync = "devices/sync", kSyncResponse = "devices/sync/response",
                                  kCommands = "commands", kCommandsResponse = "commands/response",
                                  kReport = "properties/report",
                                  kReportResponse = "properties/report/response", kStatus = "devices/status";
}  // namespace suffix

// Random UUID v4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lowercase), from RAND_bytes.
// Throws std::runtime_error if the CSPRNG fails.
std::string new_request_id();

struct SyncParams {
  std::string cid, product_id, name, desc, location, ip, mac;
};

// devices/sync payload; every optional field of the spec is present (empty if unknown),
// comm_type is "mqtt".
nlohmann::json make_sync(const SyncParams& params, int64_t t, const std::string& request_id);
// properties/report payload for one DP; param.id is the DP id as a string.
nlohmann::json make_report(std::string_view cid, int dp_id, const nlohmann::json& value, int64_t t,
                           const std::string& request_id);
// devices/status payload; param is an array of {cid, status}.
nlohmann::json make_status(const std::vector<std::pair<std::string, bool>>& cids, int64_t t,
                           const std::string& request_id);
// commands/response payload; msg is code_message(code).
nlohmann::json make_command_response(std::string_view cid, std::string_view request_id, int code, int64_t t);

// A devices/sync/response or properties/report/response.
struct Response {
  std::string request_id;
  std::string cid;
  int code = 0;
  std::string msg;
};
// nullopt (and *error set, if error is non-null) when the payload is not a response.
std::optional<Response> parse_response(std::string_view payload, std::string* error);

struct Command {
  std::string request_id;
  std::string cid;
  int dp_id = 0;
  nlohmann::json value;  // as sent; interpret with dp.hpp (parse_bool / parse_int)
};

// Result of parsing a commands payload. On failure `command` is empty, error_code is the
// code to answer (1100 empty / 1101 range / 1102 null / 1103 type), `error` says why, and
// request_id / cid hold whatever could be read: if either is empty the command cannot be
// answered and the daemon can only log.
struct CommandParse {
  std::optional<Command> command;
  int error_code = 0;
  std::string error;
  std::string request_id, cid;
};
CommandParse parse_command(std::string_view payload);

}  // namespace pb::tuya
