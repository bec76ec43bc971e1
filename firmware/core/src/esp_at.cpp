#include <cstring>
#include <pbfw/esp_at.hpp>
#include <pbfw/fnv1a.hpp>

namespace pbfw {
namespace {

// Builds one command line in a fixed buffer; a command that does not fit is marked bad (never
// sent truncated).
struct CmdWriter {
  char* buf;
  size_t cap;
  size_t len = 0;
  bool ok = true;

  void put(char c) {
    if (len + 1 >= cap) {
      ok = false;
      return;
    }
    buf[len++] = c;
  }
  void str(const char* s) {
    while (s != nullptr && *s != '\0') put(*s++);
  }
  // ESP-AT string parameter: quoted, with `"`, `,` and `\` escaped by a backslash.
  void quoted(const char* s) {
    put('"');
    while (s != nullptr && *s != '\0') {
      if (*s == '"' || *s == ',' || *s == '\\') put('\\');
      put(*s++);
    }
    put('"');
  }
  void num(uint32_t v) {
    char tmp[10];
    size_t n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) put(tmp[--n]);
  }
  void hex(const uint8_t* d, size_t n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; ++i) {
      put(kDigits[d[i] >> 4]);
      put(kDigits[d[i] & 0xF]);
    }
  }
};

bool starts_with(const char* s, size_t len, const char* prefix) {
  const size_t n = std::strlen(prefix);
  return len >= n && std::memcmp(s, prefix, n) == 0;
}

bool equals(const char* s, size_t len, const char* word) {
  return std::strlen(word) == len && std::memcmp(s, word, len) == 0;
}

// "CLOSED" (single connection) or "<id>,CLOSED" (multiple connections).
bool is_closed_notice(const char* s, size_t len) {
  if (equals(s, len, "CLOSED")) return true;
  return len == 8 && s[0] >= '0' && s[0] <= '9' && s[1] == ',' && std::memcmp(s + 2, "CLOSED", 6) == 0;
}

}  // namespace

EspAt::EspAt(EspAtUart& uart, EspAtListener& listener, const EspAtConfig& cfg)
    : uart_(uart), listener_(listener), cfg_(cfg), rng_(fnv1a(cfg.cid) ^ (cfg.seed * 2654435761u)) {
  if (rng_ == 0) rng_ = 0x9E3779B9u;  // xorshift must not start at 0
  if (cfg_.backoff_initial_ms == 0) cfg_.backoff_initial_ms = 1;
  if (cfg_.backoff_max_ms < cfg_.backoff_initial_ms) cfg_.backoff_max_ms = cfg_.backoff_initial_ms;
  if (cfg_.psk_len > kMaxPskLen) cfg_.psk_len = 0;  // refused by the modem anyway; fail visibly
}

uint32_t EspAt::rand() {
  // xorshift32: tiny and good enough to spread reconnects.
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 17;
  rng_ ^= rng_ << 5;
  return rng_;
}

void EspAt::start(uint64_t now_ms) {
  now_ = now_ms;
  if (phase_ != Phase::Off) return;
  phase_ = Phase::Backoff;
  last_backoff_ms_ = rand() % (cfg_.backoff_initial_ms + 1);
  retry_at_ = now_ms + last_backoff_ms_;
}

uint64_t EspAt::next_wakeup_ms() const {
  if (down_pending_) return now_;
  uint64_t t = UINT64_MAX;
  if (cur_ != Cmd::None) t = deadline_;
  if (busy_resend_at_ != 0 && busy_resend_at_ < t) t = busy_resend_at_;
  if (phase_ == Phase::Backoff && retry_at_ < t) t = retry_at_;
  if (phase_ == Phase::SmartConfig && smart_step_ == 2 && smart_deadline_ < t) t = smart_deadline_;
  return t;
}

void EspAt::stop() {
  phase_ = Phase::Off;
  cur_ = Cmd::None;
  busy_resend_at_ = 0;
  modem_ready_ = wifi_up_ = psk_set_ = need_close_ = link_up_ = down_pending_ = false;
  attempt_ = 0;
  tx_len_ = 0;
  sending_ = 0;
  line_len_ = 0;
  line_overflow_ = false;
  ipd_remaining_ = 0;
}

void EspAt::start_smartconfig(uint64_t now_ms) {
  now_ = now_ms;
  if (link_up_) {
    need_close_ = true;
    link_lost();
  }
  phase_ = Phase::SmartConfig;
  smart_step_ = 0;
  smart_ok_ = false;
  smart_deadline_ = now_ms + cfg_.smartconfig_timeout_ms;
  advance();
}

bool EspAt::send(const uint8_t* data, size_t len) {
  if (!link_up_ || data == nullptr || len == 0 || len > kTxRing - tx_len_) return false;
  for (size_t i = 0; i < len; ++i) tx_[(tx_head_ + tx_len_ + i) % kTxRing] = data[i];
  tx_len_ += len;
  if (cur_ == Cmd::None) advance();  // start the CIPSEND now rather than at the next tick
  return true;
}

void EspAt::close() {
  if (!link_up_) return;
  // Same as a lost link, but the owner hears about it from tick(): it is calling us right now.
  link_up_ = false;
  tx_len_ = 0;
  ++failures_;
  if (now_ - link_up_at_ >= cfg_.healthy_after_ms) attempt_ = 0;
  down_pending_ = true;
  need_close_ = true;
  schedule_retry();
}

void EspAt::link_lost() {
  if (!link_up_) return;
  link_up_ = false;
  tx_len_ = 0;  // the LAN client resends whatever was not acked
  ++failures_;
  if (now_ - link_up_at_ >= cfg_.healthy_after_ms) attempt_ = 0;
  listener_.on_link_down();
}

void EspAt::schedule_retry() {
  phase_ = Phase::Backoff;
  const uint32_t shift = attempt_ < 20 ? attempt_ : 20;
  uint64_t base = static_cast<uint64_t>(cfg_.backoff_initial_ms) << shift;
  if (base > cfg_.backoff_max_ms) base = cfg_.backoff_max_ms;
  // "Equal jitter": half fixed, half random, so delays grow but never line up across sockets.
  const uint32_t half = static_cast<uint32_t>(base / 2);
  last_backoff_ms_ = half + rand() % (static_cast<uint32_t>(base) - half + 1);
  retry_at_ = now_ + last_backoff_ms_;
  ++attempt_;
}

void EspAt::step_failed(bool modem_suspect) {
  ++failures_;
  if (modem_suspect) modem_ready_ = false;             // resynchronise from a plain "AT"
  if (phase_ != Phase::SmartConfig) schedule_retry();  // a late result must not end provisioning
}

void EspAt::tick(uint64_t now_ms) {
  now_ = now_ms;
  if (down_pending_) {
    down_pending_ = false;
    listener_.on_link_down();
  }
  if (cur_ != Cmd::None && busy_resend_at_ != 0 && now_ms >= busy_resend_at_) {
    busy_resend_at_ = 0;
    write_cmd();
  }
  if (cur_ != Cmd::None && now_ms >= deadline_) {
    const Cmd timed_out = cur_;
    cur_ = Cmd::None;
    busy_resend_at_ = 0;
    modem_ready_ = false;  // a silent modem may have rebooted or lost sync
    ipd_remaining_ = 0;    // e.g. a corrupted +IPD length swallowing the replies
    if (timed_out == Cmd::SendPrompt || timed_out == Cmd::SendData) {
      need_close_ = true;
      link_lost();
      step_failed(true);
    } else if (phase_ == Phase::SmartConfig) {
      if (timed_out == Cmd::SmartStop) {
        finish_smartconfig(smart_ok_);
      } else {
        smart_step_ = 3;
      }
    } else if (phase_ == Phase::Connecting) {
      if (timed_out == Cmd::Join) wifi_up_ = false;
      if (timed_out == Cmd::Start) need_close_ = true;
      step_failed(true);
    }
  }
  if (phase_ == Phase::SmartConfig && smart_step_ == 2 && now_ms >= smart_deadline_) smart_step_ = 3;
  advance();
}

void EspAt::issue(Cmd c, uint32_t timeout_ms) {
  CmdWriter w{cmd_, sizeof cmd_};
  switch (c) {
    case Cmd::At:
      w.str("AT");
      break;
    case Cmd::EchoOff:
      w.str("ATE0");
      break;
    case Cmd::Mode:
      w.str("AT+CWMODE=1");  // station
      break;
    case Cmd::Mux:
      w.str("AT+CIPMUX=0");  // single connection: +IPD,<len>:<data>
      break;
    case Cmd::Join:
      if (use_stored_ap_ || cfg_.ssid == nullptr || cfg_.ssid[0] == '\0') {
        w.str("AT+CWJAP");
      } else {
        w.str("AT+CWJAP=");
        w.quoted(cfg_.ssid);
        w.put(',');
        w.quoted(cfg_.password);
      }
      break;
    case Cmd::Psk:
      // The key is binary, so the hex form; the "hint" is the identity the gateway looks up.
      w.str("AT+CIPSSLCPSKHEX=\"");
      w.hex(cfg_.psk, cfg_.psk_len);
      w.str("\",");
      w.quoted(cfg_.cid);
      break;
    case Cmd::Close:
      w.str("AT+CIPCLOSE");
      break;
    case Cmd::Start:
      w.str("AT+CIPSTART=\"SSL\",");
      w.quoted(cfg_.host);
      w.put(',');
      w.num(cfg_.port);
      break;
    case Cmd::SendPrompt:
      w.str("AT+CIPSEND=");
      w.num(static_cast<uint32_t>(sending_));
      break;
    case Cmd::SmartStart:
      w.str("AT+CWSTARTSMART=1");  // ESP-Touch
      break;
    case Cmd::SmartStop:
      w.str("AT+CWSTOPSMART");
      break;
    case Cmd::None:
    case Cmd::SendData:
      return;
  }
  w.str("\r\n");
  cur_ = c;
  deadline_ = now_ + timeout_ms;
  busy_resend_at_ = 0;
  if (!w.ok || (c == Cmd::Psk && cfg_.psk_len == 0)) {
    cmd_len_ = 0;
    deadline_ = now_;  // a configuration that cannot be expressed fails like a timeout
    return;
  }
  cmd_len_ = w.len;
  write_cmd();
}

void EspAt::write_cmd() {
  if (cmd_len_ > 0) uart_.write(reinterpret_cast<const uint8_t*>(cmd_), cmd_len_);
}

void EspAt::issue_send() {
  sending_ = tx_len_ < kMaxSendChunk ? tx_len_ : kMaxSendChunk;
  issue(Cmd::SendPrompt, cfg_.send_timeout_ms);
}

void EspAt::advance() {
  while (cur_ == Cmd::None) {
    switch (phase_) {
      case Phase::Off:
        return;
      case Phase::Backoff:
        if (now_ < retry_at_) return;
        phase_ = Phase::Connecting;
        continue;
      case Phase::Connecting:
        if (!modem_ready_) {
          issue(Cmd::At, cfg_.cmd_timeout_ms);  // then EchoOff, Mode, Mux
        } else if (!wifi_up_) {
          issue(Cmd::Join, cfg_.join_timeout_ms);
        } else if (!psk_set_) {
          issue(Cmd::Psk, cfg_.cmd_timeout_ms);
        } else if (need_close_) {
          issue(Cmd::Close, cfg_.cmd_timeout_ms);
        } else {
          issue(Cmd::Start, cfg_.connect_timeout_ms);
        }
        return;
      case Phase::Connected:
        if (tx_len_ > 0) issue_send();
        return;
      case Phase::SmartConfig:
        switch (smart_step_) {
          case 0:
            issue(Cmd::Mode, cfg_.cmd_timeout_ms);
            return;
          case 1:
            issue(Cmd::SmartStart, cfg_.cmd_timeout_ms);
            return;
          case 2:
            return;  // waiting for the phone app
          default:
            issue(Cmd::SmartStop, cfg_.cmd_timeout_ms);
            return;
        }
    }
  }
}

void EspAt::finish_smartconfig(bool ok) {
  if (ok) use_stored_ap_ = true;
  wifi_up_ = ok;
  psk_set_ = false;  // the modem may have restarted its stack; configure again
  modem_ready_ = false;
  attempt_ = 0;
  phase_ = Phase::Backoff;
  retry_at_ = now_;
  listener_.on_smartconfig_done(ok);
}

void EspAt::on_result(Result r) {
  const Cmd c = cur_;
  if (c == Cmd::None) return;  // a stray result (e.g. after a timeout) belongs to nobody
  if (c == Cmd::SendPrompt) {
    if (r == Result::Ok) return;  // "OK" precedes ">"
    if (r == Result::Prompt) {
      // Write the chunk straight from the ring (two pieces when it wraps).
      const size_t first = tx_head_ + sending_ <= kTxRing ? sending_ : kTxRing - tx_head_;
      uart_.write(tx_ + tx_head_, first);
      if (first < sending_) uart_.write(tx_, sending_ - first);
      cur_ = Cmd::SendData;
      deadline_ = now_ + cfg_.send_timeout_ms;
      return;
    }
  }
  if (c == Cmd::SendData && r == Result::Ok) return;  // some firmware versions; wait for SEND OK
  if (r == Result::Prompt) return;
  cur_ = Cmd::None;
  busy_resend_at_ = 0;
  const bool ok = r == Result::Ok || r == Result::SendOk;

  switch (c) {
    case Cmd::SendPrompt:
    case Cmd::SendData:
      if (ok && link_up_) {
        tx_head_ = (tx_head_ + sending_) % kTxRing;
        tx_len_ -= sending_;
      } else if (!ok && link_up_) {
        need_close_ = true;
        link_lost();
        step_failed(false);
      }
      sending_ = 0;
      break;
    case Cmd::At:
      if (!ok) {
        step_failed(true);
        break;
      }
      issue(Cmd::EchoOff, cfg_.cmd_timeout_ms);
      return;
    case Cmd::EchoOff:
      if (!ok) {
        step_failed(true);
        break;
      }
      issue(Cmd::Mode, cfg_.cmd_timeout_ms);
      return;
    case Cmd::Mode:
      if (phase_ == Phase::SmartConfig) {
        smart_step_ = ok ? 1 : 3;
        break;
      }
      if (!ok) {
        step_failed(true);
        break;
      }
      issue(Cmd::Mux, cfg_.cmd_timeout_ms);
      return;
    case Cmd::Mux:
      if (ok) {
        modem_ready_ = true;
      } else {
        // Refused while a connection is open: close it and try again.
        need_close_ = true;
        step_failed(false);
      }
      break;
    case Cmd::Join:
      wifi_up_ = ok;
      if (!ok) step_failed(false);
      break;
    case Cmd::Psk:
      psk_set_ = ok;
      if (!ok) step_failed(false);
      break;
    case Cmd::Close:
      need_close_ = false;  // ERROR just means nothing was open
      break;
    case Cmd::Start:
      if (ok && phase_ == Phase::Connecting) {
        phase_ = Phase::Connected;
        link_up_ = true;
        link_up_at_ = now_;
        tx_head_ = 0;
        tx_len_ = 0;
        ++connects_;
        listener_.on_link_up();
      } else if (ok) {
        need_close_ = true;  // opened after we gave up on it (smart config started meanwhile)
      } else {
        need_close_ = true;  // "ALREADY CONNECTED" and half-open states
        step_failed(false);
      }
      break;
    case Cmd::SmartStart:
      smart_step_ = ok ? 2 : 3;
      break;
    case Cmd::SmartStop:
      finish_smartconfig(smart_ok_);
      break;
    case Cmd::None:
      break;
  }
  advance();
}

void EspAt::handle_line(const char* s, size_t len) {
  while (len > 0 && (*s == ' ' || *s == '>')) {  // "> " prompt remnants before a result line
    ++s;
    --len;
  }
  if (len == 0) return;
  if (equals(s, len, "OK")) {
    on_result(Result::Ok);
  } else if (equals(s, len, "ERROR") || equals(s, len, "FAIL")) {
    on_result(Result::Error);
  } else if (equals(s, len, "SEND OK")) {
    on_result(Result::SendOk);
  } else if (equals(s, len, "SEND FAIL")) {
    on_result(Result::Error);
  } else if (starts_with(s, len, "busy ")) {
    // The modem dropped our command while still busy with something else: say it again.
    if (cur_ != Cmd::None && cur_ != Cmd::SendData) busy_resend_at_ = now_ + cfg_.busy_retry_ms;
  } else if (equals(s, len, "WIFI GOT IP")) {
    wifi_up_ = true;
    if (phase_ == Phase::SmartConfig) {
      smart_ok_ = true;
      if (smart_step_ == 2) smart_step_ = 3;
    }
  } else if (equals(s, len, "smartconfig connected wifi")) {
    smart_ok_ = true;
    if (smart_step_ == 2) smart_step_ = 3;
  } else if (equals(s, len, "WIFI DISCONNECT")) {
    if (cur_ == Cmd::Join) return;  // part of (re)joining; the result line decides
    wifi_up_ = false;
    if (link_up_) {
      link_lost();
      schedule_retry();
    }
  } else if (is_closed_notice(s, len)) {
    if (cur_ == Cmd::Start || cur_ == Cmd::Close) return;  // the result line follows
    if (link_up_) {
      link_lost();  // a pending CIPSEND fails on its own
      schedule_retry();
    }
  } else if (equals(s, len, "ready")) {
    // The modem rebooted: everything it knew is gone.
    modem_ready_ = false;
    wifi_up_ = false;
    psk_set_ = false;
    need_close_ = false;
    if (cur_ != Cmd::None && phase_ != Phase::SmartConfig) {
      cur_ = Cmd::None;
      busy_resend_at_ = 0;
    }
    if (link_up_) link_lost();
    if (phase_ == Phase::Connecting || phase_ == Phase::Connected) schedule_retry();
  }
  // Anything else (echo, "WIFI CONNECTED", "CONNECT", "Recv N bytes", +CWJAP:<code>, garbage) is
  // informational only.
}

void EspAt::on_uart_bytes(const uint8_t* data, size_t len) {
  size_t i = 0;
  while (i < len) {
    if (ipd_remaining_ > 0) {
      const size_t n = len - i < ipd_remaining_ ? len - i : ipd_remaining_;
      ipd_remaining_ -= n;
      if (link_up_) listener_.on_link_bytes(data + i, n);
      i += n;
      continue;
    }
    const char c = static_cast<char>(data[i++]);
    if (c == '\r' || c == '\n') {
      if (!line_overflow_) handle_line(line_, line_len_);
      line_len_ = 0;
      line_overflow_ = false;
      continue;
    }
    if (c == '>' && line_len_ == 0 && cur_ == Cmd::SendPrompt) {
      on_result(Result::Prompt);
      continue;
    }
    if (c == ':' && !line_overflow_ && starts_with(line_, line_len_, "+IPD,")) {
      // "+IPD,<len>:" or "+IPD,<id>,<len>:"; the payload follows without a line end.
      size_t n = 0;
      bool digits = false;
      bool bad = false;
      for (size_t k = 5; k < line_len_; ++k) {
        if (line_[k] == ',') {
          n = 0;
          digits = false;
        } else if (line_[k] >= '0' && line_[k] <= '9' && n < 100000) {
          n = n * 10 + static_cast<size_t>(line_[k] - '0');
          digits = true;
        } else {
          bad = true;
        }
      }
      line_len_ = 0;
      if (!bad && digits && n <= kMaxIpd) ipd_remaining_ = n;
      continue;
    }
    if (line_len_ < sizeof line_) {
      line_[line_len_++] = c;
    } else {
      line_overflow_ = true;
    }
  }
}

}  // namespace pbfw
