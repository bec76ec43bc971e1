#include "plugsim/tls_transport.hpp"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include "plugbridge/common/log.hpp"

namespace plugsim {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

TlsTransport::TlsTransport(asio::io_context& io, asio::ssl::context& ctx, tcp::endpoint gateway,
                           PskCredentials creds, TransportListener& listener, TransportOptions options)
    : io_(io),
      ctx_(ctx),
      gateway_(std::move(gateway)),
      creds_(std::move(creds)),
      listener_(listener),
      options_(options),
      timer_(io),
      rng_(static_cast<uint32_t>(
          std::hash<std::string>{}(creds_.identity) ^
          static_cast<size_t>(std::chrono::steady_clock::now().time_since_epoch().count()))),
      alive_(std::make_shared<bool>(true)) {}

TlsTransport::~TlsTransport() {
  *alive_ = false;
  if (conn_) {
    boost::system::error_code ignored;
    conn_->stream.lowest_layer().close(ignored);
  }
}

void TlsTransport::start(std::chrono::milliseconds delay) {
  stopped_ = false;
  if (delay.count() <= 0) {
    connect();
    return;
  }
  timer_.expires_after(delay);
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec || stopped_) return;
    connect();
  });
}

void TlsTransport::stop() {
  stopped_ = true;
  timer_.cancel();
  if (conn_) fail(conn_, "shutdown", false);
}

void TlsTransport::drop(const std::string& reason) {
  if (conn_) fail(conn_, reason, false);
}

void TlsTransport::close() {
  if (conn_) fail(conn_, "closed by protocol", true);
}

bool TlsTransport::send(const uint8_t* data, size_t len) {
  if (!connected_ || !conn_) return false;
  if (pending_.size() + inflight_.size() + len > options_.max_queued_bytes) return false;
  pending_.insert(pending_.end(), data, data + len);
  if (!writing_) write(conn_);
  return true;
}

void TlsTransport::connect() {
  if (stopped_ || conn_) return;
  auto conn = std::make_shared<Conn>(io_, ctx_);
  conn_ = conn;
  attach_psk(conn->stream.native_handle(), &creds_);

  timer_.expires_after(options_.connect_timeout);
  timer_.async_wait([this, conn, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec || conn != conn_ || connected_) return;
    fail(conn, "connect/handshake timeout", false);
  });

  conn->stream.lowest_layer().async_connect(
      gateway_, [this, conn, alive = alive_](const boost::system::error_code& ec) {
        if (!*alive || conn != conn_) return;
        if (ec) {
          fail(conn, "connect: " + ec.message(), false);
          return;
        }
        boost::system::error_code ignored;
        conn->stream.lowest_layer().set_option(tcp::no_delay(true), ignored);
        conn->stream.async_handshake(asio::ssl::stream_base::client,
                                     [this, conn, alive](const boost::system::error_code& hec) {
                                       if (!*alive || conn != conn_) return;
                                       if (hec) {
                                         fail(conn, "handshake: " + hec.message(), false);
                                         return;
                                       }
                                       timer_.cancel();
                                       connected_ = true;
                                       ++connection_count_;
                                       read(conn);
                                       listener_.on_connected();
                                     });
      });
}

void TlsTransport::read(const std::shared_ptr<Conn>& conn) {
  conn->stream.async_read_some(
      asio::buffer(conn->rbuf), [this, conn, alive = alive_](const boost::system::error_code& ec, size_t n) {
        if (!*alive || conn != conn_) return;
        if (ec) {
          fail(conn, ec == asio::error::eof ? "closed by gateway" : ec.message(), false);
          return;
        }
        listener_.on_bytes(conn->rbuf.data(), n);
        // The listener may have closed the connection meanwhile.
        if (conn == conn_) read(conn);
      });
}

void TlsTransport::write(const std::shared_ptr<Conn>& conn) {
  if (pending_.empty()) {
    writing_ = false;
    return;
  }
  writing_ = true;
  inflight_.swap(pending_);
  pending_.clear();
  asio::async_write(conn->stream, asio::buffer(inflight_),
                    [this, conn, alive = alive_](const boost::system::error_code& ec, size_t) {
                      if (!*alive || conn != conn_) return;
                      if (ec) {
                        fail(conn, "write: " + ec.message(), false);
                        return;
                      }
                      inflight_.clear();
                      write(conn);
                    });
}

void TlsTransport::fail(std::shared_ptr<Conn> conn, const std::string& reason, bool defer_notify) {
  if (conn != conn_) return;
  conn_.reset();
  boost::system::error_code ignored;
  conn->stream.lowest_layer().close(ignored);
  timer_.cancel();
  const bool was_connected = connected_;
  connected_ = false;
  writing_ = false;
  pending_.clear();
  inflight_.clear();
  if (!was_connected) {
    PB_LOG(Debug, "plugsim") << creds_.identity << ": " << reason;
  }
  if (was_connected) {
    if (defer_notify) {
      asio::post(io_, [this, reason, alive = alive_] {
        if (*alive) listener_.on_disconnected(reason);
      });
    } else {
      listener_.on_disconnected(reason);
    }
  }
  if (!stopped_) schedule_reconnect();
}

void TlsTransport::schedule_reconnect() {
  const auto shift = std::min<uint32_t>(attempt_, 16);
  const auto base =
      std::min<int64_t>(options_.backoff_max.count(), options_.backoff_initial.count() << shift);
  ++attempt_;
  // Jitter 80..120 % so a gateway restart is not hit by every socket at the same instant.
  std::uniform_int_distribution<int64_t> jitter(base * 8 / 10, base * 12 / 10);
  const auto delay = std::min<int64_t>(options_.backoff_max.count(), jitter(rng_));
  timer_.expires_after(std::chrono::milliseconds(delay));
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec || stopped_) return;
    connect();
  });
}

}  // namespace plugsim
