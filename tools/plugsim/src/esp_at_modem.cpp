#include "plugsim/esp_at_modem.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <optional>

#include "plugbridge/common/log.hpp"

namespace plugsim {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Splits AT parameters: `"a\"b",12,"c"` -> {a"b, 12, c}. nullopt if a quote is not closed.
std::optional<std::vector<std::string>> split_params(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '\\' && i + 1 < s.size()) {
        cur += s[++i];
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (quoted) return std::nullopt;
  if (!s.empty()) out.push_back(cur);
  return out;
}

std::optional<std::vector<uint8_t>> from_hex(const std::string& s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::vector<uint8_t> out;
  for (size_t i = 0; i < s.size(); i += 2) {
    unsigned v = 0;
    for (size_t k = 0; k < 2; ++k) {
      const char c = s[i + k];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
    }
    out.push_back(static_cast<uint8_t>(v));
  }
  return out;
}

}  // namespace

EspAtModem::EspAtModem(asio::io_context& io, asio::ssl::context& tls, Output to_mcu,
                       EspAtModemOptions options)
    : io_(io),
      tls_(tls),
      to_mcu_(std::move(to_mcu)),
      options_(std::move(options)),
      timer_(io),
      alive_(std::make_shared<bool>(true)) {}

EspAtModem::~EspAtModem() {
  *alive_ = false;
  if (conn_) {
    boost::system::error_code ignored;
    conn_->stream.lowest_layer().close(ignored);
  }
}

void EspAtModem::out(std::string s) {
  if (!powered_) return;
  asio::post(io_, [this, alive = alive_, gen = power_gen_, s = std::move(s)] {
    if (*alive && gen == power_gen_ && to_mcu_) to_mcu_(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  });
}

void EspAtModem::power_off() {
  reboot();  // drops the connection and the state
  timer_.cancel();
  booting_ = false;
  powered_ = false;
  ++power_gen_;
}

void EspAtModem::power_on() {
  if (powered_) return;
  powered_ = true;
}

void EspAtModem::shutdown() {
  timer_.cancel();
  close_conn();
  to_mcu_ = nullptr;
}

void EspAtModem::from_mcu(const uint8_t* data, size_t len) {
  if (!powered_) return;
  for (size_t i = 0; i < len; ++i) {
    if (data_expected_ > 0) {
      data_.push_back(data[i]);
      if (--data_expected_ == 0) send_data();
      continue;
    }
    if (booting_) continue;  // a rebooting modem hears nothing
    const char c = static_cast<char>(data[i]);
    if (c == '\n') {
      std::string line;
      line.swap(line_);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) handle_line(line);
      continue;
    }
    if (line_.size() < 512) line_ += c;
  }
}

void EspAtModem::handle_line(const std::string& line) {
  ++commands_;
  if (echo_) out(line + "\r\n");
  if (busy_) {
    out("busy p...\r\n");
    return;
  }
  const auto eq = line.find('=');
  const std::string cmd = line.substr(0, eq);
  const std::string args = eq == std::string::npos ? std::string() : line.substr(eq + 1);
  busy_ = true;
  if (cmd == "AT") {
    finish("OK");
  } else if (cmd == "ATE0" || cmd == "ATE1") {
    echo_ = cmd == "ATE1";
    finish("OK");
  } else if (cmd == "AT+RST") {
    finish("OK");
    reboot();
  } else if (cmd == "AT+CWMODE") {
    finish(args == "1" || args == "3" ? "OK" : "ERROR");
  } else if (cmd == "AT+CIPMUX") {
    finish(args == "0" && !connected() ? "OK" : "ERROR");
  } else if (cmd == "AT+CWJAP") {
    cmd_join(args, eq == std::string::npos);
  } else if (cmd == "AT+CIPSSLCPSK" || cmd == "AT+CIPSSLCPSKHEX") {
    cmd_psk(args, cmd == "AT+CIPSSLCPSKHEX");
  } else if (cmd == "AT+CIPSTART") {
    cmd_start(args);
  } else if (cmd == "AT+CIPCLOSE") {
    if (connected()) {
      close_conn();
      out("CLOSED\r\n");
      finish("OK");
    } else {
      finish("ERROR");
    }
  } else if (cmd == "AT+CIPSEND") {
    const auto n = args.empty() ? 0 : std::strtoul(args.c_str(), nullptr, 10);
    if (!connected() || n == 0 || n > 2048) {
      if (!connected()) out("link is not valid\r\n");
      finish("ERROR");
      return;
    }
    data_expected_ = n;
    data_.clear();
    out("\r\nOK\r\n\r\n>");  // stays busy until the payload is in
  } else if (cmd == "AT+CWSTARTSMART" || cmd == "AT+CWSTOPSMART") {
    finish("OK");  // no phone app in the simulation: nothing is ever received
  } else {
    finish("ERROR");
  }
}

void EspAtModem::cmd_join(const std::string& args, bool bare) {
  bool ok_credentials = ap_stored_;
  if (!bare) {
    const auto p = split_params(args);
    ok_credentials = p && p->size() >= 2 && (*p)[0] == options_.ssid && (*p)[1] == options_.password;
    if (ok_credentials) ap_stored_ = true;
  }
  if (wifi_up_) {
    wifi_up_ = false;
    close_conn();
    out("WIFI DISCONNECT\r\n");
  }
  timer_.expires_after(options_.join_time);
  timer_.async_wait([this, ok_credentials, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec) return;
    if (ok_credentials && std::chrono::steady_clock::now() >= wifi_back_at_) {
      wifi_up_ = true;
      out("WIFI CONNECTED\r\nWIFI GOT IP\r\n");
      finish("OK");
    } else {
      // 1 = timeout, 2 = wrong password, 3 = AP not found
      out(ok_credentials ? "+CWJAP:3\r\n" : "+CWJAP:2\r\n");
      finish("FAIL");
    }
  });
}

void EspAtModem::cmd_psk(const std::string& args, bool hex) {
  const auto p = split_params(args);
  if (!p || p->size() != 2 || (*p)[1].empty() || (*p)[1].size() > 32) {
    finish("ERROR");
    return;
  }
  std::vector<uint8_t> key;
  if (hex) {
    auto k = from_hex((*p)[0]);
    if (!k || k->empty() || k->size() > 32) {
      finish("ERROR");
      return;
    }
    key = std::move(*k);
  } else {
    key.assign((*p)[0].begin(), (*p)[0].end());
  }
  creds_ = PskCredentials{(*p)[1], std::move(key)};  // the "hint" is the identity sent to the server
  finish("OK");
}

void EspAtModem::cmd_start(const std::string& args) {
  const auto p = split_params(args);
  if (!p || p->size() < 3 || (*p)[0] != "SSL") {
    finish("ERROR");
    return;
  }
  if (connected()) {
    out("ALREADY CONNECTED\r\n");
    finish("ERROR");
    return;
  }
  if (!wifi_up_) {
    out("no ip\r\n");
    finish("ERROR");
    return;
  }
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address((*p)[1], ec);
  const auto port = std::strtoul((*p)[2].c_str(), nullptr, 10);
  if (ec || port == 0 || port > 65535 || creds_.identity.empty()) {
    finish("ERROR");
    return;
  }
  auto conn = std::make_shared<Conn>(io_, tls_);
  conn_ = conn;
  attach_psk(conn->stream.native_handle(), &creds_);
  auto fail = [this, conn] {
    if (conn != conn_) return;
    conn_.reset();
    boost::system::error_code ignored;
    conn->stream.lowest_layer().close(ignored);
    timer_.cancel();
    finish("ERROR");
    out("CLOSED\r\n");
  };
  timer_.expires_after(options_.connect_timeout);
  timer_.async_wait([conn, fail, alive = alive_](const boost::system::error_code& tec) {
    if (!*alive || tec || conn->open) return;
    fail();
  });
  conn->stream.lowest_layer().async_connect(
      tcp::endpoint(addr, static_cast<uint16_t>(port)),
      [this, conn, fail, alive = alive_](const boost::system::error_code& cec) {
        if (!*alive || conn != conn_) return;
        if (cec) {
          fail();
          return;
        }
        boost::system::error_code ignored;
        conn->stream.lowest_layer().set_option(tcp::no_delay(true), ignored);
        conn->stream.async_handshake(asio::ssl::stream_base::client,
                                     [this, conn, fail, alive](const boost::system::error_code& hec) {
                                       if (!*alive || conn != conn_) return;
                                       if (hec) {
                                         fail();
                                         return;
                                       }
                                       timer_.cancel();
                                       conn->open = true;
                                       out("CONNECT\r\n");
                                       finish("OK");
                                       read(conn);
                                     });
      });
}

void EspAtModem::send_data() {
  auto conn = conn_;
  const size_t n = data_.size();
  if (!conn || !conn->open) {
    finish("SEND FAIL");
    return;
  }
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(data_));
  data_.clear();
  out("\r\nRecv " + std::to_string(n) + " bytes\r\n");
  asio::async_write(conn->stream, asio::buffer(*buf),
                    [this, conn, buf, alive = alive_](const boost::system::error_code& ec, size_t) {
                      if (!*alive) return;
                      if (ec || conn != conn_) {
                        finish("SEND FAIL");
                        if (conn == conn_) lost(conn);
                        return;
                      }
                      finish("SEND OK");
                    });
}

void EspAtModem::read(const std::shared_ptr<Conn>& conn) {
  conn->stream.async_read_some(asio::buffer(conn->rbuf),
                               [this, conn, alive = alive_](const boost::system::error_code& ec, size_t n) {
                                 if (!*alive || conn != conn_) return;
                                 if (ec) {
                                   lost(conn);
                                   return;
                                 }
                                 std::string s = "\r\n+IPD," + std::to_string(n) + ":";
                                 s.append(reinterpret_cast<const char*>(conn->rbuf.data()), n);
                                 out(std::move(s));
                                 read(conn);
                               });
}

void EspAtModem::lost(const std::shared_ptr<Conn>& conn) {
  if (conn != conn_) return;
  close_conn();
  out("CLOSED\r\n");
}

void EspAtModem::close_conn() {
  if (!conn_) return;
  auto conn = std::move(conn_);
  conn_.reset();
  conn->open = false;
  boost::system::error_code ignored;
  conn->stream.lowest_layer().close(ignored);
}

void EspAtModem::drop_connection() {
  if (connected()) lost(conn_);
}

void EspAtModem::wifi_loss(std::chrono::milliseconds duration) {
  wifi_back_at_ = std::chrono::steady_clock::now() + duration;
  if (!wifi_up_) return;
  wifi_up_ = false;
  if (connected()) {
    close_conn();
    out("CLOSED\r\n");
  }
  out("WIFI DISCONNECT\r\n");
}

void EspAtModem::reboot() {
  close_conn();
  timer_.cancel();
  wifi_up_ = false;
  echo_ = true;
  busy_ = false;
  booting_ = true;
  data_expected_ = 0;
  line_.clear();
  creds_ = PskCredentials{};
  timer_.expires_after(options_.boot_time);
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec) return;
    booting_ = false;
    out("\r\nready\r\n");
  });
}

}  // namespace plugsim
