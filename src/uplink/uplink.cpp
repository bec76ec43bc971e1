#include "plugbridge/uplink/uplink.hpp"

#include <mqtt/async_client.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <utility>
#include <vector>

#include "plugbridge/common/log.hpp"
#include "plugbridge/tuya/tuya.hpp"

namespace pb::uplink {

namespace {

constexpr int kQos = 1;
// Upper bound for a graceful disconnect in stop().
constexpr std::chrono::milliseconds kDisconnectTimeout{1000};
// Publishes handed to Paho on the current link and not completed (PUBACK or failure) at once.
// Paho refuses a publish while max_buffered_messages of them are queued unsent (error -12), which a
// burst of reports or syncs from one loop turn reaches; the rest wait in the client, command answers
// first. At a 100 ms round trip to the broker this still carries 1 280 publishes a second. Paho's
// own limit leaves room for what earlier links left unsent.
constexpr size_t kPahoWindow = 128;
constexpr int kPahoMaxBuffered = 8 * kPahoWindow;

// Op ids travel through Paho as the token's user context.
void* to_context(uint64_t id) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(id));
}
uint64_t from_context(void* ctx) {
  return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ctx));
}

// What a Paho action listener saw, copied on Paho's thread and handed to the loop.
struct ActionEvent {
  mqtt::token::Type type = mqtt::token::CONNECT;
  uint64_t id = 0;
  bool ok = false;
  int rc = 0;
  int reason = 0;
  std::string topic;             // first topic of a SUBSCRIBE
  bool session_present = false;  // CONNACK of a successful CONNECT
};

std::string server_uri(const Options& o) {
  // IPv6 literals need brackets in a URI.
  std::string host = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
  return (o.tls ? "ssl://" : "tcp://") + host + ":" + std::to_string(o.port);
}

// Generic mode: explicit topic filters, full topics in publish() and on_message.
bool generic(const Options& o) {
  return o.topics.has_value();
}

// The Tuya texts name the default config key; another one (e.g. "uplinks[0]") replaces it.
std::string with_config_key(std::string text, const std::string& key) {
  static const std::string kDefault = "uplink.";
  if (key + "." == kDefault) return text;
  for (size_t at = text.find(kDefault); at != std::string::npos;
       at = text.find(kDefault, at + key.size() + 1))
    text.replace(at, kDefault.size(), key + ".");
  return text;
}

// What a CONNACK return code means, with what to check.
std::string connack_meaning(const Options& o, int rc) {
  if (!o.password && !o.credentials) return with_config_key(tuya::connack_meaning(rc), o.config_key);
  const std::string& key = o.config_key;
  switch (rc) {
    case 1:
      return "unacceptable protocol version (broker does not support MQTT 3.1.1)";
    case 2:
      return "identifier rejected (client id \"" + o.gateway_id + "\")";
    case 3:
      return "server unavailable (will retry)";
    case 4:
      if (!o.auth_hint.empty()) return "bad user name or password: " + o.auth_hint;
      return "bad user name or password (check " + key + ".username / " + key + ".password)";
    case 5:
      // mosquitto also answers a wrong password with 5 on MQTT 3.1.1.
      if (!o.auth_hint.empty()) return "not authorized (bad user name or password?): " + o.auth_hint;
      return "not authorized (check " + key + ".username / " + key + ".password and the broker's ACL)";
    default:
      return "unknown CONNACK return code " + std::to_string(rc);
  }
}

// In words for an operator: what a failed TCP connect means.
std::string tcp_failure(const boost::system::error_code& e) {
  namespace err = boost::asio::error;
  if (e == err::connection_refused) return "TCP connection refused";
  if (e == err::network_unreachable || e == err::host_unreachable)
    return "TCP connection failed: unreachable";
  if (e == err::timed_out) return "TCP connection timed out";
  return "TCP connection failed";
}

// Tells an operator why a connect failed. With TLS: one TLS handshake with the same trust settings
// as Paho, to tell DNS, TCP, an unknown CA or a certificate issued for another host name apart.
// Without: name resolution and the TCP connect alone.
class Probe : public std::enable_shared_from_this<Probe> {
 public:
  using Done = std::function<void(const std::string&)>;
  Probe(boost::asio::io_context& io, const Options& o, Done done)
      : opt_(o),
        key_(o.config_key),
        resolver_(io),
        ctx_(boost::asio::ssl::context::tls_client),
        stream_(io, ctx_),
        timer_(io),
        done_(std::move(done)) {}

  void run() {
    const std::string hint =
        "; check " + key_ + ".ca_file / broker host name (" + key_ + ".host = " + opt_.host + ")";
    timer_.expires_after(opt_.connect_timeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
      if (e) return;
      const std::string within = " within " + std::to_string(self->opt_.connect_timeout.count()) + " s";
      if (self->opt_.tls) return self->finish("no TLS answer" + within);
      if (self->resolving_)
        return self->finish("cannot resolve \"" + self->opt_.host + "\": no answer" + within + "; check " +
                            self->key_ + ".host");
      self->finish("broker not reachable: TCP connection timed out (no answer" + within + "); check " +
                   self->key_ + ".host / " + self->key_ + ".port");
    });
    if (opt_.tls && !setup_tls()) return;
    resolving_ = true;
    resolver_.async_resolve(
        opt_.host, std::to_string(opt_.port),
        [self = shared_from_this(), hint](const boost::system::error_code& e, auto results) {
          self->resolving_ = false;
          if (e)
            return self->finish("cannot resolve \"" + self->opt_.host + "\" (" + e.message() + "); check " +
                                self->key_ + ".host");
          self->connect(results, hint);
        });
  }

 private:
  bool setup_tls() {
    boost::system::error_code ec;
    ctx_.load_verify_file(opt_.ca_file, ec);
    if (ec) {
      finish("cannot read CA file \"" + opt_.ca_file + "\" (" + ec.message() + "); check " + key_ +
             ".ca_file");
      return false;
    }
    stream_.set_verify_mode(boost::asio::ssl::verify_peer);
    SSL* ssl = stream_.native_handle();
    if (opt_.verify_hostname) {
      boost::asio::ip::make_address(opt_.host, ec);
      if (!ec) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), opt_.host.c_str());
      } else {
        SSL_set1_host(ssl, opt_.host.c_str());
        SSL_set_tlsext_host_name(ssl, opt_.host.c_str());
      }
    }
    return true;
  }

  void connect(const boost::asio::ip::tcp::resolver::results_type& results, const std::string& hint) {
    boost::asio::async_connect(
        stream_.lowest_layer(), results,
        [self = shared_from_this(), hint](const boost::system::error_code& e, auto) {
          const std::string& key = self->key_;
          const std::string broker = generic(self->opt_) ? "the MQTT broker" : "the Tuya edge broker";
          if (e && self->opt_.tls) {
            return self->finish("broker not reachable (" + e.message() + "); check " + key + ".host / " +
                                key + ".port and that " + broker + " runs");
          }
          if (e) {
            return self->finish("broker not reachable: " + tcp_failure(e) + " (" + e.message() + "); check " +
                                key + ".host / " + key + ".port and that " + broker + " runs");
          }
          if (!self->opt_.tls) {
            return self->finish(
                "TCP connection succeeds, but the broker closed or did not answer the MQTT connection (if it "
                "expects TLS: set " +
                key + ".tls)");
          }
          self->stream_.async_handshake(
              boost::asio::ssl::stream_base::client,
              [self, hint](const boost::system::error_code& he) { self->handshaken(he, hint); });
        });
  }

  void handshaken(const boost::system::error_code& e, const std::string& hint) {
    if (!e) return finish("TLS handshake succeeds, the broker closed the MQTT connection");
    long verify = SSL_get_verify_result(stream_.native_handle());
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      return finish("TLS: broker certificate is not valid for host name \"" + opt_.host + "\" (" +
                    X509_verify_cert_error_string(verify) + ")" + hint);
    }
    if (verify == X509_V_ERR_CERT_NOT_YET_VALID || verify == X509_V_ERR_CERT_HAS_EXPIRED) {
      return finish(std::string("TLS: broker certificate verify failed (") +
                    X509_verify_cert_error_string(verify) +
                    "); check this machine's clock (timedatectl) and the broker certificate's dates");
    }
    if (verify != X509_V_OK) {
      return finish(std::string("TLS: broker certificate verify failed (") +
                    X509_verify_cert_error_string(verify) + ")" + hint);
    }
    finish("TLS handshake failed (" + e.message() + ")" + hint);
  }

  void finish(const std::string& diagnosis) {
    if (!done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    timer_.cancel();
    resolver_.cancel();
    boost::system::error_code ignored;
    stream_.lowest_layer().close(ignored);
    done(diagnosis);
  }

  Options opt_;
  const std::string key_;  // opt_.config_key
  bool resolving_ = false;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::ssl::context ctx_;
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream_;
  boost::asio::steady_timer timer_;
  Done done_;
};

void probe(boost::asio::io_context& io, const Options& o, Probe::Done done) {
  std::make_shared<Probe>(io, o, std::move(done))->run();
}

}  // namespace

// Messages from the broker, between Paho's thread (put) and the loop (take).
class Inbox {
 public:
  void put(std::string topic, std::string payload) {
    std::lock_guard lock(mutex_);
    queue_.emplace_back(std::move(topic), std::move(payload));
    any_.store(true, std::memory_order_release);
  }
  // Everything waiting, in arrival order (nothing: one atomic read).
  std::deque<std::pair<std::string, std::string>> take() {
    if (!any_.load(std::memory_order_acquire)) return {};
    std::lock_guard lock(mutex_);
    any_.store(false, std::memory_order_relaxed);
    return std::exchange(queue_, {});
  }

 private:
  std::mutex mutex_;
  std::deque<std::pair<std::string, std::string>> queue_;
  std::atomic<bool> any_{false};
};

// Loop-thread state. Paho threads never touch it directly: they post closures holding a
// weak_ptr, so a destroyed Client simply makes them no-ops.
struct Client::State : std::enable_shared_from_this<State> {
  enum class Phase { Idle, Connecting, Subscribing, Connected };

  class Listener : public mqtt::iaction_listener {
   public:
    explicit Listener(boost::asio::io_context& io) : io_(io) {}
    void attach(std::weak_ptr<State> state) { state_ = std::move(state); }
    void on_success(const mqtt::token& tok) override { forward(tok, true); }
    void on_failure(const mqtt::token& tok) override { forward(tok, false); }

   private:
    void forward(const mqtt::token& tok, bool ok) {
      ActionEvent ev;
      ev.type = tok.get_type();
      ev.id = from_context(tok.get_user_context());
      ev.ok = ok;
      ev.rc = tok.get_return_code();
      ev.reason = static_cast<int>(tok.get_reason_code());
      if (auto topics = tok.get_topics(); topics && !topics->empty()) ev.topic = (*topics)[0];
      if (ok && ev.type == mqtt::token::CONNECT) {
        try {
          ev.session_present = tok.get_connect_response().is_session_present();  // complete: no wait
        } catch (const std::exception&) {
          // No CONNACK details: count it as a new session.
        }
      }
      boost::asio::post(io_, [w = state_, ev = std::move(ev)] {
        if (auto s = w.lock()) s->on_action(ev);
      });
    }
    boost::asio::io_context& io_;
    std::weak_ptr<State> state_;
  };

  State(boost::asio::io_context& io_ctx, Options o, Handlers hs)
      : io(io_ctx),
        opt(std::move(o)),
        h(std::move(hs)),
        log(opt.log_name),
        prefix(generic(opt) ? "" : tuya::topic(opt.gateway_id, "")),
        retry_timer(io_ctx),
        stop_timer(io_ctx),
        rng(std::random_device{}()),
        listener(io_ctx) {
    conn_opts.set_mqtt_version(MQTTVERSION_3_1_1);
    conn_opts.set_clean_session(opt.clean_session);
    conn_opts.set_keep_alive_interval(opt.keepalive);
    conn_opts.set_connect_timeout(opt.connect_timeout);
    // Left unset when empty: Paho would otherwise send the user name or password flag.
    if (!opt.username.empty()) conn_opts.set_user_name(opt.username);
    const std::string password =
        opt.password ? *opt.password : tuya::md5_password(opt.gateway_id, opt.username);
    if (!password.empty()) conn_opts.set_password(password);
    if (opt.will) {
      // All four arguments: the defaults of Paho C++ 1.2.0's string-payload constructor are wrong.
      conn_opts.set_will(mqtt::will_options(opt.will->topic, opt.will->payload, kQos, opt.will->retained));
    }
    conn_opts.set_automatic_reconnect(false);  // we reconnect and resubscribe ourselves
    if (opt.tls) {
      mqtt::ssl_options ssl;
      ssl.set_trust_store(opt.ca_file);
      ssl.set_enable_server_cert_auth(true);
      // Without verify Paho checks the chain but not that it was issued for opt.host.
      ssl.set_verify(opt.verify_hostname);
      // No ssl.set_error_handler(): Paho C++ 1.2.0 calls it through a pointer to the ssl_options
      // object it was set on, which is gone after the options are copied (crash). probe() explains
      // TLS failures instead.
      conn_opts.set_ssl(std::move(ssl));
    }

    mqtt::create_options create;
    create.set_max_buffered_messages(kPahoMaxBuffered);
    create.set_send_while_disconnected(false);
    cli = std::make_unique<mqtt::async_client>(server_uri(opt), opt.gateway_id, create);
  }

  void attach() {
    std::weak_ptr<State> w = weak_from_this();
    listener.attach(w);
    auto& ioc = io;
    cli->set_connection_lost_handler([&ioc, w](const std::string& cause) {
      boost::asio::post(ioc, [w, cause] {
        if (auto s = w.lock()) s->on_connection_lost(cause);
      });
    });
    // Into the inbox, and a loop turn to deliver it; deliver_waiting() may take it earlier.
    cli->set_message_callback([&ioc, w, box = inbox](mqtt::const_message_ptr msg) {
      box->put(msg->get_topic(), msg->to_string());
      boost::asio::post(ioc, [w] {
        if (auto s = w.lock()) s->deliver_waiting();
      });
    });
  }

  // Synchronous teardown: after this no Paho thread calls back into us.
  void shutdown() {
    destroyed = true;
    retry_timer.cancel();
    stop_timer.cancel();
    pending.clear();
    in_window = 0;
    urgent.clear();
    queued.clear();
    if (cli) {
      try {
        cli->disable_callbacks();
      } catch (const std::exception&) {
        // Paho refuses while connected; the weak_ptr guard covers that case.
      }
      cli.reset();
    }
  }

  // --- loop thread ---------------------------------------------------------------------

  log::Level info_level() const { return opt.log_connects ? log::Level::Info : log::Level::Debug; }

  void start() {
    if (destroyed) return;
    stopping = false;
    if (phase != Phase::Idle || retry_pending) return;  // already running
    attempt_connect();
  }

  void attempt_connect() {
    retry_pending = false;
    if (stopping || destroyed) return;
    phase = Phase::Connecting;
    ++generation;
    if (opt.credentials) {
      Options::Credentials c = opt.credentials();
      conn_opts.set_user_name(c.username);
      conn_opts.set_password(c.password);
    }
    PB_LOG(Debug, log) << "connecting to " << server_uri(opt) << " as " << opt.gateway_id;
    try {
      cli->connect(conn_opts, to_context(generation), listener);
    } catch (const std::exception& e) {
      connect_failed(std::string("cannot start a connection: ") + e.what());
    }
  }

  // CONNACK refusals are explained directly; for anything else Paho only says "failure", so a
  // separate probe finds out whether it was DNS, TCP, the CA or the host name.
  void explain_connect_failure(const ActionEvent& ev) {
    refused_login = ev.rc == 4 || ev.rc == 5;
    if (ev.rc >= 1 && ev.rc <= 5) {
      connect_failed("broker refused the connection: CONNACK " + std::to_string(ev.rc) + " " +
                     connack_meaning(opt, ev.rc));
      return;
    }
    std::string paho = "Paho rc " + std::to_string(ev.rc) + ": " + mqtt::exception::error_str(ev.rc);
    probe(io, opt, [w = weak_from_this(), gen = generation, paho](const std::string& diagnosis) {
      auto s = w.lock();
      if (!s || s->destroyed || gen != s->generation || s->phase != Phase::Connecting) return;
      s->connect_failed("cannot connect to " + server_uri(s->opt) + ": " + diagnosis + " (" + paho + ")");
    });
  }

  void on_action(const ActionEvent& ev) {
    if (destroyed) return;
    switch (ev.type) {
      case mqtt::token::CONNECT:
        if (ev.id != generation || phase != Phase::Connecting) {
          // A connect that completed after stop() or was superseded: do not stay connected.
          if (ev.ok && stopping) disconnect_quietly();
          return;
        }
        if (!ev.ok) {
          explain_connect_failure(ev);
          return;
        }
        session_present = ev.session_present;
        if (session_present)
          PB_LOG(Info, log)
              << "broker resumed our MQTT session (publishes it had not acknowledged are resent)";
        else if (!opt.clean_session && !generic(opt))
          PB_LOG(Info, log) << "broker has no session of ours (first connect, or it restarted or expired "
                               "it): a new session; unacknowledged reports come from the outbox";
        else if (!opt.clean_session)
          PB_LOG(Info, log) << "broker has no session of ours (first connect, or it restarted or expired "
                               "it): a new session";
        // Subscribing again is cheap and also right when the broker lost the session.
        subscribe();
        return;
      case mqtt::token::SUBSCRIBE:
        if (ev.id != generation || phase != Phase::Subscribing) return;
        on_subscribed(ev);
        return;
      case mqtt::token::PUBLISH: {
        auto it = pending.find(ev.id);
        if (it == pending.end()) return;
        auto done = std::move(it->second.done);
        if (it->second.link == link && in_window > 0) --in_window;
        pending.erase(it);
        ++(ev.ok ? n_published : n_failed);
        if (!ev.ok) {
          PB_LOG(Debug, log) << "publish not acknowledged (Paho rc " << ev.rc << ")";
        }
        if (done) done(ev.ok);
        if (!destroyed) hand_over();
        return;
      }
      case mqtt::token::DISCONNECT:
        if (stopping) finish_stop();
        return;
      default:
        return;
    }
  }

  // One SUBSCRIBE per topic: Paho reports a refused single topic (SUBACK 0x80) as a failure,
  // whereas its multi-topic SUBACK code list is not reliable in Paho C++ 1.2.
  void subscribe() {
    phase = Phase::Subscribing;
    std::vector<std::string> filters;
    if (generic(opt)) {
      filters = *opt.topics;
    } else {
      for (auto suffix :
           {tuya::suffix::kCommands, tuya::suffix::kSyncResponse, tuya::suffix::kReportResponse})
        filters.push_back(tuya::topic(opt.gateway_id, suffix));
    }
    if (filters.empty()) return subscribed();
    subscribes_outstanding = filters.size();
    for (const auto& filter : filters) {
      try {
        cli->subscribe(filter, kQos, to_context(generation), listener);
      } catch (const std::exception& e) {
        disconnect_quietly();
        connect_failed(std::string("cannot subscribe: ") + e.what());
        return;
      }
    }
  }

  void on_subscribed(const ActionEvent& ev) {
    if (!ev.ok) {
      disconnect_quietly();
      connect_failed("broker refused the subscription to " + ev.topic + " (check the broker ACL for user " +
                     opt.username + ")");
      return;
    }
    if (--subscribes_outstanding > 0) return;
    subscribed();
  }

  void subscribed() {
    phase = Phase::Connected;
    // A new link: what Paho still holds from an earlier one completes whenever Paho says (resent
    // in the broker's session, or failed), but no longer keeps new publishes waiting.
    ++link;
    in_window = 0;
    failures = 0;
    refused_login = false;
    last_failure.clear();
    last_error.clear();
    disable_nagle_to_port(opt.port);
    PB_LOG_AT(info_level(), log) << "connected to " << server_uri(opt) << " and subscribed as "
                                 << opt.gateway_id;
    if (h.on_connected) h.on_connected();
  }

  void connect_failed(const std::string& reason) {
    phase = Phase::Idle;
    fail_waiting();
    ++generation;  // ignore late completions of this attempt
    // The same reason again (a long outage at reconnect_max_s) only every 5 minutes as a warning.
    const auto now = std::chrono::steady_clock::now();
    quiet_retry = reason == last_failure && now - last_failure_logged < std::chrono::minutes(5);
    if (!quiet_retry) {
      PB_LOG(Warning, log) << "uplink down: " << reason;
      last_failure = reason;
      last_failure_logged = now;
    } else {
      PB_LOG(Debug, log) << "uplink down: " << reason;
    }
    last_error = reason;
    if (h.on_disconnected) h.on_disconnected(reason);
    if (destroyed) return;
    schedule_retry();
  }

  void on_connection_lost(const std::string& cause) {
    if (destroyed || stopping) return;
    if (phase != Phase::Connected && phase != Phase::Subscribing) return;  // a connect failure reports itself
    connect_failed(cause.empty() ? "connection lost" : "connection lost: " + cause);
  }

  void deliver_waiting() {
    if (delivering) return;  // a handler that asks again: the loop below takes the rest
    delivering = true;
    for (auto batch = inbox->take(); !batch.empty() && !destroyed; batch = inbox->take())
      for (const auto& [topic, payload] : batch) on_message(topic, payload);
    delivering = false;
  }

  void on_message(const std::string& topic, const std::string& payload) {
    if (destroyed) return;
    if (generic(opt)) {
      if (h.on_message) h.on_message(topic, payload);
      return;
    }
    if (topic.compare(0, prefix.size(), prefix) != 0) {
      PB_LOG(Warning, log) << "ignoring message on unexpected topic " << topic;
      return;
    }
    if (h.on_message) h.on_message(topic.substr(prefix.size()), payload);
  }

  void schedule_retry() {
    if (stopping || destroyed) return;
    // Exponential backoff with jitter in [delay/2, delay] so gateways do not retry in lockstep.
    auto delay = opt.retry_min;
    for (unsigned i = 0; i < failures && delay < opt.retry_max; ++i) delay *= 2;
    delay = std::min(delay, opt.retry_max);
    ++failures;
    auto half = delay.count() / 2;
    std::uniform_int_distribution<int64_t> dist(half, std::max<int64_t>(half, delay.count()));
    std::chrono::milliseconds wait{dist(rng)};
    if (quiet_retry)
      PB_LOG(Debug, log) << "reconnecting in " << wait.count() << " ms";
    else
      PB_LOG_AT(info_level(), log) << "reconnecting in " << wait.count() << " ms";
    retry_pending = true;
    retry_timer.expires_after(wait);
    retry_timer.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto s = w.lock()) s->attempt_connect();
    });
  }

  void disconnect_quietly() {
    try {
      cli->disconnect(0);
    } catch (const std::exception&) {
      // Already disconnected.
    }
  }

  void stop(std::function<void()> done) {
    stop_done.push_back(std::move(done));
    if (stopping) return;  // a stop is in progress; done() joins it
    stopping = true;
    retry_timer.cancel();
    retry_pending = false;
    ++generation;
    bool was_up = phase == Phase::Connected || phase == Phase::Subscribing;
    phase = Phase::Idle;
    fail_waiting();
    if (was_up) {
      PB_LOG_AT(info_level(), log) << "disconnecting from " << server_uri(opt);
      last_error = "stopped";
      if (h.on_disconnected) h.on_disconnected("stopped");
      if (destroyed) return;
    }
    bool waiting = false;
    if (cli->is_connected()) {
      try {
        cli->disconnect(static_cast<int>(kDisconnectTimeout.count()), nullptr, listener);
        waiting = true;
      } catch (const std::exception& e) {
        PB_LOG(Debug, log) << "disconnect: " << e.what();
      }
    }
    if (waiting) {
      // Bounded: finish even if Paho never completes the disconnect.
      stop_timer.expires_after(kDisconnectTimeout + std::chrono::milliseconds(500));
      stop_timer.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto s = w.lock()) s->finish_stop();
      });
    } else {
      boost::asio::post(io, [w = weak_from_this()] {
        if (auto s = w.lock()) s->finish_stop();
      });
    }
  }

  void finish_stop() {
    if (destroyed || stop_done.empty()) return;
    stop_timer.cancel();
    auto failed = std::move(pending);
    pending.clear();
    in_window = 0;
    for (auto& [id, p] : failed) {
      ++n_failed;
      if (p.done) p.done(false);
      if (destroyed) return;
    }
    auto dones = std::move(stop_done);
    stop_done.clear();
    for (auto& d : dones) {
      if (d) d();
      if (destroyed) return;
    }
  }

  struct Publish {
    std::string topic;  // Tuya mode: the suffix
    std::string payload;
    std::function<void(bool)> done;
    bool retain = false;
  };

  void publish(const std::string& topic, std::string payload, std::function<void(bool)> done, bool retain) {
    if (destroyed) return;
    if (phase != Phase::Connected || stopping) {
      PB_LOG(Debug, log) << "not connected: dropping publish to " << topic;
      fail_posted(std::move(done));
      return;
    }
    // Tuya mode: answers to commands go ahead of reports and syncs.
    auto& queue = !generic(opt) && topic == tuya::suffix::kCommandsResponse ? urgent : queued;
    queue.push_back(Publish{topic, std::move(payload), std::move(done), retain});
    hand_over();
  }

  // A publish that ends failed before Paho had it: done(false) in a loop turn of its own.
  void fail_posted(std::function<void(bool)> done) {
    ++n_failed;
    if (done) boost::asio::post(io, [d = std::move(done)] { d(false); });
  }

  // Hands waiting publishes to Paho while fewer than kPahoWindow are in its hands.
  void hand_over() {
    while (in_window < kPahoWindow && phase == Phase::Connected && !stopping && !destroyed &&
           !(urgent.empty() && queued.empty())) {
      auto& queue = urgent.empty() ? queued : urgent;
      Publish p = std::move(queue.front());
      queue.pop_front();
      send(std::move(p));
    }
  }

  void send(Publish p) {
    uint64_t id = next_op++;
    auto msg = mqtt::make_message(prefix + p.topic, p.payload.data(), p.payload.size(), kQos, p.retain);
    pending.emplace(id, Pending{std::move(p.done), link});
    ++in_window;
    try {
      cli->publish(msg, to_context(id), listener);
    } catch (const std::exception& e) {
      PB_LOG(Warning, log) << "publish to " << p.topic << " failed: " << e.what();
      auto it = pending.find(id);
      auto d = std::move(it->second.done);
      pending.erase(it);
      --in_window;
      fail_posted(std::move(d));
    }
  }

  // The link is down or stopping: what waits for the window fails (posted), as a publish made now
  // would.
  void fail_waiting() {
    for (auto* queue : {&urgent, &queued}) {
      for (auto& p : *queue) fail_posted(std::move(p.done));
      queue->clear();
    }
  }

  boost::asio::io_context& io;
  Options opt;
  Handlers h;
  std::string_view log;  // opt.log_name
  std::string prefix;    // Tuya mode: "gateway_id/{id}/"; generic mode: empty
  boost::asio::steady_timer retry_timer;
  boost::asio::steady_timer stop_timer;
  std::mt19937_64 rng;
  mqtt::connect_options conn_opts;
  Listener listener;  // declared before cli: Paho holds a reference until cli is gone
  std::unique_ptr<mqtt::async_client> cli;
  std::shared_ptr<Inbox> inbox = std::make_shared<Inbox>();
  bool delivering = false;

  Phase phase = Phase::Idle;
  bool stopping = false;
  bool destroyed = false;
  bool retry_pending = false;
  bool session_present = false;
  std::string last_error;    // as given to on_disconnected; cleared on connect
  uint64_t n_published = 0;  // publishes acked
  uint64_t n_failed = 0;     // publishes failed
  std::string last_failure;  // the last connect failure logged as a warning, and when
  std::chrono::steady_clock::time_point last_failure_logged{};
  bool quiet_retry = false;
  uint64_t generation = 0;  // connect attempt; CONNECT/SUBSCRIBE completions carry it
  unsigned failures = 0;
  bool refused_login = false;  // the last attempt's CONNACK was 4 or 5
  size_t subscribes_outstanding = 0;
  uint64_t next_op = 1;
  struct Pending {
    std::function<void(bool)> done;
    uint64_t link = 0;  // the link it was handed over on
  };
  std::map<uint64_t, Pending> pending;  // publishes Paho has, awaiting PUBACK
  uint64_t link = 0;                    // links up so far
  size_t in_window = 0;                 // of pending, those handed over on this link
  std::deque<Publish> urgent, queued;   // for the window (kPahoWindow): command answers, the rest
  std::vector<std::function<void()>> stop_done;
};

Client::Client(boost::asio::io_context& io, Options options, Handlers handlers)
    : state_(std::make_shared<State>(io, std::move(options), std::move(handlers))) {
  state_->attach();
}

Client::~Client() {
  state_->shutdown();
}

void Client::start() {
  state_->start();
}

void Client::deliver_waiting() {
  state_->deliver_waiting();
}

void Client::stop(std::function<void()> done) {
  state_->stop(std::move(done));
}

size_t Client::waiting() const {
  return state_->urgent.size() + state_->queued.size();
}

bool Client::connected() const {
  return state_->phase == State::Phase::Connected;
}

bool Client::login_refused() const {
  return state_->refused_login;
}

bool Client::session_present() const {
  return state_->session_present;
}

void Client::publish(const std::string& topic, std::string payload, std::function<void(bool ok)> done,
                     bool retain) {
  state_->publish(topic, std::move(payload), std::move(done), retain);
}

std::string Client::last_error() const {
  return state_->last_error;
}

uint64_t Client::published() const {
  return state_->n_published;
}

uint64_t Client::failed() const {
  return state_->n_failed;
}

size_t disable_nagle_to_port(uint16_t port) {
  size_t done = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    try {
      fd = std::stoi(entry.path().filename().string());
    } catch (const std::exception&) {
      continue;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) continue;
    uint16_t peer_port = 0;
    if (peer.ss_family == AF_INET)
      peer_port = ntohs(reinterpret_cast<const sockaddr_in*>(&peer)->sin_port);
    else if (peer.ss_family == AF_INET6)
      peer_port = ntohs(reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_port);
    else
      continue;
    const int one = 1;
    if (peer_port == port && ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0) ++done;
  }
  return done;
}

}  // namespace pb::uplink
