// The way a simulated socket reaches the gateway: directly over an asio TLS-PSK socket
// (TlsTransport, --link direct) or through the firmware's ESP-AT driver and an emulated ESP8266
// (EspAtLink, --link esp-at). Both reconnect by themselves until stop().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace plugsim {

enum class LinkKind { Direct, EspAt };

class TransportListener {
 public:
  virtual void on_connected() = 0;
  // Only after on_connected; `reason` is for humans.
  virtual void on_disconnected(const std::string& reason) = 0;
  virtual void on_bytes(const uint8_t* data, size_t len) = 0;

 protected:
  ~TransportListener() = default;
};

class Link {
 public:
  virtual ~Link() = default;

  // Starts connecting after `delay` and keeps the link up until stop().
  virtual void start(std::chrono::milliseconds delay) = 0;
  // Closes for good (no reconnect); notifies on_disconnected if connected.
  virtual void stop() = 0;
  // Drops the connection now (simulated link loss); reconnects after a backoff.
  virtual void drop(const std::string& reason) = 0;
  // Wi-Fi gone for `duration` (only the ESP-AT link has Wi-Fi; false = not supported).
  virtual bool wifi_loss(std::chrono::milliseconds /*duration*/) { return false; }
  // The session proved healthy: the next reconnect starts from the initial backoff again.
  virtual void mark_healthy() {}
  // Queues bytes for sending; false when not connected or the queue is full.
  virtual bool send(const uint8_t* data, size_t len) = 0;
  // Asked by the protocol layer: like drop(), but the notification is deferred so the caller
  // is not re-entered.
  virtual void close() = 0;

  virtual bool connected() const = 0;
  virtual uint32_t connection_count() const = 0;
};

}  // namespace plugsim
