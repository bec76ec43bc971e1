// Aliyun IoT (Alink JSON) and Tencent IoT Explorer (data template) as seen by one device: login,
// topics and payloads. Pure functions of their inputs; OpenSSL only for the HMAC.
#include "plugbridge/cloud/profile.hpp"

#include <openssl/evp.h>

#include <stdexcept>

#include "plugbridge/common/base64.hpp"

namespace pb::cloud {

using config::DeviceUplink;

namespace {

// Our property codes are config's (the defaults live there, config does not link us).
constexpr bool same_codes() {
  for (size_t i = 0; i < kProperties.size(); ++i)
    if (kProperties[i].code != config::kDevicePropertyDefaults[i].code) return false;
  return kProperties.size() == config::kDevicePropertyDefaults.size();
}
static_assert(same_codes(), "cloud::kProperties and config::kDevicePropertyDefaults list other codes");

void replace_all(std::string& s, std::string_view what, std::string_view with) {
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size()))
    s.replace(at, what.size(), with);
}

// Round half away from zero of raw / div.
int64_t div_round(int64_t raw, int64_t div) {
  int64_t q = raw / div;
  const int64_t r = raw % div;
  if (2 * (r < 0 ? -r : r) >= div) q += raw < 0 ? -1 : 1;
  return q;
}

// An id as text: the platforms send strings, some clients numbers.
std::string id_text(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return {};
}

// The JSON object of a payload; none when it is not one. Never throws.
std::optional<nlohmann::json> object_of(std::string_view payload) {
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// An integer field (a JSON integer, or a float with an integral value); none otherwise.
std::optional<int> int_field(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_number_integer()) {
    const int64_t v = it->get<int64_t>();
    if (v < INT32_MIN || v > INT32_MAX) return std::nullopt;
    return static_cast<int>(v);
  }
  if (it->is_number_unsigned()) return std::nullopt;  // beyond int64: no code of ours
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (d >= INT32_MIN && d <= INT32_MAX && d == static_cast<double>(static_cast<int>(d)))
      return static_cast<int>(d);
  }
  return std::nullopt;
}

bool has_string(const nlohmann::json& j, const char* key, std::string_view value) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() && it->get<std::string>() == value;
}

// Text we did not make (a reason, an id) may not be UTF-8: replaced rather than thrown on.
std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

const config::AliyunDevice& aliyun_of(const config::SocketEntry& s) {
  if (!s.aliyun) throw std::invalid_argument("socket '" + s.cid + "' has no aliyun device");
  return *s.aliyun;
}

const config::TencentDevice& tencent_of(const config::SocketEntry& s) {
  if (!s.tencent) throw std::invalid_argument("socket '" + s.cid + "' has no tencent device");
  return *s.tencent;
}

constexpr std::string_view kAliyunSet = "/thing/service/property/set";
constexpr std::string_view kAliyunPostReply = "/thing/event/property/post_reply";

class AliyunProfile final : public Profile {
 public:
  explicit AliyunProfile(const DeviceUplink& u) : Profile(u) {}

  bool has_device(const config::SocketEntry& s) const override { return s.aliyun.has_value(); }
  Login login(const config::SocketEntry& s, int64_t now_ms, uint64_t) const override {
    return aliyun_login(uplink(), aliyun_of(s), now_ms);
  }
  std::optional<int64_t> renew_at(const Login&) const override { return std::nullopt; }
  std::vector<std::string> subscriptions(const config::SocketEntry& s) const override {
    return {base(s) + std::string(kAliyunSet), base(s) + std::string(kAliyunPostReply)};
  }
  std::string report_topic(const config::SocketEntry& s) const override {
    return base(s) + "/thing/event/property/post";
  }
  std::string report_payload(const nlohmann::json& params, int64_t t_ms,
                             const std::string& id) const override {
    nlohmann::json p = nlohmann::json::object();
    if (params.is_object())
      for (const auto& [k, v] : params.items()) p[k] = {{"value", v}, {"time", t_ms}};
    return dump(nlohmann::json{
        {"id", id}, {"version", "1.0"}, {"params", p}, {"method", "thing.event.property.post"}});
  }
  std::optional<Down> parse(std::string_view topic, std::string_view payload) const override {
    const std::optional<nlohmann::json> j = object_of(payload);
    if (!j) return std::nullopt;
    Down d;
    d.id = id_text(*j, "id");
    if (ends_with(topic, kAliyunSet)) {
      const auto params = j->find("params");
      const auto method = j->find("method");
      if (params != j->end() && params->is_object() &&
          (method == j->end() || has_string(*j, "method", "thing.service.property.set"))) {
        d.kind = Down::Kind::Set;
        d.params = *params;
      }
    } else if (ends_with(topic, kAliyunPostReply)) {
      if (const std::optional<int> code = int_field(*j, "code")) {
        d.kind = Down::Kind::ReportReply;
        d.code = *code;
        d.ok = *code == 200;
      }
    }
    return d;
  }
  std::pair<std::string, std::string> set_reply(const config::SocketEntry& s, std::string_view, const Down& d,
                                                bool ok, const std::string& why) const override {
    nlohmann::json j{{"id", d.id}, {"code", ok ? 200 : 460}, {"data", nlohmann::json::object()}};
    if (!ok) j["message"] = why;
    return {base(s) + std::string(kAliyunSet) + "_reply", dump(j)};
  }
  std::string secret_key_name() const override { return "aliyun.device_secret"; }

 private:
  static std::string base(const config::SocketEntry& s) {
    const config::AliyunDevice& d = aliyun_of(s);
    return "/sys/" + d.product_key + "/" + d.device_name;
  }
};

class TencentProfile final : public Profile {
 public:
  explicit TencentProfile(const DeviceUplink& u) : Profile(u) {}

  bool has_device(const config::SocketEntry& s) const override { return s.tencent.has_value(); }
  Login login(const config::SocketEntry& s, int64_t now_ms, uint64_t random) const override {
    const std::string connid = uplink().connid.empty() ? tencent_connid(random) : uplink().connid;
    const int64_t now_s = now_ms >= 0 ? now_ms / 1000 : (now_ms - 999) / 1000;
    return tencent_login(uplink(), tencent_of(s), connid, tencent_expiry(now_s, uplink().token_lifetime_s));
  }
  std::optional<int64_t> renew_at(const Login& l) const override {
    // The expiry is the user name's last field.
    const size_t semi = l.username.rfind(';');
    if (semi == std::string::npos || semi + 1 == l.username.size()) return std::nullopt;
    int64_t expiry = 0;
    for (size_t i = semi + 1; i < l.username.size(); ++i) {
      const char c = l.username[i];
      if (c < '0' || c > '9' || expiry > (INT64_MAX - 9) / 10) return std::nullopt;
      expiry = expiry * 10 + (c - '0');
    }
    return tencent_renew_at(expiry, uplink().token_lifetime_s);
  }
  std::vector<std::string> subscriptions(const config::SocketEntry& s) const override {
    return {"$thing/down/property/" + suffix(s)};
  }
  std::string report_topic(const config::SocketEntry& s) const override {
    return "$thing/up/property/" + suffix(s);
  }
  std::string report_payload(const nlohmann::json& params, int64_t t_ms,
                             const std::string& id) const override {
    return dump(nlohmann::json{{"method", "report"},
                               {"clientToken", id},
                               {"timestamp", t_ms},
                               {"params", params.is_object() ? params : nlohmann::json::object()}});
  }
  std::optional<Down> parse(std::string_view, std::string_view payload) const override {
    const std::optional<nlohmann::json> j = object_of(payload);
    if (!j) return std::nullopt;
    Down d;
    d.id = id_text(*j, "clientToken");
    if (has_string(*j, "method", "control")) {
      if (const auto params = j->find("params"); params != j->end() && params->is_object()) {
        d.kind = Down::Kind::Set;
        d.params = *params;
      }
    } else if (has_string(*j, "method", "report_reply")) {
      if (const std::optional<int> code = int_field(*j, "code")) {
        d.kind = Down::Kind::ReportReply;
        d.code = *code;
        d.ok = *code == 0;
      }
    }
    return d;
  }
  std::pair<std::string, std::string> set_reply(const config::SocketEntry& s, std::string_view, const Down& d,
                                                bool ok, const std::string& why) const override {
    const nlohmann::json j{{"method", "control_reply"},
                           {"clientToken", d.id},
                           {"code", ok ? 0 : 1},
                           {"status", ok ? std::string("success") : why}};
    return {report_topic(s), dump(j)};
  }
  std::string secret_key_name() const override { return "tencent.psk"; }

 private:
  static std::string suffix(const config::SocketEntry& s) {
    const config::TencentDevice& d = tencent_of(s);
    return d.product_id + "/" + d.device_name;
  }
};

// A self-hosted broker with a login and topics of its own per socket (templates). Report:
// {"id","time":t_ms,"params":{id:v}}; set: {"id","params":{id:v}} on the command topic, answered on
// the reply topic with {"id","ok":true} or {"id","ok":false,"error":why}.
class MqttProfile final : public Profile {
 public:
  explicit MqttProfile(const DeviceUplink& u) : Profile(u) {}

  bool has_device(const config::SocketEntry&) const override { return true; }
  Login login(const config::SocketEntry& s, int64_t, uint64_t) const override {
    return Login{uplink().host, fill(uplink().client_id, s), fill(uplink().username, s),
                 fill(uplink().password, s)};
  }
  std::optional<int64_t> renew_at(const Login&) const override { return std::nullopt; }
  std::vector<std::string> subscriptions(const config::SocketEntry& s) const override {
    return {fill(uplink().command_topic, s)};
  }
  std::string report_topic(const config::SocketEntry& s) const override {
    return fill(uplink().report_topic, s);
  }
  std::string report_payload(const nlohmann::json& params, int64_t t_ms,
                             const std::string& id) const override {
    return dump(nlohmann::json{
        {"id", id}, {"time", t_ms}, {"params", params.is_object() ? params : nlohmann::json::object()}});
  }
  std::optional<Down> parse(std::string_view, std::string_view payload) const override {
    const std::optional<nlohmann::json> j = object_of(payload);
    if (!j) return std::nullopt;
    Down d;
    d.id = id_text(*j, "id");
    if (const auto params = j->find("params"); params != j->end() && params->is_object()) {
      d.kind = Down::Kind::Set;
      d.params = *params;
    }
    return d;
  }
  std::pair<std::string, std::string> set_reply(const config::SocketEntry& s, std::string_view, const Down& d,
                                                bool ok, const std::string& why) const override {
    nlohmann::json j{{"id", d.id}, {"ok", ok}};
    if (!ok) j["error"] = why;
    return {fill(uplink().reply_topic, s), dump(j)};
  }
  std::string secret_key_name() const override { return "mqtt.password"; }

 private:
  std::string fill(std::string text, const config::SocketEntry& s) const {
    const std::string username = s.mqtt && !s.mqtt->username.empty() ? s.mqtt->username : s.cid;
    const std::string password = s.mqtt ? s.mqtt->password : std::string();
    // One pass, so a value containing a placeholder's text is never filled in again.
    std::string out;
    for (size_t i = 0; i < text.size();) {
      const size_t open = text.find('{', i);
      const size_t close = open == std::string::npos ? std::string::npos : text.find('}', open);
      if (close == std::string::npos) {
        out += text.substr(i);
        break;
      }
      out += text.substr(i, open - i);
      const std::string_view name(text.data() + open + 1, close - open - 1);
      if (name == "cid")
        out += s.cid;
      else if (name == "name")
        out += s.name.empty() ? s.cid : s.name;
      else if (name == "gateway_id")
        out += uplink().gateway_id;
      else if (name == "username")
        out += username;
      else if (name == "password")
        out += password;
      else
        out += text.substr(open, close - open + 1);
      i = close + 1;
    }
    return out;
  }
};

}  // namespace

std::optional<int> property_dp(std::string_view code) {
  for (const Property& p : kProperties)
    if (p.code == code) return p.dp;
  return std::nullopt;
}

std::string default_identifier(DeviceUplink::Platform p, std::string_view code) {
  for (const config::DevicePropertyDefault& d : config::kDevicePropertyDefaults)
    if (d.code == code) return std::string(d.of(p));
  return {};
}

std::string hmac_hex(std::string_view method, std::string_view key, std::string_view data) {
  const char* digest = method == "hmacsha256" ? "SHA256" : method == "hmacsha1" ? "SHA1" : nullptr;
  if (digest == nullptr) throw std::invalid_argument("unknown sign method '" + std::string(method) + "'");
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t len = 0;
  // OpenSSL refuses a null key pointer even for an empty key.
  static const unsigned char kEmpty = 0;
  const void* key_data = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, digest, nullptr, key_data, key.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, sizeof mac,
                &len) == nullptr)
    throw std::runtime_error("HMAC failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (size_t i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0x0f];
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view t) {
  return pb::base64_decode(t);
}

Login aliyun_login(const DeviceUplink& u, const config::AliyunDevice& d, int64_t timestamp_ms) {
  Login l;
  l.host = u.host;
  replace_all(l.host, "{product_key}", d.product_key);
  const std::string ts = u.timestamp ? std::to_string(timestamp_ms) : std::string();
  l.client_id = d.device_name + "|securemode=" + (u.tls ? "2" : "3") + ",signmethod=" + u.sign_method +
                (u.timestamp ? ",timestamp=" + ts : std::string()) + "|";
  l.username = d.device_name + "&" + d.product_key;
  const std::string content = "clientId" + d.device_name + "deviceName" + d.device_name + "productKey" +
                              d.product_key + (u.timestamp ? "timestamp" + ts : std::string());
  l.password = hmac_hex(u.sign_method, d.device_secret, content);
  return l;
}

Login tencent_login(const DeviceUplink& u, const config::TencentDevice& d, std::string_view connid,
                    int64_t expiry_s) {
  const std::optional<std::string> key = base64_decode(d.psk);
  if (!key)
    throw std::invalid_argument("the psk of Tencent device " + d.product_id + "/" + d.device_name +
                                " is not base64");
  Login l;
  l.host = u.host;
  replace_all(l.host, "{product_id}", d.product_id);
  l.client_id = d.product_id + d.device_name;
  l.username = l.client_id + ";12010126;" + std::string(connid) + ";" + std::to_string(expiry_s);
  l.password = hmac_hex(u.sign_method, *key, l.username) + ";" + u.sign_method;
  return l;
}

int64_t tencent_expiry(int64_t now_s, int lifetime_s) {
  return (now_s / lifetime_s + 2) * lifetime_s;
}

int64_t tencent_renew_at(int64_t expiry_s, int lifetime_s) {
  return expiry_s - lifetime_s / 2;
}

std::string tencent_connid(uint64_t random) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string out(5, 'A');
  for (char& c : out) {
    c = kChars[random % 36];
    random /= 36;
  }
  return out;
}

Profile::Profile(DeviceUplink u) : uplink_(std::move(u)) {
  // An uplink made in code rather than parsed: the platform's defaults for what it leaves out.
  for (const Property& p : kProperties)
    uplink_.properties.try_emplace(std::string(p.code), default_identifier(uplink_.platform, p.code));
}

const std::string& Profile::identifier(int dp) const {
  static const std::string kNone;
  for (const Property& p : kProperties)
    if (p.dp == dp) {
      const auto it = uplink_.properties.find(std::string(p.code));
      return it == uplink_.properties.end() ? kNone : it->second;
    }
  return kNone;
}

std::optional<int> Profile::dp_of(std::string_view identifier) const {
  if (identifier.empty()) return std::nullopt;
  for (const auto& [code, id] : uplink_.properties)
    if (id == identifier) return property_dp(code);
  return std::nullopt;
}

std::unique_ptr<Profile> make_profile(const DeviceUplink& u) {
  switch (u.platform) {
    case DeviceUplink::Platform::Aliyun:
      return std::make_unique<AliyunProfile>(u);
    case DeviceUplink::Platform::Tencent:
      return std::make_unique<TencentProfile>(u);
    case DeviceUplink::Platform::Mqtt:
      return std::make_unique<MqttProfile>(u);
  }
  throw std::invalid_argument("unknown platform");
}

nlohmann::json property_value(int dp, int64_t raw) {
  switch (dp) {
    case 1:
      return raw != 0 ? 1 : 0;
    case 3:  // mW -> W, 1 decimal
    case 5:  // mV -> V, 1 decimal
      return static_cast<double>(div_round(raw, 100)) / 10.0;
    case 7:   // µA -> A, 3 decimals
    case 50:  // mWh -> kWh, 3 decimals
      return static_cast<double>(div_round(raw, 1000)) / 1000.0;
    default:
      return raw;
  }
}

}  // namespace pb::cloud
