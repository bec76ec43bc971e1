// The gateway's LAN server: sockets connect over TCP + TLS 1.2 with pre-shared keys (the PSK
// identity is the socket's cid), say Hello, then exchange pbfw::proto frames.
//
// Everything runs on the daemon's single io_context; nothing here is thread-safe and no
// internal threads are started. Handlers are never called from inside send()/close()/stop():
// on_closed is always posted, so a handler may freely close sessions or erase them from maps.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <pbfw/proto.hpp>
#include <string>
#include <string_view>
#include <vector>

struct ssl_st;  // OpenSSL's SSL

namespace pb::lan {

// TLS 1.2 only, with the wire contract's suites (pbfw::proto::kPskCipherList, pbfw/limits.hpp) on both
// the server and the client side.

// A client context that authenticates as `identity` with `key` (plugsim, tests).
// Throws std::system_error if OpenSSL rejects the setup.
boost::asio::ssl::context make_psk_client_context(std::string identity, std::vector<uint8_t> key);

// Returns the key for a PSK identity, or nullopt if the identity is unknown.
using PskLookup = std::function<std::optional<std::vector<uint8_t>>(std::string_view identity)>;

namespace detail {
struct Core;
class RecordProtection;
}  // namespace detail

class Session : public std::enable_shared_from_this<Session> {
 public:
  struct Token;  // only the server can create sessions
  Session(const Token&, std::shared_ptr<detail::Core> core, boost::asio::ip::tcp::socket socket, uint64_t id);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::string& cid() const { return cid_; }  // PSK identity (== Hello.cid, checked)
  const pbfw::proto::Hello& hello() const { return hello_; }
  std::string remote() const { return remote_; }  // "ip:port" for logs
  // Queued; frames go out in order; never blocks. No-op once closed. A peer whose
  // unsent backlog would exceed max_write_queue_bytes is dropped.
  void send(const pbfw::proto::Message& m);
  // Idempotent. Unsent frames are dropped, the TLS shutdown is bounded by a timer.
  void close(std::string reason);
  bool open() const { return state_ == State::Open; }
  uint64_t id() const { return id_; }
  // True once the handshake's OpenSSL state is freed and records run on the session keys alone
  // (the suites of the wire contract; CBC without encrypt-then-MAC stays with OpenSSL).
  bool compact() const { return keys_ != nullptr; }

 private:
  friend struct detail::Core;
  enum class State { Handshake, AwaitHello, Open, Closing, Closed };

  // TLS runs on the socket itself, driven by readiness waits: no asio::ssl::stream, whose record
  // buffers would cost ~70 KB per session. OpenSSL does the handshake (a non-blocking socket BIO);
  // then its SSL (~7.6 KB) is freed and records are protected with the session keys alone
  // (detail::RecordProtection, ~200 bytes). Records are received into and decrypted in the server's
  // shared buffer, so an idle session holds no buffer; only a partial record or frame is kept.
  void start();
  void pump();  // does what the socket's readiness and the state allow
  void wait_for(bool write);
  void do_handshake();
  void take_over_records();  // after the handshake: free the SSL if its suite allows
  void read_records();
  void read_own();   // records on the session keys
  void drain_own();  // closing: skip records until the peer's alert or end of stream
  bool on_record(uint8_t type, const uint8_t* data, size_t n);  // false once processing stopped
  // The shared buffer holds the kept partial record (take_partial), then what fill() receives
  // behind the incomplete record at buf[pos, have), moved to the front first. Blocked: nothing yet;
  // the partial record is kept again and a read wait is armed. Error: errno says why.
  enum class Fill { Got, Blocked, End, Error };
  size_t take_partial(uint8_t* buf);
  Fill fill(uint8_t* buf, size_t& have, size_t& pos);
  void send_alert(uint8_t description);         // fatal; best effort
  bool consume(const uint8_t* data, size_t n);  // false once the session stopped processing
  size_t decode_frames(const uint8_t* data, size_t n, bool& ok);
  void handle_frame(const pbfw::proto::Message& m);
  void handle_hello(const pbfw::proto::Hello& h);
  void arm_handshake_timer();
  void arm_idle_timer();
  void on_idle_timer(const boost::system::error_code& ec);
  void flush_writes();
  bool write_inflight(int& ssl_error, int& saved_errno);  // true once inflight_ is written
  bool write_own(int& ssl_error, int& saved_errno);       // the same for records on the session keys
  // Close with a Warning naming cid, remote and why; `graceful`: send close_notify first.
  void fail(const std::string& why, bool graceful = true);
  void close_now(std::string reason);  // no TLS shutdown (dead or misbehaving peer)
  void drop(std::string reason);       // close_now with an Info line: the peer or the connection ended it
  void begin_close(std::string reason, bool graceful);
  void continue_close(bool may_read);  // may_read: not inside another session's decode
  void finish();
  void free_tls();  // OpenSSL's state of the connection, once it is no longer needed

  struct SslFree {
    void operator()(ssl_st* ssl) const;
  };

  std::shared_ptr<detail::Core> core_;
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<ssl_st, SslFree> ssl_;            // until the handshake is done, or for good
  std::unique_ptr<detail::RecordProtection> keys_;  // instead of ssl_ once the handshake is done
  boost::asio::steady_timer timer_;                 // handshake deadline, then idle check
  boost::asio::steady_timer close_timer_;           // bounds the TLS shutdown
  uint64_t id_;
  std::string remote_;
  State state_ = State::Handshake;
  bool hello_seen_ = false;  // on_hello delivered, so on_closed is owed
  bool read_wait_ = false;   // a wait for readability is pending
  bool write_wait_ = false;  // a wait for writability is pending
  bool pump_posted_ = false;
  bool close_notify_sent_ = false;
  bool timed_out_ = false;  // the handshake timer fired (counted as a timeout)

  // Set by the PSK callback during the handshake (for the log line when it fails).
  std::string psk_identity_;
  std::string auth_failure_;
  bool key_found_ = false;
  bool client_etm_ = false;  // the ClientHello offered encrypt-then-MAC

  std::string cid_;
  pbfw::proto::Hello hello_{};
  std::string address_;   // the peer's IP address: the key of the per-address limits
  bool waiting_ = false;  // counted among the connections waiting for their Hello

  std::vector<uint8_t> rrec_;  // a partial record (records on the session keys)
  std::vector<uint8_t> rbuf_;  // a partial frame, received but not yet decodable
  std::chrono::steady_clock::time_point last_rx_;

  std::vector<uint8_t> pending_;  // encoded, waiting for the current write to finish
  // Handed to SSL_write, which must be retried with it until done; or, on the session keys, sealed
  // records of which inflight_sent_ bytes are sent.
  std::vector<uint8_t> inflight_;
  size_t inflight_sent_ = 0;
};

// Admission: a connection waits for its TLS handshake and Hello (at most handshake_timeout) in a
// table of max_handshakes places, at most max_handshakes_per_address of them per peer address
// (queued ones included), and an address may open new_per_address_per_s connections a second
// (bursts of twice that); what breaks these is closed at once. When the table is full, a newcomer
// from an address that holds fewer places than the address holding the most takes the oldest place
// of that one (many idle connections from one host, or from a few, cannot keep another host's
// socket out); otherwise it waits in line, up to max_queued, and starts in order as places free up
// (a reconnect storm is served in order instead of refused into the sockets' backoff). Sessions
// past their Hello do not count here; there are at most max_sessions of them. Refusals and
// failures before Hello are logged at most once a minute per reason, with the count of those not
// logged.
struct ServerOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 0;
  std::chrono::seconds handshake_timeout{5};         // TCP accept → valid Hello
  std::chrono::seconds idle_timeout{45};             // no frame received for this long → close
  size_t max_sessions = 5000;                        // sessions past their Hello
  size_t max_handshakes = 1024;                      // connections waiting for their Hello, all addresses
  size_t max_queued = 4096;                          // accepted while the table is full, in line
  size_t max_handshakes_per_address = 8;             // 0: no limit
  double new_per_address_per_s = 20;                 // 0: no limit
  size_t max_write_queue_bytes = 256 * 1024;         // a peer that doesn't read is dropped
  std::chrono::milliseconds shutdown_timeout{2000};  // TLS close_notify exchange
};

// Connections that never became a session, by why, since start (each counted once).
struct HandshakeFailures {
  uint64_t refused = 0;           // closed at accept by the admission limits
  uint64_t evicted = 0;           // made room in a full table for another address
  uint64_t unknown_identity = 0;  // PSK identity not in the roster
  uint64_t wrong_key = 0;         // the identity's key did not match (handshake failed after the lookup)
  uint64_t tls = 0;               // any other TLS failure before the handshake finished
  uint64_t timeout = 0;           // no handshake or no Hello within the handshake timeout
  uint64_t hello = 0;             // a bad first frame or Hello (wrong cid, version, session limit)
  uint64_t disconnected = 0;      // the peer or the connection ended it before Hello
};

struct ServerHandlers {
  std::function<void(const std::shared_ptr<Session>&)> on_hello;  // after TLS + valid Hello
  // Every frame after Hello (Keepalive too; it is also answered by the server itself).
  std::function<void(const std::shared_ptr<Session>&, const pbfw::proto::Message&)> on_message;
  // Only for sessions that got on_hello; exactly once; always posted.
  std::function<void(const std::shared_ptr<Session>&, const std::string& reason)> on_closed;
};

class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions options, PskLookup lookup, ServerHandlers handlers);
  ~Server();  // stops; no handler runs after destruction
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();  // bind + listen; throws std::system_error with a clear message on failure
  uint16_t port() const;
  void stop();  // stop accepting, close all sessions
  // Connections being served (handshaking or open); closing ones are not counted.
  size_t session_count() const;
  // Of those, the ones waiting for their Hello.
  size_t handshake_count() const;
  // Accepted connections in line for a place in the handshake table (not counted above).
  size_t queued_count() const;
  // Connections closed at accept by the limits above, and waiting ones that made room for another
  // address's, since start.
  uint64_t refused() const;
  uint64_t evicted() const;
  HandshakeFailures handshake_failures() const;
  // OpenSSL connection states held (some 40 KB each during a handshake): by connections in their
  // handshake, and by sessions that keep OpenSSL's record layer. A closed connection holds none.
  size_t tls_states() const;

 private:
  std::shared_ptr<detail::Core> core_;
};

}  // namespace pb::lan
