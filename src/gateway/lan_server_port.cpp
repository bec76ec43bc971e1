// LanPort over the daemon's lan::Server.
#include <algorithm>
#include <unordered_map>

#include "plugbridge/gateway/lan_port.hpp"
#include "plugbridge/lan/server.hpp"

namespace pb::gateway {
namespace {

class SessionLink final : public SocketLink {
 public:
  explicit SessionLink(std::shared_ptr<lan::Session> s) : s_(std::move(s)) {}
  const std::string& cid() const override { return s_->cid(); }
  const pbfw::proto::Hello& hello() const override { return s_->hello(); }
  std::string remote() const override { return s_->remote(); }
  bool open() const override { return s_->open(); }
  void send(const pbfw::proto::Message& m) override { s_->send(m); }
  void close(std::string reason) override { s_->close(std::move(reason)); }

 private:
  std::shared_ptr<lan::Session> s_;
};

class ServerPort final : public LanPort {
 public:
  ServerPort(boost::asio::io_context& io, lan::ServerOptions options)
      : io_(io), options_(std::move(options)) {}

  void start(KeyLookup lookup, LanHandlers handlers) override {
    handlers_ = std::move(handlers);
    lan::ServerHandlers h;
    h.on_hello = [this](const std::shared_ptr<lan::Session>& s) {
      auto link = std::make_shared<SessionLink>(s);
      links_[s.get()] = link;
      handlers_.on_hello(link);
    };
    h.on_message = [this](const std::shared_ptr<lan::Session>& s, const pbfw::proto::Message& m) {
      auto it = links_.find(s.get());
      if (it != links_.end()) handlers_.on_message(it->second, m);
    };
    h.on_closed = [this](const std::shared_ptr<lan::Session>& s, const std::string& reason) {
      auto it = links_.find(s.get());
      if (it == links_.end()) return;
      auto link = std::move(it->second);
      links_.erase(it);
      handlers_.on_closed(link, reason);
    };
    server_ = std::make_unique<lan::Server>(io_, options_, std::move(lookup), std::move(h));
    server_->start();
  }
  void stop() override {
    if (server_) server_->stop();
  }
  uint16_t port() const override { return server_ ? server_->port() : 0; }
  std::vector<std::pair<std::string, uint64_t>> handshake_failures() const override {
    const lan::HandshakeFailures f = server_ ? server_->handshake_failures() : lan::HandshakeFailures{};
    return {{"refused", f.refused},
            {"evicted", f.evicted},
            {"unknown_identity", f.unknown_identity},
            {"wrong_key", f.wrong_key},
            {"tls", f.tls},
            {"timeout", f.timeout},
            {"hello", f.hello},
            {"disconnected", f.disconnected}};
  }

 private:
  boost::asio::io_context& io_;
  lan::ServerOptions options_;
  LanHandlers handlers_;
  std::unordered_map<const lan::Session*, std::shared_ptr<SessionLink>> links_;  // sessions after Hello
  std::unique_ptr<lan::Server> server_;  // last: no handler runs after it is gone
};

}  // namespace

std::unique_ptr<LanPort> make_lan_port(boost::asio::io_context& io, const config::Config& cfg) {
  lan::ServerOptions opts;
  opts.address = cfg.lan.listen_address;
  opts.port = cfg.lan.port;
  opts.handshake_timeout = std::chrono::seconds(cfg.lan.handshake_timeout_s);
  opts.idle_timeout = std::chrono::seconds(cfg.lan.keepalive_s * 3);
  opts.max_sessions = std::max<size_t>(cfg.sockets.size() * 2 + 16, 64);
  opts.max_handshakes = static_cast<size_t>(cfg.lan.max_handshakes);
  opts.max_handshakes_per_address = static_cast<size_t>(cfg.lan.max_handshakes_per_address);
  opts.new_per_address_per_s = cfg.lan.new_connections_per_address_per_s;
  return std::make_unique<ServerPort>(io, std::move(opts));
}

}  // namespace pb::gateway
