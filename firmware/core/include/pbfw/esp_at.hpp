// Driver for Espressif's stock ESP-AT firmware (ESP8266) over a UART: an event-driven state machine
// that joins Wi-Fi, configures TLS-PSK, opens one SSL connection to the gateway and moves bytes with
// AT+CIPSEND / +IPD. It is the socket's pbfw::LanTransport on the MCU and in plugsim (--link esp-at).
// It reconnects by itself (router or gateway restart, modem reboot) with exponential backoff and
// jitter. Single-threaded: call everything from one context. No heap, no exceptions, no RTTI.
// See docs/lan-protocol.md, "ESP-AT transport".
#pragma once

#include <cstddef>
#include <cstdint>
#include <pbfw/lan_client.hpp>

namespace pbfw {

class EspAtUart {  // the UART towards the ESP8266 (port side)
 public:
  virtual void write(const uint8_t* data, size_t len) = 0;

 protected:
  ~EspAtUart() = default;
};

class EspAtListener {  // usually the SocketCore glue
 public:
  virtual void on_link_up() = 0;                                    // SSL connection to the gateway open
  virtual void on_link_down() = 0;                                  // only after on_link_up
  virtual void on_link_bytes(const uint8_t* data, size_t len) = 0;  // from the gateway, any chunking
  virtual void on_smartconfig_done(bool /*ok*/) {}

 protected:
  ~EspAtListener() = default;
};

struct EspAtConfig {
  const char* ssid = nullptr;  // nullptr or "": join the access point the modem has stored (AT+CWJAP)
  const char* password = nullptr;
  const char* host = nullptr;  // gateway address
  uint16_t port = 0;
  const char* cid = nullptr;  // TLS-PSK identity
  const uint8_t* psk = nullptr;
  size_t psk_len = 0;  // 1..kMaxPskLen
  uint32_t seed = 0;   // mixed with the cid into the jitter PRNG (e.g. a HAL random source)

  uint32_t cmd_timeout_ms = 3000;
  uint32_t join_timeout_ms = 20000;
  uint32_t connect_timeout_ms = 15000;  // AT+CIPSTART="SSL" including the handshake
  uint32_t send_timeout_ms = 5000;      // AT+CIPSEND: prompt and SEND OK
  uint32_t busy_retry_ms = 200;         // re-send a command the modem refused with "busy p..."
  uint32_t backoff_initial_ms = 1000;
  uint32_t backoff_max_ms = 60000;
  uint32_t healthy_after_ms = 30000;  // a link up this long resets the backoff
  uint32_t smartconfig_timeout_ms = 120000;
};

class EspAt final : public LanTransport {
 public:
  static constexpr size_t kMaxPskLen = 32;      // ESP-AT limit for the PSK
  static constexpr size_t kTxRing = 1024;       // queued outgoing bytes
  static constexpr size_t kMaxSendChunk = 512;  // bytes per AT+CIPSEND (firmware limit 2048)
  static constexpr size_t kLineMax = 160;       // longer lines are garbage and dropped
  static constexpr size_t kMaxIpd = 4096;       // a longer +IPD length is taken for line noise

  enum class Phase : uint8_t { Off, Backoff, Connecting, Connected, SmartConfig };

  EspAt(EspAtUart& uart, EspAtListener& listener, const EspAtConfig& cfg);
  EspAt(const EspAt&) = delete;
  EspAt& operator=(const EspAt&) = delete;

  // Starts connecting after a random delay in [0, backoff_initial_ms] (sockets that power up
  // together do not all talk at once).
  void start(uint64_t now_ms);
  // Forgets everything (the modem is powered off with the MCU's Wi-Fi rail); start() begins anew.
  // No on_link_down: the owner is the one stopping.
  void stop();
  void on_uart_bytes(const uint8_t* data, size_t len);  // UART receive, any chunking
  void on_uart_byte(uint8_t b) { on_uart_bytes(&b, 1); }
  void tick(uint64_t now_ms);  // timeouts, backoff, sending; call every few ms
  // When tick() has something to do next (UINT64_MAX: only UART input or send() can change
  // anything), for ports that sleep between events instead of ticking periodically.
  uint64_t next_wakeup_ms() const;
  // Moves the driver's clock without doing anything else. Timeouts and backoff are measured from
  // the latest time seen; a port that does not tick() continuously (it sleeps until
  // next_wakeup_ms()) calls this before on_uart_bytes()/send()/close(), or they would start their
  // deadlines from a stale time.
  void set_time(uint64_t now_ms) {
    if (now_ms > now_) now_ = now_ms;
  }

  // Button provisioning: drops the link, runs ESP-Touch (AT+CWSTARTSMART) until the modem joins an
  // access point or the timeout passes, then reconnects (using the stored access point on success).
  void start_smartconfig(uint64_t now_ms);

  // pbfw::LanTransport
  // Queued (the AT+CIPSEND starts at once when the modem is idle); false if no link or no room.
  bool send(const uint8_t* data, size_t len) override;
  void close() override;  // drops the link now (on_link_down comes from the next tick), reconnects

  Phase phase() const { return phase_; }
  bool link_up() const { return link_up_; }
  bool wifi_up() const { return wifi_up_; }
  uint32_t connects() const { return connects_; }  // successful CIPSTARTs
  uint32_t failures() const { return failures_; }  // failed attempts and lost links
  uint32_t last_backoff_ms() const { return last_backoff_ms_; }
  uint64_t retry_at_ms() const { return retry_at_; }
  size_t queued() const { return tx_len_; }

 private:
  enum class Cmd : uint8_t {
    None,
    At,
    EchoOff,
    Mode,
    Mux,
    Join,
    Psk,
    Close,
    Start,
    SendPrompt,
    SendData,
    SmartStart,
    SmartStop
  };
  enum class Result : uint8_t { Ok, Error, SendOk, Prompt };

  void handle_line(const char* line, size_t len);
  void on_result(Result r);
  void advance();
  void issue(Cmd c, uint32_t timeout_ms);
  void issue_send();
  void write_cmd();
  void step_failed(bool modem_suspect);
  void schedule_retry();
  void link_lost();
  void finish_smartconfig(bool ok);
  uint32_t rand();

  EspAtUart& uart_;
  EspAtListener& listener_;
  EspAtConfig cfg_;

  Phase phase_ = Phase::Off;
  Cmd cur_ = Cmd::None;
  uint64_t now_ = 0;
  uint64_t deadline_ = 0;
  uint64_t retry_at_ = 0;
  uint64_t busy_resend_at_ = 0;  // 0 = none
  uint64_t link_up_at_ = 0;
  uint64_t smart_deadline_ = 0;

  bool modem_ready_ = false;  // echo off, station mode, single connection
  bool wifi_up_ = false;
  bool psk_set_ = false;
  bool need_close_ = false;  // a stale connection may be open: CIPCLOSE before CIPSTART
  bool link_up_ = false;
  bool down_pending_ = false;  // on_link_down owed to the listener (close() must not re-enter)
  bool use_stored_ap_ = false;
  uint8_t smart_step_ = 0;  // 0 mode, 1 start, 2 waiting, 3 stop
  bool smart_ok_ = false;

  uint32_t attempt_ = 0;
  uint32_t rng_;
  uint32_t connects_ = 0;
  uint32_t failures_ = 0;
  uint32_t last_backoff_ms_ = 0;

  char cmd_[kLineMax + 64];  // current command text (kept for "busy" re-sends)
  size_t cmd_len_ = 0;

  char line_[kLineMax];
  size_t line_len_ = 0;
  bool line_overflow_ = false;
  size_t ipd_remaining_ = 0;  // > 0: inside +IPD payload

  uint8_t tx_[kTxRing];
  size_t tx_head_ = 0;
  size_t tx_len_ = 0;
  size_t sending_ = 0;  // bytes of the current CIPSEND
};

}  // namespace pbfw
