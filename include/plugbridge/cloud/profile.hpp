// Device-direct IoT platforms (Aliyun IoT with Alink JSON, Tencent IoT Explorer): how a socket logs
// in as its device (client id, user name, password), which topics it uses, and the shape of its
// property reports, of the platform's property set / control messages and of their answers. Pure:
// no I/O; the time and the random connection id are given.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plugbridge/config/config.hpp"

namespace pb::cloud {

// The properties a socket has on these platforms, by our DP table (docs/dp-mapping.md): the keys of
// DeviceUplink::properties.
struct Property {
  int dp;
  std::string_view code;
};
inline constexpr std::array<Property, 5> kProperties{{{1, "switch"},
                                                      {3, "power_current"},
                                                      {5, "voltage_current"},
                                                      {7, "cur_current"},
                                                      {50, "forward_energy_total"}}};
// The DP of a property code; none for a code not in kProperties.
std::optional<int> property_dp(std::string_view code);
// The default identifier of a property code on a platform ("" when the code is unknown); the table is
// config::kDevicePropertyDefaults.
std::string default_identifier(config::DeviceUplink::Platform p, std::string_view code);

// --- crypto helpers (OpenSSL) --------------------------------------------------------------------

// Lower-case hex HMAC of `data` keyed with `key`; method "hmacsha256" or "hmacsha1" (else throws
// std::invalid_argument).
std::string hmac_hex(std::string_view method, std::string_view key, std::string_view data);
// Standard base64 (with padding; whitespace not allowed); none when not valid base64.
std::optional<std::string> base64_decode(std::string_view text);

// --- logging in -----------------------------------------------------------------------------------

struct Login {
  std::string host;  // the uplink's host with {product_key} / {product_id} replaced
  std::string client_id;
  std::string username;
  std::string password;  // a secret: never logged
};

// Aliyun: client id "<clientId>|securemode=2|3,signmethod=<m>[,timestamp=<ms>]|" (clientId = the
// device name), user name "<deviceName>&<productKey>", password = hex HMAC over the parameters
// sorted by name, "clientId<id>deviceName<dn>productKey<pk>[timestamp<ms>]", keyed with the
// device secret. `timestamp_ms` is used only when the uplink's `timestamp` is on.
Login aliyun_login(const config::DeviceUplink& u, const config::AliyunDevice& d, int64_t timestamp_ms);

// Tencent: client id "<productId><deviceName>", user name
// "<productId><deviceName>;12010126;<connid>;<expiry>", password = hex HMAC-SHA256 (or SHA1 with
// sign_method hmacsha1) of the user name keyed with the base64-decoded PSK, then ";hmacsha256".
// Throws std::invalid_argument when the PSK is not base64.
Login tencent_login(const config::DeviceUplink& u, const config::TencentDevice& d, std::string_view connid,
                    int64_t expiry_s);
// The expiry for a login at `now_s`: the end of the next whole token_lifetime_s period.
int64_t tencent_expiry(int64_t now_s, int lifetime_s);
// When a login with this expiry is renewed: half a period before it.
int64_t tencent_renew_at(int64_t expiry_s, int lifetime_s);
// 5 random upper-case letters and digits from `random` (any 64-bit random value).
std::string tencent_connid(uint64_t random);

// --- messages -------------------------------------------------------------------------------------

// A message from the platform on a device's downlink topic, as far as it concerns us.
struct Down {
  enum class Kind {
    Set,          // aliyun thing.service.property.set / tencent control: params to apply
    ReportReply,  // aliyun property/post_reply / tencent report_reply: the answer to our report
    Other,        // anything else on the topic (ignored)
  };
  Kind kind = Kind::Other;
  std::string id;                                    // aliyun "id" / tencent "clientToken" (as text)
  nlohmann::json params = nlohmann::json::object();  // Set: identifier -> value
  int code = 0;                                      // ReportReply: the platform's code
  bool ok = false;                                   // ReportReply: code says success (200 / 0)
};

// One platform's topics and payloads for one uplink's property map.
class Profile {
 public:
  virtual ~Profile() = default;
  // The uplink, with the platform's default identifiers for property codes it leaves out.
  const config::DeviceUplink& uplink() const { return uplink_; }

  // Whether the socket has credentials for this platform.
  virtual bool has_device(const config::SocketEntry& s) const = 0;
  // The login for a connection made now (unix seconds/ms from the caller; `random` for the connid).
  virtual Login login(const config::SocketEntry& s, int64_t now_ms, uint64_t random) const = 0;
  // When that login must be renewed (unix s); none: never.
  virtual std::optional<int64_t> renew_at(const Login& l) const = 0;
  // Topic filters to subscribe to (QoS 1).
  virtual std::vector<std::string> subscriptions(const config::SocketEntry& s) const = 0;
  // The property report's topic.
  virtual std::string report_topic(const config::SocketEntry& s) const = 0;
  // A property report: `params` maps identifiers to values; t_ms = when they were current.
  // Aliyun: {"id","version":"1.0","params":{id:{"value":v,"time":t_ms}},
  //          "method":"thing.event.property.post"};
  // Tencent: {"method":"report","clientToken":id,"timestamp":t_ms,"params":{id:v}}.
  virtual std::string report_payload(const nlohmann::json& params, int64_t t_ms,
                                     const std::string& id) const = 0;
  // Parses a message on one of the subscriptions; none when it is not valid JSON of the platform.
  virtual std::optional<Down> parse(std::string_view topic, std::string_view payload) const = 0;
  // The answer to a Set: topic and payload. ok false: `why` goes in the platform's message field.
  // Aliyun: <set topic>_reply {"id","code":200|460,"data":{},"message"}; Tencent: the up topic,
  // {"method":"control_reply","clientToken","code":0|1,"status"}.
  virtual std::pair<std::string, std::string> set_reply(const config::SocketEntry& s, std::string_view topic,
                                                        const Down& d, bool ok,
                                                        const std::string& why) const = 0;
  // The socket and key named in error hints: "sockets[3].aliyun.device_secret".
  virtual std::string secret_key_name() const = 0;

  // Our DP code -> identifier (empty: not reported), and back (for Set params).
  const std::string& identifier(int dp) const;
  std::optional<int> dp_of(std::string_view identifier) const;

 protected:
  explicit Profile(config::DeviceUplink u);

 private:
  config::DeviceUplink uplink_;
};

std::unique_ptr<Profile> make_profile(const config::DeviceUplink& u);

// A value of ours in the platform's units, from the gateway's: switch 0/1 (from 0/1), power W with
// 1 decimal (from mW), voltage V with 1 decimal (from mV), current A with 3 decimals (from µA),
// energy kWh with 3 decimals (from mWh); rounded half away from zero. A number, never a string (an
// unknown DP: the raw value).
nlohmann::json property_value(int dp, int64_t raw);

}  // namespace pb::cloud
