// plugbridged: the gateway daemon. Wiring only; the logic lives in src/.
#include <openssl/crypto.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "plugbridge/cloud/service.hpp"
#include "plugbridge/common/log.hpp"
#include "plugbridge/common/memory.hpp"
#include "plugbridge/common/service.hpp"
#include "plugbridge/config/check.hpp"
#include "plugbridge/config/config.hpp"
#include "plugbridge/control/control_server.hpp"
#include "plugbridge/gateway/gateway.hpp"
#include "plugbridge/homeassistant/service.hpp"
#include "plugbridge/metrics/metrics.hpp"
#include "plugbridge/store/store.hpp"
#include "plugbridge/uplink/uplink.hpp"

namespace {

class UplinkAdapter : public pb::gateway::UplinkPort {
 public:
  explicit UplinkAdapter(pb::uplink::Client& c) : client_(c) {}
  bool connected() const override { return client_.connected(); }
  void publish(const std::string& suffix, std::string payload, std::function<void(bool)> done) override {
    client_.publish(suffix, std::move(payload), std::move(done));
  }
  void deliver_waiting() override { client_.deliver_waiting(); }
  size_t backlog() const override { return client_.waiting(); }

 private:
  pb::uplink::Client& client_;
};

// How long the start-up quick_check may take (about 1 GB of database on an SD card).
constexpr std::chrono::seconds kStartupCheckBudget{20};

}  // namespace

int main(int argc, char** argv) {
  // Paho's threads may still run TLS code while exit() runs; OpenSSL's atexit cleanup would pull
  // the library out from under them.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
  CLI::App app{"plugbridged: bridges plugbridge smart sockets to the Tuya edge gateway"};
  std::string config_path = "/etc/plugbridge/plugbridge.yaml";
  bool check_only = false;
  std::string log_level;
  std::string service_user;
  app.add_option("-c,--config", config_path, "configuration file (YAML)")->capture_default_str();
  app.add_flag("--check-config", check_only, "validate the configuration and exit (0 = valid)");
  app.add_option("--log-level", log_level, "debug, info, warning or error (overrides the config)");
  app.add_option("--service-user", service_user,
                 "with --check-config: check the files as this user (default: plugbridge when run as root "
                 "and that user exists, else the current user)");
  app.set_version_flag("--version", std::string("plugbridged ") + PB_VERSION);
  CLI11_PARSE(app, argc, argv);

  pb::config::Config cfg;
  try {
    cfg = pb::config::load_file(config_path);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "plugbridged: %s\n", ex.what());
    return 2;
  }
  if (!cfg.placeholders.empty()) {
    // The shipped example: refuse to start (and to pass the check) until it is filled in.
    for (const std::string& p : cfg.placeholders) std::fprintf(stderr, "plugbridged: %s\n", p.c_str());
    std::fprintf(stderr,
                 "plugbridged: %s is still the example configuration: edit it, then run "
                 "plugbridged --check-config --config %s\n",
                 config_path.c_str(), config_path.c_str());
    return 2;
  }
  // The files the configuration names, as the user the service runs as.
  pb::config::Account who = pb::config::current_account();
  if (check_only && (!service_user.empty() || who.uid == 0)) {
    const std::string name = service_user.empty() ? "plugbridge" : service_user;
    if (auto a = pb::config::find_account(name))
      who = *a;
    else if (!service_user.empty()) {
      std::fprintf(stderr, "plugbridged: --service-user %s: no such user\n", name.c_str());
      return 2;
    }
  }
  const std::vector<std::string> problems = pb::config::check_files(cfg, who);
  for (const std::string& p : problems) std::fprintf(stderr, "plugbridged: %s\n", p.c_str());
  if (!problems.empty()) {
    std::fprintf(stderr, "plugbridged: %s: %zu problem%s for user %s\n", config_path.c_str(), problems.size(),
                 problems.size() == 1 ? "" : "s", who.name.c_str());
    return 2;
  }
  if (check_only) {
    std::printf("%s (files checked as %s)\n", pb::config::summary(cfg).c_str(), who.name.c_str());
    return 0;
  }
  pb::log::Level level;
  if (!pb::log::parse_level(log_level.empty() ? cfg.log_level : log_level, level)) {
    std::fprintf(stderr, "plugbridged: unknown log level '%s'\n", log_level.c_str());
    return 2;
  }
  pb::log::set_level(level);

  try {
    boost::asio::io_context io;
    // Before anything starts: a SIGTERM during start-up must take the graceful path too.
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    // SIGHUP (what admins and many tools send) reloads the configuration; it never terminates.
    boost::asio::signal_set hangup(io, SIGHUP);
    std::unique_ptr<pb::store::Store> opened;
    try {
      opened = std::make_unique<pb::store::Store>(cfg.database);
    } catch (const pb::store::StoreError& e) {
      if (pb::store::damaged(e)) throw std::runtime_error(pb::store::damaged_message(cfg.database, e.what()));
      throw;
    }
    pb::store::Store& store = *opened;
    // Damage found now, before READY, not in the middle of a commit: quick_check, bounded in time.
    const pb::store::IntegrityReport check = store.quick_check(kStartupCheckBudget);
    if (!check.ok) throw std::runtime_error(pb::store::damaged_message(cfg.database, check.problems.front()));
    PB_LOG(Info, "main") << "database " << cfg.database << " at schema version " << store.schema_version()
                         << (check.complete ? ", quick_check ok in "
                                            : ", quick_check stopped (no damage so far) after ")
                         << check.took.count() << " ms";

    std::unique_ptr<pb::uplink::Client> uplink;
    std::unique_ptr<UplinkAdapter> adapter;
    std::unique_ptr<pb::gateway::Gateway> gw;
    if (cfg.uplink.enabled) {
      pb::uplink::Options o;
      o.host = cfg.uplink.host;
      o.port = cfg.uplink.port;
      o.ca_file = cfg.uplink.ca_file;
      o.gateway_id = cfg.gateway_id;
      o.username = cfg.uplink.username;
      o.verify_hostname = cfg.uplink.verify_hostname;
      o.keepalive = std::chrono::seconds(cfg.uplink.keepalive_s);
      o.connect_timeout = std::chrono::seconds(cfg.uplink.connect_timeout_s);
      o.retry_max = std::chrono::seconds(cfg.uplink.reconnect_max_s);
      o.clean_session = cfg.uplink.clean_session;
      pb::uplink::Handlers h;
      h.on_connected = [&] { gw->on_uplink_connected(); };
      h.on_disconnected = [&](const std::string& reason) { gw->on_uplink_disconnected(reason); };
      h.on_message = [&](const std::string& suffix, const std::string& payload) {
        gw->on_uplink_message(suffix, payload);
      };
      uplink = std::make_unique<pb::uplink::Client>(io, o, h);
      adapter = std::make_unique<UplinkAdapter>(*uplink);
    } else if (cfg.mqtt_uplinks.empty() && cfg.device_uplinks.empty()) {
      PB_LOG(Warning, "main") << "no uplink in the configuration: running LAN-only";
    } else {
      PB_LOG(Info, "main") << "no Tuya uplink in the configuration";
    }
    gw = std::make_unique<pb::gateway::Gateway>(io, cfg, store, adapter.get());
    // The local brokers (uplinks of type mqtt), each with its own connection.
    std::vector<std::unique_ptr<pb::homeassistant::Service>> locals;
    for (const pb::config::MqttUplink& m : cfg.mqtt_uplinks) {
      locals.push_back(std::make_unique<pb::homeassistant::Service>(io, m, cfg.gateway_id, PB_VERSION, *gw));
      gw->add_uplink_health([&l = *locals.back()] { return l.uplink_health(); });
    }
    // The device-direct platforms (uplinks of type aliyun, tencent): a connection per socket.
    std::vector<std::unique_ptr<pb::cloud::DeviceService>> platforms;
    for (const pb::config::DeviceUplink& d : cfg.device_uplinks) {
      platforms.push_back(std::make_unique<pb::cloud::DeviceService>(io, d, *gw, store));
      gw->add_uplink_health([&p = *platforms.back()] { return p.uplink_health(); });
    }
    gw->start();
    if (uplink) uplink->start();
    for (auto& l : locals) l->start();
    for (auto& p : platforms) p->start();
    // Parsing a roster of thousands of sockets leaves MBs free below what stays.
    pb::memory::BackgroundRelease release;
    release.start();
    auto status_line = [&] {
      return "listening for sockets on port " + std::to_string(gw->lan_port()) + ", " +
             std::to_string(gw->config().sockets.size()) + " in the roster";
    };
    bool stopping = false;
    // Re-reads the file the daemon started with; a file that does not parse (or is the example
    // again) changes nothing. Answers the control socket's `reload`.
    auto reload = [&](const std::string& trigger) -> nlohmann::json {
      if (stopping) return {{"ok", false}, {"error", "shutting_down"}, {"message", "the daemon is stopping"}};
      pb::service::notify_reloading();
      nlohmann::json out;
      try {
        pb::config::Config next = pb::config::load_file(config_path);
        if (!next.placeholders.empty())
          throw pb::config::ConfigError(next.placeholders.front() + " (the example configuration)");
        pb::log::Level next_level;
        if (log_level.empty() && pb::log::parse_level(next.log_level, next_level))
          pb::log::set_level(next_level);
        const pb::gateway::ConfigDiff d = gw->reload(next);
        const std::string message = "reloaded " + config_path + ": " + pb::gateway::summary(d);
        PB_LOG(Info, "main") << trigger << ": " << message;
        out = {{"ok", true},
               {"message", message},
               {"added", d.added},
               {"removed", d.removed},
               {"rekeyed", d.rekeyed},
               {"changed", d.changed},
               {"settings", d.settings},
               {"needs_restart", d.needs_restart}};
      } catch (const std::exception& ex) {
        const std::string message = std::string(ex.what()) + "; still running on the previous configuration";
        PB_LOG(Error, "main") << trigger << ": reload refused: " << message;
        out = {{"ok", false}, {"error", "config"}, {"message", message}};
      }
      pb::service::notify_ready(status_line());
      release.start();
      return out;
    };
    std::function<void()> wait_hangup = [&] {
      hangup.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        reload("SIGHUP");
        wait_hangup();
      });
    };
    wait_hangup();
    // A convenience for the CLI: without it the daemon still bridges, so a failure is not fatal.
    std::unique_ptr<pb::control::Server> control;
    if (!cfg.control_socket.empty()) {
      pb::control::ServerOptions co;
      co.path = cfg.control_socket;
      try {
        control = std::make_unique<pb::control::Server>(
            io, co, pb::control::gateway_handler(*gw, [&] { return reload("plugbridge reload"); }));
      } catch (const std::exception& ex) {
        PB_LOG(Error, "main") << ex.what() << "; the plugbridge CLI cannot reach this daemon";
      }
    }

    // Prometheus metrics (config `metrics:`): like the control socket, not worth stopping the bridge for.
    std::unique_ptr<pb::metrics::Exporter> metrics;
    if (cfg.metrics.enabled) {
      pb::metrics::Options mo;
      mo.listen = cfg.metrics.listen;
      try {
        metrics = std::make_unique<pb::metrics::Exporter>(io, *gw, mo);
      } catch (const std::exception& ex) {
        PB_LOG(Error, "main") << ex.what() << "; running without the metrics endpoint";
      }
    }

    pb::service::Watchdog watchdog(io);
    watchdog.start();
    pb::service::notify_ready(status_line());

    boost::asio::steady_timer shutdown_deadline(io);
    // Every uplink says goodbye (each bounded in time), then the loop ends.
    size_t uplinks_stopping = 0;
    auto stop_loop = [&] {
      if (control) control->stop();
      if (metrics) metrics->stop();
      uplinks_stopping = (uplink ? 1 : 0) + locals.size() + platforms.size();
      if (uplinks_stopping == 0) return io.stop();
      auto one_stopped = [&] {
        if (--uplinks_stopping == 0) io.stop();
      };
      if (uplink) uplink->stop(one_stopped);
      for (auto& l : locals) l->stop(one_stopped);
      for (auto& p : platforms) p->stop(one_stopped);
    };
    // The database cannot be written any more: exit non-zero at once; systemd starts the daemon
    // again, which opens (or creates) the file at the configured path. The sockets keep what was
    // not acked.
    int exit_code = 0;
    gw->on_fatal([&](const std::string& why) {
      if (stopping) return;
      stopping = true;
      exit_code = 1;
      hangup.cancel();
      signals.cancel();
      PB_LOG(Error, "main") << why << ": exiting so that the service starts again on " << cfg.database;
      pb::service::notify_stopping();
      watchdog.stop();
      shutdown_deadline.expires_after(std::chrono::seconds(2));
      shutdown_deadline.async_wait([&](const boost::system::error_code& e) {
        if (!e) io.stop();
      });
      stop_loop();
    });
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec || stopping) return;
      stopping = true;
      hangup.cancel();
      PB_LOG(Info, "main") << "signal " << sig << ": shutting down";
      pb::service::notify_stopping();
      watchdog.stop();
      // Bounded: a broker that never acks must not keep us from exiting.
      shutdown_deadline.expires_after(std::chrono::seconds(5));
      shutdown_deadline.async_wait([&](const boost::system::error_code& e) {
        if (!e) {
          PB_LOG(Warning, "main") << "shutdown took too long; exiting";
          io.stop();
        }
      });
      gw->shutdown(stop_loop);
    });
    io.run();
    PB_LOG(Info, "main") << "stopped";
    return exit_code;
  } catch (const std::exception& ex) {
    PB_LOG(Error, "main") << ex.what();
    return 1;
  }
}
