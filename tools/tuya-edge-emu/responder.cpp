#include "responder.hpp"

#include <cstdio>
#include <random>
#include <utility>

namespace pb::tuyaemu {

using nlohmann::json;

std::string error_message(int code) {
  switch (code) {
    case 0:
      return "success";
    case 400:
      return "tedge error: emulated upstream failure";
    case 500:
      return "system error,please contact the admin";
    case 1001:
      return "request time is invalid";
    case 1100:
      return "params is empty";
    case 1101:
      return "params range invalid";
    case 1102:
      return "params is null";
    case 1103:
      return "params type is incorrect";
    case 2001:
      return "device is offline";
    case 2002:
      return "command or value not support";
    case 2003:
      return "device not exist";
    default:
      return "error " + std::to_string(code);
  }
}

std::vector<std::string> check_envelope(const json& msg, bool param_is_array) {
  std::vector<std::string> problems;
  if (!msg.is_object()) {
    problems.emplace_back("payload is not a JSON object");
    return problems;
  }
  if (!msg.contains("t")) {
    problems.emplace_back("missing t");
  } else if (!msg["t"].is_number_integer()) {
    problems.emplace_back("t is not an integer");
  }
  if (!msg.contains("request_id")) {
    problems.emplace_back("missing request_id");
  } else if (!msg["request_id"].is_string()) {
    problems.emplace_back("request_id is not a string");
  } else if (msg["request_id"].get<std::string>().empty()) {
    problems.emplace_back("request_id is empty");
  }
  if (!msg.contains("param")) {
    problems.emplace_back("missing param");
  } else if (param_is_array && !msg["param"].is_array()) {
    problems.emplace_back("param is not an array");
  } else if (!param_is_array && !msg["param"].is_object()) {
    problems.emplace_back("param is not an object");
  }
  return problems;
}

namespace {

std::string string_field(const json& obj, const char* key) {
  if (obj.is_object() && obj.contains(key) && obj[key].is_string()) return obj[key].get<std::string>();
  return {};
}

json request_id_of(const json& msg) {
  if (msg.is_object() && msg.contains("request_id")) return msg["request_id"];
  return "";
}

}  // namespace

Responder::Responder(ResponderOptions options) : options_(std::move(options)) {}

HandleResult Responder::handle(const std::string& topic, const std::string& payload, std::int64_t now_s) {
  HandleResult result;
  const std::string prefix = topic_prefix();
  if (topic.rfind(prefix, 0) != 0) return result;
  const std::string suffix = topic.substr(prefix.size());
  // Only gateway->platform topics are ours to judge; the rest are our own echoes.
  const bool from_gateway = suffix == "devices/sync" || suffix == "properties/report" ||
                            suffix == "commands/response" || suffix == "devices/status";
  if (!from_gateway) return result;

  json msg = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (msg.is_discarded()) {
    result.violations.push_back(suffix + ": payload is not valid JSON");
    return result;
  }
  for (auto& p : check_envelope(msg, suffix == "devices/status"))
    result.violations.push_back(suffix + ": " + p);

  if (suffix == "devices/sync") return on_sync(msg, now_s, std::move(result));
  if (suffix == "properties/report") return on_report(msg, now_s, std::move(result));
  if (suffix == "commands/response") {
    if (msg.is_object() && string_field(msg, "cid").empty())
      result.violations.push_back(suffix + ": missing top-level cid");
    if (msg.is_object() && msg.contains("param") && msg["param"].is_object() &&
        !msg["param"].contains("code"))
      result.violations.push_back(suffix + ": param.code missing");
  }
  if (suffix == "devices/status" && msg.is_object() && msg.contains("param") && msg["param"].is_array()) {
    for (const auto& entry : msg["param"]) {
      if (string_field(entry, "cid").empty() || !entry.contains("status") || !entry["status"].is_boolean())
        result.violations.push_back(suffix + ": entry needs cid string and status bool: " + entry.dump());
    }
  }
  return result;
}

HandleResult Responder::on_sync(const json& msg, std::int64_t now_s, HandleResult result) {
  const json param = msg.is_object() && msg.contains("param") ? msg["param"] : json::object();
  const std::string cid = string_field(param, "cid");
  int code = 0;
  if (cid.empty() || string_field(param, "product_id").empty()) {
    result.violations.push_back("devices/sync: param.cid and param.product_id are required");
    code = 1102;
  } else {
    ++syncs_seen_;
    if (options_.sync_fail_code && (options_.sync_fail_count < 0 || syncs_seen_ <= options_.sync_fail_count))
      code = *options_.sync_fail_code;
  }
  if (code == 0) synced_.insert(cid);
  result.replies.push_back({topic_prefix() + "devices/sync/response",
                            json{{"t", now_s},
                                 {"request_id", request_id_of(msg)},
                                 {"param", {{"cid", cid}, {"msg", error_message(code)}, {"code", code}}}}});
  return result;
}

HandleResult Responder::on_report(const json& msg, std::int64_t now_s, HandleResult result) {
  const json param = msg.is_object() && msg.contains("param") ? msg["param"] : json::object();
  const std::string cid = string_field(param, "cid");
  int code = 0;
  if (cid.empty() || string_field(param, "id").empty() || !param.contains("value")) {
    result.violations.push_back("properties/report: param needs cid, id (string) and value");
    code = 1102;
  } else if (!synced(cid)) {
    code = 2003;
  } else if (report_fail_count_ > 0) {
    --report_fail_count_;
    code = report_fail_code_;
  }
  result.replies.push_back({topic_prefix() + "properties/report/response",
                            json{{"t", now_s},
                                 {"request_id", request_id_of(msg)},
                                 {"param", {{"cid", cid}, {"msg", error_message(code)}, {"code", code}}}}});
  return result;
}

Outgoing Responder::make_command(const std::string& cid, const std::string& dp, const json& value,
                                 const std::string& request_id, std::int64_t now_s) const {
  return {topic_prefix() + "commands", json{{"t", now_s},
                                            {"cid", cid},
                                            {"request_id", request_id.empty() ? make_uuid() : request_id},
                                            {"param", {{"id", dp}, {"value", value}}}}};
}

std::string make_uuid() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<unsigned> byte(0, 255);
  unsigned char b[16];
  for (auto& x : b) x = static_cast<unsigned char>(byte(rng));
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

}  // namespace pb::tuyaemu
