// --link esp-at: the firmware's own ESP-AT driver (pbfw::EspAt, the code that runs on the MCU) talking
// over a simulated UART to an emulated ESP8266 (EspAtModem) that opens the real TLS-PSK connection.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <pbfw/esp_at.hpp>
#include <string>

#include "plugsim/esp_at_modem.hpp"
#include "plugsim/link.hpp"
#include "plugsim/psk_client.hpp"
#include "plugsim/tls_transport.hpp"

namespace plugsim {

class EspAtLink final : public Link, private pbfw::EspAtUart, private pbfw::EspAtListener {
 public:
  EspAtLink(boost::asio::io_context& io, boost::asio::ssl::context& ctx,
            const boost::asio::ip::tcp::endpoint& gateway, PskCredentials creds, TransportListener& listener,
            TransportOptions options = {}, EspAtModemOptions modem_options = {});
  ~EspAtLink() override;
  EspAtLink(const EspAtLink&) = delete;
  EspAtLink& operator=(const EspAtLink&) = delete;

  void start(std::chrono::milliseconds delay) override;
  void stop() override;
  void drop(const std::string& reason) override;  // the modem's TCP connection breaks
  bool wifi_loss(std::chrono::milliseconds duration) override;
  bool send(const uint8_t* data, size_t len) override;
  void close() override;
  bool connected() const override { return driver_.link_up(); }
  uint32_t connection_count() const override { return driver_.connects(); }

  pbfw::EspAt& driver() { return driver_; }
  EspAtModem& modem() { return modem_; }

 private:
  // pbfw::EspAtUart: MCU -> modem
  void write(const uint8_t* data, size_t len) override { modem_.from_mcu(data, len); }
  // pbfw::EspAtListener
  void on_link_up() override;
  void on_link_down() override;
  void on_link_bytes(const uint8_t* data, size_t len) override { listener_.on_bytes(data, len); }

  uint64_t now_ms() const;
  // Arms the timer for the driver's next deadline: an idle link costs no wakeups, so a thousand
  // simulated sockets do not poll.
  void schedule();

  boost::asio::io_context& io_;
  TransportListener& listener_;
  std::string host_;
  PskCredentials creds_;
  std::string ssid_;
  std::string password_;
  std::chrono::steady_clock::time_point epoch_;
  EspAtModem modem_;
  pbfw::EspAt driver_;
  boost::asio::steady_timer timer_;
  bool running_ = false;
  bool armed_ = false;
  uint64_t armed_at_ = 0;
  uint64_t timer_gen_ = 0;
  bool reported_up_ = false;
  std::shared_ptr<bool> alive_;
};

}  // namespace plugsim
