// One simulated smart socket: the real firmware core (pbfw::SocketCore) wired to the host HAL,
// a storage, a simulated HLW8032 and a TLS-PSK transport; reports what happens as events.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <pbfw/lan_client.hpp>
#include <pbfw/proto.hpp>
#include <pbfw/socket_core.hpp>
#include <string>
#include <vector>

#include "plugsim/events.hpp"
#include "plugsim/hlw8032_sim.hpp"
#include "plugsim/host_hal.hpp"
#include "plugsim/latency_stats.hpp"
#include "plugsim/link.hpp"
#include "plugsim/tls_transport.hpp"

namespace plugsim {

struct SocketSpec {
  std::string cid;
  std::vector<uint8_t> psk;
  double watts = 60.0;  // load drawn while the relay is on
  double power_factor = 0.95;
  double volts = 230.0;
  uint32_t reading_interval_ms = 1000;
  uint32_t current_limit_ma = 5000;
  uint32_t kv_e6 = 1880000;
  uint32_t ki_e6 = 1000000;
  // The board's real current/power gain against the configured ki_e6 (a shunt off its nominal value):
  // the socket measures meter_gain x the true current and power until it is calibrated.
  double meter_gain = 1.0;
  // Energy saved this often; a file is cheap, so more often than the MCU's flash allows.
  uint32_t persist_interval_ms = 10000;
};

uint32_t true_ki_e6(const SocketSpec& spec);

class VirtualSocket : private TransportListener, private pbfw::LanTransport, private pbfw::SocketObserver {
 public:
  static constexpr size_t kResendCapacity = 128;  // records held while the gateway is unreachable
  static constexpr const char* kFwVersion = "plugsim-0.1";

  VirtualSocket(boost::asio::io_context& io, boost::asio::ssl::context& tls,
                const boost::asio::ip::tcp::endpoint& gateway, SocketSpec spec,
                std::unique_ptr<HostStorage> storage, EventSink& events,
                TransportOptions transport_options = {});
  virtual ~VirtualSocket();
  VirtualSocket(const VirtualSocket&) = delete;
  VirtualSocket& operator=(const VirtualSocket&) = delete;

  // Boots the firmware core and starts connecting after `connect_delay`.
  void start(std::chrono::milliseconds connect_delay = std::chrono::milliseconds(0));
  // Closes the connection for good.
  void stop();
  // One HLW8032 frame period: the meter sends a frame, the core ticks.
  void meter_period(uint32_t elapsed_ms = Hlw8032Sim::kFramePeriodMs);

  void set_watts(double watts) { spec_.watts = watts; }
  void button_click();
  // Mains loss (virtual_socket_power.cpp): off = relay open, link down, no meter; on = cold boot from
  // storage.
  void power_off();
  void power_on();
  bool powered() const { return powered_; }
  void drop_connection(const std::string& reason = "dropped by plugsim") { transport_->drop(reason); }
  // Test control: while muted, the socket still executes commands but holds their CommandResults; unmuting
  // sends the held ones late (if the session is still the same). Lets tests play a socket that never
  // confirms, and a confirmation arriving after the gateway gave up.
  void set_commands_muted(bool muted);

  const std::string& cid() const { return spec_.cid; }
  bool relay_on() const { return hal_.relay(); }
  bool connected() const { return transport_->connected(); }
  // Wi-Fi gone for `duration` (esp-at link only; false otherwise).
  bool wifi_loss(std::chrono::milliseconds duration) { return transport_->wifi_loss(duration); }
  bool session_up() { return core_.lan().session_up(); }
  uint32_t boot() { return core_.boot_counter(); }
  uint32_t acked_seq() const { return acked_seq_; }
  pbfw::SocketCore& core() { return core_; }
  Link& transport() { return *transport_; }
  // Time each record from its creation to the Ack covering it into `stats` (null = off).
  void set_latency_stats(LatencyStats* stats) { latency_ = stats; }

 private:
  // TransportListener
  void on_connected() override;
  void on_disconnected(const std::string& reason) override;
  void on_bytes(const uint8_t* data, size_t len) override;
  // pbfw::LanTransport (the core's view of the link)
  bool send(const uint8_t* data, size_t len) override;
  void close() override { transport_->close(); }

  // pbfw::SocketObserver
  void on_relay_changed(bool on, pbfw::proto::Cause cause) override;
  void on_command_handled(const pbfw::proto::Command& cmd, pbfw::proto::CommandStatus status) override;
  void on_over_current(uint32_t current_ma) override;
  void on_trip(pbfw::proto::EventType type, int32_t value) override;
  void on_provisioning(bool active) override;
  void on_factory_reset() override;
  void on_switch_locked(pbfw::proto::Cause cause) override;

  void after_core_call();  // reports session/ack changes
  void time_records(uint32_t acked);
  void emit(const std::string& json) { events_.emit(json); }

  SocketSpec spec_;
  EventSink& events_;
  HostHal hal_;
  std::unique_ptr<HostStorage> storage_;
  Hlw8032Sim meter_;
  std::unique_ptr<Link> transport_;  // TlsTransport or EspAtLink (TransportOptions::link)
  std::unique_ptr<pbfw::Record[]> records_;
  pbfw::SocketConfig config_;
  pbfw::SocketCore core_;

  bool session_reported_ = false;
  bool commands_muted_ = false;
  std::vector<std::vector<uint8_t>> held_results_;  // CommandResult frames held while muted
  bool powered_ = true;
  uint32_t acked_seq_ = 0;

  static constexpr size_t kMaxTimedRecords = 4096;  // bounded while the gateway is unreachable
  LatencyStats* latency_ = nullptr;
  uint32_t timed_boot_ = 0;
  uint32_t timed_seq_ = 0;  // highest seq of timed_boot_ whose creation time is in created_
  std::deque<std::pair<uint32_t, std::chrono::steady_clock::time_point>> created_;
};

}  // namespace plugsim
