// Platform-side logic of the Tuya edge emulator, free of MQTT so it can be unit tested:
// given a message the gateway published, decide what the platform answers.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace pb::tuyaemu {

struct Outgoing {
  std::string topic;
  nlohmann::json payload;
};

struct ResponderOptions {
  std::string gateway_id;
  // Fail the first sync_fail_count syncs with sync_fail_code (count < 0: fail all of them).
  std::optional<int> sync_fail_code;
  int sync_fail_count = -1;
};

struct HandleResult {
  std::vector<Outgoing> replies;
  std::vector<std::string> violations;  // payload-shape problems, human readable
};

// Message text for a Tuya global error code ("success" for 0).
std::string error_message(int code);

class Responder {
 public:
  explicit Responder(ResponderOptions options);

  // topic is the full MQTT topic; payload the raw text. now_s is the Unix time for "t".
  HandleResult handle(const std::string& topic, const std::string& payload, std::int64_t now_s);

  // The message for `command CID DP VALUE_JSON [REQUEST_ID]`.
  Outgoing make_command(const std::string& cid, const std::string& dp, const nlohmann::json& value,
                        const std::string& request_id, std::int64_t now_s) const;

  // The next `count` properties/report of synced cids are answered with `code` (500, 400, ...).
  void fail_reports(int code, int count) {
    report_fail_code_ = code;
    report_fail_count_ = count;
  }

  std::string topic_prefix() const { return "gateway_id/" + options_.gateway_id + "/"; }
  bool synced(const std::string& cid) const { return synced_.count(cid) != 0; }

 private:
  HandleResult on_sync(const nlohmann::json& msg, std::int64_t now_s, HandleResult result);
  HandleResult on_report(const nlohmann::json& msg, std::int64_t now_s, HandleResult result);

  ResponderOptions options_;
  int syncs_seen_ = 0;
  int report_fail_code_ = 0;
  int report_fail_count_ = 0;
  std::set<std::string> synced_;
};

// Shape checks shared by every gateway->platform message: t integer, request_id string, param.
std::vector<std::string> check_envelope(const nlohmann::json& msg, bool param_is_array);

std::string make_uuid();

}  // namespace pb::tuyaemu
