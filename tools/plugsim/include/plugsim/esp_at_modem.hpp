// An emulated ESP8266 running Espressif's ESP-AT firmware: it parses the AT commands the MCU writes
// to its UART and executes them on real TCP + TLS-PSK sockets (asio), answering with the firmware's
// result codes and notices (OK/ERROR/FAIL, ">", SEND OK, +IPD, CLOSED, WIFI CONNECTED/GOT IP/
// DISCONNECT, busy p..., ready). Single connection mode (AT+CIPMUX=0) and SSL only, which is what the
// pbfw::EspAt driver uses. Scenario hooks simulate Wi-Fi loss and modem reboots.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "plugsim/psk_client.hpp"

namespace plugsim {

struct EspAtModemOptions {
  std::string ssid = "plugsim";  // the only access point in range
  std::string password = "plugsim-wifi";
  std::chrono::milliseconds join_time{20};  // association + DHCP
  std::chrono::milliseconds boot_time{20};  // AT+RST to "ready"
  std::chrono::milliseconds connect_timeout{5000};
};

class EspAtModem {
 public:
  using Output = std::function<void(const uint8_t* data, size_t len)>;  // towards the MCU

  // Bytes for the MCU are delivered through `to_mcu` from the io_context (never from inside
  // from_mcu(), so the driver is not re-entered).
  EspAtModem(boost::asio::io_context& io, boost::asio::ssl::context& tls, Output to_mcu,
             EspAtModemOptions options = {});
  ~EspAtModem();
  EspAtModem(const EspAtModem&) = delete;
  EspAtModem& operator=(const EspAtModem&) = delete;

  void from_mcu(const uint8_t* data, size_t len);  // the MCU's UART TX

  // Scenario hooks.
  void wifi_loss(std::chrono::milliseconds duration);  // AP gone: WIFI DISCONNECT, joins fail meanwhile
  void drop_connection();                              // the TCP connection breaks: CLOSED
  void reboot();                                       // power glitch: everything lost, then "ready"
  void power_off();                                    // silent, connection gone, state lost
  void power_on();                                     // fresh state (echo on, Wi-Fi down), silent boot
  void shutdown();                                     // stop for good (no more output)

  bool wifi_up() const { return wifi_up_; }
  bool connected() const { return conn_ != nullptr && conn_->open; }
  uint32_t commands() const { return commands_; }

 private:
  struct Conn {
    Conn(boost::asio::io_context& io, boost::asio::ssl::context& ctx) : stream(io, ctx) {}
    boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream;
    std::array<uint8_t, 2048> rbuf{};
    bool open = false;
  };

  void out(std::string s);
  void handle_line(const std::string& line);
  void finish(const char* result) {
    out(std::string("\r\n") + result + "\r\n");
    busy_ = false;
  }
  void cmd_join(const std::string& args, bool bare);
  void cmd_start(const std::string& args);
  void cmd_psk(const std::string& args, bool hex);
  void send_data();
  void read(const std::shared_ptr<Conn>& conn);
  void lost(const std::shared_ptr<Conn>& conn);
  void close_conn();

  boost::asio::io_context& io_;
  boost::asio::ssl::context& tls_;
  Output to_mcu_;
  EspAtModemOptions options_;
  boost::asio::steady_timer timer_;  // join / boot / connect timeout
  std::shared_ptr<bool> alive_;

  bool powered_ = true;
  uint32_t power_gen_ = 0;  // output queued before a power-off is never delivered
  bool echo_ = true;
  bool busy_ = false;  // a command is executing: new ones get "busy p..."
  bool booting_ = false;
  bool wifi_up_ = false;
  bool ap_stored_ = false;
  std::chrono::steady_clock::time_point wifi_back_at_{};
  PskCredentials creds_;
  std::shared_ptr<Conn> conn_;

  std::string line_;
  size_t data_expected_ = 0;  // > 0: collecting AT+CIPSEND payload
  std::vector<uint8_t> data_;
  uint32_t commands_ = 0;
};

}  // namespace plugsim
