#include "plugbridge/lan/server.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "key_throttle.hpp"
#include "plugbridge/common/log.hpp"
#include "plugbridge/common/memory.hpp"
#include "record_layer.hpp"

namespace pb::lan {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
namespace proto = pbfw::proto;
using detail::AlertDescription;
using detail::ContentType;
using detail::RecordProtection;
constexpr std::string_view kUnknownIdentity = "unknown identity";

struct Session::Token {
  explicit Token() = default;
};

namespace {

// TLS records decoded per session and loop turn before the others get theirs (the rest, possibly
// buffered inside OpenSSL where epoll cannot see it, goes on a later turn).
constexpr int kRecordsPerTurn = 32;
constexpr std::chrono::milliseconds kAcceptRetry{100};
constexpr size_t kMaxLoggedIdentity = 64;

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

[[noreturn]] void throw_ssl(const std::string& what) {
  throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                          "lan: " + what + ": " + openssl_error());
}

// A socket BIO that sends with MSG_NOSIGNAL (OpenSSL's own socket BIO would raise SIGPIPE on a
// connection the peer reset) and reads the non-blocking socket asio owns; it never closes it.
int bio_write(BIO* b, const char* data, int n) {
  BIO_clear_retry_flags(b);
  const ssize_t r = ::send(BIO_get_fd(b, nullptr), data, static_cast<size_t>(n), MSG_NOSIGNAL);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return static_cast<int>(r);
}

int bio_read(BIO* b, char* data, int n) {
  BIO_clear_retry_flags(b);
  const ssize_t r = ::recv(BIO_get_fd(b, nullptr), data, static_cast<size_t>(n), 0);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  return static_cast<int>(r);
}

long bio_ctrl(BIO* b, int cmd, long /*num*/, void* ptr) {
  switch (cmd) {
    case BIO_C_SET_FD:
      BIO_set_data(b, reinterpret_cast<void*>(static_cast<intptr_t>(*static_cast<int*>(ptr))));
      BIO_set_init(b, 1);
      return 1;
    case BIO_C_GET_FD: {
      if (BIO_get_init(b) == 0) return -1;
      const auto fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b)));
      if (ptr != nullptr) *static_cast<int*>(ptr) = fd;
      return fd;
    }
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;
  }
}

const BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "plugbridge socket");
    if (m == nullptr || BIO_meth_set_write(m, bio_write) != 1 || BIO_meth_set_read(m, bio_read) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1)
      throw_ssl("cannot set up the socket BIO");
    return m;
  }();
  return method;
}

// Why an SSL call failed (SSL_get_error's code, errno saved right after the call), for logs.
std::string io_failure(int ssl_error, int saved_errno) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return "peer closed the connection";
  if (ssl_error == SSL_ERROR_SYSCALL) {
    ERR_clear_error();
    if (saved_errno == 0) return "peer closed the connection without close_notify";
    return std::strerror(saved_errno);
  }
  if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    ERR_clear_error();
    return "peer closed the connection without close_notify";
  }
  return openssl_error();
}

// Identities come from the network: keep log lines printable and short.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, kMaxLoggedIdentity)) {
    auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  if (s.size() > kMaxLoggedIdentity) out += "...";
  return out;
}

std::string endpoint_string(const tcp::endpoint& ep) {
  auto addr = ep.address();
  std::string host = addr.to_string();
  if (addr.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(ep.port());
}

// What a throttled log line adds about the lines it stands for (KeyThrottle::allow's count).
std::string not_logged(uint64_t missed) {
  return missed ? " (and " + std::to_string(missed) + " more for this reason since the last such line)" : "";
}

void apply_common_tls_settings(SSL_CTX* h) {
  // TLS 1.2 only: the socket firmware's stack speaks nothing else.
  if (SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION) != 1) throw_ssl("cannot set minimum TLS version");
  if (SSL_CTX_set_max_proto_version(h, TLS1_2_VERSION) != 1) throw_ssl("cannot set maximum TLS version");
  if (SSL_CTX_set_cipher_list(h, pbfw::proto::kPskCipherList) != 1) throw_ssl("cannot set PSK cipher list");
  // No resumption: it would skip the PSK lookup, so a revoked key could keep connecting.
  SSL_CTX_set_options(h, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_session_cache_mode(h, SSL_SESS_CACHE_OFF);
  // Thousands of mostly idle sessions: don't keep 2x16 KiB record buffers each.
  SSL_CTX_set_mode(h, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

// asio uses the SSL/SSL_CTX "app data" slot for its verify callback, so we need our own slots.
int core_ex_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

int session_ex_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

struct ClientCredentials {
  std::string identity;
  std::vector<uint8_t> key;
};

void free_client_credentials(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  auto* creds = static_cast<ClientCredentials*>(ptr);
  if (creds == nullptr) return;
  OPENSSL_cleanse(creds->key.data(), creds->key.size());
  delete creds;
}

int client_ex_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_client_credentials);
  return idx;
}

unsigned int client_psk_callback(SSL* ssl, const char* /*hint*/, char* identity,
                                 unsigned int max_identity_len, unsigned char* psk,
                                 unsigned int max_psk_len) {
  auto* creds = static_cast<ClientCredentials*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), client_ex_index()));
  if (creds == nullptr) return 0;
  if (creds->identity.size() + 1 > max_identity_len || creds->key.size() > max_psk_len) return 0;
  std::memcpy(identity, creds->identity.c_str(), creds->identity.size() + 1);
  std::memcpy(psk, creds->key.data(), creds->key.size());
  return static_cast<unsigned int>(creds->key.size());
}

unsigned int server_psk_callback(SSL* ssl, const char* identity, unsigned char* psk,
                                 unsigned int max_psk_len);
int client_hello_callback(SSL* ssl, int* alert, void* arg);

}  // namespace

ssl::context make_psk_client_context(std::string identity, std::vector<uint8_t> key) {
  if (identity.empty() || identity.size() > PSK_MAX_IDENTITY_LEN)
    throw std::invalid_argument("lan: PSK identity must be 1.." + std::to_string(PSK_MAX_IDENTITY_LEN) +
                                " bytes");
  if (key.empty() || key.size() > PSK_MAX_PSK_LEN)
    throw std::invalid_argument("lan: PSK must be 1.." + std::to_string(PSK_MAX_PSK_LEN) + " bytes");
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX* h = ctx.native_handle();
  apply_common_tls_settings(h);
  auto* creds = new ClientCredentials{std::move(identity), std::move(key)};
  if (SSL_CTX_set_ex_data(h, client_ex_index(), creds) != 1) {
    free_client_credentials(nullptr, creds, nullptr, 0, 0, nullptr);
    throw_ssl("cannot attach PSK credentials");
  }
  SSL_CTX_set_psk_client_callback(h, &client_psk_callback);
  return ctx;
}

namespace detail {

// Shared by the Server and its sessions, so it outlives every pending handler and every SSL*
// (the PSK callback reaches it through the SSL_CTX).
struct Core : std::enable_shared_from_this<Core> {
  Core(asio::io_context& io_, ServerOptions options_, PskLookup lookup_, ServerHandlers handlers_)
      : io(io_),
        options(std::move(options_)),
        lookup(std::move(lookup_)),
        handlers(std::move(handlers_)),
        ssl_ctx(ssl::context::tls_server),
        acceptor(io_),
        accept_retry(io_),
        release_timer(io_),
        started(std::chrono::steady_clock::now()) {
    SSL_CTX* h = ssl_ctx.native_handle();
    apply_common_tls_settings(h);
    SSL_CTX_set_psk_server_callback(h, &server_psk_callback);
    SSL_CTX_set_client_hello_cb(h, &client_hello_callback, nullptr);
    // A record and whatever follows it in one recv(), not a header and a body in two.
    SSL_CTX_set_read_ahead(h, 1);
    if (SSL_CTX_set_ex_data(h, core_ex_index(), this) != 1) throw_ssl("cannot attach server state");
  }

  void accept() {
    acceptor.async_accept([self = shared_from_this()](const boost::system::error_code& ec, tcp::socket sock) {
      self->on_accept(ec, std::move(sock));
    });
  }

  void on_accept(const boost::system::error_code& ec, tcp::socket sock) {
    if (!accepting) return;
    if (ec) {
      // e.g. EMFILE: back off instead of spinning on the failing accept.
      PB_LOG(Warning, "lan") << "accept failed: " << ec.message();
      accept_retry.expires_after(kAcceptRetry);
      accept_retry.async_wait([self = shared_from_this()](const boost::system::error_code& wec) {
        if (!wec && self->accepting) self->accept();
      });
      return;
    }
    admit(std::move(sock));
    accept();
  }

  // The per-address state of the admission limits (ServerOptions).
  struct Address {
    size_t waiting = 0;             // connections waiting for their Hello
    std::deque<uint64_t> sessions;  // their ids, oldest first
    double tokens = 0;              // new connections it may open now
    std::chrono::steady_clock::time_point refilled{};
  };
  // Addresses remembered at most: every waiting or queued connection from its own address, and as
  // many again recently rate-limited ones.
  size_t max_addresses() const { return 2 * (options.max_handshakes + options.max_queued); }

  void admit(tcp::socket sock) {
    boost::system::error_code ignored;
    const auto ep = sock.remote_endpoint(ignored);
    if (ignored) return;  // gone already
    const std::string ip = ep.address().to_string();
    const auto now = std::chrono::steady_clock::now();
    const auto [kind, why] = refusal(ip, now);
    if (kind != nullptr) {
      ++refused_total;
      uint64_t missed = 0;
      if (refusals.allow(kind, now, &missed))
        PB_LOG(Warning, "lan") << "refusing a connection from " << ip << ": " << why << not_logged(missed)
                               << "; said at most once a minute per reason";
      sock.close(ignored);
      return;
    }
    ++addresses[ip].waiting;
    if (waiting_total >= options.max_handshakes) {
      // The table is full of waiting connections no heavier than this address's: in line.
      queue.push_back({std::move(sock), ip, now});
      return;
    }
    start_session(std::move(sock), ip);
  }

  // A connection whose place is counted (Address::waiting) starts its handshake.
  void start_session(tcp::socket sock, const std::string& ip) {
    boost::system::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);  // small frames, latency matters
    const uint64_t id = next_id++;
    ++handshakes_since_release;
    auto s = std::make_shared<Session>(Session::Token{}, shared_from_this(), std::move(sock), id);
    s->address_ = ip;
    s->waiting_ = true;
    addresses[ip].sessions.push_back(id);
    ++waiting_total;
    sessions.emplace(id, s);
    s->start();
  }

  // Connections accepted while the table was full, oldest first; started as places free up. Only
  // the socket is kept (no TLS state) while one waits here.
  struct Queued {
    tcp::socket sock;
    std::string ip;
    std::chrono::steady_clock::time_point since;
  };
  std::deque<Queued> queue;
  // How long a connection may wait in line. Not the handshake timeout: that starts when its handshake
  // does (a peer that gave up meanwhile fails at once then); expiring the line by it would send a
  // reconnect storm's tail into the sockets' backoff.
  static constexpr std::chrono::seconds kQueueWait{60};

  // Closes queued connections that waited kQueueWait (their peer has given up long ago).
  void drop_expired(std::chrono::steady_clock::time_point now) {
    while (!queue.empty() && now - queue.front().since >= kQueueWait) {
      boost::system::error_code ignored;
      queue.front().sock.close(ignored);
      forget_place(queue.front().ip);
      queue.pop_front();
    }
  }

  void forget_place(const std::string& ip) {
    if (const auto it = addresses.find(ip); it != addresses.end() && it->second.waiting > 0)
      --it->second.waiting;
  }

  // Starts queued connections while places are free, kStartsPerTurn at a time: after a storm most of
  // the line are peers that gave up, each failing its handshake at once and freeing its place, so
  // one call could otherwise run through the whole line in one turn of the loop.
  static constexpr size_t kStartsPerTurn = 64;
  void start_queued() {
    drop_expired(std::chrono::steady_clock::now());
    for (size_t n = 0; !queue.empty() && waiting_total < options.max_handshakes && accepting; ++n) {
      if (n == kStartsPerTurn) {
        post_start_queued();
        return;
      }
      Queued q = std::move(queue.front());
      queue.pop_front();
      start_session(std::move(q.sock), q.ip);
    }
  }
  void post_start_queued() {
    if (start_posted) return;
    start_posted = true;
    asio::post(io, [self = shared_from_this()] {
      self->start_posted = false;
      self->start_queued();
    });
  }

  // Why a new connection from ip is refused: a kind (the key of the log throttle) and the words,
  // or a null kind when it is admitted (its token is taken, and a place may have been made for it).
  std::pair<const char*, std::string> refusal(const std::string& ip,
                                              std::chrono::steady_clock::time_point now) {
    if (sessions.size() - waiting_total >= options.max_sessions)
      return {"sessions", "session limit " + std::to_string(options.max_sessions) + " reached"};
    auto it = addresses.find(ip);
    if (it == addresses.end()) {
      if (addresses.size() >= max_addresses()) forget_idle_addresses(now);
      if (addresses.size() >= max_addresses()) return {"addresses", "too many addresses connecting at once"};
      it = addresses.emplace(ip, Address{}).first;
      it->second.tokens = burst();
      it->second.refilled = now;
    }
    Address& a = it->second;
    if (options.new_per_address_per_s > 0) {
      const double elapsed = std::chrono::duration<double>(now - a.refilled).count();
      a.tokens = std::min(burst(), a.tokens + elapsed * options.new_per_address_per_s);
      a.refilled = now;
      if (a.tokens < 1)
        return {"rate", "more than " + std::to_string(static_cast<int>(options.new_per_address_per_s)) +
                            " new connections a second from this address"};
    }
    if (options.max_handshakes_per_address > 0 && a.waiting >= options.max_handshakes_per_address)
      return {"per address", std::to_string(a.waiting) +
                                 " connections from this address are waiting for their handshake already"};
    if (waiting_total >= options.max_handshakes && !make_room_for(a)) {
      drop_expired(now);
      if (queue.size() >= options.max_queued)
        return {"table", std::to_string(waiting_total) + " connections are waiting for their handshake and " +
                             std::to_string(queue.size()) + " in line already"};
    }
    if (options.new_per_address_per_s > 0) a.tokens -= 1;
    return {nullptr, {}};
  }

  double burst() const { return std::max(2 * options.new_per_address_per_s, 1.0); }

  // The table is full: the oldest waiting connection of the address holding the most places goes,
  // if that address holds more than the newcomer's.
  bool make_room_for(const Address& newcomer) {
    Address* heaviest = nullptr;
    std::string heaviest_ip;
    for (auto& [ip, a] : addresses)
      if (!a.sessions.empty() && (heaviest == nullptr || a.waiting > heaviest->waiting)) {
        heaviest = &a;
        heaviest_ip = ip;
      }
    if (heaviest == nullptr || heaviest->waiting <= newcomer.waiting) return false;
    const auto it = sessions.find(heaviest->sessions.front());
    if (it == sessions.end()) return false;
    ++evicted_total;
    uint64_t missed = 0;
    if (refusals.allow("evicted", std::chrono::steady_clock::now(), &missed))
      PB_LOG(Warning, "lan") << "closing the oldest of the " << heaviest->waiting << " connections from "
                             << heaviest_ip << " waiting for their handshake, to let another address in"
                             << not_logged(missed) << "; said at most once a minute";
    it->second->close_now("made room for another address");  // calls left_waiting
    return true;
  }

  // A connection is no longer waiting for its Hello: it said it, or it is closing. The place goes to
  // the oldest queued connection on the next turn (a newcomer that made this place takes it first).
  void left_waiting(Session& s) {
    if (!s.waiting_) return;
    s.waiting_ = false;
    --waiting_total;
    if (waiting_total == 0 && queue.empty()) storm_over();
    forget_place(s.address_);
    if (const auto it = addresses.find(s.address_); it != addresses.end())
      std::erase(it->second.sessions, s.id_);
    if (!queue.empty()) post_start_queued();
  }
  bool start_posted = false;

  // A handshake allocates some 40 KB (OpenSSL's SSL, the handshake's state, record buffers) and frees
  // it when it ends; after a storm of them (the gateway restarted, the Wi-Fi came back) that memory
  // lies in holes between the sessions' small long-lived allocations (memory::release_free_memory).
  // When the table has emptied after many handshakes, the free pages go back to the system once it
  // is empty at a check kReleaseCheck later: at most once per check, never in the middle of a storm,
  // and on a thread of its own.
  static constexpr uint64_t kHandshakesBeforeRelease = 256;
  static constexpr std::chrono::seconds kReleaseCheck{10};
  uint64_t handshakes_since_release = 0;
  bool release_armed = false;
  void storm_over() {
    if (handshakes_since_release < kHandshakesBeforeRelease || release_armed || !alive) return;
    release_armed = true;
    release_timer.expires_after(kReleaseCheck);
    release_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      self->release_armed = false;
      if (ec || !self->alive) return;
      if (self->waiting_total > 0 || !self->queue.empty()) {
        self->storm_over();  // still handshaking: look again later
        return;
      }
      const uint64_t n = std::exchange(self->handshakes_since_release, 0);
      self->release.start([n](double ms, double before, double after) {
        PB_LOG(Info, "lan") << "after " << n << " handshakes, returned freed memory to the system in "
                            << static_cast<int>(ms) << " ms (resident " << static_cast<int>(before) << " -> "
                            << static_cast<int>(after) << " MB)";
      });
    });
  }

  // Addresses with nothing waiting and a full allowance are the same as unknown ones.
  void forget_idle_addresses(std::chrono::steady_clock::time_point now) {
    std::erase_if(addresses, [&](const auto& kv) {
      const Address& a = kv.second;
      const double elapsed = std::chrono::duration<double>(now - a.refilled).count();
      return a.waiting == 0 && a.tokens + elapsed * options.new_per_address_per_s >= burst();
    });
  }

  static void saw_client_hello(Session& s, SSL* ssl) {
    const unsigned char* ext = nullptr;
    size_t len = 0;
    s.client_etm_ = SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_encrypt_then_mac, &ext, &len) == 1;
  }

  static unsigned int psk_for(Core& core, Session& s, const char* identity, unsigned char* psk,
                              unsigned int max_psk_len) {
    s.psk_identity_ = identity;
    std::optional<std::vector<uint8_t>> key;
    try {
      if (core.lookup) key = core.lookup(s.psk_identity_);
    } catch (const std::exception& e) {
      s.auth_failure_ = std::string("key lookup failed: ") + e.what();
      return 0;
    }
    if (!key || key->empty()) {
      s.auth_failure_ = kUnknownIdentity;
      return 0;
    }
    unsigned int n = 0;
    if (key->size() > max_psk_len) {
      s.auth_failure_ = "configured key too long";
    } else {
      std::memcpy(psk, key->data(), key->size());
      n = static_cast<unsigned int>(key->size());
      s.key_found_ = true;
    }
    OPENSSL_cleanse(key->data(), key->size());
    return n;
  }

  void close_all(const std::string& reason) {
    for (Queued& q : queue) {
      boost::system::error_code ignored;
      q.sock.close(ignored);
    }
    queue.clear();
    if (!sessions.empty()) {
      PB_LOG(Info, "lan") << "closing " << sessions.size() << " sessions: " << reason;
    }
    auto copy = sessions;  // closing erases from the map
    for (auto& [id, s] : copy) s->begin_close(reason, /*graceful=*/true);
  }

  uint64_t uptime_ms() const {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
            .count());
  }

  asio::io_context& io;
  ServerOptions options;
  PskLookup lookup;
  // Identities not in the roster: logged once a minute each.
  KeyThrottle unknown_identities{std::chrono::minutes(1), 1024};
  // Connections refused or failing before their Hello: logged once a minute per reason, with the
  // count of those not logged (whatever the number of addresses an attacker uses).
  KeyThrottle refusals{std::chrono::minutes(1), 1024};
  KeyThrottle failures{std::chrono::minutes(1), 1024};
  std::unordered_map<std::string, Address> addresses;  // peers with connections waiting or recent
  size_t waiting_total = 0;
  size_t tls_states = 0;  // Session::ssl_ held
  uint64_t refused_total = 0, evicted_total = 0;
  HandshakeFailures failed;  // refused and evicted are the totals above
  ServerHandlers handlers;
  ssl::context ssl_ctx;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry;
  asio::steady_timer release_timer;
  memory::BackgroundRelease release;
  std::unordered_map<uint64_t, std::shared_ptr<Session>> sessions;  // not closing
  uint64_t next_id = 1;
  bool accepting = false;
  bool alive = true;  // false once the Server is destroyed: no more handler calls
  std::chrono::steady_clock::time_point started;
  // Every session decrypts into this (one thread, one record at a time; a record's plaintext is
  // at most 16 KiB), so an idle session holds no read buffer of its own.
  // Where received records are read and decrypted, one session at a time: room for a whole record
  // and the next one's start.
  std::array<uint8_t, 2 * RecordProtection::kMaxRecord> scratch{};
};

}  // namespace detail

namespace {
unsigned int server_psk_callback(SSL* ssl, const char* identity, unsigned char* psk,
                                 unsigned int max_psk_len) {
  auto* core = static_cast<detail::Core*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), core_ex_index()));
  auto* session = static_cast<Session*>(SSL_get_ex_data(ssl, session_ex_index()));
  if (core == nullptr || session == nullptr || identity == nullptr) return 0;
  return detail::Core::psk_for(*core, *session, identity, psk, max_psk_len);
}

// Whether the peer offers encrypt-then-MAC: OpenSSL then uses it for a CBC suite, and says so
// nowhere after the handshake.
int client_hello_callback(SSL* ssl, int* /*alert*/, void* /*arg*/) {
  auto* session = static_cast<Session*>(SSL_get_ex_data(ssl, session_ex_index()));
  if (session != nullptr) detail::Core::saw_client_hello(*session, ssl);
  return SSL_CLIENT_HELLO_SUCCESS;
}
}  // namespace

// ---- Session ----

void Session::SslFree::operator()(ssl_st* ssl) const {
  SSL_free(ssl);
}

Session::Session(const Token&, std::shared_ptr<detail::Core> core, tcp::socket socket, uint64_t id)
    : core_(std::move(core)),
      socket_(std::move(socket)),
      ssl_(SSL_new(core_->ssl_ctx.native_handle())),
      timer_(core_->io),
      close_timer_(core_->io),
      id_(id) {
  if (!ssl_) throw_ssl("cannot create a TLS session");
  ++core_->tls_states;
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  remote_ = ec ? std::string("?") : endpoint_string(ep);
  socket_.non_blocking(true, ec);
  if (ec) throw std::system_error(ec, "lan: cannot make the socket non-blocking");
  BIO* bio = BIO_new(socket_bio_method());
  if (bio == nullptr) throw_ssl("cannot create the socket BIO");
  int fd = socket_.native_handle();
  BIO_ctrl(bio, BIO_C_SET_FD, BIO_NOCLOSE, &fd);
  SSL_set_bio(ssl_.get(), bio, bio);  // the SSL owns the BIO
  SSL_set_accept_state(ssl_.get());
  SSL_set_ex_data(ssl_.get(), session_ex_index(), this);
}

Session::~Session() {
  free_tls();
}

void Session::free_tls() {
  if (!ssl_) return;
  ssl_.reset();  // and its BIO; the socket stays open (BIO_NOCLOSE)
  --core_->tls_states;
}

void Session::start() {
  arm_handshake_timer();
  do_handshake();
}

void Session::arm_handshake_timer() {
  timer_.expires_after(core_->options.handshake_timeout);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    self->timed_out_ = true;
    if (self->state_ == State::Handshake) {
      self->fail("TLS handshake timed out");
    } else if (self->state_ == State::AwaitHello) {
      self->fail("no Hello within the handshake timeout");
    }
  });
}

void Session::wait_for(bool write) {
  bool& pending = write ? write_wait_ : read_wait_;
  if (pending || state_ == State::Closed) return;
  pending = true;
  socket_.async_wait(write ? tcp::socket::wait_write : tcp::socket::wait_read,
                     [self = shared_from_this(), write](const boost::system::error_code& ec) {
                       (write ? self->write_wait_ : self->read_wait_) = false;
                       if (ec == asio::error::operation_aborted) return;
                       self->pump();  // an error on the socket shows in the next SSL call
                     });
}

void Session::pump() {
  switch (state_) {
    case State::Handshake:
      do_handshake();
      break;
    case State::AwaitHello:
    case State::Open:
      flush_writes();
      if (state_ == State::AwaitHello || state_ == State::Open) read_records();
      break;
    case State::Closing:
      continue_close(/*may_read=*/true);
      break;
    case State::Closed:
      break;
  }
}

void Session::do_handshake() {
  if (state_ != State::Handshake) return;
  ERR_clear_error();
  errno = 0;
  const int r = SSL_do_handshake(ssl_.get());
  const int saved_errno = errno;
  if (r == 1) {
    take_over_records();
    state_ = State::AwaitHello;
    read_records();  // the Hello may have come with the handshake's last flight
    return;
  }
  const int e = SSL_get_error(ssl_.get(), r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    wait_for(e == SSL_ERROR_WANT_WRITE);
    return;
  }
  const std::string detail = io_failure(e, saved_errno);
  std::string reason;
  if (!auth_failure_.empty()) {
    reason = auth_failure_;
  } else if (key_found_) {
    reason = "handshake failed after key lookup (wrong key?): " + detail;
  } else {
    reason = "handshake failed: " + detail;
  }
  fail(reason);
}

void Session::take_over_records() {
  std::string why;
  keys_ = RecordProtection::take_over(ssl_.get(), RecordProtection::Role::Server, client_etm_, why);
  if (keys_) {
    free_tls();
    return;
  }
  uint64_t missed = 0;
  if (core_->failures.allow("record layer: " + why, std::chrono::steady_clock::now(), &missed))
    PB_LOG(Info, "lan") << "session " << id_ << " identity '" << printable(psk_identity_) << "' from "
                        << remote_ << " keeps OpenSSL's record layer (about 8 KB more per session): " << why
                        << not_logged(missed) << "; said at most once a minute";
}

void Session::read_own() {
  uint8_t* const buf = core_->scratch.data();
  size_t have = take_partial(buf), pos = 0;
  for (int records = 0; records < kRecordsPerTurn;) {
    if (state_ != State::AwaitHello && state_ != State::Open) return;  // a frame closed the session
    size_t len = 0;
    AlertDescription alert{};
    const auto framing = RecordProtection::frame(buf + pos, have - pos, len, alert);
    if (framing == RecordProtection::Framing::Bad) {
      send_alert(static_cast<uint8_t>(alert));
      fail("bad TLS record header", /*graceful=*/false);
      return;
    }
    if (framing == RecordProtection::Framing::Complete) {
      ++records;
      ContentType type{};
      size_t offset = 0, n = 0;
      if (!keys_->open(buf + pos, len, type, offset, n)) {
        send_alert(static_cast<uint8_t>(AlertDescription::BadRecordMac));
        fail("TLS record failed authentication (bad record MAC)", /*graceful=*/false);
        return;
      }
      const uint8_t* data = buf + pos + offset;
      pos += len;
      if (!on_record(static_cast<uint8_t>(type), data, n)) return;
      continue;
    }
    const Fill got = fill(buf, have, pos);
    if (got == Fill::Got) continue;
    if (got == Fill::Blocked) return;
    drop(got == Fill::End ? std::string("peer closed the connection without close_notify")
                          : "read error: " + std::string(std::strerror(errno)));
    return;
  }
  // More may wait, in the buffer or the socket: on a later turn, after the other sessions.
  if (have > pos) rrec_.assign(buf + pos, buf + have);
  if (pump_posted_) return;
  pump_posted_ = true;
  asio::post(core_->io, [self = shared_from_this()] {
    self->pump_posted_ = false;
    self->pump();
  });
}

size_t Session::take_partial(uint8_t* buf) {
  const size_t n = rrec_.size();
  if (n > 0) std::memcpy(buf, rrec_.data(), n);
  std::vector<uint8_t>().swap(rrec_);
  return n;
}

Session::Fill Session::fill(uint8_t* buf, size_t& have, size_t& pos) {
  if (pos > 0) {
    std::memmove(buf, buf + pos, have - pos);
    have -= pos;
    pos = 0;
  }
  for (;;) {
    const ssize_t r = ::recv(socket_.native_handle(), buf + have, core_->scratch.size() - have, 0);
    if (r > 0) {
      have += static_cast<size_t>(r);
      return Fill::Got;
    }
    if (r == 0) return Fill::End;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Fill::Error;
    if (have > 0) rrec_.assign(buf, buf + have);
    wait_for(false);
    return Fill::Blocked;
  }
}

bool Session::on_record(uint8_t type, const uint8_t* data, size_t n) {
  switch (static_cast<ContentType>(type)) {
    case ContentType::ApplicationData:
      return consume(data, n);
    case ContentType::Alert: {
      if (n != 2) {
        send_alert(static_cast<uint8_t>(AlertDescription::DecodeError));
        fail("malformed TLS alert", /*graceful=*/false);
        return false;
      }
      if (data[1] == static_cast<uint8_t>(AlertDescription::CloseNotify)) {
        drop("peer closed the connection");
        return false;
      }
      if (data[0] == 1) return true;  // another warning: nothing to do
      fail("peer sent fatal TLS alert " + std::to_string(data[1]), /*graceful=*/false);
      return false;
    }
    case ContentType::Handshake:
      send_alert(static_cast<uint8_t>(AlertDescription::NoRenegotiation));
      fail("peer tried to renegotiate (refused)", /*graceful=*/false);
      return false;
    default:
      send_alert(static_cast<uint8_t>(AlertDescription::UnexpectedMessage));
      fail("unexpected TLS record type " + std::to_string(type), /*graceful=*/false);
      return false;
  }
}

void Session::send_alert(uint8_t description) {
  const uint8_t alert[2] = {2, description};  // fatal
  if (!keys_ || !keys_->seal(ContentType::Alert, alert, sizeof alert, inflight_)) return;
  int e = 0, saved_errno = 0;
  write_own(e, saved_errno);  // once, without waiting: the connection ends right after
}

void Session::read_records() {
  if (keys_) {
    read_own();
    return;
  }
  for (int i = 0; i < kRecordsPerTurn; ++i) {
    if (state_ != State::AwaitHello && state_ != State::Open) return;
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    const int r = SSL_read_ex(ssl_.get(), core_->scratch.data(), core_->scratch.size(), &n);
    const int saved_errno = errno;
    if (r == 1) {
      if (!consume(core_->scratch.data(), n)) return;
      continue;
    }
    const int e = SSL_get_error(ssl_.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      wait_for(e == SSL_ERROR_WANT_WRITE);
      return;
    }
    std::string reason = io_failure(e, saved_errno);
    if (e != SSL_ERROR_ZERO_RETURN && reason.rfind("peer closed", 0) != 0) reason = "read error: " + reason;
    drop(std::move(reason));
    return;
  }
  // More may wait, inside OpenSSL where the socket's readiness does not show it: on a later turn.
  if (pump_posted_) return;
  pump_posted_ = true;
  asio::post(core_->io, [self = shared_from_this()] {
    self->pump_posted_ = false;
    self->pump();
  });
}

bool Session::consume(const uint8_t* data, size_t n) {
  bool ok = true;
  if (rbuf_.empty()) {
    // The usual case: whole frames, decoded where OpenSSL put them; a partial one is kept.
    const size_t used = decode_frames(data, n, ok);
    if (ok && used < n) rbuf_.assign(data + used, data + n);
  } else {
    rbuf_.insert(rbuf_.end(), data, data + n);
    const size_t used = decode_frames(rbuf_.data(), rbuf_.size(), ok);
    if (!ok) return false;
    rbuf_.erase(rbuf_.begin(), rbuf_.begin() + static_cast<std::ptrdiff_t>(used));
    if (rbuf_.empty()) std::vector<uint8_t>().swap(rbuf_);
  }
  if (!ok) return false;
  // The codec asks for more only while a frame can still complete; never buffer beyond that.
  if (rbuf_.size() > proto::kMaxFrame) {
    fail("bad frame: incomplete frame exceeds the maximum frame size");
    return false;
  }
  return true;
}

size_t Session::decode_frames(const uint8_t* data, size_t n, bool& ok) {
  size_t off = 0;
  while (off < n) {
    if (state_ != State::AwaitHello && state_ != State::Open) {
      ok = false;
      return off;
    }
    proto::Message m{};
    size_t consumed = 0;
    auto st = proto::decode(data + off, n - off, m, consumed);
    if (st == proto::DecodeStatus::NeedMore) break;
    if (st != proto::DecodeStatus::Ok || consumed == 0 || consumed > n - off) {
      fail(std::string("bad frame: ") + proto::to_string(st));
      ok = false;
      return off;
    }
    off += consumed;
    handle_frame(m);
  }
  ok = state_ == State::AwaitHello || state_ == State::Open;
  return off;
}
void Session::handle_frame(const proto::Message& m) {
  last_rx_ = std::chrono::steady_clock::now();
  if (state_ == State::AwaitHello) {
    if (m.type != proto::MsgType::Hello) {
      fail(std::string("first frame is ") + proto::to_string(m.type) + ", not Hello");
      return;
    }
    handle_hello(m.hello);
    return;
  }
  switch (m.type) {
    case proto::MsgType::Reading:
    case proto::MsgType::Event:
    case proto::MsgType::CommandResult:
    case proto::MsgType::Keepalive:
      break;
    default:
      fail(std::string("unexpected ") + proto::to_string(m.type) + " frame from the socket");
      return;
  }
  if (m.type == proto::MsgType::Keepalive) {
    proto::Message reply{};
    reply.type = proto::MsgType::Keepalive;
    reply.keepalive.uptime_ms = core_->uptime_ms();
    send(reply);
    if (state_ != State::Open) return;
  }
  if (!core_->alive || !core_->handlers.on_message) return;
  try {
    core_->handlers.on_message(shared_from_this(), m);
  } catch (const std::exception& e) {
    PB_LOG(Error, "lan") << "on_message handler threw for cid '" << printable(cid_) << "': " << e.what();
    close("internal error handling a frame");
  }
}

void Session::handle_hello(const proto::Hello& h) {
  size_t cid_len = strnlen(h.cid, sizeof h.cid);
  if (cid_len == sizeof h.cid) {
    fail("bad frame: Hello cid is not terminated");
    return;
  }
  if (h.proto_version != proto::kVersion) {
    fail("unsupported Hello proto_version " + std::to_string(h.proto_version));
    return;
  }
  std::string cid(h.cid, cid_len);
  if (cid != psk_identity_) {
    fail("Hello cid '" + printable(cid) + "' does not match the PSK identity");
    return;
  }
  core_->left_waiting(*this);
  if (core_->sessions.size() - core_->waiting_total > core_->options.max_sessions) {
    fail("session limit " + std::to_string(core_->options.max_sessions) + " reached");
    return;
  }
  cid_ = std::move(cid);
  hello_ = h;
  hello_.fw_version[proto::kFwVersionMax] = '\0';
  state_ = State::Open;
  hello_seen_ = true;
  PB_LOG(Info, "lan") << "session " << id_ << " cid '" << printable(cid_) << "' connected from " << remote_
                      << " (fw " << printable(hello_.fw_version) << ", boot " << hello_.boot_counter << ")";
  arm_idle_timer();
  if (!core_->alive || !core_->handlers.on_hello) return;
  try {
    core_->handlers.on_hello(shared_from_this());
  } catch (const std::exception& e) {
    PB_LOG(Error, "lan") << "on_hello handler threw for cid '" << printable(cid_) << "': " << e.what();
    close("internal error handling Hello");
  }
}

void Session::arm_idle_timer() {
  // One wait chain; it re-arms itself from last_rx_ so frames don't have to touch the timer.
  timer_.expires_at(last_rx_ + core_->options.idle_timeout);
  timer_.async_wait(
      [self = shared_from_this()](const boost::system::error_code& ec) { self->on_idle_timer(ec); });
}

void Session::on_idle_timer(const boost::system::error_code& ec) {
  if (ec || state_ != State::Open) return;
  auto deadline = last_rx_ + core_->options.idle_timeout;
  if (std::chrono::steady_clock::now() >= deadline) {
    fail("idle timeout: no frame for " + std::to_string(core_->options.idle_timeout.count()) + " s");
    return;
  }
  timer_.expires_at(deadline);
  timer_.async_wait(
      [self = shared_from_this()](const boost::system::error_code& wec) { self->on_idle_timer(wec); });
}

void Session::send(const proto::Message& m) {
  if (state_ != State::Open && state_ != State::AwaitHello) return;
  uint8_t frame[proto::kMaxFrame];
  size_t n = proto::encode(m, frame, sizeof frame);
  if (n == 0) {
    PB_LOG(Error, "lan") << "cannot encode " << proto::to_string(m.type) << " for cid '" << printable(cid_)
                         << "'; frame dropped";
    return;
  }
  if (pending_.size() + inflight_.size() + n > core_->options.max_write_queue_bytes) {
    PB_LOG(Warning, "lan") << "session " << id_ << " cid '" << printable(cid_) << "' from " << remote_
                           << " dropped: write queue over " << core_->options.max_write_queue_bytes
                           << " bytes (peer not reading)";
    close_now("write queue full (peer not reading)");
    return;
  }
  pending_.insert(pending_.end(), frame, frame + n);
  if (inflight_.empty()) flush_writes();
}

bool Session::write_own(int& ssl_error, int& saved_errno) {
  ssl_error = SSL_ERROR_NONE;
  saved_errno = 0;
  while (inflight_sent_ < inflight_.size()) {
    const ssize_t r = ::send(socket_.native_handle(), inflight_.data() + inflight_sent_,
                             inflight_.size() - inflight_sent_, MSG_NOSIGNAL);
    if (r > 0) {
      inflight_sent_ += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ssl_error = SSL_ERROR_WANT_WRITE;
      wait_for(true);
      return false;
    }
    ssl_error = SSL_ERROR_SYSCALL;
    saved_errno = r < 0 ? errno : EPIPE;
    return false;
  }
  inflight_.clear();
  inflight_sent_ = 0;
  return true;
}

bool Session::write_inflight(int& ssl_error, int& saved_errno) {
  if (keys_) return write_own(ssl_error, saved_errno);
  ssl_error = SSL_ERROR_NONE;
  saved_errno = 0;
  if (inflight_.empty()) return true;
  ERR_clear_error();
  errno = 0;
  size_t n = 0;
  const int r = SSL_write_ex(ssl_.get(), inflight_.data(), inflight_.size(), &n);
  saved_errno = errno;
  if (r == 1) {
    inflight_.clear();
    return true;
  }
  ssl_error = SSL_get_error(ssl_.get(), r);
  if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE)
    wait_for(ssl_error == SSL_ERROR_WANT_WRITE);
  return false;
}

void Session::flush_writes() {
  while (state_ == State::AwaitHello || state_ == State::Open) {
    if (inflight_.empty()) {
      if (pending_.empty()) {
        // Idle sessions keep no write buffers.
        std::vector<uint8_t>().swap(pending_);
        std::vector<uint8_t>().swap(inflight_);
        return;
      }
      if (keys_) {
        if (!keys_->seal(ContentType::ApplicationData, pending_.data(), pending_.size(), inflight_)) {
          fail("cannot protect a TLS record", /*graceful=*/false);
          return;
        }
        pending_.clear();
      } else {
        inflight_.swap(pending_);
      }
    }
    int e = SSL_ERROR_NONE, saved_errno = 0;
    if (write_inflight(e, saved_errno)) continue;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    drop("write error: " + io_failure(e, saved_errno));
    return;
  }
}

void Session::fail(const std::string& why, bool graceful) {
  if (state_ == State::Closing || state_ == State::Closed) return;
  if (state_ == State::Handshake || state_ == State::AwaitHello) {
    HandshakeFailures& f = core_->failed;
    if (timed_out_)
      ++f.timeout;
    else if (state_ == State::AwaitHello)
      ++f.hello;
    else if (why == kUnknownIdentity)
      ++f.unknown_identity;
    else if (key_found_)
      ++f.wrong_key;
    else
      ++f.tls;
  }
  if (state_ == State::Handshake && why == kUnknownIdentity) {
    if (core_->unknown_identities.allow(psk_identity_, std::chrono::steady_clock::now()))
      PB_LOG(Warning, "lan") << "TLS-PSK handshake from " << remote_ << ": socket '"
                             << printable(psk_identity_)
                             << "' is not in the roster: add it under sockets: in the configuration "
                                "(plugbridge provision does), then run plugbridge reload (repeated "
                                "attempts with this identity are logged once a minute)";
  } else if (state_ == State::Handshake || state_ == State::AwaitHello) {
    uint64_t missed = 0;
    if (core_->failures.allow(why, std::chrono::steady_clock::now(), &missed))
      PB_LOG(Warning, "lan") << (state_ == State::Handshake ? "TLS-PSK handshake" : "session before Hello")
                             << " from " << remote_ << " identity '"
                             << (psk_identity_.empty() ? std::string("(none)") : printable(psk_identity_))
                             << "' failed: " << why << not_logged(missed)
                             << "; said at most once a minute per reason";
  } else {
    PB_LOG(Warning, "lan") << "session " << id_ << " cid '" << printable(cid_.empty() ? psk_identity_ : cid_)
                           << "' from " << remote_ << " closed: " << why;
  }
  begin_close(why, graceful);
}

void Session::close(std::string reason) {
  if (state_ == State::Closing || state_ == State::Closed) return;
  PB_LOG(Info, "lan") << "session " << id_ << " cid '" << printable(cid_) << "' from " << remote_
                      << " closed: " << reason;
  begin_close(std::move(reason), /*graceful=*/true);
}

void Session::drop(std::string reason) {
  if (state_ == State::Closing || state_ == State::Closed) return;
  if (state_ == State::Handshake || state_ == State::AwaitHello) ++core_->failed.disconnected;
  PB_LOG(Info, "lan") << "session " << id_ << " cid '" << printable(cid_.empty() ? psk_identity_ : cid_)
                      << "' from " << remote_ << " closed: " << reason;
  begin_close(std::move(reason), /*graceful=*/false);
}

void Session::close_now(std::string reason) {
  if (state_ == State::Closing || state_ == State::Closed) return;
  begin_close(std::move(reason), /*graceful=*/false);
}

void Session::begin_close(std::string reason, bool graceful) {
  bool handshake_done = state_ != State::Handshake;
  state_ = State::Closing;
  timer_.cancel();
  pending_.clear();
  core_->left_waiting(*this);
  core_->sessions.erase(id_);  // `self` below keeps us alive
  auto self = shared_from_this();
  if (hello_seen_ && core_->alive) {
    asio::post(core_->io, [core = core_, self, reason = std::move(reason)] {
      if (!core->alive || !core->handlers.on_closed) return;
      try {
        core->handlers.on_closed(self, reason);
      } catch (const std::exception& e) {
        PB_LOG(Error, "lan") << "on_closed handler threw for cid '" << printable(self->cid_)
                             << "': " << e.what();
      }
    });
  }
  if (!graceful || !handshake_done) {
    finish();
    return;
  }
  close_timer_.expires_after(core_->options.shutdown_timeout);
  close_timer_.async_wait([self](const boost::system::error_code& ec) {
    if (!ec) self->finish();
  });
  continue_close(/*may_read=*/false);
}

void Session::continue_close(bool may_read) {
  if (state_ != State::Closing) return;
  // A record SSL_write has begun must be finished before close_notify may follow it.
  int e = SSL_ERROR_NONE, saved_errno = 0;
  if (!write_inflight(e, saved_errno)) {
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) finish();
    return;
  }
  if (keys_) {
    if (!close_notify_sent_) {
      const uint8_t close_notify[2] = {1, static_cast<uint8_t>(AlertDescription::CloseNotify)};
      close_notify_sent_ = true;
      if (!keys_->seal(ContentType::Alert, close_notify, sizeof close_notify, inflight_)) {
        finish();
        return;
      }
      if (!write_own(e, saved_errno)) {
        if (e != SSL_ERROR_WANT_WRITE) finish();
        return;
      }
    }
    // The shared buffer may be mid-decode for another session whose frame closed this one.
    if (may_read) {
      drain_own();
    } else {
      wait_for(false);
    }
    return;
  }
  if (!close_notify_sent_) {
    ERR_clear_error();
    const int r = SSL_shutdown(ssl_.get());
    if (r == 1) {  // the peer's close_notify came first
      finish();
      return;
    }
    if (r < 0) {
      e = SSL_get_error(ssl_.get(), r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        wait_for(e == SSL_ERROR_WANT_WRITE);
      } else {
        ERR_clear_error();
        finish();
      }
      return;
    }
    close_notify_sent_ = true;
  }
  // Wait for the peer's close_notify (or its end of the connection), reading what it still sends
  // and dropping it, so closing does not answer its last data with a reset. close_timer_ bounds it.
  std::array<uint8_t, 2048> drain;  // not the shared buffer: a handler may close a session mid-decode
  for (int i = 0; i < kRecordsPerTurn; ++i) {
    ERR_clear_error();
    size_t n = 0;
    const int r = SSL_read_ex(ssl_.get(), drain.data(), drain.size(), &n);
    if (r == 1) continue;
    e = SSL_get_error(ssl_.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      wait_for(e == SSL_ERROR_WANT_WRITE);
      return;
    }
    ERR_clear_error();
    finish();
    return;
  }
  wait_for(false);
}

void Session::drain_own() {
  uint8_t* const buf = core_->scratch.data();
  size_t have = take_partial(buf), pos = 0;
  for (int i = 0; i < 2 * kRecordsPerTurn; ++i) {
    size_t len = 0;
    AlertDescription ignored{};
    const auto framing = RecordProtection::frame(buf + pos, have - pos, len, ignored);
    if (framing == RecordProtection::Framing::Bad) break;
    if (framing == RecordProtection::Framing::Complete) {
      // The peer's close_notify, or any alert: nothing more will come that matters.
      if (buf[pos] == static_cast<uint8_t>(ContentType::Alert)) break;
      pos += len;
      continue;
    }
    const Fill got = fill(buf, have, pos);
    if (got == Fill::Got) continue;
    if (got == Fill::Blocked) return;
    break;  // end of stream or error
  }
  finish();
}

void Session::finish() {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  timer_.cancel();
  close_timer_.cancel();
  boost::system::error_code ignored;
  socket_.close(ignored);  // pending waits end with operation_aborted
  // Not left to the destructor: that waits for those waits to end, a loop turn later, and a storm's
  // tail of connections whose peers gave up fails by the thousand within one turn.
  free_tls();
}

// ---- Server ----

Server::Server(asio::io_context& io, ServerOptions options, PskLookup lookup, ServerHandlers handlers)
    : core_(std::make_shared<detail::Core>(io, std::move(options), std::move(lookup), std::move(handlers))) {}

Server::~Server() {
  stop();
  core_->alive = false;
}

void Server::start() {
  auto& c = *core_;
  if (c.acceptor.is_open())
    throw std::system_error(std::make_error_code(std::errc::already_connected), "lan: already started");
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(c.options.address, ec);
  if (ec) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "lan: invalid listen address '" + c.options.address + "'");
  }
  tcp::endpoint ep(addr, c.options.port);
  auto check = [&](const char* what) {
    if (!ec) return;
    boost::system::error_code ignored;
    c.acceptor.close(ignored);
    throw std::system_error(std::error_code(ec.value(), std::system_category()),
                            std::string("lan: cannot ") + what + " " + endpoint_string(ep));
  };
  c.acceptor.open(ep.protocol(), ec);
  check("open a socket for");
  c.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  check("set SO_REUSEADDR on");
  c.acceptor.bind(ep, ec);
  check("bind");
  c.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  check("listen on");
  c.accepting = true;
  PB_LOG(Info, "lan") << "listening on " << endpoint_string(c.acceptor.local_endpoint());
  c.accept();
}

uint16_t Server::port() const {
  boost::system::error_code ec;
  auto ep = core_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void Server::stop() {
  auto& c = *core_;
  c.accepting = false;
  boost::system::error_code ignored;
  c.acceptor.close(ignored);
  c.accept_retry.cancel();
  c.release_timer.cancel();
  c.close_all("server stopping");
}

size_t Server::session_count() const {
  return core_->sessions.size();
}

size_t Server::handshake_count() const {
  return core_->waiting_total;
}

size_t Server::tls_states() const {
  return core_->tls_states;
}

size_t Server::queued_count() const {
  return core_->queue.size();
}

uint64_t Server::refused() const {
  return core_->refused_total;
}

uint64_t Server::evicted() const {
  return core_->evicted_total;
}

HandshakeFailures Server::handshake_failures() const {
  HandshakeFailures f = core_->failed;
  f.refused = core_->refused_total;
  f.evicted = core_->evicted_total;
  return f;
}

}  // namespace pb::lan
