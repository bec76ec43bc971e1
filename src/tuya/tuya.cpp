#include "plugbridge/tuya/tuya.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <limits>
#include <stdexcept>

namespace pb::tuya {

namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string to_hex(const unsigned char* data, size_t size) {
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 0x0f]);
  }
  return out;
}

// Reads an optional string member; returns false (with the code to answer) if present but
// not a usable string.
struct FieldError {
  int code = 0;
  std::string what;
};

std::optional<FieldError> read_string(const nlohmann::json& obj, const char* key, std::string& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return FieldError{code::kParamsEmpty, std::string("missing ") + key};
  if (it->is_null()) return FieldError{code::kNull, std::string(key) + " is null"};
  if (!it->is_string()) return FieldError{code::kType, std::string(key) + " is not a string"};
  out = it->get<std::string>();
  if (out.empty()) return FieldError{code::kParamsEmpty, std::string(key) + " is empty"};
  return std::nullopt;
}

}  // namespace

std::string md5_password(std::string_view client_id, std::string_view username) {
  std::string input;
  input.reserve(client_id.size() + username.size());
  input.append(client_id).append(username);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &len, EVP_md5(), nullptr) != 1) {
    throw std::runtime_error("md5 digest failed (OpenSSL EVP_Digest)");
  }
  return to_hex(digest.data(), len);
}

std::string connack_meaning(int code) {
  switch (code) {
    case 0:
      return "connection accepted";
    case 1:
      return "unacceptable protocol version (broker does not support MQTT 3.1.1)";
    case 2:
      return "identifier rejected (check gateway_id format, or keepalive outside what the platform allows)";
    case 3:
      return "server unavailable (Tuya edge service is down; will retry)";
    case 4:
      return "bad user name or password (check uplink.username; password is md5(gateway_id + username))";
    case 5:
      // mosquitto also answers a wrong password with 5 on MQTT 3.1.1.
      return "not authorized (this gateway may not connect: check gateway_id, uplink.username and the md5 "
             "password with Tuya)";
    default:
      return "unknown CONNACK return code " + std::to_string(code);
  }
}

std::string code_message(int c) {
  switch (c) {
    case code::kSuccess:
      return "success";
    case code::kUpstream:
      return "tedge error";
    case code::kSystem:
      return "system error,please contact the admin";
    case code::kBadTime:
      return "request time is invalid";
    case code::kParamsEmpty:
      return "params is empty";
    case code::kRange:
      return "params range invalid";
    case code::kNull:
      return "params is null";
    case code::kType:
      return "params type is incorrect";
    case code::kOffline:
      return "device is offline";
    case code::kUnsupported:
      return "command or value not support";
    case code::kNoDevice:
      return "device not exist";
    default:
      return "unknown error";
  }
}

std::string code_meaning(int c) {
  switch (c) {
    case code::kSuccess:
      return "success";
    case code::kUpstream:
      return "upstream error reported by the Tuya edge gateway";
    case code::kSystem:
      return "system error on the platform";
    case code::kBadTime:
      return "invalid request time (check the gateway clock)";
    case code::kParamsEmpty:
      return "parameter empty";
    case code::kRange:
      return "parameter out of range";
    case code::kNull:
      return "parameter null";
    case code::kType:
      return "parameter of the wrong type";
    case code::kOffline:
      return "device is offline";
    case code::kUnsupported:
      return "unsupported DP or value";
    case code::kNoDevice:
      return "device not exist (unknown cid, or devices/sync not done yet)";
    default:
      return "unknown error code " + std::to_string(c);
  }
}

std::string topic(std::string_view gateway_id, std::string_view suffix) {
  std::string out = "gateway_id/";
  out.append(gateway_id).append("/").append(suffix);
  return out;
}

std::string new_request_id() {
  std::array<unsigned char, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed: no entropy for a request id");
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string hex = to_hex(b.data(), b.size());
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20);
}

nlohmann::json make_sync(const SyncParams& p, int64_t t, const std::string& request_id) {
  return {{"t", t},
          {"request_id", request_id},
          {"param",
           {{"cid", p.cid},
            {"product_id", p.product_id},
            {"vendor_code", ""},
            {"comm_type", "mqtt"},
            {"device_ip", p.ip},
            {"mac_address", p.mac},
            {"device_name", p.name},
            {"device_desc", p.desc},
            {"install_location", p.location},
            {"device_server_id", ""},
            {"product_sub_type", ""}}}};
}

nlohmann::json make_report(std::string_view cid, int dp_id, const nlohmann::json& value, int64_t t,
                           const std::string& request_id) {
  return {{"t", t},
          {"request_id", request_id},
          {"param", {{"cid", std::string(cid)}, {"id", std::to_string(dp_id)}, {"value", value}}}};
}

nlohmann::json make_status(const std::vector<std::pair<std::string, bool>>& cids, int64_t t,
                           const std::string& request_id) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& [cid, online] : cids) arr.push_back({{"cid", cid}, {"status", online}});
  return {{"t", t}, {"request_id", request_id}, {"param", std::move(arr)}};
}

nlohmann::json make_command_response(std::string_view cid, std::string_view request_id, int c, int64_t t) {
  return {{"t", t},
          {"cid", std::string(cid)},
          {"request_id", std::string(request_id)},
          {"param", {{"msg", code_message(c)}, {"code", c}}}};
}

std::optional<Response> parse_response(std::string_view payload, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<Response> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  auto j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail("response is not valid JSON");
  if (!j.is_object()) return fail("response is not a JSON object");
  Response r;
  auto rid = j.find("request_id");
  if (rid == j.end() || !rid->is_string()) return fail("response has no string request_id");
  r.request_id = rid->get<std::string>();
  auto param = j.find("param");
  if (param == j.end() || !param->is_object()) return fail("response has no param object");
  auto c = param->find("code");
  if (c == param->end() || !c->is_number_integer())
    return fail("response param.code is missing or not an integer");
  auto code_value = c->get<int64_t>();
  if (code_value < std::numeric_limits<int>::min() || code_value > std::numeric_limits<int>::max()) {
    return fail("response param.code out of range");
  }
  r.code = static_cast<int>(code_value);
  // cid and msg are informative; tolerate their absence.
  if (auto cid = param->find("cid"); cid != param->end() && cid->is_string()) r.cid = cid->get<std::string>();
  if (auto msg = param->find("msg"); msg != param->end() && msg->is_string()) r.msg = msg->get<std::string>();
  return r;
}

CommandParse parse_command(std::string_view payload) {
  CommandParse out;
  auto fail = [&](int c, std::string why) {
    out.error_code = c;
    out.error = std::move(why);
    return out;
  };
  auto j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail(code::kType, "command is not valid JSON");
  if (!j.is_object()) return fail(code::kType, "command is not a JSON object");

  // Read both identifiers first so that an error further down can still be answered.
  std::string rid;
  std::string cid;
  auto rid_error = read_string(j, "request_id", rid);
  if (!rid_error) out.request_id = rid;
  auto cid_error = read_string(j, "cid", cid);
  if (!cid_error) out.cid = cid;
  if (rid_error) return fail(rid_error->code, "command " + rid_error->what);
  if (cid_error) return fail(cid_error->code, "command " + cid_error->what);

  auto param = j.find("param");
  if (param == j.end()) return fail(code::kParamsEmpty, "command has no param");
  if (param->is_null()) return fail(code::kNull, "command param is null");
  if (!param->is_object()) return fail(code::kType, "command param is not an object");
  if (param->empty()) return fail(code::kParamsEmpty, "command param is empty");

  auto id = param->find("id");
  if (id == param->end()) return fail(code::kParamsEmpty, "command has no param.id");
  if (id->is_null()) return fail(code::kNull, "command param.id is null");
  int64_t dp = 0;
  if (id->is_number_integer()) {
    dp = id->get<int64_t>();
  } else if (id->is_string()) {
    const auto& s = id->get_ref<const std::string&>();
    if (s.empty()) return fail(code::kParamsEmpty, "command param.id is empty");
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), dp);
    if (ec == std::errc::result_out_of_range) return fail(code::kRange, "command param.id out of range");
    if (ec != std::errc() || ptr != s.data() + s.size()) {
      return fail(code::kType, "command param.id \"" + s + "\" is not a decimal DP id");
    }
  } else {
    return fail(code::kType, "command param.id is neither a string nor an integer");
  }
  if (dp < 1 || dp > 255)
    return fail(code::kRange, "command param.id " + std::to_string(dp) + " out of range");

  auto value = param->find("value");
  if (value == param->end()) return fail(code::kParamsEmpty, "command has no param.value");
  if (value->is_null()) return fail(code::kNull, "command param.value is null");

  out.command = Command{rid, cid, static_cast<int>(dp), *value};
  return out;
}

}  // namespace pb::tuya
