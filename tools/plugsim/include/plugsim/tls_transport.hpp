// Asio TLS-PSK client connection of one simulated socket: connect, handshake, read loop, write
// queue, and reconnection with exponential backoff + jitter while the gateway is unreachable.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "plugsim/link.hpp"
#include "plugsim/psk_client.hpp"

namespace plugsim {

struct TransportOptions {
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{10000};
  std::chrono::milliseconds connect_timeout{10000};  // TCP connect + TLS handshake
  size_t max_queued_bytes = 16 * 1024;               // send() refuses beyond this
  LinkKind link = LinkKind::Direct;                  // which Link a VirtualSocket builds
};

class TlsTransport final : public Link {
 public:
  TlsTransport(boost::asio::io_context& io, boost::asio::ssl::context& ctx,
               boost::asio::ip::tcp::endpoint gateway, PskCredentials creds, TransportListener& listener,
               TransportOptions options = {});
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  // Starts connecting after `delay` and keeps the link up until stop().
  void start(std::chrono::milliseconds delay = std::chrono::milliseconds(0)) override;
  // Closes for good (no reconnect); notifies on_disconnected if connected.
  void stop() override;
  // Drops the connection now (simulated link loss); reconnects after a backoff.
  void drop(const std::string& reason) override;
  // The session proved healthy: the next reconnect starts from the initial backoff again.
  void mark_healthy() override { attempt_ = 0; }

  // Queues bytes for sending; false when not connected or the queue is full.
  bool send(const uint8_t* data, size_t len) override;
  // Asked by the protocol layer: like drop(), but the notification is deferred so the caller
  // is not re-entered.
  void close() override;

  bool connected() const override { return connected_; }
  const boost::asio::ip::tcp::endpoint& gateway() const { return gateway_; }
  uint32_t connection_count() const override { return connection_count_; }

 private:
  struct Conn {
    Conn(boost::asio::io_context& io, boost::asio::ssl::context& ctx) : stream(io, ctx) {}
    boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream;
    std::array<uint8_t, 4096> rbuf{};
  };

  void connect();
  void read(const std::shared_ptr<Conn>& conn);
  void write(const std::shared_ptr<Conn>& conn);
  void fail(std::shared_ptr<Conn> conn, const std::string& reason,
            bool defer_notify);  // by value: callers pass conn_
  void schedule_reconnect();

  boost::asio::io_context& io_;
  boost::asio::ssl::context& ctx_;
  boost::asio::ip::tcp::endpoint gateway_;
  PskCredentials creds_;
  TransportListener& listener_;
  TransportOptions options_;
  boost::asio::steady_timer timer_;  // backoff wait, or connect/handshake deadline
  std::shared_ptr<Conn> conn_;
  std::vector<uint8_t> pending_;   // queued, not yet handed to the socket
  std::vector<uint8_t> inflight_;  // being written
  bool writing_ = false;
  bool connected_ = false;
  bool stopped_ = true;
  uint32_t attempt_ = 0;
  uint32_t connection_count_ = 0;
  std::minstd_rand rng_;
  std::shared_ptr<bool> alive_;  // guards deferred notifications against destruction
};

}  // namespace plugsim
