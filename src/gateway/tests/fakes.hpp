// In-process fakes of the gateway's ports (LAN links and listener, Tuya uplink), a temporary
// database directory and a loop runner that waits on a condition with a deadline.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "plugbridge/config/config.hpp"
#include "plugbridge/gateway/lan_port.hpp"
#include "plugbridge/gateway/uplink_port.hpp"
#include "plugbridge/store/store.hpp"
#include "support/loop.hpp"

namespace pb::gateway::testing {

namespace proto = pbfw::proto;

using pb::test::run_for;
using pb::test::run_ready;
using pb::test::run_until;

class FakeLink : public SocketLink {
 public:
  FakeLink(const std::string& cid, uint32_t caps, uint32_t boot = 1) : cid_(cid) {
    hello_.proto_version = 1;
    std::strncpy(hello_.cid, cid.c_str(), sizeof hello_.cid - 1);
    std::strncpy(hello_.fw_version, "1.0.0", sizeof hello_.fw_version - 1);
    hello_.capabilities = caps;
    hello_.boot_counter = boot;
  }
  const std::string& cid() const override { return cid_; }
  const proto::Hello& hello() const override { return hello_; }
  std::string remote() const override { return "127.0.0.1:40000"; }
  bool open() const override { return open_; }
  void send(const proto::Message& m) override {
    if (!open_) return;
    if (on_send) on_send(m);
    sent.push_back(m);
  }
  void close(std::string reason) override {
    if (!open_) return;
    open_ = false;
    closed = std::move(reason);
    if (on_close) on_close();
  }

  // Frames of one type the gateway sent.
  std::vector<proto::Message> of(proto::MsgType t) const {
    std::vector<proto::Message> out;
    for (const auto& m : sent)
      if (m.type == t) out.push_back(m);
    return out;
  }

  std::vector<proto::Message> sent;
  std::string closed;
  std::function<void(const proto::Message&)> on_send;  // before it is recorded
  std::function<void()> on_close;

 private:
  std::string cid_;
  proto::Hello hello_{};
  bool open_ = true;
};

class FakeLan : public LanPort {
 public:
  explicit FakeLan(boost::asio::io_context& io) : io_(io) {}
  void start(KeyLookup lookup, LanHandlers handlers) override {
    lookup_ = std::move(lookup);
    handlers_ = std::move(handlers);
    started = true;
  }
  void stop() override {
    stopped = true;
    for (auto& l : links_) l->close("server stopped");
  }
  uint16_t port() const override { return started ? 6690 : 0; }

  // A socket connects and says Hello; false if its PSK identity is unknown.
  bool connect(const std::shared_ptr<FakeLink>& link) {
    if (!lookup_ || !lookup_(link->cid())) return false;
    links_.push_back(link);
    // Like lan::Server: on_closed once, always posted.
    link->on_close = [this, weak = std::weak_ptr<FakeLink>(link)] {
      boost::asio::post(io_, [this, weak] {
        if (auto l = weak.lock()) handlers_.on_closed(l, l->closed);
      });
    };
    handlers_.on_hello(link);
    return true;
  }
  void deliver(const std::shared_ptr<FakeLink>& link, const proto::Message& m) {
    handlers_.on_message(link, m);
  }

  bool started = false;
  bool stopped = false;

 private:
  boost::asio::io_context& io_;
  KeyLookup lookup_;
  LanHandlers handlers_;
  std::vector<std::shared_ptr<FakeLink>> links_;
};

class FakeUplink : public UplinkPort {
 public:
  struct Sent {
    std::string suffix;
    nlohmann::json j;
  };
  explicit FakeUplink(boost::asio::io_context& io) : io_(io) {}
  bool connected() const override { return up; }
  // Acked by the broker (done(true)) on the loop, like Paho's callbacks.
  void publish(const std::string& suffix, std::string payload, std::function<void(bool)> done) override {
    sent.push_back({suffix, nlohmann::json::parse(payload)});
    if (done) boost::asio::post(io_, [done = std::move(done)] { done(true); });
  }
  // A message from the broker: waits for a loop turn of its own (like uplink::Client), unless
  // deliver_waiting() hands it to on_message sooner.
  void arrive(const std::string& suffix, const std::string& payload) {
    inbox_.emplace_back(suffix, payload);
    boost::asio::post(io_, [this] { deliver_waiting(); });
  }
  void deliver_waiting() override {
    while (!inbox_.empty()) {
      auto [suffix, payload] = std::move(inbox_.front());
      inbox_.pop_front();
      if (on_message) on_message(suffix, payload);
    }
  }
  std::vector<nlohmann::json> on(const std::string& suffix) const {
    std::vector<nlohmann::json> out;
    for (const auto& s : sent)
      if (s.suffix == suffix) out.push_back(s.j);
    return out;
  }

  size_t backlog() const override { return waiting; }

  bool up = true;
  size_t waiting = 0;  // what backlog() says
  std::vector<Sent> sent;
  std::function<void(const std::string& suffix, const std::string& payload)> on_message;

 private:
  boost::asio::io_context& io_;
  std::deque<std::pair<std::string, std::string>> inbox_;
};

// A fresh directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pbgwXXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A roster of `n` sockets "s1".."sN" in UTC, readings committed 20 ms after they arrive.
inline config::Config roster_config(size_t n) {
  config::Config cfg;
  cfg.gateway_id = "gw-test";
  cfg.timezone = "UTC";
  cfg.history.commit_interval_ms = 20;
  for (size_t i = 1; i <= n; ++i) {
    config::SocketEntry e;
    e.cid = "s" + std::to_string(i);
    e.product_id = "p";
    e.name = "socket " + std::to_string(i);
    e.secret.assign(16, static_cast<uint8_t>(i));
    cfg.sockets.push_back(e);
  }
  return cfg;
}

// Every quantity measured, as the firmware sends them with kMeterOk.
inline constexpr uint8_t kMeasured =
    proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid;

inline proto::Message reading(uint32_t seq, uint8_t flags = kMeasured | proto::kRelayOn) {
  proto::Message m{};
  m.type = proto::MsgType::Reading;
  m.reading.seq = seq;
  m.reading.flags = flags;
  m.reading.voltage_mv = 230'000;
  m.reading.current_ua = 100'000;
  m.reading.power_mw = 23'000;
  m.reading.energy_mwh = 1000 + seq;
  return m;
}

// The socket's relay switched on by its button, record seq.
inline proto::Message button_relay_event(uint32_t seq) {
  proto::Message m{};
  m.type = proto::MsgType::Event;
  m.event.seq = seq;
  m.event.type = proto::EventType::RelayChanged;
  m.event.cause = proto::Cause::Button;
  m.event.value = 1;
  return m;
}

inline proto::Message command_result(uint32_t cmd_id, proto::CommandStatus status, bool relay_on) {
  proto::Message m{};
  m.type = proto::MsgType::CommandResult;
  m.command_result.cmd_id = cmd_id;
  m.command_result.status = status;
  m.command_result.relay_on = relay_on ? 1 : 0;
  return m;
}

inline std::string cloud_command(const std::string& cid, const std::string& request_id, int dp,
                                 const nlohmann::json& value) {
  return nlohmann::json{
      {"t", 1700000000}, {"cid", cid}, {"request_id", request_id}, {"param", {{"id", dp}, {"value", value}}}}
      .dump();
}

// Readings of cid in the store's samples (those with a valid meter value).
inline int64_t readings_stored(const store::Store& store, const std::string& cid) {
  int64_t n = 0;
  for (const auto& r : store.samples(cid, INT64_MIN, INT64_MAX)) n += r.samples;
  return n;
}

}  // namespace pb::gateway::testing
