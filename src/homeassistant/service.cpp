#include "plugbridge/homeassistant/service.hpp"

#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "plugbridge/common/log.hpp"
#include "plugbridge/uplink/uplink.hpp"

namespace pb::homeassistant {

namespace {

class ClientPort final : public MqttPort {
 public:
  bool connected() const override { return client && client->connected(); }
  void publish(const std::string& topic, std::string payload, bool retain,
               std::function<void(bool)> done) override {
    client->publish(topic, std::move(payload), std::move(done), retain);
  }
  void deliver_waiting() override {
    if (client) client->deliver_waiting();
  }
  uplink::Client* client = nullptr;
};

class GatewaySource final : public SocketSource {
 public:
  explicit GatewaySource(gateway::Gateway& g) : gw(g) {}
  std::vector<std::string> roster() const override { return gw.roster(); }
  std::optional<gateway::SocketView> socket_view(const std::string& cid) const override {
    return gw.socket_view(cid);
  }
  void command(const std::string& cid, const std::string& kind, int64_t value,
               std::function<void(gateway::LocalResult)> done) override {
    gw.local_command(cid, kind, value, std::move(done));
  }
  gateway::Gateway& gw;
};

constexpr std::chrono::seconds kOfflineAckTimeout{1};

}  // namespace

std::string read_password_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read password file " + path + ": " + std::strerror(errno));
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

struct Service::Impl {
  Impl(boost::asio::io_context& ctx, const config::MqttUplink& c, const std::string& gateway_id,
       const std::string& version, gateway::Gateway& g)
      : io(ctx),
        cfg(c),
        gw(g),
        source(g),
        bridge(ctx, c, gateway_id, version, source, port, [&g] { return g.clock_status().now_ms; }),
        stop_timer(ctx) {
    uplink::Options o;
    o.host = cfg.host;
    o.port = cfg.port;
    o.tls = cfg.tls;
    o.ca_file = cfg.ca_file;
    o.verify_hostname = cfg.verify_hostname;
    o.gateway_id = cfg.client_id;
    o.username = cfg.username;
    o.password = cfg.password_file.empty() ? std::string() : read_password_file(cfg.password_file);
    o.topics = bridge.subscriptions();
    o.will = uplink::Options::Will{bridge.will_topic(), "offline", true};
    o.keepalive = std::chrono::seconds(cfg.keepalive_s);
    o.retry_max = std::chrono::seconds(cfg.reconnect_max_s);
    o.clean_session = true;  // nothing to resume: every connect sends the whole state
    o.log_name = "uplink " + cfg.name;
    o.config_key = "uplinks." + cfg.name;
    uplink::Handlers h;
    h.on_connected = [this] { bridge.on_connected(); };
    h.on_disconnected = [this](const std::string&) { bridge.on_disconnected(); };
    h.on_message = [this](const std::string& topic, const std::string& payload) {
      bridge.on_message(topic, payload);
    };
    client = std::make_unique<uplink::Client>(ctx, std::move(o), std::move(h));
    port.client = client.get();
    gw.add_observer(bridge);
  }
  ~Impl() {
    gw.remove_observer(bridge);
    port.client = nullptr;
  }

  boost::asio::io_context& io;
  config::MqttUplink cfg;
  gateway::Gateway& gw;
  GatewaySource source;
  ClientPort port;
  Bridge bridge;
  std::unique_ptr<uplink::Client> client;  // after the bridge: its handlers call into it
  boost::asio::steady_timer stop_timer;
};

Service::Service(boost::asio::io_context& io, const config::MqttUplink& cfg, const std::string& gateway_id,
                 const std::string& version, gateway::Gateway& gw)
    : impl_(std::make_unique<Impl>(io, cfg, gateway_id, version, gw)) {}

Service::~Service() = default;

void Service::start() {
  impl_->client->start();
}

void Service::stop(std::function<void()> done) {
  Impl& i = *impl_;
  auto shared = std::make_shared<std::function<void()>>(std::move(done));
  auto disconnect = [&i, shared] {
    if (!*shared) return;
    i.stop_timer.cancel();
    i.client->stop([shared] {
      if (auto d = std::exchange(*shared, nullptr)) d();
    });
  };
  // The retained "offline", acknowledged or not within a second; then the clean disconnect.
  i.stop_timer.expires_after(kOfflineAckTimeout);
  i.stop_timer.async_wait([disconnect](const boost::system::error_code& ec) {
    if (!ec) disconnect();
  });
  i.bridge.stop(disconnect);
}

const std::string& Service::name() const {
  return impl_->cfg.name;
}

BridgeHealth Service::health() const {
  return impl_->bridge.health();
}

std::string Service::last_error() const {
  return impl_->client->last_error();
}

gateway::UplinkHealth Service::uplink_health() const {
  const BridgeHealth b = health();
  gateway::UplinkHealth u;
  u.name = name();
  u.type = "mqtt";
  u.connected = b.connected;
  u.outbox_depth = b.waiting;
  u.published = b.published;
  u.failed = b.failed;
  u.last_error = last_error();
  return u;
}

}  // namespace pb::homeassistant
