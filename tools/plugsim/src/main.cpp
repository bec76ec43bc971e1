// plugsim: runs N simulated smart sockets against a plugbridged gateway.
// Events as JSON lines on stdout, logs on stderr, control lines on stdin.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <csignal>
#include <cstdio>
#include <istream>
#include <map>

#include "plugbridge/common/log.hpp"
#include "plugbridge/config/config.hpp"
#include "plugsim/decode.hpp"
#include "plugsim/scenario.hpp"
#include "plugsim/simulator.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

bool parse_hex(const std::string& hex, std::vector<uint8_t>& out) {
  if (hex.empty() || hex.size() % 2 != 0) return false;
  out.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    unsigned v = 0;
    if (std::sscanf(hex.c_str() + i, "%2x", &v) != 1 || !std::isxdigit(static_cast<unsigned char>(hex[i])) ||
        !std::isxdigit(static_cast<unsigned char>(hex[i + 1])))
      return false;
    out.push_back(static_cast<uint8_t>(v));
  }
  return true;
}

// "host:port" or "[v6]:port".
bool split_host_port(const std::string& s, std::string& host, std::string& port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size()) return false;
  host = s.substr(0, colon);
  port = s.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return !host.empty();
}

std::vector<double> parse_watts(const std::string& list) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= list.size()) {
    const auto comma = list.find(',', start);
    const auto item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t used = 0;
    const double w = std::stod(item, &used);
    if (used != item.size() || w < 0) throw std::invalid_argument("bad --watts item '" + item + "'");
    out.push_back(w);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Drops the per-record "acked" events (1 000 lines/s in a load run) and passes everything else on.
class NoAckEventsSink : public plugsim::EventSink {
 public:
  explicit NoAckEventsSink(plugsim::EventSink& next) : next_(next) {}
  void emit(const std::string& json) override {
    if (json.find(R"("ev":"acked")") == std::string::npos) next_.emit(json);
  }

 private:
  plugsim::EventSink& next_;
};

// Reads control lines from stdin when it is a pipe or terminal (epoll cannot watch files).
class StdinControl {
 public:
  StdinControl(asio::io_context& io, std::function<void(const std::string&)> on_line)
      : in_(io), on_line_(std::move(on_line)) {
    boost::system::error_code ec;
    in_.assign(::dup(STDIN_FILENO), ec);
    if (ec) {
      PB_LOG(Debug, "plugsim") << "stdin control disabled: " << ec.message();
      return;
    }
    read();
  }
  void stop() {
    boost::system::error_code ignored;
    in_.close(ignored);
  }

 private:
  void read() {
    asio::async_read_until(in_, buf_, '\n', [this](const boost::system::error_code& ec, size_t) {
      if (ec) return;  // EOF or closed: no more control lines
      std::istream is(&buf_);
      std::string line;
      std::getline(is, line);
      on_line_(line);
      read();
    });
  }

  asio::posix::stream_descriptor in_;
  asio::streambuf buf_;
  std::function<void(const std::string&)> on_line_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "decode") return plugsim::decode_main(argc - 1, argv + 1);
  CLI::App app{"plugsim: simulated smart sockets for plugbridged"};
  std::string config_path, gateway, watts_list = "60,1200,5", state_dir, log_level = "info", default_psk;
  size_t count = 0;
  double pf = 0.95, volts = 230.0, duration_s = 0;
  uint32_t reading_interval_ms = 1000;
  std::vector<std::string> psk_overrides, meter_gains;
  bool no_ack_events = false;
  std::string link = "esp-at";
  app.add_option("--config", config_path, "plugbridged config file (socket roster + lan.port)");
  app.add_option("--gateway", gateway, "gateway HOST:PORT (default: from --config)");
  app.add_option("--count", count, "simulate the first N roster sockets (default: all)");
  app.add_option("--watts", watts_list, "load per socket in W, cycled over the sockets")
      ->capture_default_str();
  app.add_option("--pf", pf, "power factor of every load")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 1.0));
  app.add_option("--volts", volts, "mains voltage")->capture_default_str()->check(CLI::Range(0.0, 300.0));
  app.add_option("--reading-interval-ms", reading_interval_ms)
      ->capture_default_str()
      ->check(CLI::Range(50, 3600000));
  app.add_option("--state-dir", state_dir, "persist each socket's boot counter and energy here");
  bool flash_state = false;
  app.add_flag("--flash", flash_state,
               "with --state-dir: keep the state in the firmware's flash log (<cid>.flash, 8 x 2 KB pages)");
  app.add_option("--duration", duration_s, "exit after S seconds (0 = until SIGINT/SIGTERM or 'quit')")
      ->capture_default_str();
  app.add_option("--psk-override", psk_overrides, "CID=HEX: use this key instead of the roster's");
  app.add_option("--meter-gain", meter_gains,
                 "CID=G: that socket's meter reads G x the true current and power until calibrated "
                 "(a shunt off its nominal value), e.g. 1.05");
  app.add_option("--psk", default_psk, "without --config: key (hex) shared by sockets plugsim-0001..N");
  app.add_option("--link", link,
                 "how sockets reach the gateway: esp-at (the firmware's ESP-AT driver + an emulated ESP8266) "
                 "or direct (asio TLS)")
      ->check(CLI::IsMember({"direct", "esp-at"}))
      ->capture_default_str();
  app.add_flag("--no-ack-events", no_ack_events, "do not print an \"acked\" event per record (load runs)");
  app.add_option("--log-level", log_level, "debug, info, warning, error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  pb::log::Level level{};
  if (!pb::log::parse_level(log_level, level)) {
    std::fprintf(stderr, "plugsim: unknown --log-level '%s'\n", log_level.c_str());
    return 2;
  }
  pb::log::set_level(level);

  try {
    plugsim::SimulatorOptions opts;
    std::string host = "127.0.0.1", port;
    std::vector<plugsim::SocketSpec> roster;
    if (!config_path.empty()) {
      const auto cfg = pb::config::load_file(config_path);
      if (cfg.lan.listen_address != "0.0.0.0" && cfg.lan.listen_address != "::")
        host = cfg.lan.listen_address;
      port = std::to_string(cfg.lan.port);
      for (const auto& s : cfg.sockets) {
        plugsim::SocketSpec spec;
        spec.cid = s.cid;
        spec.psk = s.secret;
        if (s.limits.current_max_ma) spec.current_limit_ma = *s.limits.current_max_ma;
        roster.push_back(std::move(spec));
      }
    } else {
      std::vector<uint8_t> key;
      if (gateway.empty() || count == 0 || !parse_hex(default_psk, key)) {
        std::fprintf(stderr, "plugsim: need --config, or --gateway with --count and --psk\n");
        return 2;
      }
      for (size_t i = 1; i <= count; ++i) {
        char cid[32];
        std::snprintf(cid, sizeof cid, "plugsim-%04zu", i);
        roster.push_back({.cid = cid, .psk = key});
      }
    }
    if (!gateway.empty() && !split_host_port(gateway, host, port)) {
      std::fprintf(stderr, "plugsim: bad --gateway '%s' (want HOST:PORT)\n", gateway.c_str());
      return 2;
    }
    if (port.empty() || port == "0") {
      std::fprintf(stderr, "plugsim: the config's lan.port is 0; give --gateway HOST:PORT\n");
      return 2;
    }
    if (count > 0 && count < roster.size()) roster.resize(count);

    std::map<std::string, std::vector<uint8_t>> overrides;
    for (const auto& o : psk_overrides) {
      const auto eq = o.find('=');
      std::vector<uint8_t> key;
      if (eq == std::string::npos || !parse_hex(o.substr(eq + 1), key)) {
        std::fprintf(stderr, "plugsim: bad --psk-override '%s' (want CID=HEX)\n", o.c_str());
        return 2;
      }
      overrides[o.substr(0, eq)] = key;
    }

    std::map<std::string, double> gains;
    for (const auto& g : meter_gains) {
      const auto eq = g.find('=');
      double gain = 0;
      try {
        if (eq != std::string::npos) gain = std::stod(g.substr(eq + 1));
      } catch (const std::exception&) {
      }
      if (!(gain >= 0.5 && gain <= 2.0)) {
        std::fprintf(stderr, "plugsim: bad --meter-gain '%s' (want CID=G, G 0.5..2)\n", g.c_str());
        return 2;
      }
      gains[g.substr(0, eq)] = gain;
    }

    const auto watts = parse_watts(watts_list);
    for (size_t i = 0; i < roster.size(); ++i) {
      auto& spec = roster[i];
      spec.watts = watts[i % watts.size()];
      spec.power_factor = pf;
      spec.volts = volts;
      spec.reading_interval_ms = reading_interval_ms;
      if (auto it = overrides.find(spec.cid); it != overrides.end()) spec.psk = it->second;
      if (auto it = gains.find(spec.cid); it != gains.end()) spec.meter_gain = it->second;
    }

    asio::io_context io(1);
    tcp::resolver resolver(io);
    const auto endpoints = resolver.resolve(host, port);
    if (endpoints.empty()) throw std::runtime_error("cannot resolve " + host);
    opts.gateway = endpoints.begin()->endpoint();
    opts.sockets = std::move(roster);
    opts.transport.link = link == "esp-at" ? plugsim::LinkKind::EspAt : plugsim::LinkKind::Direct;
    if (!state_dir.empty()) opts.state_dir = state_dir;
    opts.flash_state = flash_state;
    // About 2 ms per socket, at most 5 s: 1000 TLS handshakes do not all land at once.
    opts.start_spread =
        std::chrono::milliseconds(std::min<int64_t>(5000, 2 * static_cast<int64_t>(opts.sockets.size())));

    plugsim::StdioEventSink stdio_events;
    NoAckEventsSink quiet_events(stdio_events);
    plugsim::EventSink& events =
        no_ack_events ? static_cast<plugsim::EventSink&>(quiet_events) : stdio_events;
    plugsim::Simulator sim(io, std::move(opts), events);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::steady_timer duration_timer(io);
    std::unique_ptr<StdinControl> control;
    plugsim::Scenario scenario(io, sim, events);
    auto shutdown = [&](const char* why) {
      PB_LOG(Info, "plugsim") << "stopping: " << why;
      sim.stop();
      scenario.stop();
      signals.cancel();
      duration_timer.cancel();
      if (control) control->stop();
    };
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (!ec) shutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
    });
    if (duration_s > 0) {
      duration_timer.expires_after(std::chrono::milliseconds(static_cast<int64_t>(duration_s * 1000)));
      duration_timer.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) shutdown("duration elapsed");
      });
    }
    control = std::make_unique<StdinControl>(io, [&](const std::string& line) {
      bool scenario_ok = true;
      if (scenario.control(line, scenario_ok)) return;  // profile, press, hold, power-cut, *-loss
      if (sim.control(line) == plugsim::Simulator::ControlResult::Quit) shutdown("quit");
    });
    sim.start();
    io.run();
    return 0;
  } catch (const std::exception& e) {
    PB_LOG(Error, "plugsim") << e.what();
    return 1;
  }
}
