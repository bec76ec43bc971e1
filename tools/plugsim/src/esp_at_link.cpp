#include "plugsim/esp_at_link.hpp"

#include <random>

#include "plugbridge/common/log.hpp"

namespace plugsim {

namespace {

pbfw::EspAtConfig make_driver_config(const std::string& ssid, const std::string& password,
                                     const std::string& host, uint16_t port, const PskCredentials& creds,
                                     const TransportOptions& o) {
  pbfw::EspAtConfig c;
  c.ssid = ssid.c_str();
  c.password = password.c_str();
  c.host = host.c_str();
  c.port = port;
  c.cid = creds.identity.c_str();
  c.psk = creds.key.data();
  c.psk_len = creds.key.size();
  c.seed = std::random_device{}();  // the MCU would use its hardware RNG / unique ID
  c.backoff_initial_ms = static_cast<uint32_t>(o.backoff_initial.count());
  c.backoff_max_ms = static_cast<uint32_t>(o.backoff_max.count());
  c.connect_timeout_ms = static_cast<uint32_t>(o.connect_timeout.count());
  return c;
}

}  // namespace

EspAtLink::EspAtLink(boost::asio::io_context& io, boost::asio::ssl::context& ctx,
                     const boost::asio::ip::tcp::endpoint& gateway, PskCredentials creds,
                     TransportListener& listener, TransportOptions options, EspAtModemOptions modem_options)
    : io_(io),
      listener_(listener),
      host_(gateway.address().to_string()),
      creds_(std::move(creds)),
      ssid_(modem_options.ssid),
      password_(modem_options.password),
      epoch_(std::chrono::steady_clock::now()),
      modem_(
          io, ctx,
          [this](const uint8_t* d, size_t n) {
            driver_.set_time(now_ms());   // no periodic tick here: keep the driver's clock fresh
            driver_.on_uart_bytes(d, n);  // modem -> MCU
            schedule();
          },
          modem_options),
      driver_(*this, *this, make_driver_config(ssid_, password_, host_, gateway.port(), creds_, options)),
      timer_(io),
      alive_(std::make_shared<bool>(true)) {}

EspAtLink::~EspAtLink() {
  *alive_ = false;
  modem_.shutdown();
}

uint64_t EspAtLink::now_ms() const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - epoch_)
          .count());
}

void EspAtLink::start(std::chrono::milliseconds delay) {
  if (running_) return;
  running_ = true;
  modem_.power_on();
  armed_ = false;
  timer_.expires_after(delay);
  timer_.async_wait([this, alive = alive_, gen = ++timer_gen_](const boost::system::error_code&) {
    if (!*alive || gen != timer_gen_ || !running_) return;
    driver_.start(now_ms());
    driver_.tick(now_ms());
    schedule();
  });
}

void EspAtLink::schedule() {
  if (!running_) return;
  const uint64_t at = driver_.next_wakeup_ms();
  if (at == UINT64_MAX || (armed_ && at >= armed_at_)) return;  // a stale wakeup is harmless
  armed_ = true;
  armed_at_ = at;
  timer_.expires_at(epoch_ + std::chrono::milliseconds(at));
  timer_.async_wait([this, alive = alive_, gen = ++timer_gen_](const boost::system::error_code&) {
    if (!*alive || gen != timer_gen_ || !running_) return;
    armed_ = false;
    driver_.tick(now_ms());
    schedule();
  });
}

bool EspAtLink::send(const uint8_t* data, size_t len) {
  driver_.set_time(now_ms());
  const bool ok = driver_.send(data, len);
  schedule();  // a CIPSEND may have started: its timeout
  return ok;
}

void EspAtLink::close() {
  driver_.set_time(now_ms());
  driver_.close();
  schedule();  // on_link_down is delivered from the next tick, right away
}

void EspAtLink::stop() {
  running_ = false;
  armed_ = false;
  ++timer_gen_;
  timer_.cancel();
  modem_.power_off();  // no more bytes towards the driver
  driver_.stop();
  if (reported_up_) {
    reported_up_ = false;
    listener_.on_disconnected("shutdown");
  }
}

void EspAtLink::drop(const std::string& reason) {
  PB_LOG(Debug, "plugsim") << creds_.identity << ": esp-at link drop: " << reason;
  modem_.drop_connection();
}

bool EspAtLink::wifi_loss(std::chrono::milliseconds duration) {
  modem_.wifi_loss(duration);
  return true;
}

void EspAtLink::on_link_up() {
  reported_up_ = true;
  listener_.on_connected();
}

void EspAtLink::on_link_down() {
  if (!reported_up_) return;
  reported_up_ = false;
  listener_.on_disconnected("esp-at link down");
}

}  // namespace plugsim
